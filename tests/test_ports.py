"""PyTorch code ports by changing the import lines: three well-known tutorials written for PyTorch
(tests/ports/) run on tinyzoo with `torch` replaced by `tinyzoo` in their import lines and nothing else.

Each script asserts its own results (losses fall, values match the tutorial's claims). Where torch is
installed, the same files also run unchanged on PyTorch, which shows they are PyTorch code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinyzoo as tz

PORTS = Path(__file__).parent / "ports"
SCRIPTS = ["polynomial", "blitz", "makemore"]
IMPORTS = [  # (PyTorch's import line, tinyzoo's): the only lines a port changes
    (r"^import torch$", "import tinyzoo as torch"),
    (r"^import torch\.nn as nn$", "import tinyzoo.nn as nn"),
    (r"^import torch\.nn\.functional as F$", "import tinyzoo.nn.functional as F"),
    (r"^import torch\.optim as optim$", "import tinyzoo.optim as optim"),
    (r"^from torch\.utils\.data import ", "from tinyzoo.data import "),
]


def ported(source: str) -> tuple[str, int]:
    """The script with its import lines switched to tinyzoo, and how many other lines mention torch."""
    for pattern, replacement in IMPORTS:
        source = re.sub(pattern, replacement, source, flags=re.M)
    leftovers = [line for line in source.splitlines() if re.match(r"\s*(import|from) torch", line)]
    return source, len(leftovers)


def run(path: Path) -> subprocess.CompletedProcess:
    root = Path(tz.__file__).resolve().parent.parent
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=path.parent, timeout=600,
                          env={"PYTHONPATH": str(root), "PATH": "", "OPENBLAS_NUM_THREADS": "1"})  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_tutorial_runs_on_tinyzoo_with_only_the_imports_changed(name, tmp_path):
    source, leftovers = ported((PORTS / f"{name}.py").read_text())
    assert leftovers == 0, "an import of torch the port did not switch"
    changed = [a for a, b in zip((PORTS / f"{name}.py").read_text().splitlines(), source.splitlines()) if a != b]
    assert all(re.match(r"(import|from) ", line) for line in changed), changed
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    result = run(script)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


@pytest.mark.parametrize("name", SCRIPTS)
def test_tutorial_is_pytorch_code(name):
    pytest.importorskip("torch")
    result = run(PORTS / f"{name}.py")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

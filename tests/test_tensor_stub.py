"""The Tensor stub (tinyzoo/autograd/tensor.pyi) lists every method bound at import time, and is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tinyzoo as tz

ROOT = Path(tz.__file__).resolve().parent.parent


def test_stub_is_current():
    script = ROOT / "scripts" / "make_tensor_stub.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_stub_names_the_bound_methods():
    stub = (ROOT / "tinyzoo" / "autograd" / "tensor.pyi").read_text()
    for name in ("exp", "sum", "max", "add_", "__setitem__", "__iadd__", "repeat", "long", "new_zeros"):
        assert f"    def {name}(self" in stub

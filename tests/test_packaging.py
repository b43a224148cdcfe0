"""Import hygiene: `import tinyzoo` is light and works without numba."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> str:
    """Run code in a fresh interpreter and return its stdout (fails the test on a non-zero exit)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_load_optional_or_heavy_modules():
    loaded = run_python(
        "import sys, tinyzoo\n"
        "print(sorted(m for m in ('numba', 'cupy', 'matplotlib', 'torch', 'tinyzoo.nn') if m in sys.modules))"
    )
    assert loaded.strip() == "[]"


def test_everything_works_without_numba():
    out = run_python(
        "import sys, warnings\n"
        "sys.modules['numba'] = None  # as if numba were not installed\n"
        "import numpy as np, tinyzoo as tz\n"
        "from tinyzoo.kernels import edge_softmax\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    a = edge_softmax(tz.tensor(np.zeros((3, 1))), np.array([0, 0, 1]), 2)\n"
        "print(a.numpy().ravel().tolist(), len(caught))\n"
    )
    values, warning_count = out.rsplit(" ", 1)
    assert values == "[0.5, 0.5, 1.0]" and int(warning_count) == 1

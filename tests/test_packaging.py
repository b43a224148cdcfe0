"""Import hygiene: `import tinyzoo` is light and works without numba; the wheel carries the zoo's examples."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyzoo import zoo

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], **kwargs) -> str:
    """Run a command and return its stdout (fails the test with its output on a non-zero exit)."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


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


def test_every_package_folder_is_in_the_wheel_list():
    """pyproject lists tinyzoo's packages by hand (to map tinyzoo.examples onto examples/): none may be missing."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "tinyzoo").rglob("*") if p.suffix in
               (".py", ".npz") and "__pycache__" not in p.parts}  # fmt: skip
    assert folders | {"tinyzoo.examples"} == listed


def _can_build_without_the_index() -> bool:
    """True when this environment can build the wheel itself: setuptools with bdist_wheel (≥ 70.1, or `wheel`)."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    major, minor = (int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_installed_wheel_lists_and_runs_its_zoo_from_any_folder(tmp_path):
    """Build the wheel, install it into a fresh venv (NumPy and numba from this environment, nothing from the
    checkout), and from an empty folder list the zoo and train PonderNet for 200 steps. Offline when this
    environment can build the wheel; otherwise pip fetches setuptools from the package index to build it."""
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from the checkout
    offline = _can_build_without_the_index()
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)]
    run(build + ["--no-build-isolation"] * offline, env=env)
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env=env)
    python = str(venv / "bin" / "python")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", *map(str, wheels.glob("*"))],
        env=env)  # fmt: skip
    # Then this environment's packages (numpy, numba), after the venv's own: the wheel's tinyzoo is the one found.
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
    (site_packages / "outer.pth").write_text(str(Path(np.__file__).resolve().parent.parent) + "\n")
    elsewhere.mkdir()
    where = run([python, "-c", "import tinyzoo; print(tinyzoo.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.strip()).is_relative_to(venv), where
    listing = run([python, "-m", "tinyzoo", "list"], cwd=elsewhere, env=env)
    for entry in zoo.CATALOGUE:
        assert re.search(rf"^{entry.name}\s+examples/{entry.example}\.py", listing, re.MULTILINE), listing
    trained = run([python, "-m", "tinyzoo", "run", "ponder_net", "--steps", "200"],
                  cwd=elsewhere, env=env)  # fmt: skip
    assert "test accuracy" in trained
    assert run([python, "-m", "tinyzoo", "run", "char_rnn", "--help"], cwd=elsewhere, env=env)  # imports char_lm.py

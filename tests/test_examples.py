"""Examples run end to end (short settings) and reach their stated targets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Import examples/<name>.py as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_micro_mlp_reaches_97_percent(capsys):
    assert load_example("micro_mlp").main(["--steps", "300"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_micro_mlp_gpu_without_gpu_exits_2(capsys):
    import pytest

    import tinyzoo as tz

    if tz.gpu_available():
        pytest.skip("a GPU is present, so --device gpu is valid here")
    assert load_example("micro_mlp").main(["--device", "gpu"]) == 2
    assert "error:" in capsys.readouterr().err

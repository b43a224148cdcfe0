"""Examples run end to end (short settings) and reach their stated targets."""

from __future__ import annotations


def test_micro_mlp_reaches_97_percent(load_example, capsys):
    assert load_example("micro_mlp").main(["--steps", "300"]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_micro_mlp_gpu_without_gpu_exits_2(load_example, capsys):
    import pytest

    import tinyzoo as tz

    if tz.gpu_available():
        pytest.skip("a GPU is present, so --device gpu is valid here")
    assert load_example("micro_mlp").main(["--device", "gpu"]) == 2
    assert "error:" in capsys.readouterr().err

"""Examples run end to end (short settings) and reach their stated targets; every example refuses a missing GPU."""

from __future__ import annotations

import pytest

import tinyzoo as tz
from tinyzoo.train import run_main
from tinyzoo.zoo import EXAMPLES

EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


def test_micro_mlp_reaches_97_percent(load_example, capsys):
    assert load_example("micro_mlp").main(["--steps", "300"]) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_without_a_gpu_exits_2(load_example, capsys, name):
    """`--device gpu` where there is none: one "error:" line on stderr and exit code 2, before any work."""
    if tz.gpu_available():
        pytest.skip("a GPU is present, so --device gpu is valid here")
    main = load_example(name).main
    assert (main(["--device", "gpu"]) if name == "micro_mlp" else run_main(main, ["--device", "gpu"])) == 2
    assert capsys.readouterr().err.startswith("error:")

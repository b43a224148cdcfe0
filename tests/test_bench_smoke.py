"""Smoke test of the benchmark suite: `python -m bench --quick --threads 1` runs every case once at a tiny size.

Peers that are not installed (torch, HIPS autograd, mygrad) are skipped by the suite itself, so this
needs none of them. Also checks the hand-written LSTM BPTT (the "limit" column) against tinyzoo's gradients,
and that disagreeing peers stop the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import cases  # noqa: E402
import run  # noqa: E402

import tinyzoo as tz  # noqa: E402
from tinyzoo import nn  # noqa: E402


def test_quick_run_exits_zero_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every case once at tiny size, 1 thread: exit 0, a JSON record with rows for every CPU case, a plot."""
    code = run.main(["--quick", "--threads", "1", "--results-dir", str(tmp_path), "--plot", str(tmp_path / "p.png")])
    assert code == 0, capsys.readouterr().err
    (record_file,) = tmp_path.glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["quick"] and record["rows"]
    assert {r["case"] for r in record["rows"]} == {c.key for c in cases.CASES}
    assert all(r["median_ms"] > 0 and r["peer"] for r in record["rows"])
    mlp = record["scaling"]["mlp"]  # the slope is the least-squares fit of log(ms) on log(batch) it reports
    assert len(mlp["x"]) == len(mlp["ms"]["tinyzoo"]) > 1
    fitted = np.polyfit(np.log(mlp["x"]), np.log(mlp["ms"]["tinyzoo"]), 1)[0]
    assert np.isfinite(fitted) and mlp["slope"]["tinyzoo"] == pytest.approx(fitted)
    assert (tmp_path / "p.png").stat().st_size > 0


def test_hand_lstm_bptt_matches_tinyzoo() -> None:
    """The hand-NumPy LSTM loss and weight gradients equal tinyzoo's nn.LSTM on the same weights."""
    T, B, I, H = 5, 3, 4, 6
    x = np.random.default_rng(1).standard_normal((T, B, I))
    weights = cases.lstm_weights(I, H, np.float64)
    layer = nn.LSTM(I, H).double()
    layer.load_state_dict({f"{k}_l0": v for k, v in weights.items()})
    out = layer(tz.tensor(x))[0]
    loss = (out * out).mean()
    loss.backward()
    hand_loss, grads = cases.lstm_numpy(x, weights)
    assert hand_loss == pytest.approx(float(loss.data), rel=1e-12)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, getattr(layer, f"{name}_l0").grad.data, rtol=1e-9, atol=1e-12)


def test_disagreeing_peers_fail_loudly() -> None:
    """A loss off by more than 1e-4 (relative) names the case and the peer."""
    run.check_agreement("ok", {"tinyzoo": 1.0, "numpy (hand)": 1.0 + 1e-6})
    with pytest.raises(run.MismatchError, match=r"'mlp'.*numpy \(hand\)"):
        run.check_agreement("mlp", {"tinyzoo": 1.0, "numpy (hand)": 1.001})


@pytest.mark.parametrize("keep", [False, True])
def test_mlp_phases_script_reports_every_phase(keep: bool) -> None:
    """bench/bench_mlp_phases.py runs a few steps and reports forward, backward and SGD times."""
    command = [sys.executable, str(BENCH / "bench_mlp_phases.py"), "--steps", "3"] + ["--keep-intermediates"] * keep
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(BENCH.parent)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(f"{phase} " in done.stdout for phase in ("forward", "backward", "SGD"))
    assert ("intermediates kept" in done.stdout) == keep

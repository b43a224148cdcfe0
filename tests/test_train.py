"""Training utilities: progress bar, metrics log, run checkpoints (save → resume), plots."""

from __future__ import annotations

import io

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.train import MetricsLog, ProgressBar, load_training, save_training


def test_progress_bar_is_quiet_off_a_terminal_but_prints_a_summary():
    stream = io.StringIO()
    with ProgressBar(10, "train", stream=stream) as bar:
        for _ in range(10):
            bar.update(loss=0.5)
    text = stream.getvalue()
    assert text.count("\n") == 1 and "10/10" in text and "loss 0.5" in text


def test_progress_bar_off_a_terminal_logs_a_line_per_interval():
    stream = io.StringIO()
    with ProgressBar(4, "train", stream=stream, log_every_s=0.0) as bar:
        for step in range(4):
            bar.update(loss=float(step))
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]  # 3 progress lines, 1 summary
    assert "loss 2" in lines[2] and "loss 3" in lines[3]


def test_metrics_log_round_trips_jsonl_and_csv(tmp_path):
    for name in ("run.jsonl", "run.csv"):
        log = MetricsLog(tmp_path / name)
        log.log(1, loss=2.0)
        log.log(2, loss=1.0, acc=0.5)
        assert MetricsLog.read(tmp_path / name)[-1] == {"step": 2, "loss": 1.0, "acc": 0.5}
        assert log.series("loss") == ([1, 2], [2.0, 1.0])
    with pytest.raises(ValueError, match=r"\.jsonl or \.csv"):
        MetricsLog(tmp_path / "run.txt")


def _train(model, optimizer, steps, data):
    losses = []
    for x, y in data[:steps]:
        loss = nn.functional.mse_loss(model(tz.tensor(x)), tz.tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_save_then_resume_equals_one_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 1)).astype(np.float32))
            for _ in range(6)]  # fmt: skip

    def fresh():
        tz.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        return model, optim.Adam(model.parameters(), lr=0.01)

    model, opt = fresh()
    straight = _train(model, opt, 6, data)
    model, opt = fresh()
    first = _train(model, opt, 3, data)
    save_training(tmp_path / "run.npz", model, opt, step=3)
    model, opt = fresh()
    assert load_training(tmp_path / "run.npz", model, opt) == 3
    assert first + _train(model, opt, 3, data[3:]) == straight


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from tinyzoo import plot

    path = plot.learning_curves({"a": ([1, 2, 3], [3.0, 2.0, 1.0])}, tmp_path / "curve.png")
    grid = plot.image_grid(np.random.default_rng(0).random((6, 8, 8)), tmp_path / "grid.png", columns=3)
    assert path.stat().st_size > 1000 and grid.stat().st_size > 1000

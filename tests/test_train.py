"""Training utilities: progress bar, metrics log, run checkpoints (save → resume), plots."""

from __future__ import annotations

import argparse
import io

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.testing import training_losses
from tinyzoo.train import MetricsLog, ProgressBar, TrainingRun, load_training, save_training


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
    return training_losses(lambda i: nn.functional.mse_loss(model(tz.tensor(data[i][0])), tz.tensor(data[i][1])),
                           optimizer, min(steps, len(data)))  # fmt: skip


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
    from tinyzoo import plot

    path = plot.learning_curves({"a": ([1, 2, 3], [3.0, 2.0, 1.0])}, tmp_path / "curve.png")
    grid = plot.image_grid(np.random.default_rng(0).random((6, 8, 8)), tmp_path / "grid.png", columns=3)
    assert path.stat().st_size > 1000 and grid.stat().st_size > 1000


# ----------------------------------------------------------------------------------------------- TrainingRun
def run_args(tmp_path, **flags) -> argparse.Namespace:
    """The flags TrainingRun reads, as example_parser would give them."""
    defaults = {"seed": 3, "resume": None, "save": None, "log": None, "trace": False}
    return argparse.Namespace(**{**defaults, **flags})


def test_progress_bar_counts_from_a_resumed_step():
    stream = io.StringIO()
    with ProgressBar(10, "train", stream=stream, initial=4) as bar:
        bar.update(6)
    assert " 10/10 " in stream.getvalue()


def test_training_run_logs_the_means_of_each_interval_and_the_last_step(tmp_path):
    model = nn.Linear(2, 1)
    run = TrainingRun(run_args(tmp_path, log=str(tmp_path / "log.jsonl")), model, total=7, log_every=3)
    with run:
        for step in run.steps():
            run.accumulate(loss=tz.tensor(float(step)), acc=np.float32(step % 2))
            if run.log_due(step):
                run.log(step, lr=0.1)
    records = MetricsLog.read(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == [3, 6, 7]
    assert [r["loss"] for r in records] == [2.0, 5.0, 7.0]  # means of 1..3, 4..6 and 7
    assert [r["acc"] for r in records] == pytest.approx([2 / 3, 1 / 3, 1.0])
    assert all(r["lr"] == 0.1 for r in records) and run.bar.count == 7


def test_training_run_resumes_at_the_saved_step_with_a_reseeded_data_rng(tmp_path):
    tz.manual_seed(0)
    model = nn.Linear(2, 1)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    first = TrainingRun(run_args(tmp_path, save=str(tmp_path / "ck.npz")), model, optimizer, total=5)
    assert first.start == 0
    np.testing.assert_array_equal(first.data_rng().random(3), np.random.default_rng(3).random(3))
    first.save(step=5)
    weights = model.weight.numpy().copy()

    model.weight.data[:] = 0
    resumed = TrainingRun(run_args(tmp_path, resume=str(tmp_path / "ck.npz")), model, optimizer, total=8)
    np.testing.assert_array_equal(model.weight.numpy(), weights)
    with resumed:
        assert list(resumed.steps()) == [6, 7, 8]
    assert resumed.bar.count == 8  # absolute progress
    np.testing.assert_array_equal(resumed.data_rng().random(3), np.random.default_rng([3, 5]).random(3))


def test_training_run_traces_only_the_first_step_it_runs(tmp_path, capsys):
    run = TrainingRun(run_args(tmp_path, trace=True), nn.Linear(2, 1), total=3)
    with run:
        for step in run.steps():
            with run.trace(step):
                tz.tensor([1.0, 2.0]).sum()
    assert capsys.readouterr().out.count("sum") == 1

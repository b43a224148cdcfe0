"""The bookkeeping around an example's training loop, in one place; the loop itself stays in the example.

    run = TrainingRun(args, model, optimizer, total=args.steps, desc="ponder", scheduler=scheduler)
    data_rng = run.data_rng()                    # fresh stream, or one re-seeded at the resumed step
    with run:                                    # the progress bar, counting absolute steps
        for step in run.steps():                 # start + 1 .. total
            with run.trace(step):                # --trace: an op-level profile of the first step
                loss = ...
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            run.accumulate(loss=loss)            # summed on the device: no host transfer per step
            if run.log_due(step):                # every `log_every` steps and at the last one
                run.log(step)                    # one transfer: the means go to --log and the bar
    run.save()                                   # --save: model, optimizer, extra state, RNG and step

`--resume` is read when the run is made: the model, optimizer and every object passed as extra state
(a scheduler, a DataLoader, an EarlyStopping) load theirs, tinyzoo's RNG continues where it stopped,
and `run.start` is the step the checkpoint was written at.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from tinyzoo.autograd import Tensor
from tinyzoo.backend import to_host, xp_of
from tinyzoo.train import data_parallel
from tinyzoo.train.cli import trace_step
from tinyzoo.train.metrics import MetricsLog
from tinyzoo.train.progress import ProgressBar
from tinyzoo.train.state import load_training, save_training


class TrainingRun:
    """Resume, data-RNG re-seeding, progress, logging cadence, first-step profiling and the final save of a run.

    `args` is an example's parsed flags (`example_parser`): it reads --seed, --resume, --save, --log and
    --trace; `metrics_log` replaces the log --log names (runs that share one log). `state` names further
    objects with a state_dict to checkpoint with the model and optimizer. Under --distributed,
    `data_parallel.setup` has already dropped --save, --log and --plot on ranks other than 0 and silenced
    their output, so rank 0 alone shows progress and writes.
    """

    def __init__(self, args: argparse.Namespace, model: Any, optimizer: Any = None, total: int = 0,
                 desc: str = "", log_every: int = 1, metrics_log: MetricsLog | None = None,
                 **state: Any) -> None:  # fmt: skip
        self.args, self.model, self.optimizer, self.state = args, model, optimizer, state
        self.total, self.desc, self.log_every = int(total), desc, max(int(log_every), 1)
        self.start = load_training(args.resume, model, optimizer, **state) if args.resume else 0
        self.metrics_log = metrics_log if metrics_log is not None else MetricsLog(args.log)
        self.bar: ProgressBar | None = None
        self._sums: dict[str, Any] = {}  # metric → running sum on the device (float64)
        self._count = 0

    def data_rng(self, seed: int | None = None) -> np.random.Generator:
        """The data generator: seeded by --seed on a fresh run, by (seed, step) after resuming at `step`.

        A resumed run cannot replay the original stream without drawing all its batches again, so it
        continues with a new stream that depends on the step it resumed at (and so repeats exactly).
        Under --distributed each rank draws its own batches: rank r > 0 seeds from (seed, r), rank 0 as above.
        """
        seed = data_parallel.rank_seed(self.args.seed if seed is None else seed)
        return np.random.default_rng([seed, self.start] if self.start else seed)

    def __enter__(self) -> TrainingRun:
        self.bar = ProgressBar(self.total, self.desc, initial=self.start)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def steps(self) -> Iterator[int]:
        """The steps still to run, start + 1 .. total, advancing the progress bar after each."""
        for step in range(self.start + 1, self.total + 1):
            yield step
            self.bar.update(1)

    def trace(self, step: int) -> AbstractContextManager[None]:
        """With --trace, profile the first step this run takes (the op table prints when it ends)."""
        return trace_step(self.args.trace and step == self.start + 1)

    def accumulate(self, **metrics: Any) -> None:
        """Add one step's metrics (tensors, arrays or numbers) to the running sums, without reading them to the host."""
        for name, value in metrics.items():
            data = value.data if isinstance(value, Tensor) else value
            data = xp_of(data).asarray(data, dtype=np.float64)
            self._sums[name] = self._sums[name] + data if name in self._sums else data
        self._count += 1

    def log_due(self, step: int) -> bool:
        """Whether `step` ends a logging interval: every `log_every` steps, and the last step."""
        return step % self.log_every == 0 or step == self.total

    def log(self, step: int, **host_metrics: float) -> dict[str, float]:
        """Log the means of the accumulated metrics (read to the host at once) and `host_metrics`; restart the sums."""
        metrics: dict[str, float] = {}
        if self._sums:
            sums = xp_of(next(iter(self._sums.values()))).stack(list(self._sums.values()))
            metrics = dict(zip(self._sums, (to_host(sums) / self._count).tolist()))
        metrics.update(host_metrics)
        self.metrics_log.log(step, **metrics)
        if self.bar is not None:
            self.bar.metrics.update(metrics)
        self._sums, self._count = {}, 0
        return metrics

    def save(self, step: int | None = None, **state: Any) -> None:
        """With --save, checkpoint the model, optimizer, extra state and RNG at `step` (default: total)."""
        if self.args.save:
            step = self.total if step is None else step
            save_training(self.args.save, self.model, self.optimizer, step=step, **{**self.state, **state})

"""A small progress bar: steps, rate, ETA and running metrics; off a terminal, one line a minute and a summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


class ProgressBar:
    """`with ProgressBar(total, "train") as bar: bar.update(loss=0.3)`.

    `initial` starts the count at the steps a resumed run has already done, so the bar shows the
    absolute step (1200/3000) and the rate and ETA of this run's steps alone.

    On a terminal the bar redraws in place at most 10 times a second. Elsewhere (a log file, CI, nohup)
    it writes the same line as a plain line every `log_every_s` seconds, so a long run shows progress
    without filling the log, and one summary line at the end.
    """

    def __init__(
        self, total: int, desc: str = "", stream: TextIO | None = None, width: int = 28, log_every_s: float = 60.0,
        initial: int = 0,
    ) -> None:
        self.total = max(int(total), 1)
        self.initial = int(initial)  # steps done before this bar started (a resumed run): counted, not timed
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.log_every_s = log_every_s
        self.count = self.initial
        self.metrics: dict[str, Any] = {}
        self.start = time.perf_counter()
        self._last_draw = self.start
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, steps: int = 1, **metrics: Any) -> None:
        """Advance by `steps` and remember the latest metrics."""
        self.count += steps
        self.metrics.update(metrics)
        now = time.perf_counter()
        since = now - self._last_draw
        if self.interactive:
            if since > 0.1 or self.count >= self.total:
                self._draw("\r" + self.line(), now)
        elif since >= self.log_every_s and self.count < self.total:  # (the last step is close()'s summary)
            self._draw(self.line() + "\n", now)

    def _draw(self, text: str, now: float) -> None:
        self._last_draw = now
        self.stream.write(text)
        self.stream.flush()

    def line(self) -> str:
        """The bar as one line of text."""
        elapsed = time.perf_counter() - self.start
        done = min(self.count / self.total, 1.0)
        filled = int(done * self.width)
        rate = (self.count - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        bar = "█" * filled + "·" * (self.width - filled)
        head = f"{self.desc} " if self.desc else ""
        return (
            f"{head}{bar} {self.count}/{self.total} [{_format_seconds(elapsed)}<{_format_seconds(eta)}, "
            f"{rate:.1f} it/s] {_format_metrics(self.metrics)}"
        )

    def close(self) -> None:
        """Finish the line (on a terminal) or print one summary line (elsewhere)."""
        self.stream.write(("\r" if self.interactive else "") + self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable, total: int | None = None, desc: str = "") -> Iterator:
    """Wrap an iterable in a ProgressBar (like tqdm(iterable))."""
    total = total if total is not None else len(iterable)  # type: ignore[arg-type]
    with ProgressBar(total, desc) as bar:
        for item in iterable:
            yield item
            bar.update()

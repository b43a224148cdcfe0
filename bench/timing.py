"""Timing helpers shared by the benchmark scripts: warm-up, repeats, median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    """Median and interquartile spread of repeated runs, in milliseconds."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median_ms:9.3f} ms (IQR {self.q1_ms:.3f}–{self.q3_ms:.3f}, n={self.repeats})"


def measure(fn: Callable[[], object], warmup: int = 3, repeats: int = 20, min_seconds: float = 0.0) -> Timing:
    """Run fn `warmup` times untimed, then at least `repeats` timed times (and at least min_seconds)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return Timing(statistics.median(samples), quartiles[0], quartiles[2], len(samples))


def ratio(ours: Timing, theirs: Timing) -> float:
    """How many times slower tinyzoo is than the peer (median over median)."""
    return ours.median_ms / theirs.median_ms


def set_threads(count: int) -> None:
    """Pin BLAS (and torch, when loaded) to `count` threads for a fair side-by-side."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(count)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(count)
    except ImportError:
        pass

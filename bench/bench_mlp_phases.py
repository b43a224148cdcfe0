"""Where an MLP step's time goes, and how much it moves with where malloc puts the step's arrays.

    python bench/bench_mlp_phases.py [--keep-intermediates] [--steps 600]

Runs the benchmark's MLP step (784-256-10, batch 128, one BLAS thread, `keep_freed_memory()`) and prints
the median forward, backward and SGD-update times and the page faults per step. `--keep-intermediates`
holds every forward tensor until after the update, as a tape that keeps all its inputs would: the
arithmetic is identical, only the memory in use (and so where new arrays land) changes. Run it on two
commits, alternating processes, to compare engines without that placement effect deciding the result.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ops import LR
from cases import mlp_data
from timing import set_threads

import tinyzoo as tz
from tinyzoo import backend


def main() -> None:
    """Time the phases of the MLP step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-intermediates", action="store_true", help="hold the forward's tensors to the end")
    parser.add_argument("--steps", type=int, default=600, help="timed steps (after 50 warm-up steps)")
    args = parser.parse_args()
    set_threads(1)
    backend.keep_freed_memory()
    data = mlp_data(128, np.float32)
    params = [tz.tensor(w, requires_grad=True) for w in data.weights()]
    rows = np.arange(len(data.y))

    held: list[tz.Tensor] = []

    def hold(tensor: tz.Tensor) -> tz.Tensor:
        """The tensor, also kept until the step ends when --keep-intermediates is given."""
        if args.keep_intermediates:
            held.append(tensor)
        return tensor

    def step() -> tuple[float, float, float]:
        w1, b1, w2, b2 = params
        start = time.perf_counter()
        logits = hold(hold(hold(tz.as_tensor(data.x) @ w1) + b1).relu() @ w2) + b2  # as bench_ops.mlp_step_tinyzoo
        loss = -logits.log_softmax(axis=1)[rows, data.y].mean()
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        with tz.no_grad():
            for p in params:
                p.data -= LR * p.grad.data
                p.grad = None
        held.clear()
        return forward - start, backward - forward, time.perf_counter() - backward

    for _ in range(50):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = np.median([step() for _ in range(args.steps)], axis=0) * 1e6
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
    print(f"forward {times[0]:.0f} µs, backward {times[1]:.0f} µs, SGD {times[2]:.0f} µs, "
          f"{faults:.1f} page faults per step{' (intermediates kept)' if args.keep_intermediates else ''}")


if __name__ == "__main__":
    main()

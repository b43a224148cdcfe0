"""LSTM forward + backward, tinyzoo against PyTorch at the same thread count (float32, CPU).

    python bench/bench_lstm.py [--threads 2] [--hidden 256] [--batch 32] [--steps 64] [--repeats 10]

Four contestants, each doing one forward and one backward of sum(h_1..h_T) over a random sequence:

- torch LSTMCell loop: a Python loop over torch.nn.LSTMCell, the reference the target is set against;
- torch nn.LSTM: PyTorch's fused sequence layer (for context);
- tinyzoo LSTMCell loop: the same Python loop over tinyzoo's LSTMCell (every op on the tape);
- tinyzoo nn.LSTM: one input-projection matmul plus the fused recurrence op (hand-written BPTT).

Prints the median wall time of each and the ratios to the torch LSTMCell loop (target: ≤ 3×).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable


def parse_args() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args()


ARGS = parse_args()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads its BLAS
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402

import tinyzoo as tz  # noqa: E402
from tinyzoo.nn.recurrent import LSTM, LSTMCell  # noqa: E402


def median_ms(contestants: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median wall time of each fn() in milliseconds, after two warm-up calls.

    The contestants take turns within every round, so a noisy neighbour on a shared machine slows all
    of them alike instead of whichever happened to be running.
    """
    for fn in contestants.values():
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, fn in contestants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def tinyzoo_contestants(x: np.ndarray) -> dict[str, Callable[[], None]]:
    """tinyzoo's LSTMCell loop and nn.LSTM, as zero-argument fwd+bwd closures."""
    cell, layer = LSTMCell(ARGS.input, ARGS.hidden), LSTM(ARGS.input, ARGS.hidden)
    xs = tz.tensor(x)

    def cell_loop() -> None:
        state, hs = None, []
        for t in range(ARGS.steps):
            state = cell(xs[t], state)
            hs.append(state[0])
        tz.stack(hs).sum().backward()

    def fused() -> None:
        out, _ = layer(xs)
        out.sum().backward()

    return {"tinyzoo LSTMCell loop": cell_loop, "tinyzoo nn.LSTM (fused)": fused}


def torch_contestants(x: np.ndarray) -> dict[str, Callable[[], None]]:
    """PyTorch's LSTMCell loop and nn.LSTM, or nothing when torch is not installed."""
    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install torch==2.13.0): timing tinyzoo only", file=sys.stderr)
        return {}
    torch.set_num_threads(ARGS.threads)
    cell, layer = torch.nn.LSTMCell(ARGS.input, ARGS.hidden), torch.nn.LSTM(ARGS.input, ARGS.hidden)
    xs = torch.from_numpy(x)

    def cell_loop() -> None:
        state, hs = None, []
        for t in range(ARGS.steps):
            state = cell(xs[t], state)
            hs.append(state[0])
        torch.stack(hs).sum().backward()

    def fused() -> None:
        out, _ = layer(xs)
        out.sum().backward()

    return {"torch LSTMCell loop": cell_loop, "torch nn.LSTM": fused}


def main() -> None:
    """Time every contestant and print the table."""
    x = np.random.default_rng(0).standard_normal((ARGS.steps, ARGS.batch, ARGS.input)).astype(np.float32)
    contestants = {**torch_contestants(x), **tinyzoo_contestants(x)}
    print(
        f"LSTM fwd+bwd: hidden {ARGS.hidden}, input {ARGS.input}, batch {ARGS.batch}, {ARGS.steps} steps, "
        f"float32, {ARGS.threads} thread(s), median of {ARGS.repeats}"
    )
    times = median_ms(contestants, ARGS.repeats)
    reference = times.get("torch LSTMCell loop")
    for name, ms in times.items():
        ratio = f"  {ms / reference:5.2f}× torch LSTMCell loop" if reference else ""
        print(f"  {name:26s} {ms:9.2f} ms{ratio}")


if __name__ == "__main__":
    main()

"""The two measurements behind tinyzoo.nn.conv's design, on ResNet-18 (CIFAR stem) and 2-conv-CNN layer shapes.

    python bench/bench_conv_design.py [--repeats 7]

1. Layout: window rows + GEMM channels-last (NHWC rows [N·Ho·Wo, kh·kw·C] @ K, what conv2d does now)
   against channels-first columns ([C·kh·kw, N·Ho·Wo], the unfold layout of the reference path).
2. The input gradient at stride 1: a forward convolution with the mirrored kernel (what conv2d's
   backward does now) against col2im (one GEMM, then kh·kw scattered adds onto the image).

Each pair is timed in turns (so load from other processes hits both alike), by process CPU time,
with one BLAS thread; the table gives the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from tinyzoo.nn import conv

SHAPES = [  # (batch, in channels, side, out channels): 3×3 kernels, stride 1, padding 1
    (32, 64, 32, 64),  # ResNet-18 stage 1
    (32, 128, 16, 128),  # stage 2
    (32, 256, 8, 256),  # stage 3
    (32, 512, 4, 512),  # stage 4
    (64, 16, 13, 32),  # the bench's 2-conv CNN, second layer (padding 0 there; 1 here for one table)
]


def paired(first: Callable[[], object], second: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median process-CPU ms of two functions timed in turns."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for f, samples in zip((first, second), times):
            start = time.process_time()
            f()
            samples.append(1e3 * (time.process_time() - start))
    return statistics.median(times[0]), statistics.median(times[1])


def channels_first_conv(x: np.ndarray, w: np.ndarray, window: conv.Window, grid: tuple[int, int]) -> np.ndarray:
    """The reference layout: unfold columns [C·kh·kw, N·L] and one GEMM (forward only)."""
    return w.reshape(w.shape[0], -1) @ conv._im2col(x, window, grid, 0.0)


def col2im_input_grad(g: np.ndarray, w: np.ndarray, window: conv.Window, size: tuple[int, int]) -> np.ndarray:
    """The input gradient through col2im, with the mirrored-kernel shortcut switched off."""
    mirror, conv._mirror_window = conv._mirror_window, lambda *_: None
    try:
        return conv._conv_backward_input(g, w, window, 1, size)
    finally:
        conv._mirror_window = mirror


def compare(n: int, c: int, side: int, o: int, repeats: int, rng: np.random.Generator) -> str:
    """One table row: both comparisons for a 3×3, stride-1, padding-1 layer [n, c, side, side] → o channels."""
    window, grid = conv.Window((3, 3), (1, 1), (1, 1), (1, 1)), (side, side)
    x = np.ascontiguousarray(rng.standard_normal((n, side, side, c), dtype=np.float32)).transpose(0, 3, 1, 2)
    packed = np.ascontiguousarray(x)  # the reference layout's best case
    w = rng.standard_normal((o, c, 3, 3), dtype=np.float32)
    g = np.ascontiguousarray(rng.standard_normal((n, side, side, o), dtype=np.float32)).transpose(0, 3, 1, 2)
    rows, cols = paired(lambda: conv._conv_forward(x, w, window, 1, grid),
                        lambda: channels_first_conv(packed, w, window, grid), repeats)  # fmt: skip
    mirror, col2im = paired(lambda: conv._conv_backward_input(g, w, window, 1, grid),
                            lambda: col2im_input_grad(g, w, window, grid), repeats)  # fmt: skip
    return (f"{f'[{n}, {c}, {side}, {side}] → {o}':<28} {rows:10.1f} {cols:10.1f} {rows / cols:6.2f}   "
            f"{mirror:8.1f} {col2im:8.1f} {mirror / col2im:6.2f}")  # fmt: skip


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer [N, C, H, W] → O':<28} {'NHWC rows':>10} {'CHW cols':>10} {'ratio':>6}   "
          f"{'mirror':>8} {'col2im':>8} {'ratio':>6}   (median CPU ms, 3×3 stride 1 padding 1)")  # fmt: skip
    for shape in SHAPES:
        print(compare(*shape, args.repeats, rng), flush=True)
    print(f"machine load average {os.getloadavg()[0]:.1f} over {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

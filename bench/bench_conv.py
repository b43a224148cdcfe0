"""Conv2d forward + backward, tinyzoo against PyTorch at the same thread count (float32, CPU).

    python bench/bench_conv.py [--threads 1 2] [--repeats 30] [--clock wall|cpu]

Two layers of a small MNIST CNN, each timed as one forward and one full backward (gradients for the
input, the weight and the bias) with a fixed random cotangent:

- [64, 1, 28, 28] → 32 channels, 3×3 (a first layer: tiny K = C·kh·kw = 9, large L = 26·26);
- [64, 32, 14, 14] → 64 channels, 3×3 (a second layer: K = 288, where the GEMMs dominate).

Each thread count runs in its own subprocess with OMP/OPENBLAS/MKL_NUM_THREADS set before NumPy
loads its BLAS, and torch.set_num_threads to the same number. tinyzoo and torch steps are
interleaved so both see the same machine load. The table gives the best and the median time of
each (wall clock; with --clock cpu the process's CPU time, steadier on a busy machine but summed
over threads, so use it with --threads 1), the ratio of the best times (target: tinyzoo within 3×
of torch) and the minor page faults per step. tinyzoo allocates its im2col columns afresh each
step and glibc hands large freed blocks back to the OS, so every step faults them in again (a few
ms on the second layer). Running with MALLOC_MMAP_THRESHOLD_=268435456
MALLOC_TRIM_THRESHOLD_=1073741824 in the environment keeps that memory in the process (for both
contestants) and shows the cost without the faults.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

CASES = [((64, 1, 28, 28), 32), ((64, 32, 14, 14), 64)]  # (input shape, output channels), 3×3 kernels


def parse_args() -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per contestant")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: time at this thread count
    return parser.parse_args()


def steps(shape: tuple[int, ...], out_channels: int) -> dict[str, Callable[[], None]]:
    """One fwd+bwd step of tinyzoo's Conv2d and of torch's, sharing weights, input and cotangent."""
    import numpy as np
    import torch

    import tinyzoo as tz
    from tinyzoo.nn.conv import Conv2d

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    ours, theirs = Conv2d(shape[1], out_channels, 3), torch.nn.Conv2d(shape[1], out_channels, 3)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    cotangent = rng.standard_normal((shape[0], out_channels, shape[2] - 2, shape[3] - 2), dtype=np.float32)
    x_ours, x_theirs = tz.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_ours, g_theirs = tz.tensor(cotangent), torch.from_numpy(cotangent)

    def tinyzoo_step() -> None:
        ours.zero_grad()
        x_ours.grad = None
        ours(x_ours).backward(g_ours)

    def torch_step() -> None:
        theirs.zero_grad()
        x_theirs.grad = None
        theirs(x_theirs).backward(g_theirs)

    return {"tinyzoo": tinyzoo_step, "torch": torch_step}


def worker(threads: int, repeats: int, clock: str) -> None:
    """Time every case at `threads` threads and print one JSON line per case."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    now = time.perf_counter if clock == "wall" else time.process_time
    for shape, out_channels in CASES:
        contestants = steps(shape, out_channels)
        times: dict[str, list[float]] = {name: [] for name in contestants}
        faults = dict.fromkeys(contestants, 0)
        for _ in range(3):  # warm-up: allocator, BLAS threads, oneDNN kernel selection
            for step in contestants.values():
                step()
        for _ in range(repeats):
            for name, step in contestants.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = now()
                step()
                times[name].append(1000 * (now() - start))
                faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        summary = {name: (min(t), float(np.median(t)), faults[name] / repeats) for name, t in times.items()}
        print(json.dumps({"shape": shape, "out": out_channels, "threads": threads, "stats": summary}), flush=True)


def main() -> None:
    """Run one worker per thread count and print the table."""
    args = parse_args()
    if args.worker is not None:
        worker(args.worker, args.repeats, args.clock)
        return
    if importlib.util.find_spec("torch") is None:
        sys.exit("bench_conv compares against PyTorch: pip install torch==2.13.0")
    print(f"Conv2d 3×3 fwd+bwd (dx, dW, db), float32, CPU; best and median of {args.repeats} interleaved steps "
          f"({args.clock} clock)")
    print(f"{'input':>18} {'out':>4} {'threads':>7} | {'tinyzoo best/median ms':>22} | "
          f"{'torch best/median ms':>20} | {'ratio (best)':>12} | page faults/step tinyzoo, torch")  # fmt: skip
    for threads in args.threads:
        env = dict(os.environ)
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before NumPy loads BLAS
            env[variable] = str(threads)
        command = [sys.executable, __file__, "--worker", str(threads), "--repeats", str(args.repeats)]
        command += ["--clock", args.clock]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines():
            row = json.loads(line)
            (ours, ours_median, ours_faults), (theirs, theirs_median, theirs_faults) = row["stats"].values()
            shape = str(tuple(row["shape"]))
            print(f"{shape:>18} {row['out']:>4} {threads:>7} | {ours:>10.2f} / {ours_median:>9.2f} | "
                  f"{theirs:>8.2f} / {theirs_median:>9.2f} | {ours / theirs:>11.2f}× | "
                  f"{ours_faults:>7.0f}, {theirs_faults:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()

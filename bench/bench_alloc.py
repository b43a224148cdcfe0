"""What glibc's default malloc costs a training step, and what `backend.keep_freed_memory()` saves.

    python bench/bench_alloc.py [--threads 1] [--steps 30]

Times one Adam step of the example GPT (2 blocks of width 96, 16 windows of 128 characters) in two
fresh interpreters, one with the default malloc and one after `tinyzoo.backend.keep_freed_memory()`
(which every example's `run_main` calls), and prints wall time, user and system CPU time and minor page
faults per step. The system time is the kernel zeroing pages that the previous step gave back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# BLAS thread counts are set before the worker starts: OpenBLAS limited at run time (threadpoolctl) was
# still several times slower here on a loaded machine than one started with a single thread.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

WORKER = """
import json, resource, time
import numpy as np
import tinyzoo as tz
from tinyzoo import backend, optim
from tinyzoo.models.gpt import GPT, lm_loss

kept = backend.keep_freed_memory() if {keep} else False
tz.manual_seed(0)
model = GPT(64, 96, 2, 4, 128)
optimizer = optim.Adam(model.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
x, y = (tz.tensor(rng.integers(0, 64, (16, 128))) for _ in range(2))

def step():
    loss = lm_loss(model, x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

for _ in range(3):
    step()
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range({steps}):
    step()
seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"kept": kept, "wall_ms": seconds / {steps} * 1e3,
                  "user_ms": (after.ru_utime - before.ru_utime) / {steps} * 1e3,
                  "sys_ms": (after.ru_stime - before.ru_stime) / {steps} * 1e3,
                  "page_faults": (after.ru_minflt - before.ru_minflt) / {steps}}}))
"""


def run_worker(keep: bool, threads: int, steps: int) -> dict:
    """Time the GPT step in a fresh interpreter, with or without keep_freed_memory()."""
    code = WORKER.format(keep=keep, steps=steps)
    env = {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> None:
    """Print the GPT step's cost under both malloc settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    rows = {"default malloc": run_worker(False, args.threads, args.steps),
            "keep_freed_memory()": run_worker(True, args.threads, args.steps)}  # fmt: skip
    print(f"GPT 2×96 Adam step, 16×128 characters, threads={args.threads}, {args.steps} steps")
    for name, row in rows.items():
        note = "" if name == "default malloc" or row["kept"] else "  (had no effect: not glibc)"
        print(f"  {name:<20} {row['wall_ms']:7.1f} ms wall  {row['user_ms']:6.1f} ms user  {row['sys_ms']:6.1f} ms sys"
              f"  {row['page_faults']:8.0f} page faults / step{note}")  # fmt: skip
    default, kept = rows.values()
    print(f"speed-up: {default['wall_ms'] / kept['wall_ms']:.2f}x wall")


if __name__ == "__main__":
    main()

"""Data-parallel scaling: samples/s of the MLP and CNN SGD steps on 1 and 2 ranks (1 BLAS thread each), and the
time of one all-reduce by size; tinyzoo over MPI against PyTorch DistributedDataParallel over gloo.

    python -m bench --cases data_parallel                 # this case in the suite (bench/run.py starts the ranks)
    mpiexec -n 2 python bench/bench_distributed.py tinyzoo cnn 64 20   # one measurement by hand

Weak scaling, as data parallelism is used: every rank keeps its batch (MLP 128, CNN 64), so 2 ranks take a
global batch twice as large per step. The 1-rank figure is the plain single-process step (no MPI, no DDP);
efficiency = samples/s on W ranks ÷ (W × samples/s of one process). Each rank's data are random but fixed.
The worker prints one JSON line from rank 0: samples/s over the timed steps (the slowest rank's clock), rank 0's
process CPU ms per step (under load from other jobs it grows less than the wall time does),
and at 2 ranks the median time of one all-reduce of float32 buffers of several sizes and of the model's
gradients.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALL_REDUCE_SIZES = (1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22)  # float32 elements: 4 KB … 16 MB
LR = 0.01


def layers(lib: Any, model: str) -> list[Any]:
    """The bench's MLP (784-256-10) or 2-conv CNN (bench/cases.py), in tz.nn or torch.nn."""
    if model == "mlp":
        return [lib.Flatten(), lib.Linear(784, 256), lib.ReLU(), lib.Linear(256, 10)]
    from cases import cnn_layers

    return cnn_layers(lib)


def batch(per_rank: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's fixed random images [per_rank, 1, 28, 28] and labels."""
    gen = np.random.default_rng(100 + rank)
    return gen.standard_normal((per_rank, 1, 28, 28)).astype(np.float32), gen.integers(0, 10, per_rank)


def _median_ms(fn: Any, repeats: int) -> float:
    """Median wall ms of fn() over `repeats` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return float(np.median(times))


def run_tinyzoo(model: str, per_rank: int, steps: int) -> dict[str, Any]:
    """tinyzoo: SGD steps with DistributedOptimizer (or the plain optimizer outside mpiexec)."""
    import tinyzoo as tz
    from tinyzoo import distributed, nn, optim
    from tinyzoo.nn import functional as F

    world = distributed.init()
    tz.manual_seed(0)
    net = nn.Sequential(*layers(nn, model))
    distributed.broadcast_parameters(net)
    optimizer = distributed.DistributedOptimizer(optim.SGD(net.parameters(), lr=LR))
    x, y = batch(per_rank, world.rank)
    x_t = tz.tensor(x)

    def step() -> None:
        loss = F.cross_entropy(net(x_t), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def all_reduce_model() -> None:
        distributed.all_reduce_gradients(net)

    def all_reduce(size: int) -> Any:
        flat = np.ones(size, np.float32)
        return lambda: distributed.all_reduce_sum(flat)

    return _measure(world.size, step, steps, per_rank, distributed.barrier, all_reduce, all_reduce_model,
                    sum(p.size for p in net.parameters()))  # fmt: skip


def run_torch(model: str, per_rank: int, steps: int) -> dict[str, Any]:
    """PyTorch: DistributedDataParallel over gloo under mpiexec (rank and size from the launcher), else plain."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    size = int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
    rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
    torch.manual_seed(0)
    net = torch.nn.Sequential(*layers(torch.nn, model))
    if size > 1:
        dist.init_process_group("gloo", rank=rank, world_size=size)
        net = torch.nn.parallel.DistributedDataParallel(net)  # broadcasts rank 0's weights
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    x, y = (torch.from_numpy(a) for a in batch(per_rank, rank))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()  # DDP all-reduces the gradient buckets here, overlapped with backward
        optimizer.step()

    def barrier() -> None:
        if size > 1:
            dist.barrier()

    def all_reduce(n: int) -> Any:
        flat = torch.ones(n, dtype=torch.float32)
        return lambda: dist.all_reduce(flat)

    grads = [torch.ones_like(p) for p in net.parameters()]

    def all_reduce_model() -> None:  # what DDP sends per step: every gradient, in one flat buffer
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= size

    result = _measure(size, step, steps, per_rank, barrier, all_reduce, all_reduce_model,
                      sum(p.numel() for p in net.parameters()))
    if size > 1:
        dist.barrier()  # no rank tears gloo down while the other still talks to it
        dist.destroy_process_group()
    return result


def _measure(size: int, step: Any, steps: int, per_rank: int, barrier: Any, all_reduce: Any, all_reduce_model: Any,
             parameters: int) -> dict[str, Any]:  # fmt: skip
    """Samples/s over `steps` steps after 2 warm-up steps, and (on 2+ ranks) all-reduce times by size.

    The clock stops after a barrier, so it covers the slowest rank."""
    for _ in range(2):
        step()
    barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    cpu = time.process_time() - cpu_start
    barrier()
    elapsed = time.perf_counter() - start
    result: dict[str, Any] = {"ranks": size, "samples_per_s": size * per_rank * steps / elapsed,
                              "step_ms": 1e3 * elapsed / steps, "cpu_ms_per_step": 1e3 * cpu / steps,
                              "parameters": parameters}  # fmt: skip
    if size > 1:
        result["all_reduce_ms"] = {str(4 * n): _median_ms(all_reduce(n), 9) for n in ALL_REDUCE_SIZES}
        result["all_reduce_model_ms"] = _median_ms(all_reduce_model, 9)
    return result


if __name__ == "__main__":
    from tinyzoo import backend

    backend.keep_freed_memory()  # as the examples and bench/run.py do, for both peers alike
    peer, model_name, per_rank_batch, timed_steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    measured = (run_tinyzoo if peer == "tinyzoo" else run_torch)(model_name, per_rank_batch, timed_steps)
    if measured["ranks"] == 1 or int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))) == 0:
        print(json.dumps({"peer": peer, "model": model_name, "per_rank_batch": per_rank_batch, **measured}))

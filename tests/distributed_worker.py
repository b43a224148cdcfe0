"""The training runs of tests/test_distributed.py, run on 2 ranks under mpiexec and, for the references, in-process.

    mpiexec -n 2 python tests/distributed_worker.py equivalence OUT_DIR   # each rank writes OUT_DIR/rank{r}.npz
    mpiexec -n 2 python tests/distributed_worker.py resume OUT_DIR
    mpiexec -n 2 python tests/distributed_worker.py fault OUT_DIR         # rank 1 raises at its third step
    mpiexec -n 2 python tests/distributed_worker.py die OUT_DIR           # rank 1 is killed there (SIGKILL)
    mpiexec -n 2 python tests/distributed_worker.py equivalence-gpu OUT_DIR   # NCCL: rank r on cuda:r
    mpiexec -n 2 python tests/distributed_worker.py char_lm OUT_DIR ARGS...   # the example, on a tiny corpus

Every case trains in float64 on fixed random data; a 2-rank run uses per-rank batch B/2 and a sharded loader,
its reference one process with batch B (or, for BatchNorm, B/2-sized micro-batches with gradient accumulation).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np

import tinyzoo as tz
from tinyzoo import distributed, nn, optim
from tinyzoo.data import DataLoader, TensorDataset
from tinyzoo.nn import functional as F

SAMPLES, GLOBAL_BATCH, STEPS = 32, 8, 6  # six steps: one whole epoch (4 steps) and two into the next


def mlp() -> nn.Module:
    """A two-layer perceptron on 6 features, 3 classes."""
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def cnn() -> nn.Module:
    """A convolution, pooling and a linear layer on 1×6×6 images."""
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 3))


def bn_mlp() -> nn.Module:
    """A perceptron with BatchNorm, whose statistics stay per rank."""
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


MODELS: dict[str, Callable[[], nn.Module]] = {"mlp": mlp, "cnn": cnn, "bn": bn_mlp}
OPTIMIZERS = {"sgd": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
              "adam": lambda params: optim.Adam(params, lr=0.01)}  # fmt: skip
CASES = [(model, opt) for model in MODELS for opt in OPTIMIZERS]
CLIPPED, CLIP = ("mlp", "sgd"), 0.05  # a case whose averaged gradients are clipped (a norm that clips every step)


def data(model: str) -> TensorDataset:
    """Fixed float64 inputs (images for the CNN) and integer labels."""
    gen = np.random.default_rng(5)
    x = gen.standard_normal((SAMPLES, 1, 6, 6) if model == "cnn" else (SAMPLES, 6))
    return TensorDataset(x, gen.integers(0, 3, SAMPLES))


def build(model: str, opt: str, device: str = "cpu") -> tuple[nn.Module, optim.Optimizer]:
    """The model in float64 from seed 0 (perturbed off rank 0, to show broadcast_parameters) and its optimizer."""
    tz.manual_seed(0)
    net = MODELS[model]().double().to(device)
    if distributed.rank() != 0:
        for p in net.parameters():
            p.data += 1.0
    distributed.broadcast_parameters(net)
    return net, OPTIMIZERS[opt](net.parameters())


def step(net: nn.Module, optimizer: optim.Optimizer | distributed.DistributedOptimizer, xb: np.ndarray,
         yb: np.ndarray, scale: float = 1.0, update: bool = True, clip: float | None = None) -> None:  # fmt: skip
    """Forward, backward (gradients accumulate) and, when `update`, the optimizer step and zero_grad.

    With `clip`, the gradients averaged over the ranks are clipped to that global norm before the step.
    """
    (F.cross_entropy(net(tz.Tensor(xb)), yb) * scale).backward()
    if update:
        if clip is not None:
            if isinstance(optimizer, distributed.DistributedOptimizer):
                optimizer.synchronize()
            optim.clip_grad_norm_(net.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()


def train(model: str, opt: str, steps: int = STEPS, device: str = "cpu", clip: float | None = None) -> nn.Module:
    """`steps` steps on this process's shard with per-rank batch GLOBAL_BATCH / world size (all of it on 1 rank)."""
    net, optimizer = build(model, opt, device)
    ranks = distributed.world_size()
    loader = DataLoader(data(model), GLOBAL_BATCH // ranks, shuffle=True, seed=1, shard=distributed.world().shard,
                        device=device)  # fmt: skip
    optimizer = distributed.DistributedOptimizer(optimizer)
    for xb, yb in islice(_forever(loader), steps):
        step(net, optimizer, xb, yb, clip=clip)
    return net


def train_accumulated(model: str, opt: str, ranks: int, steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """One process doing what `ranks` ranks do: each step, the micro-batch of every rank's shard, gradients
    averaged by accumulation, each rank's BatchNorm statistics kept apart; returns each rank's state dict."""
    net, optimizer = build(model, opt)
    loaders = [DataLoader(data(model), GLOBAL_BATCH // ranks, shuffle=True, seed=1, shard=(r, ranks))
               for r in range(ranks)]  # fmt: skip
    buffers = [_buffers_of(net.state_dict()) for _ in range(ranks)]
    for batches in islice(zip(*map(_forever, loaders)), steps):
        for r, (xb, yb) in enumerate(batches):
            net.load_state_dict(buffers[r], strict=False)  # this rank's running statistics
            step(net, optimizer, xb, yb, scale=1 / ranks, update=r == ranks - 1)
            buffers[r] = _buffers_of({k: v.copy() for k, v in net.state_dict().items()})
    weights = {k: v.copy() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    return [{**weights, **buffers[r]} for r in range(ranks)]


def _buffers_of(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The BatchNorm buffers of a state dict."""
    return {k: v for k, v in state.items() if "running" in k or "num_batches" in k}


def _forever(loader: DataLoader):
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def run_equivalence(out: Path, device: str = "cpu") -> None:
    """Train every case on this rank; write rank{r}.npz with '<model>-<opt>/<name>' arrays (and averaged buffers)."""
    arrays = {}
    for model, opt in CASES:
        net = train(model, opt, device=device)
        arrays.update({f"{model}-{opt}/{k}": np.array(tz.backend.to_host(v)) for k, v in net.state_dict().items()})
        if model == "bn":
            distributed.average_buffers(net)
            averaged = _buffers_of(net.state_dict())
            arrays.update({f"{model}-{opt}/averaged/{k}": tz.backend.to_host(v) for k, v in averaged.items()})
        if device != "cpu":  # one more backward: its gradient all-reduce on the GPU copies nothing to the host
            xb, yb = next(iter(DataLoader(data(model), 4, device=device)))
            F.cross_entropy(net(tz.Tensor(xb)), yb).backward()
            before = tz.backend.host_transfers()
            distributed.all_reduce_gradients(net)
            arrays[f"{model}-{opt}/host_transfers"] = np.array(tz.backend.host_transfers() - before)
    clipped = train(*CLIPPED, device=device, clip=CLIP).state_dict()  # clipping the averaged gradients
    arrays.update({f"{'-'.join(CLIPPED)}-clip/{k}": np.array(tz.backend.to_host(v)) for k, v in clipped.items()})
    np.savez(out / f"rank{distributed.rank()}.npz", **arrays)


def run_resume(out: Path) -> None:
    """Train 2 steps, rank 0 saves a checkpoint, train 4 more; then a fresh run loads it and trains the same 4."""
    from tinyzoo.train import load_training, save_training

    ranks, path = distributed.world_size(), out / "checkpoint.npz"
    for resumed in (False, True):
        net, optimizer = build("mlp", "adam")
        loader = DataLoader(data("mlp"), GLOBAL_BATCH // ranks, shuffle=True, seed=1, shard=distributed.world().shard)
        if resumed:
            if distributed.is_main():
                load_training(path, net, optimizer, loader=loader)
            distributed.broadcast_parameters(net)
            distributed.broadcast_optimizer_state(optimizer)
            loader.load_state_dict(distributed.broadcast_object(loader.state_dict()))
        wrapped = distributed.DistributedOptimizer(optimizer)
        batches = _forever(loader)
        if not resumed:
            for xb, yb in islice(batches, 2):
                step(net, wrapped, xb, yb)
            if distributed.is_main():
                save_training(path, net, optimizer, step=2, loader=loader)
        for xb, yb in islice(batches, 4):
            step(net, wrapped, xb, yb)
        name = "resumed" if resumed else "straight"
        np.savez(out / f"{name}{distributed.rank()}.npz", **{k: np.array(v) for k, v in net.state_dict().items()})


def run_fault(out: Path, die: bool = False) -> None:
    """Rank 1 raises (or, with `die`, is killed) at its third step; rank 0 goes on into the all-reduce, where
    only MPI_Abort (or mpiexec noticing the dead rank) can end it."""
    net, optimizer = build("mlp", "sgd")
    wrapped = distributed.DistributedOptimizer(optimizer)
    loader = DataLoader(data("mlp"), GLOBAL_BATCH // 2, shuffle=True, seed=1, shard=distributed.world().shard)
    for k, (xb, yb) in enumerate(islice(_forever(loader), 1000)):
        if k == 2 and distributed.rank() == 1:
            if die:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose mid-step")
        step(net, wrapped, xb, yb)
    (out / f"finished{distributed.rank()}").write_text("no abort happened")


def run_char_lm(argv: list[str]) -> int:
    """examples/char_lm.py's main on the tiny test corpus of tests/test_char_models.py (no data set needed)."""
    from conftest import import_example
    from test_char_models import tiny_corpus

    from tinyzoo.train import run_main

    tz.data.load_tiny_shakespeare = lambda *args, **kwargs: tiny_corpus()
    return run_main(import_example("char_lm").main, argv)


if __name__ == "__main__":
    scenario, out_dir = sys.argv[1], Path(sys.argv[2])
    if scenario == "char_lm":
        sys.exit(run_char_lm(sys.argv[3:]))
    distributed.init(True)
    if scenario == "equivalence-gpu":
        run_equivalence(out_dir, device=distributed.local_device("gpu"))
    else:
        {"equivalence": run_equivalence, "resume": run_resume, "fault": run_fault,
         "die": lambda out: run_fault(out, die=True)}[scenario](out_dir)  # fmt: skip

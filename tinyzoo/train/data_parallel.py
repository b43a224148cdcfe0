"""`--distributed` for the example scripts: the few lines that turn a training script data-parallel.

    mpiexec -n 2 python examples/mlp_mnist.py --distributed      # after: pip install "tinyzoo[mpi]"

An example adds the flag (`add_flag(parser)`), calls `setup(args, device)` before it moves its model, gives
its loader `shard=shard()` (or seeds its own batch sampling with `rank_seed(seed)`), and wraps its optimizer
with `prepare(model, optimizer)` once the model is built and any checkpoint loaded (a script that clips
gradients calls `synchronize(optimizer)` between backward and clipping, so it clips the averaged ones). Then:

- every rank takes its own batch of --batch-size samples, so the global batch is --batch-size × ranks;
  the learning rate is used as given (scale it yourself if you scale the batch: that is the user's choice);
- rank 0 prints, shows progress, and writes the --save checkpoint, --log and --plot; the other ranks keep
  quiet (their stdout and stderr go to /dev/null; errors still reach the terminal, with the rank);
- a checkpoint is rank 0's and resumes under any number of ranks, 1 included: every rank reads it (one host,
  or a shared file system), then rank 0's weights and optimizer state are broadcast;
- BatchNorm statistics stay per rank (as in PyTorch's DDP); the saved and evaluated ones are rank 0's.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tinyzoo import distributed, rng


def add_flag(parser: argparse.ArgumentParser) -> None:
    """Add --distributed to an example's parser."""
    parser.add_argument("--distributed", action="store_true",
                        help="data parallel over MPI ranks (mpiexec -n W ... --distributed); global batch = "
                             "--batch-size × W, --lr as given; needs pip install 'tinyzoo[mpi]'")  # fmt: skip


def setup(args: argparse.Namespace, device: str) -> str:
    """Join the MPI job when --distributed is given; quiet ranks other than 0; return this rank's device."""
    if not getattr(args, "distributed", False):
        return device
    joined_before = distributed.is_initialized()  # a script training several models calls setup for each
    world = distributed.init(True)
    if world.rank == 0 and not joined_before:
        batch = getattr(args, "batch_size", None)
        sizes = f"; per-rank batch {batch}, global batch {batch * world.size}" if batch else ""
        print(f"data parallel over {world.size} MPI rank(s){sizes}", flush=True)
    else:
        for name in ("save", "log", "plot"):  # rank 0 writes these
            if hasattr(args, name):
                setattr(args, name, None)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # for the life of the process
    return distributed.local_device(device)


def shard() -> tuple[int, int] | None:
    """`DataLoader(shard=...)` for this rank: (rank, ranks), or None in a single process."""
    return distributed.world().shard


def rank_seed(seed: int) -> int:
    """A seed for this rank's own draws (batch windows): `seed` on rank 0, a distinct one on every other rank."""
    return distributed.rank_stream_seed(seed, distributed.rank())


def synchronize(optimizer: Any) -> None:
    """Average the gradients over the ranks now, e.g. before clipping them (a no-op on a plain optimizer)."""
    if isinstance(optimizer, distributed.DistributedOptimizer):
        optimizer.synchronize()


def prepare(model: Any, optimizer: Any) -> Any:
    """Rank 0's weights and optimizer state on every rank, per-rank random streams, and an all-reducing optimizer.

    Call it after building the model and loading any checkpoint. Rank 0 keeps its random stream (a 1-rank
    run is the plain run, and rank 0 resumes exactly); rank r > 0 reseeds from (rank 0's stream, r), so
    its dropout masks differ from the other ranks' and repeat from run to run. In a single process it
    returns the optimizer unchanged.
    """
    if distributed.world_size() == 1:
        return optimizer
    distributed.broadcast_parameters(model)
    distributed.broadcast_optimizer_state(optimizer)
    base = distributed.broadcast_object(int(rng.get_state()["cpu"]["state"]["state"]) % 2**63)  # rank 0's stream
    if distributed.rank() > 0:
        rng.manual_seed(distributed.rank_stream_seed(base, distributed.rank()))
    return distributed.DistributedOptimizer(optimizer)

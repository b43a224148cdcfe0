"""What every example script shares: its standard arguments, device selection and a clean exit on errors."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from tinyzoo import backend, distributed
from tinyzoo.errors import DataError, DeviceError, DistributedError


def example_parser(description: str, steps: int | None = None, epochs: int | None = None,
                   lr: float | None = None, batch_size: int | None = None,
                   grad_clip: float | None = None) -> argparse.ArgumentParser:  # fmt: skip
    """An ArgumentParser with the flags every example takes (--device --seed --steps/--epochs --plot ...).

    Given a default, --lr, --batch-size and --grad-clip (the max global gradient norm) are added too.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu", help="cpu, gpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, data order and dropout")
    if steps is not None:
        parser.add_argument("--steps", type=int, default=steps, help="training steps")
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs, help="passes over the training set")
    if lr is not None:
        parser.add_argument("--lr", type=float, default=lr, help="learning rate (the peak, under a schedule)")
    if batch_size is not None:
        parser.add_argument("--batch-size", type=int, default=batch_size, help="examples per training step")
    if grad_clip is not None:
        parser.add_argument("--grad-clip", type=float, default=grad_clip, help="max global gradient norm")
    parser.add_argument("--plot", default=None, metavar="PATH", help="write a figure (PNG/SVG) here")
    parser.add_argument("--save", default=None, metavar="PATH", help="write a checkpoint (.npz) at the end")
    parser.add_argument("--resume", default=None, metavar="PATH", help="continue from a checkpoint")
    parser.add_argument("--log", default=None, metavar="PATH", help="metrics log (.jsonl or .csv)")
    parser.add_argument("--trace", action="store_true", help="print an op-level profile of one training step")
    return parser


def check_device(device: str) -> str:
    """The normalised device name; raises DeviceError when it is not usable here."""
    backend.array_module(device)
    return backend.normalize_device(device)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run an example's main(); a missing device, data set or MPI becomes one line on stderr and exit code 2
    (on every rank of an MPI job, which it ends).

    A script, unlike a library, may set process-wide options: this one keeps freed memory for the next
    training step (`backend.keep_freed_memory`).
    """
    backend.keep_freed_memory()
    try:
        return int(main(argv) or 0)
    except (DeviceError, DataError, DistributedError) as exc:
        if distributed.world_size() > 1:  # the other ranks would wait for this one in their next collective
            distributed.abort(2, f"error: {exc}")
        print(f"error: {exc}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def trace_step(enabled: bool) -> Iterator[None]:
    """With --trace, profile every op run inside (one training step) and print the table afterwards."""
    if not enabled:
        yield
        return
    from tinyzoo.study import trace

    with trace() as profile:
        yield
    print(profile.table())

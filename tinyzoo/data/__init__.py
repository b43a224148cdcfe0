"""Data: the real data sets (array-level loaders), readers for user-supplied files, and batching.

Everything here works on plain NumPy (or CuPy) arrays and never imports the autograd engine: a DataLoader
yields tuples of arrays, and the training loop wraps them in tensors.

    data = load_mnist()
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=128, shuffle=True, seed=0)
    for x, y in loader: ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tinyzoo import backend, rng
from tinyzoo.autograd import Tensor
from tinyzoo.data.datasets import (
    MNIST,
    Cora,
    Digits,
    KanjiVG,
    Shakespeare,
    load_cora,
    load_digits,
    load_kanjivg,
    load_mnist,
    load_tiny_shakespeare,
    planetoid_split,
    stroke_scale,
    to_stroke5,
)
from tinyzoo.data.readers import CIFAR10, QuickDraw, load_cifar10, load_idx, load_quickdraw

__all__ = [
    "CIFAR10", "MNIST", "Cora", "DataLoader", "Dataset", "Digits", "KanjiVG", "QuickDraw", "Shakespeare",
    "Subset", "TensorDataset", "default_collate", "load_cifar10", "load_cora", "load_digits", "load_idx",
    "load_kanjivg", "load_mnist", "load_quickdraw", "load_tiny_shakespeare", "planetoid_split",
    "random_split", "stroke_scale", "to_stroke5",
]


class Dataset:
    """A sized collection of samples; `dataset[i]` is one sample, a tuple of arrays or numbers."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples taken row-wise from arrays of equal length: `dataset[i] = (a[i], b[i], ...)`.

    Built from tinyzoo Tensors (as in PyTorch), its samples and a DataLoader's batches are Tensors;
    built from arrays, they are arrays.
    """

    def __init__(self, *arrays: Any):
        if not arrays or any(len(a) != len(arrays[0]) for a in arrays):
            raise ValueError(f"TensorDataset needs arrays of one length, got {[len(a) for a in arrays]}")
        self.yields_tensors = any(isinstance(a, Tensor) for a in arrays)
        self.arrays = tuple(a.data if isinstance(a, Tensor) else a for a in arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple:
        return self.as_sample(tuple(a[index] for a in self.arrays))

    def as_sample(self, fields: tuple) -> tuple:
        """Fields as this dataset hands them out: Tensors when it was built from Tensors."""
        return tuple(map(Tensor, fields)) if self.yields_tensors else fields


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def random_split(dataset: Dataset, lengths: Sequence[int], seed: int) -> list[Subset]:
    """Split a dataset into disjoint random subsets of the given lengths (which must add up to its length)."""
    if sum(lengths) != len(dataset) or any(n < 0 for n in lengths):
        raise ValueError(f"random_split lengths {list(lengths)} do not add up to the dataset's length "
                         f"{len(dataset)}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    ends = np.cumsum(lengths)
    return [Subset(dataset, order[end - n:end]) for n, end in zip(lengths, ends)]


def default_collate(samples: list) -> tuple:
    """Stack a list of samples field by field: [(x0, y0), (x1, y1)] -> (stack([x0, x1]), stack([y0, y1]))."""
    rows = [s if isinstance(s, tuple) else (s,) for s in samples]
    return tuple(backend.xp_of(field[0]).stack(field) for field in zip(*rows))


class DataLoader:
    """Batches of a dataset as tuples of arrays, optionally shuffled by the loader's own seeded generator.

    Each epoch draws one permutation from the loader's generator (seeded with `seed`, or from
    `tinyzoo.rng.generator()` when seed is None). `state_dict()` holds the epoch, how many batches of it were
    taken, and the generator's state at the epoch's start, so a run restored with `load_state_dict` sees the
    same batches; an epoch left part-way goes on where it stopped at the next `iter()`.

    On a GPU `device`, a TensorDataset's arrays are moved to the device once and batches are sliced there;
    other datasets are collated on the host and each batch moved. `prefetch=True` builds the next batch in a
    background thread while the current one is used.

    `shard=(rank, ranks)` is data-parallel sampling (PyTorch's DistributedSampler): every rank draws the same
    permutation, pads it by repeating its start to a multiple of `ranks` (so shards have equal sizes and no
    rank runs a step the others do not), and keeps every ranks-th index from `rank` on. Step k's batches of
    all ranks then make up block k of the permutation, the batch one process would take with batch_size ×
    ranks. The state dict also holds how many samples of the epoch the ranks took together, so a checkpoint
    resumes mid-epoch under another number of ranks too, at the last global batch boundary before that point.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, device: str = "cpu", prefetch: bool = False,
                 collate: Callable[[list], tuple] = default_collate, shard: tuple[int, int] | None = None,
                 generator: rng.Generator | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be (rank, ranks) with 0 <= rank < ranks, got {shard}")
        self.shard = None if shard is None else (int(shard[0]), int(shard[1]))
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.device, self.prefetch, self.collate = backend.normalize_device(device), prefetch, collate
        if seed is None:  # from `generator` (a tinyzoo.Generator, as PyTorch's DataLoader takes) or the global one
            seed = int(rng.generator("cpu", generator).integers(2**63))
        self._rng = np.random.default_rng(seed)
        self._epoch, self._position = 0, 0
        self._epoch_state = self._rng.bit_generator.state
        self._device_arrays: tuple | None = None

    @property
    def epoch(self) -> int:
        """How many epochs have been completed."""
        return self._epoch

    def _samples(self) -> int:
        """Samples per epoch on this loader: the dataset's length, or this rank's shard of it."""
        return len(self.dataset) if self.shard is None else -(-len(self.dataset) // self.shard[1])

    def __len__(self) -> int:
        full, rest = divmod(self._samples(), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple]:
        if self._position >= len(self) > 0:  # the last epoch was taken whole but its iterator not run out
            self._next_epoch()
        order, state_after = self._draw_order()
        if self._on_device():
            order = backend.to_device(order, self.device)
            if self._device_arrays is None:
                self._device_arrays = tuple(backend.to_device(a, self.device) for a in self.dataset.arrays)
        batches = range(self._position, len(self))
        for b, batch in zip(batches, self._build(order, batches)):
            self._position = b + 1
            yield batch
        self._epoch, self._position, self._epoch_state = self._epoch + 1, 0, state_after

    def _draw_order(self) -> tuple[np.ndarray, dict]:
        """This epoch's sample order, drawn from the generator state at its start, and the state after."""
        self._rng.bit_generator.state = self._epoch_state
        n = len(self.dataset)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if self.shard is not None:
            rank, ranks = self.shard
            order = np.resize(order, self._samples() * ranks)[rank::ranks]  # padded with its own start, then strided
        return order, self._rng.bit_generator.state

    def _next_epoch(self) -> None:
        """Count the current epoch as done and move the generator state past its permutation."""
        _, state_after = self._draw_order()
        self._epoch, self._position, self._epoch_state = self._epoch + 1, 0, state_after

    def _on_device(self) -> bool:
        """True when batches are sliced from a TensorDataset's arrays moved to the GPU once."""
        return self.device != "cpu" and isinstance(self.dataset, TensorDataset)

    def _build(self, order: Any, batches: range) -> Iterator[tuple]:
        """The batches numbered `batches`, each built in a worker thread one step ahead when prefetching."""

        def make(b: int) -> tuple:
            return self._batch(order[b * self.batch_size:(b + 1) * self.batch_size])

        if not self.prefetch:
            yield from map(make, batches)
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(make, batches[0]) if batches else None
            for b in batches:
                batch = pending.result()
                if b + 1 < batches.stop:
                    pending = pool.submit(make, b + 1)
                yield batch

    def _batch(self, index: Any) -> tuple:
        """One batch: the samples at `index`, stacked and on the loader's device."""
        if self._on_device():
            return self.dataset.as_sample(tuple(a[index] for a in self._device_arrays))
        if isinstance(self.dataset, TensorDataset):
            return self.dataset.as_sample(tuple(a[index] for a in self.dataset.arrays))
        batch = self.collate([self.dataset[int(i)] for i in index])
        return batch if self.device == "cpu" else tuple(backend.to_device(f, self.device) for f in batch)

    def _global_batch(self) -> int:
        """Samples the ranks take together per step."""
        return self.batch_size * (1 if self.shard is None else self.shard[1])

    def state_dict(self) -> dict:
        """The epoch, the batches taken from it (and the samples, over all ranks), the generator at its start."""
        taken = len(self.dataset) if self._position >= len(self) else self._position * self._global_batch()
        return {"epoch": self._epoch, "position": self._position, "samples": taken, "generator": self._epoch_state}

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`: the next iteration yields the batches the saved run would have seen.

        Saved with another batch size or number of ranks, the epoch goes on after the last whole global batch
        of this loader that the saved run had finished (a few samples may come twice, none is skipped).
        """
        self._epoch, self._position = int(state["epoch"]), int(state["position"])
        taken = int(state.get("samples", self._position * self._global_batch()))
        if taken != self._position * self._global_batch():
            self._position = len(self) if taken >= len(self.dataset) else taken // self._global_batch()
        self._epoch_state = state["generator"]
        self._rng.bit_generator.state = self._epoch_state

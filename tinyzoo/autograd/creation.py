"""Making tensors: from data, filled with constants, ranges and random draws (seeded via tinyzoo.rng)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyzoo import backend, rng
from tinyzoo.autograd.tensor import Tensor, as_array

DEFAULT_DTYPE = np.float32


def _dtype(dtype: Any) -> np.dtype:
    return np.dtype(DEFAULT_DTYPE if dtype is None else dtype)


def _shape(shape: tuple) -> tuple[int, ...]:
    """Accept zeros(2, 3) and zeros((2, 3)) alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _finish(array: Any, requires_grad: bool) -> Tensor:
    return Tensor(array, requires_grad=requires_grad)


def tensor(data: Any, requires_grad: bool = False, device: str = "cpu", dtype: Any = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats become float32, float64 arrays stay)."""
    array = as_array(data, dtype=dtype, device=device)
    source = data.data if isinstance(data, Tensor) else data
    return _finish(array.copy() if array is source else array, requires_grad)


def zeros(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _finish(backend.array_module(device).zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _finish(backend.array_module(device).ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape: Any, value: float, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor filled with `value`."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _finish(backend.array_module(device).full(shape, value, dtype=_dtype(dtype)), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None, device: str = "cpu") -> Tensor:
    """Evenly spaced values in [start, stop) (integers stay int64 unless dtype is given)."""
    if stop is None:
        start, stop = 0, start
    return Tensor(backend.array_module(device).arange(start, stop, step, dtype=dtype))


def eye(n: int, dtype: Any = None, device: str = "cpu") -> Tensor:
    """The n×n identity matrix."""
    return Tensor(backend.array_module(device).eye(n, dtype=_dtype(dtype)))


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape, dtype and device."""
    return _finish(backend.xp_of(x.data).zeros_like(x.data, dtype=dtype), requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape, dtype and device."""
    return _finish(backend.xp_of(x.data).ones_like(x.data, dtype=dtype), requires_grad)


def randn(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Standard normal draws from tinyzoo's seeded generator."""
    draws = rng.generator(device).standard_normal(_shape(shape), dtype=_dtype(dtype))
    return _finish(draws, requires_grad)


def rand(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) draws from tinyzoo's seeded generator."""
    draws = rng.generator(device).random(_shape(shape), dtype=_dtype(dtype))
    return _finish(draws, requires_grad)


def randint(low: int, high: int, shape: Any, device: str = "cpu") -> Tensor:
    """Integers in [low, high) from tinyzoo's seeded generator (int64)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return Tensor(rng.generator(device).integers(low, high, size=shape, dtype=np.int64))

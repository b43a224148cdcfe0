"""Making tensors: from data, filled with constants, ranges and random draws (seeded via tinyzoo.rng).

Dtypes follow PyTorch: floats default to float32 (`tinyzoo.dtypes.DEFAULT_FLOAT`), `full` and `arange`
infer int64 or float32 from their numbers, and every random function takes `generator=` (a
`tinyzoo.Generator`) to draw from a stream of its own instead of the global one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyzoo import backend, dtypes, rng
from tinyzoo.autograd.tensor import Tensor, as_array, wrap
from tinyzoo.errors import DTypeError, ShapeError

DEFAULT_DTYPE = dtypes.DEFAULT_FLOAT


def _dtype(dtype: Any) -> np.dtype:
    return DEFAULT_DTYPE if dtype is None else dtypes.as_dtype(dtype)


def _shape(shape: tuple) -> tuple[int, ...]:
    """Accept zeros(2, 3), zeros((2, 3)) and zeros(x.size()) alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def _finish(array: Any, requires_grad: bool) -> Tensor:
    return Tensor(array, requires_grad=requires_grad)


def tensor(data: Any, requires_grad: bool = False, device: str = "cpu", dtype: Any = None) -> Tensor:
    """A new leaf tensor holding a copy of `data` (Python floats become float32; arrays and NumPy
    scalars keep their dtype)."""
    array = as_array(data, dtype=dtype, device=device)
    source = data._data if isinstance(data, Tensor) else data
    return _finish(array.copy() if array is source else array, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing `array`'s memory (changing one changes the other), as torch.from_numpy."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    return Tensor(array)


def zeros(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return _finish(backend.array_module(device).zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def ones(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _finish(backend.array_module(device).ones(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def empty(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor whose values are whatever the memory held (fill it before reading)."""
    return _finish(backend.array_module(device).empty(_shape(shape), dtype=_dtype(dtype)), requires_grad)


def full(shape: Any, value: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """A tensor filled with `value` (its dtype inferred from the value when not given: bool, int64, float32)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dtype = dtypes.scalar_dtype(value) if dtype is None else dtypes.as_dtype(dtype)
    return _finish(backend.array_module(device).full(shape, value, dtype=dtype), requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None, device: str = "cpu") -> Tensor:
    """Evenly spaced values in [start, stop): int64 when every bound is an integer, else float32 (as torch)."""
    if stop is None:
        start, stop = 0, start
    if dtype is None:
        integral = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = dtypes.int64 if integral else DEFAULT_DTYPE
    return Tensor(backend.array_module(device).arange(start, stop, step, dtype=dtypes.as_dtype(dtype)))


def linspace(start: float, end: float, steps: int, dtype: Any = None, device: str = "cpu") -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    return Tensor(backend.array_module(device).linspace(start, end, steps, dtype=_dtype(dtype)))


def eye(n: int, m: int | None = None, dtype: Any = None, device: str = "cpu") -> Tensor:
    """The n×m identity matrix (square by default)."""
    return Tensor(backend.array_module(device).eye(n, m, dtype=_dtype(dtype)))


def _like(x: Tensor, dtype: Any) -> tuple[Any, np.dtype]:
    return backend.xp_of(x._data), x.dtype if dtype is None else dtypes.as_dtype(dtype)


def zeros_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape, dtype and device."""
    xp, dtype = _like(x, dtype)
    return _finish(xp.zeros(x.shape, dtype=dtype), requires_grad)


def ones_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape, dtype and device."""
    xp, dtype = _like(x, dtype)
    return _finish(xp.ones(x.shape, dtype=dtype), requires_grad)


def empty_like(x: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor with x's shape, dtype and device."""
    xp, dtype = _like(x, dtype)
    return _finish(xp.empty(x.shape, dtype=dtype), requires_grad)


def full_like(x: Tensor, value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """`value` everywhere, with x's shape, dtype and device."""
    xp, dtype = _like(x, dtype)
    return _finish(xp.full(x.shape, value, dtype=dtype), requires_grad)


def _float_dtype(dtype: Any, op: str) -> np.dtype:
    """The dtype of a floating-point random draw (float32 by default)."""
    dtype = _dtype(dtype)
    if dtype.kind != "f" or dtype == dtypes.float16:
        raise DTypeError(f"{op}: draws are float32 or float64, got {dtype}")
    return dtype


def randn(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False,
          generator: rng.Generator | None = None) -> Tensor:  # fmt: skip
    """Standard normal draws."""
    draws = rng.generator(device, generator).standard_normal(_shape(shape), dtype=_float_dtype(dtype, "randn"))
    return _finish(draws, requires_grad)


def rand(*shape: Any, dtype: Any = None, device: str = "cpu", requires_grad: bool = False,
         generator: rng.Generator | None = None) -> Tensor:  # fmt: skip
    """Uniform [0, 1) draws."""
    draws = rng.generator(device, generator).random(_shape(shape), dtype=_float_dtype(dtype, "rand"))
    return _finish(draws, requires_grad)


def randn_like(x: Tensor, dtype: Any = None, generator: rng.Generator | None = None) -> Tensor:
    """Standard normal draws with x's shape, dtype and device."""
    return randn(x.shape, dtype=x.dtype if dtype is None else dtype, device=x.device, generator=generator)


def rand_like(x: Tensor, dtype: Any = None, generator: rng.Generator | None = None) -> Tensor:
    """Uniform [0, 1) draws with x's shape, dtype and device."""
    return rand(x.shape, dtype=x.dtype if dtype is None else dtype, device=x.device, generator=generator)


def randint(low: int, high: int | Any = None, size: Any = None, *, device: str = "cpu", dtype: Any = None,
            generator: rng.Generator | None = None, shape: Any = None) -> Tensor:  # fmt: skip
    """Integers in [low, high) (int64): randint(low, high, size) or randint(high, size), as torch."""
    size = size if shape is None else shape
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    size = (size,) if isinstance(size, int) else tuple(size)
    draws = rng.generator(device, generator).integers(low, high, size=size, dtype=np.int64)
    return wrap(draws if dtype is None else draws.astype(dtypes.as_dtype(dtype)))


def randperm(n: int, device: str = "cpu", generator: rng.Generator | None = None) -> Tensor:
    """A random permutation of 0 … n-1 (int64)."""
    return wrap(rng.generator(device, generator).permutation(n).astype(np.int64))


def normal(mean: float, std: float, size: Any, device: str = "cpu", dtype: Any = None,
           generator: rng.Generator | None = None) -> Tensor:  # fmt: skip
    """Normal draws with the given mean and standard deviation."""
    return randn(size, dtype=dtype, device=device, generator=generator) * std + mean


def multinomial(probs: Tensor, num_samples: int, replacement: bool = False,
                generator: rng.Generator | None = None) -> Tensor:  # fmt: skip
    """Indices drawn from the categorical distribution(s) `probs` (1-D, or one row per distribution;
    non-negative, not necessarily normalised), as torch.multinomial."""
    weights = backend.to_host(probs._data if isinstance(probs, Tensor) else as_array(probs)).astype(np.float64)
    rows = weights.reshape(-1, weights.shape[-1]) if weights.ndim else None
    if rows is None or weights.ndim > 2 or (rows < 0).any() or not np.isfinite(rows).all():
        raise ShapeError(f"multinomial: probs must be a 1-D or 2-D tensor of non-negative finite weights, got "
                         f"shape {weights.shape}")  # fmt: skip
    totals = rows.sum(axis=1, keepdims=True)
    if (totals <= 0).any() or (not replacement and num_samples > (rows > 0).sum(axis=1).min()):
        raise ShapeError(f"multinomial: cannot draw {num_samples} sample(s) without replacement={replacement} "
                         "from rows with that many non-zero weights")  # fmt: skip
    stream = rng.generator("cpu", generator)
    draws = np.stack([stream.choice(len(row), num_samples, replace=replacement, p=row / total)
                      for row, total in zip(rows, totals[:, 0])])  # fmt: skip
    device = probs.device if isinstance(probs, Tensor) else "cpu"
    return Tensor(backend.to_device(draws.reshape(weights.shape[:-1] + (num_samples,)).astype(np.int64), device))

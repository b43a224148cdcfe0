"""Hypothesis strategies for property-testing ops (yours or tinyzoo's) against finite differences.

    from hypothesis import given
    from tinyzoo.testing import strategies as tzst

    @given(tzst.arrays(tzst.shapes()))
    def test_my_op(x): ...

Values are kept well-conditioned on purpose: away from the kinks of relu/abs/max (where finite
differences straddle a corner) and, with `positive=True`, away from zero for log/sqrt/division.
Shapes, on the other hand, are awkward on purpose: 0-d tensors, zero-length axes and size-1 axes are
drawn by default, and `arrays(..., views=True)` hands out non-contiguous and negative-stride views.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

KINK_GAP = 1e-2  # finite differences with eps=1e-6 never cross a kink this far away


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 0, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including 0-d tensors, zero-length axes (min_side=0) and size-1 axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(
    max_dims: int = 3, max_side: int = 4, min_side: int = 0, num_shapes: int = 2
) -> st.SearchStrategy:
    """Tuples of shapes that broadcast together (NumPy rules), often of different rank, size 1 and 0 included."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).map(lambda bs: bs.input_shapes)


@st.composite
def axes(draw: st.DrawFn, ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> int | tuple | None:
    """An axis argument for an array of `ndim` axes: None, one (maybe negative) axis or a tuple."""
    options = []
    if allow_none:
        options.append(st.none())
    if ndim > 0:
        options.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return draw(st.one_of(options))


@st.composite
def arrays(
    draw: st.DrawFn,
    shape: tuple[int, ...] | st.SearchStrategy,
    low: float = -2.0,
    high: float = 2.0,
    positive: bool = False,
    away_from_zero: bool = False,
    distinct: bool = False,
    dtype: np.dtype | str = "float64",
    views: bool = False,
) -> np.ndarray:
    """Arrays of `dtype` (float64 by default) with values in [low, high]; options keep them where finite
    differences are exact.

    positive: values in [0.1, high] (for log, sqrt, division). away_from_zero: |x| >= KINK_GAP
    (relu, abs, leaky_relu). distinct: entries pairwise at least KINK_GAP apart (max, min, sort).
    views: the array may come back as a non-contiguous or negative-stride view of a larger one.
    """
    if not isinstance(shape, tuple):
        shape = draw(shape)
    low = 0.1 if positive else low
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, allow_subnormal=False)))
    if away_from_zero:
        values = np.where(np.abs(values) < KINK_GAP, np.copysign(KINK_GAP * 2, values + 1e-300), values)
    if distinct and values.size > 1:  # keep the drawn order, space the values evenly over [low, high]
        ranks = np.argsort(np.argsort(values.ravel(), kind="stable"), kind="stable")
        values = np.linspace(low, high, values.size)[ranks].reshape(shape)
    values = values.astype(dtype)
    return draw(strided_views(values)) if views else values


@st.composite
def strided_views(draw: st.DrawFn, values: np.ndarray) -> np.ndarray:
    """The same values as an awkward view: reversed along an axis, every other element of a larger
    array, or transposed from its reverse — or the array itself."""
    if values.ndim == 0:
        return values
    kind = draw(st.sampled_from(["contiguous", "reversed", "every_other", "transposed"]))
    if kind == "reversed":
        axis = draw(st.integers(0, values.ndim - 1))
        holder = np.flip(values, axis).copy()
        return np.flip(holder, axis)  # a negative-stride view with the drawn values
    if kind == "every_other":
        holder = np.zeros(tuple(2 * n for n in values.shape), dtype=values.dtype)
        holder[tuple(slice(None, None, 2) for _ in values.shape)] = values
        return holder[tuple(slice(None, None, 2) for _ in values.shape)]
    if kind == "transposed" and values.ndim > 1:
        return np.ascontiguousarray(values.T).T  # Fortran order: not C-contiguous
    return values


def index_arrays(length: int, shape: tuple[int, ...] | st.SearchStrategy, negative: bool = False) -> st.SearchStrategy:
    """Integer index arrays with entries in [0, length) (or [-length, length) with negative=True).

    With length 0 nothing can be indexed: give a shape with a zero-length axis then."""
    return hnp.arrays(np.int64, shape, elements=st.integers(-length if negative else 0, max(length - 1, 0)))


def float_dtypes() -> st.SearchStrategy:
    """float64 or float32."""
    return st.sampled_from([np.dtype(np.float64), np.dtype(np.float32)])

"""Hypothesis strategies for property-testing ops (yours or tinyzoo's) against finite differences.

    from hypothesis import given
    from tinyzoo.testing import strategies as tzst

    @given(tzst.arrays(tzst.shapes()))
    def test_my_op(x): ...

Values are kept well-conditioned on purpose: away from the kinks of relu/abs/max (where finite
differences straddle a corner) and, with `positive=True`, away from zero for log/sqrt/division.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

KINK_GAP = 1e-2  # finite differences with eps=1e-6 never cross a kink this far away


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, including 0-d and size-1 axes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy:
    """Pairs of shapes that broadcast together (NumPy rules), often of different rank."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims, max_side=max_side).map(
        lambda bs: bs.input_shapes
    )


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
) -> np.ndarray:
    """float64 arrays with values in [low, high]; options keep them where finite differences are exact.

    positive: values in [0.1, high] (for log, sqrt, division). away_from_zero: |x| >= KINK_GAP
    (relu, abs, leaky_relu). distinct: entries pairwise at least KINK_GAP apart (max, min, sort).
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
    return values


def index_arrays(length: int, shape: tuple[int, ...] | st.SearchStrategy) -> st.SearchStrategy:
    """Integer index arrays with entries in [0, length)."""
    return hnp.arrays(np.int64, shape, elements=st.integers(0, max(length - 1, 0)))

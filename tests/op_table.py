"""The op table: for every public op, how to draw awkward inputs for it and what it must equal.

Each `Case` draws (with hypothesis) the op's inputs — 0-d tensors, zero-length axes, size-1
broadcasting, non-contiguous and negative-stride views, index arrays smaller than or broadcast against
their source, tensor-valued bounds and exponents — and returns a `Drawn`: the float inputs, the call on
tinyzoo tensors, the NumPy reference and the PyTorch call. `test_ops.py` checks every case against NumPy
and finite differences; `test_ops_torch.py` checks the same draws against PyTorch's values and
vector-Jacobian products. One table, so no op is forgotten by either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.nn import functional as F
from tinyzoo.testing import strategies as tzst


@dataclass
class Drawn:
    """One drawn call of an op."""

    inputs: list[np.ndarray]  # floating-point inputs: each may require grad
    tz: Callable[..., Any]  # (*tensors) -> Tensor
    ref: Callable[..., Any] | None  # (*arrays) -> np.ndarray; None when only PyTorch is the reference
    torch: Callable[..., Any] | None  # (torch, *torch_tensors) -> torch.Tensor; None: no PyTorch peer
    smooth: bool = True  # finite differences are valid at these inputs
    differentiable: bool = True  # the output carries a gradient at all (argmax, comparisons do not)
    out_dtype: Any = None  # the result's dtype when an op changes it (None: a float result keeps the inputs')


@dataclass(frozen=True)
class Case:
    """An op and how to draw calls of it."""

    name: str
    draw: Callable[[Any, np.dtype], Drawn]
    tags: tuple[str, ...] = field(default=())


CASES: dict[str, Case] = {}


def case(name: str, *tags: str) -> Callable:
    """Register a draw function under `name`."""

    def register(draw: Callable[[Any, np.dtype], Drawn]) -> Callable:
        CASES[name] = Case(name, draw, tags)
        return draw

    return register


def arr(data: Any, shape: Any, dtype: np.dtype, **options: Any) -> np.ndarray:
    """An awkward array (maybe a strided view) of `dtype`."""
    return data.draw(tzst.arrays(shape, dtype=dtype, views=True, **options))


def any_shape(min_dims: int = 0, max_dims: int = 3, min_side: int = 0) -> Any:
    return tzst.shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side)


def draw_axis(data: Any, ndim: int) -> int:
    """One axis, negative ones included; 0 or -1 for a 0-d tensor (which PyTorch accepts)."""
    return data.draw(st.integers(-max(ndim, 1), max(ndim, 1) - 1))


def draw_axes(data: Any, ndim: int) -> Any:
    """None, one axis or a tuple of distinct axes."""
    return data.draw(tzst.axes(ndim))


def torch_dims(axis: Any, ndim: int) -> Any:
    """A tinyzoo axis argument as torch's dim (None → every axis)."""
    if axis is None:
        return tuple(range(ndim)) if ndim else None
    return axis


# ----- elementwise unary ----------------------------------------------------------------------------
def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


UNARY: dict[str, tuple[Callable, Callable, Callable, dict]] = {
    "neg": (tz.neg, np.negative, lambda t, x: -x, {}),
    "exp": (tz.exp, np.exp, lambda t, x: t.exp(x), {}),
    "log": (tz.log, np.log, lambda t, x: t.log(x), {"positive": True}),
    "log1p": (tz.log1p, np.log1p, lambda t, x: t.log1p(x), {"positive": True}),
    "log2": (tz.log2, np.log2, lambda t, x: t.log2(x), {"positive": True}),
    "log10": (tz.log10, np.log10, lambda t, x: t.log10(x), {"positive": True}),
    "sqrt": (tz.sqrt, np.sqrt, lambda t, x: t.sqrt(x), {"positive": True}),
    "abs": (tz.abs, np.abs, lambda t, x: t.abs(x), {"away_from_zero": True}),
    "sin": (tz.sin, np.sin, lambda t, x: t.sin(x), {}),
    "cos": (tz.cos, np.cos, lambda t, x: t.cos(x), {}),
    "tanh": (tz.tanh, np.tanh, lambda t, x: t.tanh(x), {}),
    "sigmoid": (tz.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda t, x: t.sigmoid(x), {}),
    "relu": (tz.relu, lambda x: np.maximum(x, 0), lambda t, x: t.relu(x), {"away_from_zero": True}),
    "leaky_relu": (lambda x: tz.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
                   lambda t, x: t.nn.functional.leaky_relu(x, 0.1), {"away_from_zero": True}),
    "elu": (lambda x: tz.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
            lambda t, x: t.nn.functional.elu(x, 0.7), {"away_from_zero": True}),
    "gelu": (tz.gelu, _gelu_tanh, lambda t, x: t.nn.functional.gelu(x, approximate="tanh"), {}),
    "gelu_exact": (lambda x: tz.gelu(x, approximate="none"),
                   lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2))) if x.size else x,
                   lambda t, x: t.nn.functional.gelu(x), {}),
    "softplus": (lambda x: tz.softplus(x, 2.0, threshold=3.0),
                 lambda x: np.where(2 * x > 3.0, x, np.log1p(np.exp(2 * x)) / 2),
                 lambda t, x: t.nn.functional.softplus(x, 2.0, 3.0), {"away_from": 1.5}),
    "clamp": (lambda x: tz.clamp(x, -0.523, 0.517), lambda x: np.clip(x, -0.523, 0.517),
              lambda t, x: t.clamp(x, -0.523, 0.517), {"distinct": True}),
    "clone": (tz.clone, np.copy, lambda t, x: x.clone(), {}),
    "contiguous": (tz.contiguous, np.copy, lambda t, x: x.contiguous(), {}),
    "square": (lambda x: x**2, np.square, lambda t, x: x**2, {}),
    "cube": (lambda x: x**3, lambda x: x**3, lambda t, x: x**3, {}),
    "rsub": (lambda x: 1.5 - x, lambda x: 1.5 - x, lambda t, x: 1.5 - x, {}),
    "rdiv": (lambda x: 2.0 / x, lambda x: 2.0 / x, lambda t, x: 2.0 / x, {"positive": True}),
}  # fmt: skip


def _unary_case(name: str, fn: Callable, ref: Callable, peer: Callable, options: dict) -> None:
    away_from = options.pop("away_from", None)

    @case(name, "unary")
    def draw(data: Any, dtype: np.dtype) -> Drawn:
        x = arr(data, any_shape(), dtype, **options)
        smooth = away_from is None or not np.any(np.abs(x - away_from) < 1e-3)
        return Drawn([x], fn, ref, peer, smooth=smooth)


for _name, (_fn, _ref, _peer, _options) in UNARY.items():
    _unary_case(_name, _fn, _ref, _peer, dict(_options))


# ----- elementwise binary (broadcasting, size 0 and 1 included) --------------------------------------
BINARY: dict[str, tuple[Callable, Callable, Callable, dict, dict]] = {
    "add": (tz.add, np.add, lambda t, a, b: t.add(a, b), {}, {}),
    "add_alpha": (lambda a, b: tz.add(a, b, alpha=-2.5), lambda a, b: a - 2.5 * b,
                  lambda t, a, b: t.add(a, b, alpha=-2.5), {}, {}),
    "sub": (tz.sub, np.subtract, lambda t, a, b: t.sub(a, b), {}, {}),
    "mul": (tz.mul, np.multiply, lambda t, a, b: t.mul(a, b), {}, {}),
    "div": (tz.div, np.divide, lambda t, a, b: t.div(a, b), {}, {"positive": True}),
    "pow": (tz.pow, np.power, lambda t, a, b: t.pow(a, b), {"positive": True}, {}),
    "maximum": (tz.maximum, np.maximum, lambda t, a, b: t.maximum(a, b), {"distinct": True}, {"distinct": True}),
    "minimum": (tz.minimum, np.minimum, lambda t, a, b: t.minimum(a, b), {"distinct": True}, {"distinct": True}),
    "operator_mix": (lambda a, b: (a + b) * a - b / (a * a + 1), lambda a, b: (a + b) * a - b / (a * a + 1),
                     lambda t, a, b: (a + b) * a - b / (a * a + 1), {}, {}),
}  # fmt: skip


def _binary_case(name: str, fn: Callable, ref: Callable, peer: Callable, options_a: dict, options_b: dict) -> None:
    @case(name, "binary")
    def draw(data: Any, dtype: np.dtype) -> Drawn:
        shape_a, shape_b = data.draw(tzst.broadcastable_shapes())
        a, b = arr(data, shape_a, dtype, **options_a), arr(data, shape_b, dtype, **options_b)
        smooth = not (name in ("maximum", "minimum") and _ties(a, b))
        return Drawn([a, b], fn, ref, peer, smooth=smooth)


def _ties(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a and b come within a finite-difference step of each other somewhere."""
    return bool(np.any(np.abs(np.subtract(*np.broadcast_arrays(a, b))) < 1e-3))


for _name, (_fn, _ref, _peer, _oa, _ob) in BINARY.items():
    _binary_case(_name, _fn, _ref, _peer, _oa, _ob)


@case("where", "binary")
def _where(data: Any, dtype: np.dtype) -> Drawn:
    shape_c, shape_a, shape_b = data.draw(tzst.broadcastable_shapes(num_shapes=3))
    cond = np.asarray(data.draw(tzst.arrays(shape_c)) > 0)
    a, b = arr(data, shape_a, dtype), arr(data, shape_b, dtype)
    return Drawn([a, b], lambda x, y: tz.where(cond, x, y), lambda x, y: np.where(cond, x, y),
                 lambda t, x, y: t.where(t.from_numpy(cond), x, y))  # fmt: skip


@case("masked_fill")
def _masked_fill(data: Any, dtype: np.dtype) -> Drawn:
    shape_x, shape_m = data.draw(tzst.broadcastable_shapes())
    full = np.broadcast_shapes(shape_x, shape_m)
    shape_x = full  # masked_fill broadcasts the mask against x, never x itself
    x = arr(data, shape_x, dtype)
    mask = np.asarray(data.draw(tzst.arrays(shape_m)) > 0)
    return Drawn([x], lambda t: tz.masked_fill(t, mask, -3.0), lambda a: np.where(mask, -3.0, a).astype(a.dtype),
                 lambda t, a: a.masked_fill(t.from_numpy(mask), -3.0))  # fmt: skip


@case("clamp_tensor_bounds")
def _clamp_tensor_bounds(data: Any, dtype: np.dtype) -> Drawn:
    _, shape_lo, shape_hi = data.draw(tzst.broadcastable_shapes(num_shapes=3))
    shape_x = np.broadcast_shapes(_, shape_lo, shape_hi)  # the bounds broadcast against x, never x against them
    values = data.draw(tzst.arrays((sum(math.prod(s) for s in (shape_x, shape_lo, shape_hi)),), distinct=True))
    values = values.astype(dtype)
    cut = np.cumsum([math.prod(shape_x), math.prod(shape_lo)])
    x, lo, hi = (part.reshape(s) for part, s in zip(np.split(values, cut), (shape_x, shape_lo, shape_hi)))
    return Drawn([x, lo, hi], lambda a, b, c: tz.clamp(a, b, c), lambda a, b, c: np.minimum(np.maximum(a, b), c),
                 lambda t, a, b, c: t.clamp(a, b, c))  # fmt: skip


# ----- reductions ------------------------------------------------------------------------------------
def _reduction_case(name: str, fn: Callable, ref: Callable, peer: Callable | None, options: dict,
                    nonempty: bool = False, min_count: int = 0) -> None:  # fmt: skip
    @case(name, "reduction")
    def draw(data: Any, dtype: np.dtype) -> Drawn:
        x = arr(data, any_shape(min_side=1 if nonempty else 0), dtype, **options)
        axis = draw_axes(data, x.ndim)
        keepdims = data.draw(st.booleans())
        count = x.size if axis is None else math.prod(np.array(x.shape)[np.atleast_1d(axis)].tolist())
        smooth = count > min_count
        return Drawn([x], lambda t: fn(t, axis=axis, keepdims=keepdims),
                     lambda a: np.asarray(ref(a, axis=axis, keepdims=keepdims)),
                     None if peer is None else lambda t, a: peer(t, a, torch_dims(axis, x.ndim), keepdims),
                     smooth=smooth)  # fmt: skip


_reduction_case("sum", tz.sum, np.sum, lambda t, a, d, k: a.sum(d, keepdim=k) if d is not None else a.sum(), {})
_reduction_case("mean", tz.mean, np.mean, lambda t, a, d, k: a.mean(d, keepdim=k) if d is not None else a.mean(), {},
                nonempty=True)  # fmt: skip
_reduction_case("amax", tz.amax, np.max, lambda t, a, d, k: t.amax(a, d if d is not None else (), keepdim=k),
                {"distinct": True}, nonempty=True)  # fmt: skip
_reduction_case("amin", tz.amin, np.min, lambda t, a, d, k: t.amin(a, d if d is not None else (), keepdim=k),
                {"distinct": True}, nonempty=True)  # fmt: skip
_reduction_case("var", lambda t, **kw: tz.var(t, **kw), lambda a, **kw: np.var(a, ddof=1, **kw),
                lambda t, a, d, k: t.var(a, d, keepdim=k), {"distinct": True}, nonempty=True, min_count=1)
_reduction_case("var_population", lambda t, **kw: tz.var(t, correction=0, **kw), np.var,
                lambda t, a, d, k: t.var(a, d, correction=0, keepdim=k), {}, nonempty=True)
_reduction_case("std", lambda t, **kw: tz.std(t, unbiased=False, **kw), np.std,
                lambda t, a, d, k: t.std(a, d, unbiased=False, keepdim=k), {"distinct": True}, nonempty=True,
                min_count=1)  # fmt: skip
_reduction_case("norm", tz.norm, lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims)),
                lambda t, a, d, k: t.linalg.vector_norm(a, 2, d, keepdim=k), {"away_from_zero": True})
_reduction_case("norm_1", lambda t, **kw: tz.norm(t, 1, **kw), lambda a, **kw: np.sum(np.abs(a), **kw),
                lambda t, a, d, k: t.linalg.vector_norm(a, 1, d, keepdim=k), {"away_from_zero": True})
_reduction_case("norm_inf", lambda t, **kw: tz.norm(t, math.inf, **kw),
                lambda a, **kw: np.max(np.abs(a), **kw),
                lambda t, a, d, k: t.linalg.vector_norm(a, math.inf, d, keepdim=k),
                {"positive": True, "distinct": True}, nonempty=True)  # fmt: skip
_reduction_case("norm_3", lambda t, **kw: tz.norm(t, p=3, **kw),
                lambda a, **kw: np.sum(np.abs(a) ** 3, **kw) ** (1 / 3),
                lambda t, a, d, k: t.linalg.vector_norm(a, 3, d, keepdim=k), {"away_from_zero": True}, nonempty=True)
_reduction_case("logsumexp", tz.logsumexp,
                lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims)),
                lambda t, a, d, k: t.logsumexp(a, d if d is not None else (), keepdim=k), {})  # fmt: skip


def _dim_case(name: str, fn: Callable, ref: Callable, peer: Callable | None, options: dict,
              nonempty: bool = False, differentiable: bool = True) -> None:  # fmt: skip
    """Ops along one axis (`dim`), which a 0-d tensor also accepts as 0 or -1."""

    @case(name, "dim")
    def draw(data: Any, dtype: np.dtype) -> Drawn:
        x = arr(data, any_shape(min_side=1 if nonempty else 0), dtype, **options)
        axis = draw_axis(data, x.ndim)
        keepdims = data.draw(st.booleans())
        return Drawn([x], lambda t: fn(t, axis, keepdims), lambda a: np.asarray(ref(a, axis, keepdims)),
                     None if peer is None else lambda t, a: peer(t, a, axis, keepdims),
                     differentiable=differentiable)  # fmt: skip


def _np_on_axis(fn: Callable) -> Callable:
    """A NumPy function along `axis`, on a 0-d array as on one element."""
    return lambda a, axis, keep: fn(a.reshape(1), 0).reshape(()) if a.ndim == 0 else fn(a, axis)


def _np_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    if a.size == 0:
        return a
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    if a.size == 0:
        return a
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


_dim_case("softmax", lambda t, d, k: tz.softmax(t, d), _np_on_axis(_np_softmax), lambda t, a, d, k: a.softmax(d), {})
_dim_case("log_softmax", lambda t, d, k: tz.log_softmax(t, dim=d), _np_on_axis(_np_log_softmax),
          lambda t, a, d, k: a.log_softmax(d), {})  # fmt: skip
_dim_case("cumsum", lambda t, d, k: tz.cumsum(t, d), _np_on_axis(np.cumsum), lambda t, a, d, k: a.cumsum(d), {})
_dim_case("cumprod", lambda t, d, k: tz.cumprod(t, d), _np_on_axis(np.cumprod), lambda t, a, d, k: a.cumprod(d), {})
_dim_case("prod", lambda t, d, k: tz.prod(t, d, keepdim=k),
          lambda a, d, k: np.prod(a, axis=d % a.ndim if a.ndim else None, keepdims=k and a.ndim > 0),
          lambda t, a, d, k: a.prod(d, keepdim=k), {})  # fmt: skip
_dim_case("max_dim", lambda t, d, k: tz.max(t, d, keepdim=k).values,
          lambda a, d, k: np.max(a, axis=d % a.ndim if a.ndim else None, keepdims=k and a.ndim > 0),
          lambda t, a, d, k: a.max(d, keepdim=k).values, {"distinct": True}, nonempty=True)  # fmt: skip
_dim_case("min_dim_indices", lambda t, d, k: tz.min(t, dim=d, keepdim=k).indices,
          lambda a, d, k: np.argmin(a, axis=d % a.ndim if a.ndim else None, keepdims=k and a.ndim > 0),
          lambda t, a, d, k: a.min(d, keepdim=k).indices, {"distinct": True}, nonempty=True,
          differentiable=False)  # fmt: skip
_dim_case("argmax", lambda t, d, k: tz.argmax(t, d, keepdim=k),
          lambda a, d, k: np.argmax(a, axis=d % a.ndim if a.ndim else None, keepdims=k and a.ndim > 0),
          lambda t, a, d, k: a.argmax(d, keepdim=k), {"distinct": True}, nonempty=True,
          differentiable=False)  # fmt: skip


@case("cumprod_with_zeros")
def _cumprod_zeros(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1, min_side=1), dtype)
    x = np.where(data.draw(tzst.arrays(x.shape)) > 0.5, 0.0, x).astype(dtype)  # zeros where the gradient is subtle
    axis = draw_axis(data, x.ndim)
    return Drawn([x], lambda t: tz.cumprod(t, axis), lambda a: np.cumprod(a, axis), lambda t, a: a.cumprod(axis))


@case("prod_with_zeros")
def _prod_zeros(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1, min_side=1), dtype)
    x = np.where(data.draw(tzst.arrays(x.shape)) > 0.5, 0.0, x).astype(dtype)
    axis = draw_axis(data, x.ndim)
    return Drawn([x], lambda t: tz.prod(t, axis), lambda a: np.prod(a, axis), lambda t, a: a.prod(axis))


@case("all_any")
def _all_any(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    axis = draw_axes(data, x.ndim)
    dims = torch_dims(axis, x.ndim)

    def peer(t: Any, a: Any) -> Any:
        positive = a > 0
        if dims is None:
            return t.stack([positive.all(), positive.any()])
        return t.stack([t.all(positive, dims), t.any(positive, dims)])

    return Drawn([x], lambda t: tz.stack([tz.all(t > 0, axis), tz.any(t > 0, axis)]),
                 lambda a: np.stack([np.all(a > 0, axis), np.any(a > 0, axis)]), peer,
                 differentiable=False)  # fmt: skip


# ----- shape ops -------------------------------------------------------------------------------------
@case("reshape")
def _reshape(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    target = (-1,) if x.size else (0, *x.shape)
    return Drawn([x], lambda t: tz.reshape(t, target), lambda a: a.reshape(target), lambda t, a: a.reshape(target))


@case("flatten")
def _flatten(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    return Drawn([x], tz.flatten, lambda a: a.reshape(-1), lambda t, a: a.flatten())


@case("squeeze")
def _squeeze(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    axis = data.draw(st.one_of(st.none(), st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1)))
    ref = np.squeeze(x) if axis is None else (np.squeeze(x, axis) if x.ndim and x.shape[axis] == 1 else x)
    return Drawn([x], lambda t: tz.squeeze(t, axis), lambda a: ref.copy(),
                 lambda t, a: a.squeeze() if axis is None else a.squeeze(axis))  # fmt: skip


@case("unsqueeze")
def _unsqueeze(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    return Drawn([x], lambda t: tz.unsqueeze(t, axis), lambda a: np.expand_dims(a, axis),
                 lambda t, a: a.unsqueeze(axis))  # fmt: skip


@case("permute")
def _permute(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    order = tuple(data.draw(st.permutations(range(x.ndim))))
    return Drawn([x], lambda t: t.permute(order), lambda a: a.transpose(order), lambda t, a: a.permute(order))


@case("transpose_swapaxes")
def _transpose(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    a1, a2 = draw_axis(data, x.ndim), draw_axis(data, x.ndim)
    ref = (lambda a: np.swapaxes(a, a1, a2)) if x.ndim else (lambda a: a.copy())
    return Drawn([x], lambda t: tz.transpose(t, a1, a2) if x.ndim != 2 else tz.swapaxes(t, a1, a2), ref,
                 lambda t, a: a.transpose(a1, a2))  # fmt: skip


@case("T")
def _t(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(max_dims=2), dtype)
    return Drawn([x], lambda t: t.T if x.ndim < 2 else t.t(), lambda a: a.T, lambda t, a: a.t())


@case("flip")
def _flip(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    axes = draw_axes(data, x.ndim)
    dims = tuple(range(x.ndim)) if axes is None else ((axes,) if isinstance(axes, int) else axes)
    return Drawn([x], lambda t: tz.flip(t, dims=dims), lambda a: np.flip(a, axes), lambda t, a: a.flip(dims))


@case("broadcast_to_expand")
def _broadcast(data: Any, dtype: np.dtype) -> Drawn:
    shape, target = data.draw(tzst.broadcastable_shapes())
    full = np.broadcast_shapes(shape, target)
    x = arr(data, shape, dtype)
    return Drawn([x], lambda t: t.expand(*full) if full else tz.broadcast_to(t, full),
                 lambda a: np.broadcast_to(a, full), lambda t, a: a.expand(full))  # fmt: skip


@case("concat")
def _concat(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_dims=1))
    axis = draw_axis(data, len(shape))
    other = tuple(data.draw(st.integers(0, 3)) if i == axis % len(shape) else n for i, n in enumerate(shape))
    x, y = arr(data, shape, dtype), arr(data, other, dtype)
    return Drawn([x, y], lambda a, b: tz.cat([a, b], dim=axis), lambda a, b: np.concatenate([a, b], axis),
                 lambda t, a, b: t.cat([a, b], dim=axis))  # fmt: skip


@case("stack")
def _stack(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape())
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x, y = arr(data, shape, dtype), arr(data, shape, dtype)
    return Drawn([x, y], lambda a, b: tz.stack([a, b], dim=axis), lambda a, b: np.stack([a, b], axis),
                 lambda t, a, b: t.stack([a, b], dim=axis))  # fmt: skip


@case("split_chunk")
def _split(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_dims=1))
    axis = draw_axis(data, len(shape))
    size, chunks = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    x = arr(data, shape, dtype)

    def pieces(parts: list) -> Any:  # each piece weighted differently, so a swapped piece shows
        return [p * (i + 1) for i, p in enumerate(parts)]

    def ref(a: np.ndarray) -> np.ndarray:
        n = a.shape[axis]
        by_size = np.split(a, list(range(size, n, size)), axis) if n else [a]
        by_count = np.split(a, list(range(-(-n // chunks), n, -(-n // chunks))), axis) if n else [a]
        return np.concatenate(pieces(by_size) + pieces(by_count), axis)

    def both(lib: Any, a: Any) -> Any:
        return lib.cat(pieces(list(lib.split(a, size, dim=axis))) + pieces(list(lib.chunk(a, chunks, dim=axis))), axis)

    return Drawn([x], lambda t: both(tz, t), ref, both)


@case("pad")
def _pad(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1), dtype)
    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(x.ndim)]
    torch_pad = [w for pair in reversed(widths) for w in pair]
    return Drawn([x], lambda t: tz.pad(t, widths, value=0.5), lambda a: np.pad(a, widths, constant_values=0.5),
                 lambda t, a: t.nn.functional.pad(a, torch_pad, value=0.5))  # fmt: skip


@case("repeat_interleave")
def _repeat_interleave(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    repeats = data.draw(st.integers(0, 3))
    axis = data.draw(st.one_of(st.none(), st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1))) if x.ndim else None
    return Drawn([x], lambda t: tz.repeat_interleave(t, repeats, axis), lambda a: np.repeat(a, repeats, axis),
                 lambda t, a: a.repeat_interleave(repeats, axis))  # fmt: skip


@case("repeat_tile")
def _repeat(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=x.ndim, max_size=x.ndim + 1)))
    return Drawn([x], lambda t: t.repeat(*reps) if reps else tz.tile(t, reps), lambda a: np.tile(a, reps),
                 lambda t, a: a.repeat(*reps) if reps else a.clone())  # fmt: skip


@case("diagonal")
def _diagonal(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=2), dtype)
    offset = data.draw(st.integers(-2, 2))
    d1, d2 = data.draw(st.permutations(range(x.ndim)))[:2]
    return Drawn([x], lambda t: tz.diagonal(t, offset, d1, d2), lambda a: np.diagonal(a, offset, d1, d2),
                 lambda t, a: a.diagonal(offset, d1, d2))  # fmt: skip


# ----- indexing --------------------------------------------------------------------------------------
@case("getitem")
def _getitem(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1), dtype)
    n = x.shape[0]
    rows = data.draw(tzst.index_arrays(n, (data.draw(st.integers(0, 5)),), negative=True)) if n else np.zeros(0, int)
    choices = [Ellipsis, slice(None, None, 2), (None, slice(1, None)), rows,
               (rows, Ellipsis), x > 0, (Ellipsis, None)]  # fmt: skip
    if n:
        choices += [0, -1]
    index = data.draw(st.sampled_from(choices))
    torch_index = _torch_index(index)
    return Drawn([x], lambda t: t[index], lambda a: a[index], lambda t, a: a[torch_index(t)])


def _torch_index(index: Any) -> Callable:
    """index with arrays as torch tensors, and negative-step slices as a flip (torch has none)."""

    def convert(t: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        out = tuple(t.from_numpy(p) if isinstance(p, np.ndarray) else p for p in parts)
        return out if isinstance(index, tuple) else out[0]

    return convert


@case("getitem_negative_step")
def _getitem_negative_step(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1), dtype)
    return Drawn([x], lambda t: t[::-1], lambda a: a[::-1], lambda t, a: a.flip(0))


@case("index_put")
def _index_put(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1, min_side=1), dtype)
    n = x.shape[0]
    kind = data.draw(st.sampled_from(["row", "rows", "mask", "slice"]))
    if kind == "rows":  # distinct rows: with repeats the written value is unspecified (as in PyTorch)
        index: Any = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)), dtype=np.int64)
    else:
        index = {"row": data.draw(st.integers(-n, n - 1)), "mask": x > 0, "slice": slice(None, None, 2)}[kind]
    target = x[index].shape
    value_shape = data.draw(st.sampled_from([target, target[1:], ()]))
    v = arr(data, value_shape, dtype)

    def ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a.copy()
        out[index] = b
        return out

    def torch_put(t: Any, a: Any, b: Any) -> Any:
        out = a.clone()
        out[t.from_numpy(index) if isinstance(index, np.ndarray) else index] = b
        return out

    return Drawn([x, v], lambda a, b: tz.index_put(a, index, b), ref, torch_put)


@case("gather")
def _gather(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_side=1), dtype)
    axis = draw_axis(data, x.ndim)
    if x.ndim == 0:
        index = np.zeros((), np.int64)
    else:  # torch's rule: index no larger than x off the axis (smaller allowed), any length along it
        shape = tuple(data.draw(st.integers(0, 4)) if i == axis % x.ndim else data.draw(st.integers(0, n))
                      for i, n in enumerate(x.shape))  # fmt: skip
        index = data.draw(tzst.index_arrays(x.shape[axis], shape))

    def ref(a: np.ndarray) -> np.ndarray:
        if a.ndim == 0:
            return a.copy()
        positions = list(np.indices(index.shape, sparse=True))
        positions[axis % a.ndim] = index
        return a[tuple(positions)]

    return Drawn([x], lambda t: tz.gather(t, axis, index), ref, lambda t, a: t.gather(a, axis, t.from_numpy(index)))


@case("take_along_axis")
def _take_along_axis(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1, min_side=1), dtype)
    axis = draw_axis(data, x.ndim)
    shape = tuple(data.draw(st.integers(0, 4)) if i == axis % x.ndim else data.draw(st.sampled_from([1, n]))
                  for i, n in enumerate(x.shape))  # fmt: skip
    index = data.draw(tzst.index_arrays(x.shape[axis], shape))
    return Drawn([x], lambda t: tz.take_along_axis(t, index, axis), lambda a: np.take_along_axis(a, index, axis),
                 lambda t, a: _torch_take_along(t, a, index, axis))  # fmt: skip


def _torch_take_along(t: Any, a: Any, index: np.ndarray, axis: int) -> Any:
    """np.take_along_axis in torch: broadcast the off-axis dims, then gather."""
    axis %= a.ndim
    shape = [max(m, n) if i != axis else None for i, (m, n) in enumerate(zip(a.shape, index.shape))]
    big_a = a.expand(*[a.shape[i] if s is None else s for i, s in enumerate(shape)])
    big_i = t.from_numpy(index).expand(*[index.shape[i] if s is None else s for i, s in enumerate(shape)])
    return t.gather(big_a, axis, big_i)


@case("scatter_add")
def _scatter_add(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_side=1), dtype)
    axis = draw_axis(data, x.ndim)
    if x.ndim == 0:
        index, src_shape = np.zeros((), np.int64), ()
    else:  # index no larger than x off the axis and than src everywhere (both may be larger)
        shape = tuple(data.draw(st.integers(0, 4)) if i == axis % x.ndim else data.draw(st.integers(0, n))
                      for i, n in enumerate(x.shape))  # fmt: skip
        index = data.draw(tzst.index_arrays(x.shape[axis], shape))
        src_shape = tuple(m + data.draw(st.integers(0, 1)) for m in shape)
    src = arr(data, src_shape, dtype)

    def ref(a: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = a.copy().reshape(a.shape or (1,))
        s = s.reshape(s.shape or (1,))
        idx = index.reshape(index.shape or (1,))
        positions = list(np.indices(idx.shape, sparse=True))
        positions[axis % out.ndim] = idx
        np.add.at(out, tuple(positions), s[tuple(slice(0, m) for m in idx.shape)])
        return out.reshape(a.shape)

    used = tuple(slice(0, m) for m in index.shape)  # (torch's own backward fails when src is larger than index)
    return Drawn([x, src], lambda a, b: tz.scatter_add(a, axis, index, b), ref,
                 lambda t, a, b: t.scatter_add(a, axis, t.from_numpy(index), b[used]))  # fmt: skip


@case("index_select")
def _index_select(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_side=1), dtype)
    axis = draw_axis(data, x.ndim)
    length = x.shape[axis] if x.ndim else 1
    index_shapes = [(), (0,), (1,), (3,)] if x.ndim else [(), (1,)]  # a 0-d x takes exactly one index
    index = data.draw(tzst.index_arrays(length, data.draw(st.sampled_from(index_shapes))))
    ref = (lambda a: np.take(a, index.reshape(-1), axis)) if x.ndim else (lambda a: a.copy())
    return Drawn([x], lambda t: tz.index_select(t, axis, index), ref,
                 lambda t, a: a.index_select(axis, t.from_numpy(index)))  # fmt: skip  (the method: PyG replaces
    # torch.index_select itself once imported, and mishandles 0-d inputs)


@case("index_add")
def _index_add(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1, min_side=1), dtype)
    axis = draw_axis(data, x.ndim) % x.ndim
    index = data.draw(tzst.index_arrays(x.shape[axis], (data.draw(st.integers(0, 4)),)))
    source = arr(data, x.shape[:axis] + index.shape + x.shape[axis + 1 :], dtype)

    def ref(a: np.ndarray, s: np.ndarray) -> np.ndarray:
        out = a.copy()
        np.add.at(out, (slice(None),) * axis + (index,), 0.5 * s)
        return out

    return Drawn([x, source], lambda a, b: tz.index_add(a, axis, index, b, alpha=0.5), ref,
                 lambda t, a, b: a.index_add(axis, t.from_numpy(index), b, alpha=0.5))  # fmt: skip


# ----- linear algebra --------------------------------------------------------------------------------
@case("matmul")
def _matmul(data: Any, dtype: np.dtype) -> Drawn:
    n, k, m = (data.draw(st.integers(0, 3)) for _ in range(3))
    batch_a, batch_b = data.draw(tzst.broadcastable_shapes(max_dims=2, max_side=3))
    shape_a = data.draw(st.sampled_from([batch_a + (n, k), (k,)]))
    shape_b = data.draw(st.sampled_from([batch_b + (k, m), (k,)]))
    a, b = arr(data, shape_a, dtype), arr(data, shape_b, dtype)
    return Drawn([a, b], lambda x, y: x @ y, np.matmul, lambda t, x, y: x @ y)


@case("outer")
def _outer(data: Any, dtype: np.dtype) -> Drawn:
    a, b = arr(data, (data.draw(st.integers(0, 3)),), dtype), arr(data, (data.draw(st.integers(0, 3)),), dtype)
    return Drawn([a, b], tz.outer, np.outer, lambda t, x, y: t.outer(x, y))


EINSUM_SPECS = ["ij,jk->ik", "bij,bjk->bik", "ij->ji", "ij->", "i,i->", "ij,j->i", "ijk,ik->j", "ij,kl->ijkl",
                "bi,bj", "ii->i", "ii", "iji->j", "...ij,...jk->...ik", "...i,...i", "i...->...", "bii->b"]  # fmt: skip


def _einsum_shape(term: str, sizes: dict, batch: tuple[int, ...]) -> tuple[int, ...]:
    """The operand shape a term names: its letters' sizes, with `batch` where it says "..."."""
    before, dots, after = term.partition("...")
    return tuple(sizes[c] for c in before) + (batch if dots else ()) + tuple(sizes[c] for c in after)


@case("einsum")
def _einsum(data: Any, dtype: np.dtype) -> Drawn:
    spec = data.draw(st.sampled_from(EINSUM_SPECS))
    terms = spec.split("->")[0].split(",")
    sizes = {c: data.draw(st.integers(0, 3)) for c in set("".join(terms)) - {"."}}
    batches = data.draw(tzst.broadcastable_shapes(max_dims=2, max_side=3, num_shapes=len(terms)))
    operands = [arr(data, _einsum_shape(term, sizes, batch), dtype) for term, batch in zip(terms, batches)]
    return Drawn(operands, lambda *t: tz.einsum(spec, *t), lambda *a: np.einsum(spec, *a),
                 lambda t, *a: t.einsum(spec, *a))  # fmt: skip


# ----- comparisons and conversions (not differentiable) ---------------------------------------------
@case("comparisons")
def _comparisons(data: Any, dtype: np.dtype) -> Drawn:
    shape_a, shape_b = data.draw(tzst.broadcastable_shapes())
    a, b = arr(data, shape_a, dtype), arr(data, shape_b, dtype)
    ops = [(tz.eq, np.equal), (tz.ne, np.not_equal), (tz.lt, np.less), (tz.le, np.less_equal),
           (tz.gt, np.greater), (tz.ge, np.greater_equal)]  # fmt: skip
    return Drawn([a, b], lambda x, y: tz.stack([op(x, y) for op, _ in ops]),
                 lambda x, y: np.stack([ref(x, y) for _, ref in ops]),
                 lambda t, x, y: t.stack([x == y, x != y, x < y, x <= y, x > y, x >= y]),
                 differentiable=False)  # fmt: skip


@case("astype")
def _astype(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    target = np.float32 if dtype == np.float64 else np.float64
    return Drawn([x], lambda t: tz.astype(t, target) * 1.0, lambda a: a.astype(target),
                 lambda t, a: a.to(getattr(t, np.dtype(target).name)), out_dtype=np.dtype(target),
                 smooth=target == np.float64)  # fmt: skip  (finite differences cannot see through float32)


# ----- nn.functional ---------------------------------------------------------------------------------
@case("F.linear", "functional")
def _linear(data: Any, dtype: np.dtype) -> Drawn:
    batch = data.draw(any_shape(max_dims=2))
    n_in, n_out = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))
    x, w, b = arr(data, batch + (n_in,), dtype), arr(data, (n_out, n_in), dtype), arr(data, (n_out,), dtype)
    return Drawn([x, w, b], F.linear, lambda a, c, d: a @ c.T + d, lambda t, a, c, d: t.nn.functional.linear(a, c, d))


def _losses() -> None:
    pointwise = {
        "F.mse_loss": (F.mse_loss, lambda x, y: (x - y) ** 2, "mse_loss", {}),
        "F.l1_loss": (F.l1_loss, lambda x, y: np.abs(x - y), "l1_loss", {"away": True}),
        "F.huber_loss": (lambda x, y, **kw: F.huber_loss(x, y, delta=0.7, **kw),
                         lambda x, y: np.where(np.abs(x - y) < 0.7, 0.5 * (x - y) ** 2, 0.7 * (np.abs(x - y) - 0.35)),
                         "huber_loss", {"away": True}),
    }  # fmt: skip
    for name, (fn, per_element, torch_name, options) in pointwise.items():
        _loss_case(name, fn, per_element, torch_name, options)


def _loss_case(name: str, fn: Callable, per_element: Callable, torch_name: str, options: dict) -> None:
    @case(name, "functional")
    def draw(data: Any, dtype: np.dtype) -> Drawn:
        shape = data.draw(any_shape(min_side=1))
        x, y = arr(data, shape, dtype), arr(data, shape, dtype)
        reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
        reduce = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
        smooth = not options.get("away") or not np.any(np.abs(np.abs(x - y) - (0.7 if "huber" in name else 0)) < 1e-3)
        torch_kwargs = {"delta": 0.7} if "huber" in name else {}
        return Drawn([x, y], lambda a, b: fn(a, b, reduction=reduction),
                     lambda a, b: np.asarray(reduce(per_element(a, b))).astype(a.dtype),
                     lambda t, a, b: getattr(t.nn.functional, torch_name)(a, b, reduction=reduction, **torch_kwargs),
                     smooth=smooth)  # fmt: skip


_losses()


@case("F.cross_entropy", "functional")
def _cross_entropy(data: Any, dtype: np.dtype) -> Drawn:
    n, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    extra = data.draw(st.sampled_from([(), (2,)]))
    logits = arr(data, (n, classes) + extra, dtype)
    labels = data.draw(tzst.index_arrays(classes, (n,) + extra))
    smoothing = data.draw(st.sampled_from([0.0, 0.1]))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))

    def ref(z: np.ndarray) -> np.ndarray:
        log_p = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
        picked = -np.take_along_axis(log_p, labels[:, None], 1)[:, 0]
        loss = (1 - smoothing) * picked - smoothing / classes * log_p.sum(1)
        return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](loss).astype(z.dtype)

    return Drawn([logits], lambda z: F.cross_entropy(z, labels, reduction=reduction, label_smoothing=smoothing), ref,
                 lambda t, z: t.nn.functional.cross_entropy(z, t.from_numpy(labels), reduction=reduction,
                                                            label_smoothing=smoothing))  # fmt: skip


@case("F.binary_cross_entropy_with_logits", "functional")
def _bce_logits(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_side=1))
    x, y = arr(data, shape, dtype), arr(data, shape, dtype, low=0.0, high=1.0)
    return Drawn([x, y], F.binary_cross_entropy_with_logits,
                 lambda a, b: np.mean(np.logaddexp(0, a) - b * a).astype(a.dtype),
                 lambda t, a, b: t.nn.functional.binary_cross_entropy_with_logits(a, b))  # fmt: skip


@case("F.kl_div", "functional")
def _kl_div(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_dims=1, min_side=1))
    x, y = arr(data, shape, dtype), arr(data, shape, dtype, low=0.05, high=1.0)
    return Drawn([x, y], lambda a, b: F.kl_div(a, b, reduction="batchmean"),
                 lambda a, b: (np.sum(b * (np.log(b) - a)) / a.shape[0]).astype(a.dtype),
                 lambda t, a, b: t.nn.functional.kl_div(a, b, reduction="batchmean"))  # fmt: skip


@case("F.layer_norm", "functional")
def _layer_norm(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_dims=1, min_side=2))
    normalized = shape[-1:]
    x, w, b = arr(data, shape, dtype, distinct=True), arr(data, normalized, dtype), arr(data, normalized, dtype)

    def ref(a: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        mean, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
        return ((a - mean) / np.sqrt(var + 1e-5) * c + d).astype(a.dtype)

    return Drawn([x, w, b], lambda a, c, d: F.layer_norm(a, normalized, c, d), ref,
                 lambda t, a, c, d: t.nn.functional.layer_norm(a, normalized, c, d))  # fmt: skip


@case("F.softmax_dtype_int", "functional")
def _softmax_of_ints(data: Any, dtype: np.dtype) -> Drawn:
    """An integer tensor through a float op gives the default float dtype (float32), as in PyTorch."""
    ints = data.draw(tzst.index_arrays(5, data.draw(any_shape(min_dims=1))))
    return Drawn([], lambda: tz.softmax(tz.tensor(ints), -1), lambda: _np_softmax(ints.astype(np.float32), -1),
                 lambda t: t.softmax(t.from_numpy(ints).float(), -1), out_dtype=np.dtype(np.float32),
                 differentiable=False)  # fmt: skip


def _conv_shapes(data: Any, spatial: int) -> tuple[tuple[int, ...], tuple[int, ...], dict]:
    """An input and weight shape and the keyword arguments of a drawn convolution (groups, stride, dilation,
    numeric or "same"/"valid" padding), batched or one unbatched sample."""
    groups = data.draw(st.integers(1, 2))
    channels, outputs = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(spatial))
    dilation = data.draw(st.integers(1, 2))
    padding = data.draw(st.sampled_from([0, 1, "same", "valid"]))
    stride = 1 if padding == "same" else data.draw(st.integers(1, 2))
    size = tuple(dilation * (k - 1) + 1 + data.draw(st.integers(0, 3)) for k in kernel)
    batch = data.draw(st.sampled_from([(), (1,), (2,)]))  # () is one unbatched sample
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return batch + (channels, *size), (outputs, channels // groups, *kernel), kwargs


@case("F.conv2d", "functional")
def _conv2d(data: Any, dtype: np.dtype) -> Drawn:
    x_shape, w_shape, kwargs = _conv_shapes(data, 2)
    x, w, b = arr(data, x_shape, dtype), arr(data, w_shape, dtype), arr(data, w_shape[:1], dtype)
    return Drawn([x, w, b], lambda *t: F.conv2d(*t, **kwargs), None, lambda t, *a: t.nn.functional.conv2d(*a, **kwargs))


@case("F.conv1d", "functional")
def _conv1d(data: Any, dtype: np.dtype) -> Drawn:
    x_shape, w_shape, kwargs = _conv_shapes(data, 1)
    x, w = arr(data, x_shape, dtype), arr(data, w_shape, dtype)
    return Drawn([x, w], lambda *t: F.conv1d(*t, **kwargs), None, lambda t, *a: t.nn.functional.conv1d(*a, **kwargs))


def _pool_args(data: Any) -> tuple[tuple[int, ...], int, int, int]:
    """An image shape (batched or not), kernel, stride and padding (at most half the kernel) of a drawn pooling."""
    kernel = data.draw(st.integers(1, 3))
    stride, padding = data.draw(st.integers(1, 3)), data.draw(st.integers(0, kernel // 2))
    shape = data.draw(st.sampled_from([(), (2,)])) + (2, kernel + data.draw(st.integers(0, 3)), kernel + 1)
    return shape, kernel, stride, padding


@case("F.max_pool2d", "functional")
def _max_pool(data: Any, dtype: np.dtype) -> Drawn:
    shape, kernel, stride, padding = _pool_args(data)
    dilation, ceil_mode = data.draw(st.integers(1, 2)), data.draw(st.booleans())
    x = arr(data, shape, dtype, distinct=True)
    args = (kernel, stride, padding, dilation, ceil_mode)  # PyTorch's positional order
    if any(dilation * (kernel - 1) + 1 > n + 2 * padding for n in shape[-2:]):
        args = (kernel, stride, padding, 1, ceil_mode)
    return Drawn([x], lambda t: F.max_pool2d(t, *args), None, lambda t, a: t.nn.functional.max_pool2d(a, *args))


@case("F.avg_pool2d", "functional")
def _avg_pool(data: Any, dtype: np.dtype) -> Drawn:
    shape, kernel, stride, padding = _pool_args(data)
    ceil_mode, count_include_pad = data.draw(st.booleans()), data.draw(st.booleans())
    divisor = data.draw(st.sampled_from([None, 3]))
    x = arr(data, shape, dtype)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)  # PyTorch's positional order
    return Drawn([x], lambda t: F.avg_pool2d(t, *args), None, lambda t, a: t.nn.functional.avg_pool2d(a, *args))


@case("F.adaptive_avg_pool2d", "functional")
def _adaptive_avg_pool(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(st.sampled_from([(), (2,)])) + (2, data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    bins = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    x = arr(data, shape, dtype)
    return Drawn([x], lambda t: F.adaptive_avg_pool2d(t, bins), None,
                 lambda t, a: t.nn.functional.adaptive_avg_pool2d(a, bins))  # fmt: skip


@case("F.pad", "functional")
def _torch_pad(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(min_dims=1), dtype)
    widths = [data.draw(st.integers(0, 2)) for _ in range(2 * data.draw(st.integers(1, x.ndim)))]  # last axis first
    value = data.draw(st.sampled_from([0.0, -1.5]))
    numpy_widths = [(0, 0)] * (x.ndim - len(widths) // 2) + [(widths[2 * i], widths[2 * i + 1])
                                                             for i in reversed(range(len(widths) // 2))]  # fmt: skip
    return Drawn([x], lambda t: F.pad(t, widths, value=value),
                 lambda a: np.pad(a, numpy_widths, constant_values=value),
                 lambda t, a: t.nn.functional.pad(a, widths, value=value))  # fmt: skip


@case("F.embedding", "functional")
def _embedding(data: Any, dtype: np.dtype) -> Drawn:
    rows = data.draw(st.integers(1, 5))
    weight = arr(data, (rows, data.draw(st.integers(0, 3))), dtype)
    ids = data.draw(tzst.index_arrays(rows, data.draw(any_shape(max_dims=2))))
    return Drawn([weight], lambda w: F.embedding(ids, w), lambda w: w[ids],
                 lambda t, w: t.nn.functional.embedding(t.from_numpy(ids), w))  # fmt: skip


@case("F.one_hot", "functional")
def _one_hot(data: Any, dtype: np.dtype) -> Drawn:
    classes = data.draw(st.integers(1, 5))
    ids = data.draw(tzst.index_arrays(classes, data.draw(any_shape(max_dims=2))))
    return Drawn([], lambda: F.one_hot(ids, classes), lambda: np.eye(classes, dtype=np.int64)[ids],
                 lambda t: t.nn.functional.one_hot(t.from_numpy(ids), classes), differentiable=False)  # fmt: skip


@case("F.batch_norm", "functional")
def _batch_norm(data: Any, dtype: np.dtype) -> Drawn:
    shape = (data.draw(st.integers(2, 4)), data.draw(st.integers(1, 3))) + data.draw(any_shape(max_dims=2, min_side=1))
    x = arr(data, shape, dtype, distinct=True)
    w, b = arr(data, shape[1:2], dtype), arr(data, shape[1:2], dtype)
    axes = (0, *range(2, len(shape)))
    view = (1, -1) + (1,) * (len(shape) - 2)

    def ref(a: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        mean, var = a.mean(axes, keepdims=True), a.var(axes, keepdims=True)
        return ((a - mean) / np.sqrt(var + 1e-5) * c.reshape(view) + d.reshape(view)).astype(a.dtype)

    return Drawn([x, w, b], lambda a, c, d: F.batch_norm(a, None, None, c, d, training=True), ref,
                 lambda t, a, c, d: t.nn.functional.batch_norm(a, None, None, c, d, training=True))  # fmt: skip


@case("F.group_norm", "functional")
def _group_norm(data: Any, dtype: np.dtype) -> Drawn:
    groups = data.draw(st.integers(1, 2))
    shape = (data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 2)), data.draw(st.integers(2, 4)))
    x, w, b = arr(data, shape, dtype, distinct=True), arr(data, shape[1:2], dtype), arr(data, shape[1:2], dtype)
    return Drawn([x, w, b], lambda a, c, d: F.group_norm(a, groups, c, d), None,
                 lambda t, a, c, d: t.nn.functional.group_norm(a, groups, c, d))  # fmt: skip


@case("F.nll_loss", "functional")
def _nll_loss(data: Any, dtype: np.dtype) -> Drawn:
    n, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    log_p = arr(data, (n, classes), dtype)
    labels = data.draw(tzst.index_arrays(classes, (n,)))
    labels[0] = data.draw(st.sampled_from([labels[0], -100]))  # an ignored target too
    reduction = data.draw(st.sampled_from(["sum", "none"] + (["mean"] if labels[0] != -100 or n > 1 else [])))

    def ref(a: np.ndarray) -> np.ndarray:
        kept = labels != -100
        picked = np.where(kept, -a[np.arange(n), np.where(kept, labels, 0)], 0.0)
        return {"mean": lambda v: v.sum() / kept.sum(), "sum": np.sum, "none": lambda v: v}[reduction](picked)

    return Drawn([log_p], lambda a: F.nll_loss(a, labels, reduction=reduction),
                 lambda a: np.asarray(ref(a)).astype(dtype),
                 lambda t, a: t.nn.functional.nll_loss(a, t.from_numpy(labels), reduction=reduction))  # fmt: skip


@case("F.binary_cross_entropy", "functional")
def _bce(data: Any, dtype: np.dtype) -> Drawn:
    shape = data.draw(any_shape(min_side=1))
    p, y = arr(data, shape, dtype, low=0.05, high=0.95), arr(data, shape, dtype, low=0.0, high=1.0)
    return Drawn([p, y], F.binary_cross_entropy,
                 lambda a, b: np.mean(-(b * np.log(a) + (1 - b) * np.log1p(-a))).astype(a.dtype),
                 lambda t, a, b: t.nn.functional.binary_cross_entropy(a, b))  # fmt: skip


@case("F.conv_transpose2d", "functional")
def _conv_transpose(data: Any, dtype: np.dtype) -> Drawn:
    groups = data.draw(st.integers(1, 2))
    channels, outputs = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 2))
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride, dilation = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    padding = data.draw(st.integers(0, min(kernel) - 1))
    extra = data.draw(st.integers(0, max(stride, dilation) - 1))
    height, width = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    shape = data.draw(st.sampled_from([(), (2,)])) + (channels, height, width)
    x, w = arr(data, shape, dtype), arr(data, (channels, outputs // groups, *kernel), dtype)
    args = (None, stride, padding, extra, groups, dilation)  # PyTorch's positional order
    sizes = [(n - 1) * stride - 2 * padding + dilation * (k - 1) + extra + 1 for n, k in zip(shape[-2:], kernel)]
    if min(sizes) < 1:
        args = (None, stride, 0, 0, groups, dilation)
    return Drawn([x, w], lambda a, c: F.conv_transpose2d(a, c, *args), None,
                 lambda t, a, c: t.nn.functional.conv_transpose2d(a, c, *args))  # fmt: skip


@case("F.dropout_eval", "functional")
def _dropout_eval(data: Any, dtype: np.dtype) -> Drawn:
    x = arr(data, any_shape(), dtype)
    p = data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    training = p == 0.0  # with p = 0 training is the identity too; p > 0 is random, checked in test_nn_functional
    return Drawn([x], lambda t: F.dropout(t, p, training), np.copy,
                 lambda t, a: t.nn.functional.dropout(a, p, training))  # fmt: skip

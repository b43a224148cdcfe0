"""The op set. Each op is one function: the forward computation on arrays, then, right beside it,
the backward rule as a small function of (grad, out) written with tinyzoo ops.

Conventions
- Arrays are handled through `xp = xp_of(x.data)`, so every op runs on NumPy and CuPy alike.
- Binary ops broadcast like NumPy; `_grad_to(grad, x)` sums a broadcast gradient back to x's shape
  (and dtype). It is the only place that undoes broadcasting.
- A backward rule returns None for inputs that do not require a gradient, so no work is wasted.
- Axis arguments accept NumPy's `axis=` and PyTorch's `dim=` alike.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import math
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinyzoo.autograd.tensor import (
    IndexedGrad,
    Tensor,
    as_array,
    index_error,
    is_grad_enabled,
    record_op,
    tensor_index,
    wrap,
)
from tinyzoo.backend import check_index_range, xp_of
from tinyzoo.backend import scatter_add as _scatter_add_arrays
from tinyzoo.errors import DeviceError, DTypeError, ShapeError

Axis = int | Sequence[int] | None
_FLOAT32 = np.dtype(np.float32)

__all__ = [
    "abs",
    "add",
    "argmax",
    "argmin",
    "as_tensor",
    "astype",
    "broadcast_to",
    "cat",
    "chunk",
    "clamp",
    "concat",
    "cos",
    "cumprod",
    "cumsum",
    "div",
    "einsum",
    "elu",
    "eq",
    "exp",
    "expand",
    "expand_dims",
    "flatten",
    "flip",
    "gather",
    "ge",
    "gelu",
    "getitem",
    "gt",
    "index_add",
    "index_select",
    "le",
    "leaky_relu",
    "log",
    "log1p",
    "log_softmax",
    "logsumexp",
    "lt",
    "masked_fill",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "ne",
    "neg",
    "norm",
    "outer",
    "pad",
    "permute",
    "pow",
    "prod",
    "relu",
    "repeat",
    "reshape",
    "scatter_add",
    "sigmoid",
    "sin",
    "softmax",
    "softplus",
    "split",
    "sqrt",
    "squeeze",
    "stack",
    "std",
    "sub",
    "sum",
    "sum_to_shape",
    "swapaxes",
    "take_along_axis",
    "tanh",
    "tile",
    "to",
    "transpose",
    "unsqueeze",
    "var",
    "view",
    "where",
]


# =================================================================================================
# Helpers shared by the ops
# =================================================================================================
def as_tensor(value: Any, like: Tensor | None = None, op: str | None = None) -> Tensor:
    """A Tensor for `value`; Python numbers take the dtype and device of `like` (as torch scalars do).

    `op` names the calling op in the error raised for data that is not a real number array.
    """
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (bool, int, float)):
        array = like.data
        if isinstance(array, np.ndarray):
            return wrap(_host_scalar(value, array.dtype))
        return Tensor(xp_of(array).asarray(value, dtype=_scalar_dtype(value, array.dtype)))
    try:
        return Tensor(as_array(value))
    except (DTypeError, ValueError, TypeError) as exc:
        raise DTypeError(f"{op or 'tensor'}: {exc}") from None


def _scalar_dtype(value: bool | int | float, like: np.dtype) -> np.dtype:
    """The dtype a Python number takes beside an array of dtype `like`: like's, or float32 for a float
    beside integers (int tensor * 0.5 is a float32 tensor, as in torch)."""
    if like.kind == "f" or (isinstance(value, int) and like.kind in "iub"):
        return like
    return _FLOAT32


@functools.lru_cache(maxsize=256, typed=True)
def _host_scalar(value: bool | int | float, like: np.dtype) -> np.ndarray:
    """A read-only 0-d NumPy array holding `value` in the dtype it takes beside `like`, cached.

    Python numbers in arithmetic (`y * 0.9`, `1 - out * out` in backward rules) are the commonest
    constants; making each one a fresh array cost as much as the tiny op itself. 0-d arrays, not NumPy
    scalars: NumPy's ufuncs take a far slower path for `array * np.float32(0.9)` than for a 0-d array.
    typed: 1, 1.0 and True are equal as keys but not as constants beside an integer array.
    """
    array = np.asarray(value, dtype=_scalar_dtype(value, like))
    array.flags.writeable = False
    return array


def _pair(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands of a binary op as Tensors on one device (never copied silently)."""
    if type(b) is float and isinstance(a, Tensor) and isinstance(a.data, np.ndarray):  # x * 0.5: the commonest
        return a, wrap(_host_scalar(b, a.data.dtype))
    if not isinstance(a, Tensor):
        a = as_tensor(a, b if isinstance(b, Tensor) else None, op=op)
    if not isinstance(b, Tensor):
        b = as_tensor(b, a, op=op)
    if type(a.data) is not type(b.data) or (not isinstance(a.data, np.ndarray) and a.device != b.device):
        raise DeviceError(
            f"{op}: operands are on different devices ({a.device} and {b.device}); move one with .to(device)"
        )
    return a, b


def _broadcast_error(op: str, *tensors: Tensor) -> ShapeError:
    shapes = " and ".join(str(t.shape) for t in tensors)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together")


def _axis(axis: Axis, dim: Axis) -> Axis:
    """Accept NumPy's axis= and PyTorch's dim= (one of them)."""
    if dim is not None:
        if axis is not None:
            raise TypeError("pass either axis= or dim=, not both")
        return dim
    return axis


def _axis_or_last(axis: int | None, dim: int | None) -> int:
    """Like _axis, for ops whose axis defaults to the last one (softmax, cumsum, ...)."""
    axis = _axis(axis, dim)
    return -1 if axis is None else axis


def _norm_axes(axis: Axis, ndim: int, op: str) -> tuple[int, ...]:
    """Axis argument as a sorted tuple of non-negative axes (None = all)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimension(s)")
        out.append(int(a) % builtins.max(ndim, 1))
    return tuple(sorted(out))


def _grad_to(grad: Tensor, x: Tensor) -> Tensor | None:
    """The gradient for input x: None if x needs none, else `grad` summed back to x's shape and dtype."""
    if not x.requires_grad:
        return None
    array, target = grad.data, x.data  # (the arrays' own attributes: this runs for every input of every op)
    if array.shape != target.shape:
        grad = sum_to_shape(grad, target.shape)
    if array.dtype != target.dtype:
        grad = astype(grad, target.dtype)
    return grad


def sum_to_shape(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Undo NumPy broadcasting: sum `grad` over the axes that broadcasting added or stretched."""
    lead = grad.ndim - len(shape)
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    axes = tuple(range(lead)) + stretched
    return reshape(sum(grad, axis=axes, keepdims=True), shape) if axes else reshape(grad, shape)


def _expand_reduced(grad: Tensor, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """Broadcast the gradient of a reduction back over the reduced axes."""
    if not keepdims:
        grad = reshape(grad, tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return broadcast_to(grad, shape)


def _float_input(op: str, x: Any) -> Tensor:
    """x as a Tensor; integer tensors are accepted but give no gradient."""
    return x if isinstance(x, Tensor) else as_tensor(x, op=op)


def _constant(array: Any) -> Tensor:
    """A tensor that is never differentiated (masks, indices)."""
    return Tensor(array)


# =================================================================================================
# Elementwise binary ops
# =================================================================================================
def add(a: Any, b: Any) -> Tensor:
    """a + b, broadcasting."""
    a, b = _pair("add", a, b)
    try:
        out = a.data + b.data
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    return record_op("add", out, (a, b), lambda g, _: (_grad_to(g, a), _grad_to(g, b)))


def sub(a: Any, b: Any) -> Tensor:
    """a - b, broadcasting."""
    a, b = _pair("sub", a, b)
    try:
        out = a.data - b.data
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    return record_op("sub", out, (a, b), lambda g, _: (_grad_to(g, a), _grad_to(-g, b) if b.requires_grad else None))


def mul(a: Any, b: Any) -> Tensor:
    """a * b, broadcasting."""
    a, b = _pair("mul", a, b)
    try:
        out = a.data * b.data
    except ValueError:
        raise _broadcast_error("mul", a, b) from None

    def backward(g: Tensor, _: Tensor) -> tuple:
        return (_grad_to(g * b, a) if a.requires_grad else None, _grad_to(g * a, b) if b.requires_grad else None)

    return record_op("mul", out, (a, b), backward)


def div(a: Any, b: Any) -> Tensor:
    """a / b, broadcasting."""
    a, b = _pair("div", a, b)
    try:
        out = a.data / b.data
    except ValueError:
        raise _broadcast_error("div", a, b) from None

    def backward(g: Tensor, out: Tensor) -> tuple:
        return (
            _grad_to(g / b, a) if a.requires_grad else None,
            _grad_to(-g * out / b, b) if b.requires_grad else None,
        )

    return record_op("div", out, (a, b), backward)


def pow(a: Any, b: Any) -> Tensor:
    """a ** b, broadcasting; the gradient for b needs a > 0."""
    a, b = _pair("pow", a, b)
    try:
        out = a.data**b.data
    except ValueError:
        raise _broadcast_error("pow", a, b) from None

    def backward(g: Tensor, out: Tensor) -> tuple:
        grad_a = _grad_to(g * b * a ** (b - 1), a) if a.requires_grad else None
        grad_b = _grad_to(g * out * log(a), b) if b.requires_grad else None
        return grad_a, grad_b

    return record_op("pow", out, (a, b), backward)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max; at ties the gradient goes to a."""
    a, b = _pair("maximum", a, b)
    try:
        out = xp_of(a.data).maximum(a.data, b.data)
        a_wins = a.data >= b.data
    except ValueError:
        raise _broadcast_error("maximum", a, b) from None
    return record_op("maximum", out, (a, b), _select_backward(a, b, a_wins))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min; at ties the gradient goes to a."""
    a, b = _pair("minimum", a, b)
    try:
        out = xp_of(a.data).minimum(a.data, b.data)
        a_wins = a.data <= b.data
    except ValueError:
        raise _broadcast_error("minimum", a, b) from None
    return record_op("minimum", out, (a, b), _select_backward(a, b, a_wins))


def _select_backward(a: Tensor, b: Tensor, a_wins: Any):
    """Backward of an op that picks a where `a_wins`, else b (maximum, minimum, where)."""
    take_a, take_b = _constant(a_wins), _constant(~a_wins)

    def backward(g: Tensor, _: Tensor) -> tuple:
        grad_a = _grad_to(g * take_a, a) if a.requires_grad else None
        grad_b = _grad_to(g * take_b, b) if b.requires_grad else None
        return grad_a, grad_b

    return backward


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """a where condition is true, else b (all three broadcast)."""
    a, b = _pair("where", a, b)
    cond = condition.data if isinstance(condition, Tensor) else as_array(condition)
    cond = cond.astype(bool, copy=False)
    try:
        out = xp_of(a.data).where(cond, a.data, b.data)
        cond = xp_of(a.data).broadcast_to(cond, out.shape)
    except ValueError:
        raise _broadcast_error("where", _constant(cond), a, b) from None
    return record_op("where", out, (a, b), _select_backward(a, b, cond))


def masked_fill(x: Any, mask: Any, value: float) -> Tensor:
    """x with `value` written where mask is true (mask broadcasts against x)."""
    x = as_tensor(x, op="masked_fill")
    return where(mask, as_tensor(value, x, op="masked_fill"), x)


# =================================================================================================
# Elementwise unary ops
# =================================================================================================
def neg(x: Any) -> Tensor:
    """-x."""
    x = _float_input("neg", x)
    return record_op("neg", -x.data, (x,), lambda g, _: (-g,))


def exp(x: Any) -> Tensor:
    """e ** x."""
    x = _float_input("exp", x)
    return record_op("exp", xp_of(x.data).exp(x.data), (x,), lambda g, out: (g * out,))


def log(x: Any) -> Tensor:
    """Natural logarithm."""
    x = _float_input("log", x)
    return record_op("log", xp_of(x.data).log(x.data), (x,), lambda g, _: (g / x,))


def log1p(x: Any) -> Tensor:
    """log(1 + x), accurate for small x."""
    x = _float_input("log1p", x)
    return record_op("log1p", xp_of(x.data).log1p(x.data), (x,), lambda g, _: (g / (x + 1),))


def sqrt(x: Any) -> Tensor:
    """Square root."""
    x = _float_input("sqrt", x)
    return record_op("sqrt", xp_of(x.data).sqrt(x.data), (x,), lambda g, out: (g * 0.5 / out,))


def abs(x: Any) -> Tensor:
    """|x|; the gradient at 0 is 0."""
    x = _float_input("abs", x)
    sign = _constant(xp_of(x.data).sign(x.data))
    return record_op("abs", xp_of(x.data).abs(x.data), (x,), lambda g, _: (g * sign,))


def sin(x: Any) -> Tensor:
    """Sine."""
    x = _float_input("sin", x)
    return record_op("sin", xp_of(x.data).sin(x.data), (x,), lambda g, _: (g * cos(x),))


def cos(x: Any) -> Tensor:
    """Cosine."""
    x = _float_input("cos", x)
    return record_op("cos", xp_of(x.data).cos(x.data), (x,), lambda g, _: (-g * sin(x),))


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent."""
    x = _float_input("tanh", x)
    return record_op("tanh", xp_of(x.data).tanh(x.data), (x,), lambda g, out: (_tanh_backward(g, out),))


def _tanh_backward(g: Tensor, out: Tensor) -> Tensor:
    """g · (1 − out²), tanh's backward as one op (like torch's tanh_backward): one tape entry instead of three.

    Its own backward (for second derivatives): ∂/∂g = 1 − out², ∂/∂out = −2 g out.
    """
    return record_op("tanh_backward", g.data * (1 - out.data * out.data), (g, out),
                     lambda gg, _: (gg * (1 - out * out), -2 * gg * g * out))  # fmt: skip


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    x = _float_input("sigmoid", x)
    xp = xp_of(x.data)
    z = xp.exp(-xp.abs(x.data))  # in (0, 1], never overflows
    out = xp.where(x.data >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
    return record_op("sigmoid", out, (x,), lambda g, out: (_sigmoid_backward(g, out),))


def _sigmoid_backward(g: Tensor, out: Tensor) -> Tensor:
    """g · out (1 − out), sigmoid's backward as one op: ∂/∂g = out (1 − out), ∂/∂out = g (1 − 2 out)."""
    return record_op("sigmoid_backward", g.data * (out.data * (1 - out.data)), (g, out),
                     lambda gg, _: (gg * out * (1 - out), gg * g * (1 - 2 * out)))  # fmt: skip


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    x = _float_input("relu", x)
    out = xp_of(x.data).maximum(x.data, 0)  # NaN stays NaN
    return record_op("relu", out, (x,), lambda g, out: (g * _constant(out.data > 0),))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    x = _float_input("leaky_relu", x)
    slope = xp_of(x.data).where(x.data > 0, 1, negative_slope).astype(x.dtype)
    return record_op("leaky_relu", x.data * slope, (x,), lambda g, _: (g * _constant(slope),))


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha * (e^x - 1) otherwise."""
    x = _float_input("elu", x)
    xp = xp_of(x.data)
    positive = x.data > 0
    out = xp.where(positive, x.data, alpha * xp.expm1(xp.minimum(x.data, 0))).astype(x.dtype, copy=False)

    def backward(g: Tensor, out: Tensor) -> tuple:
        return (where(positive, g, g * (out + alpha)),)

    return record_op("elu", out, (x,), backward)


def softplus(x: Any, beta: float = 1.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, stable for large |x|."""
    x = _float_input("softplus", x)
    xp = xp_of(x.data)
    bx = beta * x.data
    out = ((xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta).astype(x.dtype, copy=False)
    return record_op("softplus", out, (x,), lambda g, _: (g * sigmoid(x * beta),))


def gelu(x: Any) -> Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))  (Hendrycks & Gimpel)."""
    x = as_tensor(x, op="gelu")
    inner = (x + x * x * x * 0.044715) * float(np.sqrt(2 / np.pi))
    return x * 0.5 * (tanh(inner) + 1)


def clamp(x: Any, min: float | None = None, max: float | None = None) -> Tensor:
    """x limited to [min, max]; the gradient is 0 where x was clipped."""
    x = _float_input("clamp", x)
    out = xp_of(x.data).clip(x.data, min, max)
    inside = out == x.data
    return record_op("clamp", out, (x,), lambda g, _: (g * _constant(inside),))


def astype(x: Any, dtype: Any) -> Tensor:
    """x converted to `dtype`; the gradient is converted back."""
    x = as_tensor(x, op="astype")
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    return record_op("astype", x.data.astype(dtype), (x,), lambda g, _: (astype(g, x.dtype),))


def to(x: Any, device: str) -> Tensor:
    """x moved to `device`; the gradient moves back."""
    from tinyzoo.backend import normalize_device, to_device

    x = as_tensor(x, op="to")
    device = normalize_device(device)
    if x.device == device:
        return x
    source = x.device
    return record_op("to", to_device(x.data, device), (x,), lambda g, _: (to(g, source),))


# =================================================================================================
# Reductions
# =================================================================================================
def sum(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Sum over `axis` (all axes by default)."""
    x = as_tensor(x, op="sum")
    axes = _norm_axes(_axis(axis, dim), x.ndim, "sum")
    out = x.data.sum(axis=axes, keepdims=keepdims)
    return record_op("sum", out, (x,), lambda g, _: (_expand_reduced(g, x.shape, axes, keepdims),))


def mean(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Mean over `axis`."""
    x = as_tensor(x, op="mean")
    axes = _norm_axes(_axis(axis, dim), x.ndim, "mean")
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:
        raise ShapeError(f"mean: cannot average over empty axes {axes} of a tensor of shape {x.shape}")
    return sum(x, axes, keepdims) / count


def _extreme(op: str, x: Any, axis: Axis, keepdims: bool, dim: Axis) -> Tensor:
    """Backward-aware max/min: ties share the gradient equally."""
    x = as_tensor(x, op=op)
    axes = _norm_axes(_axis(axis, dim), x.ndim, op)
    if x.size == 0:
        raise ShapeError(f"{op}: cannot reduce an empty tensor of shape {x.shape}")
    reduce = x.data.max if op == "max" else x.data.min
    out_keep = reduce(axis=axes, keepdims=True)
    hits = (x.data == out_keep).astype(x.dtype)
    share = _constant(hits / hits.sum(axis=axes, keepdims=True))
    out = out_keep if keepdims else out_keep.reshape([n for i, n in enumerate(x.shape) if i not in axes])
    return record_op(op, out, (x,), lambda g, _: (_expand_reduced(g, x.shape, axes, keepdims) * share,))


def max(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Largest value over `axis` (values only; use argmax for positions)."""
    return _extreme("max", x, axis, keepdims, dim)


def min(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Smallest value over `axis`."""
    return _extreme("min", x, axis, keepdims, dim)


def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0, *, dim: Axis = None) -> Tensor:
    """Variance over `axis` (NumPy's default ddof=0; torch.var uses ddof=1)."""
    x = as_tensor(x, op="var")
    axes = _norm_axes(_axis(axis, dim), x.ndim, "var")
    count = math.prod(x.shape[a] for a in axes)
    centred = x - mean(x, axes, keepdims=True)
    return sum(centred * centred, axes, keepdims) / builtins.max(count - ddof, 1)


def std(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0, *, dim: Axis = None) -> Tensor:
    """Standard deviation over `axis`."""
    x = as_tensor(x, op="std")
    axes = _norm_axes(_axis(axis, dim), x.ndim, "std")
    return sqrt(var(x, axes, keepdims, ddof))


def logsumexp(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """log Σ e^x over `axis`, shifted by the max so it never overflows."""
    x = as_tensor(x, op="logsumexp")
    xp = xp_of(x.data)
    axes = _norm_axes(_axis_or_last(axis, dim), x.ndim, "logsumexp")
    peak = xp.max(x.data, axis=axes, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)
    out_keep = xp.log(xp.exp(x.data - peak).sum(axis=axes, keepdims=True)) + peak
    out = out_keep if keepdims else out_keep.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    def backward(g: Tensor, out: Tensor) -> tuple:
        out_keep = out if keepdims else reshape(out, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
        return (_expand_reduced(g, x.shape, axes, keepdims) * exp(x - out_keep),)

    return record_op("logsumexp", out, (x,), backward)


def prod(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None) -> Tensor:
    """Product over one axis (or all); zeros in x are handled exactly."""
    x = as_tensor(x, op="prod")
    axis = _axis(axis, dim)
    if axis is None:
        return prod(reshape(x, (-1,)), 0, keepdims=False) if not keepdims else reshape(prod(x), (1,) * x.ndim)
    (axis,) = _norm_axes(axis, x.ndim, "prod")
    out = x.data.prod(axis=axis, keepdims=keepdims)

    def backward(g: Tensor, _: Tensor) -> tuple:
        # d prod / d x_i = product of all the other entries: exclusive cumulative products from the
        # left and from the right, which stay exact when some x_j is zero (out / x_i would not).
        moved = swapaxes(x, axis, -1)
        ones = Tensor(xp_of(x.data).ones(moved.shape[:-1] + (1,), dtype=x.dtype))
        left = cumprod(concat([ones, moved[..., :-1]], axis=-1), -1)
        right = flip(cumprod(concat([ones, flip(moved, -1)[..., :-1]], axis=-1), -1), -1)
        others = swapaxes(left * right, axis, -1)
        return (_expand_reduced(g, x.shape, (axis,), keepdims) * others,)

    return record_op("prod", out, (x,), backward)


def cumsum(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running sum along `axis`."""
    x = as_tensor(x, op="cumsum")
    (axis,) = _norm_axes(_axis_or_last(axis, dim), x.ndim, "cumsum")
    out = xp_of(x.data).cumsum(x.data, axis=axis)
    return record_op("cumsum", out, (x,), lambda g, _: (flip(cumsum(flip(g, axis), axis), axis),))


def cumprod(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running product along `axis` (gradient via out / x: needs non-zero x)."""
    x = as_tensor(x, op="cumprod")
    (axis,) = _norm_axes(_axis_or_last(axis, dim), x.ndim, "cumprod")
    out = xp_of(x.data).cumprod(x.data, axis=axis)
    return record_op("cumprod", out, (x,), lambda g, out: (flip(cumsum(flip(g * out, axis), axis), axis) / x,))


def argmax(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None) -> Tensor:
    """Index of the largest value along `axis` (not differentiable)."""
    x = as_tensor(x, op="argmax")
    axis = _axis(axis, dim)
    return Tensor(xp_of(x.data).argmax(x.data, axis=axis, keepdims=keepdims))


def argmin(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None) -> Tensor:
    """Index of the smallest value along `axis` (not differentiable)."""
    x = as_tensor(x, op="argmin")
    axis = _axis(axis, dim)
    return Tensor(xp_of(x.data).argmin(x.data, axis=axis, keepdims=keepdims))


def norm(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Euclidean norm over `axis`; the gradient at a zero vector is 0 (a subgradient), not NaN."""
    x = as_tensor(x, op="norm")
    xp = xp_of(x.data)
    axes = _norm_axes(_axis(axis, dim), x.ndim, "norm")
    out = xp.sqrt((x.data * x.data).sum(axis=axes, keepdims=keepdims))

    def backward(g: Tensor, out: Tensor) -> tuple:
        safe = where(out.data > 0, out, as_tensor(1.0, out))
        return (_expand_reduced(g / safe, x.shape, axes, keepdims) * x,)

    return record_op("norm", out, (x,), backward)


def softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """e^x / Σ e^x along `axis`, shifted by the max for stability."""
    x = as_tensor(x, op="softmax")
    xp = xp_of(x.data)
    (axis,) = _norm_axes(_axis_or_last(axis, dim), x.ndim, "softmax")
    shifted = xp.exp(x.data - x.data.max(axis=axis, keepdims=True))
    out = shifted / shifted.sum(axis=axis, keepdims=True)
    return record_op("softmax", out, (x,), lambda g, out: (out * (g - sum(g * out, axis, keepdims=True)),))


def log_softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of any magnitude."""
    x = as_tensor(x, op="log_softmax")
    xp = xp_of(x.data)
    (axis,) = _norm_axes(_axis_or_last(axis, dim), x.ndim, "log_softmax")
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    return record_op("log_softmax", out, (x,), lambda g, out: (g - exp(out) * sum(g, axis, keepdims=True),))


# =================================================================================================
# Shape ops
# =================================================================================================
def _shape_arg(shape: tuple) -> tuple:
    """Accept f(x, 2, 3) and f(x, (2, 3)) alike."""
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def reshape(x: Any, *shape: Any) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    x = as_tensor(x, op="reshape")
    shape = _shape_arg(shape)
    try:
        out = x.data.reshape(shape)
    except ValueError:
        message = f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}"
        raise ShapeError(message) from None
    return record_op("reshape", out, (x,), lambda g, _: (reshape(g, x.shape),))


view = reshape


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one (torch.flatten)."""
    x = as_tensor(x, op="flatten")
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1 :])


def permute(x: Any, *axes: int) -> Tensor:
    """Reorder the axes."""
    x = as_tensor(x, op="permute")
    axes = _shape_arg(axes)
    order = [a % builtins.max(x.ndim, 1) for a in axes]
    if sorted(order) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    back = [0] * x.ndim  # axis order[i] of x became axis i of out, so g's axis i goes back to axis order[i]
    for i, a in enumerate(order):
        back[a] = i
    inverse = tuple(back)
    return record_op("permute", x.data.transpose(axes), (x,), lambda g, _: (permute(g, inverse),))


def transpose(x: Any, *axes: int) -> Tensor:
    """NumPy's transpose(x, axes) (reverse all axes by default); with two ints, PyTorch's swap of two axes."""
    x = as_tensor(x, op="transpose")
    axes = _shape_arg(axes)
    if not axes:
        return permute(x, tuple(reversed(range(x.ndim))))
    if len(axes) == 2 and x.ndim != 2:
        return swapaxes(x, *axes)
    if len(axes) == 2:
        return permute(x, (1, 0)) if axes[0] % 2 != axes[1] % 2 else x
    return permute(x, axes)


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes (its own backward: the same swap)."""
    x = as_tensor(x, op="swapaxes")
    a, b = _norm_axes((axis1, axis2), x.ndim, "swapaxes")  # (sorted: a swap does not care)
    return record_op("swapaxes", x.data.swapaxes(a, b), (x,), lambda g, _: (swapaxes(g, a, b),))


def squeeze(x: Any, axis: Axis = None, *, dim: Axis = None) -> Tensor:
    """Drop size-1 axes (all of them, or those given)."""
    x = as_tensor(x, op="squeeze")
    axis = _axis(axis, dim)
    axes = tuple(i for i, n in enumerate(x.shape) if n == 1) if axis is None else _norm_axes(axis, x.ndim, "squeeze")
    axes = tuple(a for a in axes if x.shape[a] == 1)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Any, axis: int, *, dim: int | None = None) -> Tensor:
    """Insert a size-1 axis at `axis` (np.expand_dims)."""
    x = as_tensor(x, op="unsqueeze")
    axis = _axis(axis, dim)
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ShapeError(f"unsqueeze: axis {axis} is out of range for a tensor with {x.ndim} dimension(s)")
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


expand_dims = unsqueeze


def broadcast_to(x: Any, *shape: Any) -> Tensor:
    """x repeated (without copying) to `shape`, as NumPy broadcasting would."""
    x = as_tensor(x, op="broadcast_to")
    shape = _shape_arg(shape)
    if x.shape == shape:
        return x
    try:
        out = xp_of(x.data).broadcast_to(x.data, shape)
    except ValueError:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return record_op("broadcast_to", out, (x,), lambda g, _: (sum_to_shape(g, x.shape),))


def expand(x: Any, *shape: Any) -> Tensor:
    """torch's expand: broadcast_to where -1 keeps an axis as it is."""
    x = as_tensor(x, op="expand")
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    return broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))


def concat(tensors: Sequence[Any], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [as_tensor(t, op="concat") for t in tensors]
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    for t in tensors[1:]:
        _pair("concat", tensors[0], t)
    (axis,) = _norm_axes(_axis(axis, dim), tensors[0].ndim, "concat")
    try:
        out = xp_of(tensors[0].data).concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ShapeError(f"concat: shapes {shapes} differ outside axis {axis}") from None
    bounds = np.cumsum([t.shape[axis] for t in tensors])

    def backward(g: Tensor, _: Tensor) -> tuple:
        starts = [0, *bounds[:-1]]
        return tuple(_slice_axis(g, axis, int(s), int(e)) if t.requires_grad else None
                     for t, s, e in zip(tensors, starts, bounds))

    return record_op("concat", out, tuple(tensors), backward)


cat = concat


def _slice_axis(x: Tensor, axis: int, start: int, stop: int) -> Tensor:
    """x[..., start:stop, ...] along one axis."""
    return x[(slice(None),) * axis + (slice(start, stop),)]


def stack(tensors: Sequence[Any], axis: int = 0, *, dim: int | None = None) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = [as_tensor(t, op="stack") for t in tensors]
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    axis = _axis(axis, dim)
    return concat([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(
    x: Any, split_size_or_sections: int | Sequence[int], axis: int = 0, *, dim: int | None = None
) -> list[Tensor]:
    """torch.split: pieces of `split_size` along axis (an int), or of the listed sizes."""
    x = as_tensor(x, op="split")
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = builtins.max(int(split_size_or_sections), 1)
        sizes = [builtins.min(size, n - start) for start in range(0, n, size)]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} do not add up to {n}, the length of axis {axis} of {x.shape}")
    bounds = np.cumsum([0, *sizes])
    return [_slice_axis(x, axis, int(start), int(stop)) for start, stop in itertools.pairwise(bounds)]


def chunk(x: Any, chunks: int, axis: int = 0, *, dim: int | None = None) -> list[Tensor]:
    """Split into `chunks` nearly equal pieces (the last may be smaller), as torch.chunk."""
    x = as_tensor(x, op="chunk")
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "chunk")
    return split(x, -(-x.shape[axis] // chunks), axis)


def pad(x: Any, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's pad_width ((before, after) per axis, or one pair/int for all)."""
    x = as_tensor(x, op="pad")
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (x.ndim, 2))
    if (widths < 0).any():
        raise ShapeError(f"pad: negative pad widths {widths.tolist()} (crop with indexing instead)")
    out = xp_of(x.data).pad(x.data, [tuple(w) for w in widths.tolist()], constant_values=value)
    inner = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape))
    return record_op("pad", out, (x,), lambda g, _: (g[inner],))


def flip(x: Any, axis: Axis = None, *, dim: Axis = None) -> Tensor:
    """Reverse the order of elements along `axis` (all axes by default)."""
    x = as_tensor(x, op="flip")
    axes = _norm_axes(_axis(axis, dim), x.ndim, "flip")
    out = xp_of(x.data).flip(x.data, axis=axes)
    return record_op("flip", out, (x,), lambda g, _: (flip(g, axes),))


def repeat(x: Any, repeats: int, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """NumPy's repeat: each element `repeats` times along axis (flattened when axis is None)."""
    x = as_tensor(x, op="repeat")
    axis = _axis(axis, dim)
    if axis is None:
        return repeat(reshape(x, (-1,)), repeats, 0)
    (axis,) = _norm_axes(axis, x.ndim, "repeat")
    out = xp_of(x.data).repeat(x.data, repeats, axis=axis)
    split_shape = x.shape[:axis] + (x.shape[axis], repeats) + x.shape[axis + 1 :]
    return record_op("repeat", out, (x,), lambda g, _: (sum(reshape(g, split_shape), axis + 1),))


def tile(x: Any, reps: int | Sequence[int]) -> Tensor:
    """NumPy's tile (torch's Tensor.repeat): the whole tensor repeated along each axis."""
    x = as_tensor(x, op="tile")
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    ndim = builtins.max(len(reps), x.ndim)
    reps = (1,) * (ndim - len(reps)) + reps
    base = reshape(x, (1,) * (ndim - x.ndim) + x.shape)
    out = xp_of(x.data).tile(base.data, reps)
    interleaved = tuple(v for r, n in zip(reps, base.shape) for v in (r, n))
    rep_axes = tuple(range(0, 2 * ndim, 2))
    return record_op("tile", out, (x,), lambda g, _: (reshape(sum(reshape(g, interleaved), rep_axes), x.shape),))


# =================================================================================================
# Indexing
# =================================================================================================
def _has_advanced(index: Any) -> bool:
    """True when an index holds integer arrays (which may repeat positions)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and p.dtype.kind in "iu" for p in parts)


def getitem(x: Any, index: Any) -> Tensor:
    """x[index]: ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    x = as_tensor(x, op="getitem")
    index = tensor_index(index)
    try:
        out = x.data[index]
    except IndexError as exc:
        raise index_error("getitem", x.shape, exc) from None
    advanced = _has_advanced(index)

    def backward(g: Tensor, _: Tensor) -> tuple:
        if is_grad_enabled():  # create_graph: the gradient must itself be differentiable
            return (_index_put_zeros(g, x.shape, index),)
        return (IndexedGrad(g.data, x.shape, index, advanced),)

    return record_op("getitem", out, (x,), backward)


def _index_put_zeros(values: Tensor, shape: tuple[int, ...], index: Any) -> Tensor:
    """zeros(shape) with `values` added at `index` (repeated positions add up): getitem's backward."""
    xp = xp_of(values.data)
    out = xp.zeros(shape, dtype=values.dtype)
    if _has_advanced(index):
        _scatter_add_arrays(out, index, values.data)
    else:
        out[index] = values.data
    return record_op("index_put", out, (values,), lambda g, _: (g[index],))


def take_along_axis(x: Any, indices: Any, axis: int) -> Tensor:
    """NumPy's take_along_axis: pick x's entries along `axis` at `indices`."""
    return gather(x, axis, indices)


def _checked_index(op: str, index: Any, length: int, where: str) -> Any:
    """An integer index array, with every entry checked to lie in [-length, length) (on a GPU without
    waiting for it: a bad index is reported at the next copy to the host, see backend.check_index_range)."""
    index = index.data if isinstance(index, Tensor) else as_array(index)
    if index.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index must hold integers, got dtype {index.dtype}")
    check_index_range(index, -length, length, f"{op}: index values {{span}} but {where} has length {length}")
    return index


def gather(x: Any, axis: int, index: Any, *, dim: int | None = None) -> Tensor:
    """torch.gather: out[i][j] = x[index[i][j]][j] for axis 0 (index has x's number of axes)."""
    x = as_tensor(x, op="gather")
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "gather")
    index = _checked_index("gather", index, x.shape[axis], f"axis {axis} of {x.shape}")
    if index.ndim != x.ndim:
        raise ShapeError(f"gather: index has {index.ndim} axes but x has {x.ndim} (shape {x.shape})")
    try:
        out = xp_of(x.data).take_along_axis(x.data, index, axis=axis)
    except (ValueError, IndexError) as exc:
        raise ShapeError(f"gather: index shape {index.shape} does not fit x of shape {x.shape}: {exc}") from None
    zeros = Tensor(xp_of(x.data).zeros(x.shape, dtype=x.dtype))
    return record_op("gather", out, (x,), lambda g, _: (scatter_add(zeros, axis, index, g),))


def scatter_add(x: Any, axis: int, index: Any, src: Any, *, dim: int | None = None) -> Tensor:
    """torch.scatter_add: out = x, then out[index[i][j]][j] += src[i][j] for axis 0."""
    x, src = _pair("scatter_add", x, src)
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "scatter_add")
    index = _checked_index("scatter_add", index, x.shape[axis], f"axis {axis} of {x.shape}")
    if index.shape != src.shape or index.ndim != x.ndim:
        raise ShapeError(f"scatter_add: index {index.shape} and src {src.shape} must match and have x's rank {x.ndim}")
    xp = xp_of(x.data)
    positions = list(xp.indices(index.shape, sparse=True))
    positions[axis] = index
    out = x.data.copy()
    _scatter_add_arrays(out, tuple(positions), src.data)
    return record_op(
        "scatter_add",
        out,
        (x, src),
        lambda g, _: (_grad_to(g, x), gather(g, axis, index) if src.requires_grad else None),
    )


def index_select(x: Any, axis: int, index: Any, *, dim: int | None = None) -> Tensor:
    """torch.index_select: the slices of x at `index` (1-D) along `axis`."""
    x = as_tensor(x, op="index_select")
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "index_select")
    index = _checked_index("index_select", index, x.shape[axis], f"axis {axis} of {x.shape}")
    out = xp_of(x.data).take(x.data, index, axis=axis)
    zeros = Tensor(xp_of(x.data).zeros(x.shape, dtype=x.dtype))
    return record_op("index_select", out, (x,), lambda g, _: (index_add(zeros, axis, index, g),))


def index_add(x: Any, axis: int, index: Any, source: Any, *, dim: int | None = None) -> Tensor:
    """torch.index_add: out = x, then out[..., index[i], ...] += source[..., i, ...] along `axis`."""
    x, source = _pair("index_add", x, source)
    (axis,) = _norm_axes(_axis(axis, dim), x.ndim, "index_add")
    index = _checked_index("index_add", index, x.shape[axis], f"axis {axis} of {x.shape}")
    expected = x.shape[:axis] + (index.shape[0],) + x.shape[axis + 1 :]
    if index.ndim != 1 or source.shape != expected:
        raise ShapeError(f"index_add: source has shape {source.shape}, expected {expected} for index {index.shape}")
    out = x.data.copy()
    _scatter_add_arrays(out, (slice(None),) * axis + (index,), source.data)
    return record_op(
        "index_add",
        out,
        (x, source),
        lambda g, _: (_grad_to(g, x), index_select(g, axis, index) if source.requires_grad else None),
    )


# =================================================================================================
# Linear algebra
# =================================================================================================
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules: batched, broadcasting, 1-D operands promoted and squeezed."""
    a, b = _pair("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands need at least one axis, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        return reshape(matmul(reshape(a, (1, -1)), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, (-1, 1))), a.shape[:-1])
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit ({a.shape[-1]} columns vs {b.shape[-2]} rows)"
        )
    if b.ndim == 2 and a.ndim > 2:  # [..., n, k] @ [k, m] as one 2-D product: BLAS is far faster than a batch
        return reshape(matmul(reshape(a, (-1, a.shape[-1])), b), (*a.shape[:-1], b.shape[-1]))
    try:
        out = a.data @ b.data
    except ValueError:
        raise _broadcast_error("matmul (batch axes)", a, b) from None

    def backward(g: Tensor, _: Tensor) -> tuple:
        grad_a = _grad_to(g @ swapaxes(b, -1, -2), a) if a.requires_grad else None
        grad_b = _grad_to(swapaxes(a, -1, -2) @ g, b) if b.requires_grad else None
        return grad_a, grad_b

    return record_op("matmul", out, (a, b), backward)


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of two vectors."""
    a, b = _pair("outer", a, b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def _parse_einsum(subscripts: str, count: int) -> tuple[list[str], str]:
    """Split "ij,jk->ik" into input specs and the output spec (implicit output as NumPy does)."""
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ShapeError(f"einsum: ellipsis is not supported in {subscripts!r}; spell the axes out")
    lhs, _, rhs = spec.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != count:
        raise ShapeError(f"einsum: {subscripts!r} names {len(inputs)} operands but {count} were given")
    if "->" not in spec:
        letters = "".join(inputs)
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in inputs:
        if len(set(term)) != len(term) or not builtins.all(c in string.ascii_letters for c in term):
            raise ShapeError(f"einsum: {term!r} in {subscripts!r} repeats a letter (diagonals are not supported)")
    return inputs, rhs


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation, e.g. einsum("bij,bjk->bik", a, b); no ellipsis or repeated letters."""
    inputs, output = _parse_einsum(subscripts, len(operands))
    tensors = [as_tensor(o, op="einsum") for o in operands]
    for t in tensors[1:]:
        _pair("einsum", tensors[0], t)
    for term, t in zip(inputs, tensors):
        if len(term) != t.ndim:
            raise ShapeError(f"einsum: {term!r} names {len(term)} axes but the operand has shape {t.shape}")
    full = ",".join(inputs) + "->" + output
    try:
        out = xp_of(tensors[0].data).einsum(full, *[t.data for t in tensors], optimize=len(tensors) > 1)
    except ValueError as exc:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ShapeError(f"einsum {full!r}: operand shapes {shapes} do not agree ({exc})") from None

    def backward(g: Tensor, _: Tensor) -> tuple:
        grads = []
        for k, t in enumerate(tensors):
            if not t.requires_grad:
                grads.append(None)
                continue
            others = [inputs[i] for i in range(len(inputs)) if i != k]
            elsewhere = set(output).union(*others)
            kept = "".join(c for c in inputs[k] if c in elsewhere)
            other_tensors = [tensors[i] for i in range(len(tensors)) if i != k]
            grad = einsum(",".join([output, *others]) + "->" + kept, g, *other_tensors)
            if kept != inputs[k]:  # letters summed inside operand k alone: their gradient is broadcast
                kept_shape = [n if c in elsewhere else 1 for c, n in zip(inputs[k], t.shape)]
                grad = broadcast_to(reshape(grad, kept_shape), t.shape)
            grads.append(grad)
        return tuple(grads)

    return record_op("einsum", out, tuple(tensors), backward)


# =================================================================================================
# Comparisons (not differentiable; they return boolean tensors)
# =================================================================================================
def _compare(op: str, a: Any, b: Any) -> Tensor:
    a, b = _pair(op, a, b)
    try:
        return Tensor(getattr(a.data, f"__{op}__")(b.data))
    except ValueError:
        raise _broadcast_error(op, a, b) from None


def eq(a: Any, b: Any) -> Tensor:
    """a == b elementwise."""
    return _compare("eq", a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b elementwise."""
    return _compare("ne", a, b)


def lt(a: Any, b: Any) -> Tensor:
    """a < b elementwise."""
    return _compare("lt", a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b elementwise."""
    return _compare("le", a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b elementwise."""
    return _compare("gt", a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b elementwise."""
    return _compare("ge", a, b)

"""The op set. Each op is one function: the forward computation on arrays, then, right beside it,
the backward rule as a small function of (grad, out) written with tinyzoo ops.

Conventions
- Arrays are handled through `xp = xp_of(x._data)`, so every op runs on NumPy and CuPy alike.
- Binary ops broadcast like NumPy; a rule may return a broadcast input's gradient at the broadcast shape
  and in the op's dtype: the engine sums it back to the input's shape and casts it (as PyTorch's does)
  (and dtype). It is the only place that undoes broadcasting.
- A backward rule returns None for inputs that do not require a gradient, so no work is wasted.
- Axis arguments accept NumPy's `axis=` and PyTorch's `dim=` alike.
- The public names `sum max min abs pow all any` are ops here; the module's own code never needs Python's
  built-ins of those names (it writes `0 in [...]`, `ndim or 1`, conditional expressions instead).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import string
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from tinyzoo import dtypes
from tinyzoo.autograd.tensor import (
    MODE,
    IndexedGrad,
    Tensor,
    as_array,
    index_error,
    is_grad_enabled,
    next_sequence,
    no_grad,
    record_op,
    tensor_index,
    wrap,
)
from tinyzoo.backend import check_index_range, erf, xp_of
from tinyzoo.backend import scatter_add as _scatter_add_arrays
from tinyzoo.errors import DeviceError, DTypeError, GraphError, ShapeError

Axis = int | Sequence[int] | None
_FLOAT32 = np.dtype(np.float32)

__all__ = [
    "ValuesIndices",
    "abs",
    "add",
    "add_",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "argmax",
    "argmin",
    "as_tensor",
    "astype",
    "broadcast_to",
    "cat",
    "chunk",
    "clamp",
    "clamp_",
    "clip",
    "clone",
    "concat",
    "contiguous",
    "copy_",
    "cos",
    "cumprod",
    "cumsum",
    "diagonal",
    "div",
    "div_",
    "einsum",
    "elu",
    "eq",
    "equal",
    "exp",
    "expand",
    "expand_dims",
    "fill_",
    "flatten",
    "flip",
    "gather",
    "ge",
    "gelu",
    "getitem",
    "gt",
    "index_add",
    "index_put",
    "index_select",
    "le",
    "leaky_relu",
    "log",
    "log1p",
    "log2",
    "log10",
    "log_softmax",
    "logsumexp",
    "lt",
    "masked_fill",
    "masked_fill_",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "mul",
    "mul_",
    "ne",
    "neg",
    "norm",
    "outer",
    "pad",
    "permute",
    "pow",
    "pow_",
    "prod",
    "relu",
    "repeat",
    "repeat_interleave",
    "reshape",
    "scatter_add",
    "setitem",
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
    "sub_",
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
    "zero_",
]


# =================================================================================================
# Helpers shared by the ops
# =================================================================================================
def as_tensor(value: Any, like: Tensor | None = None, op: str | None = None) -> Tensor:
    """The one public coercion to a Tensor: Tensors pass through, Python numbers beside a tensor `like`
    take the dtype PyTorch's promotion gives them and like's device, anything else goes through `as_array`.

    `op` names the calling op in the error raised for data that is not a real number array.
    """
    if isinstance(value, Tensor):
        return value
    if like is not None and isinstance(value, (bool, int, float)):
        array = like._data
        if isinstance(array, np.ndarray):
            return wrap(_host_scalar(value, array.dtype))
        return wrap(xp_of(array).asarray(value, dtype=_scalar_dtype(value, array.dtype)))
    try:
        return Tensor(as_array(value))
    except DTypeError as exc:
        raise DTypeError(f"{op or 'tensor'}: {exc}") from None


def _scalar_dtype(value: bool | int | float, like: np.dtype) -> np.dtype:
    """The dtype a Python number takes beside a tensor of dtype `like` (PyTorch's rule: like's dtype
    unless the number's category is higher — int tensor * 0.5 is float32, bool tensor + 1 is int64)."""
    return dtypes.result_type((like, 1), (dtypes.scalar_dtype(value), None))


def _new_scalar(value: bool | int | float, like: np.dtype) -> np.ndarray:
    """A read-only 0-d NumPy array holding `value` in the dtype it takes beside `like`."""
    array = np.asarray(value, dtype=_scalar_dtype(value, like))
    array.flags.writeable = False
    return array


# Python numbers in arithmetic (`y * 0.9`, `1 - out * out` in backward rules) are the commonest constants;
# making each one a fresh array cost as much as the tiny op itself, so they are cached. 0-d arrays, not NumPy
# scalars: NumPy's ufuncs take a far slower path for `array * np.float32(0.9)` than for a 0-d array. typed:
# 1, 1.0 and True are equal as keys but not as constants beside an integer array.
_cached_scalar = functools.lru_cache(maxsize=256, typed=True)(_new_scalar)


def _host_scalar(value: bool | int | float, like: np.dtype) -> np.ndarray:
    """`_new_scalar`, cached; a float zero is made fresh, since -0.0 == 0.0 as a cache key would lose its sign."""
    if type(value) is float and value == 0.0:
        return _new_scalar(value, like)
    return _cached_scalar(value, like)


@functools.lru_cache(maxsize=256)
def _float_operand(value: float, like: np.dtype) -> Tensor:
    """`_host_scalar` wrapped once: the Tensor a binary op gets for a non-zero Python float beside a NumPy array.

    Shared by every op that meets the same number (an operand is only read, and never handed back to the
    caller); `as_tensor` gives callers a tensor of their own.
    """
    return wrap(_host_scalar(value, like))


def _pair(op: str, a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """Both operands of a binary op as Tensors on one device (never copied silently)."""
    # x * 0.5, the commonest case, takes a cached operand (zeros are not cached: see _host_scalar)
    if type(b) is float and b and isinstance(a, Tensor) and isinstance(a._data, np.ndarray):
        return a, _float_operand(b, a._data.dtype)
    if not isinstance(a, Tensor):
        a = as_tensor(a, b if isinstance(b, Tensor) else None, op=op)
    if not isinstance(b, Tensor):
        b = as_tensor(b, a, op=op)
    if type(a._data) is not type(b._data) or (not isinstance(a._data, np.ndarray) and a.device != b.device):
        raise DeviceError(
            f"{op}: operands are on different devices ({a.device} and {b.device}); move one with .to(device)"
        )
    return a, b


def _promoted(a: Tensor, b: Tensor) -> tuple[Any, Any]:
    """The two operands' arrays in the dtype PyTorch's promotion gives their result (see tinyzoo.dtypes)."""
    x, y = a._data, b._data
    if x.dtype is y.dtype or x.dtype == y.dtype:  # (`is` first: NumPy's builtin dtypes are singletons)
        return x, y
    dtype = dtypes.result_type((x.dtype, x.ndim), (y.dtype, y.ndim))
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)


def _binary(op: str, a: Any, b: Any, compute: Callable[[Any, Any], Any]) -> tuple[Tensor, Tensor, Any]:
    """The frame every binary op shares: operands on one device, promoted, `compute` run, shape errors named."""
    a, b = _pair(op, a, b)
    x, y = a._data, b._data
    try:
        return a, b, compute(x, y) if x.dtype is y.dtype else compute(*_promoted(a, b))
    except ValueError:
        raise _broadcast_error(op, a, b) from None


def _broadcast_error(op: str, *tensors: Tensor) -> ShapeError:
    shapes = " and ".join(str(t.shape) for t in tensors)
    return ShapeError(f"{op}: shapes {shapes} cannot be broadcast together")


def _axis(axis: Axis, dim: Axis, op: str = "op") -> Axis:
    """Accept NumPy's axis= and PyTorch's dim= (one of them)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: pass either axis= or dim=, not both")
        return dim
    return axis


def _keep(keepdims: bool, keepdim: bool | None) -> bool:
    """Accept NumPy's keepdims= and PyTorch's keepdim= alike."""
    return keepdims if keepdim is None else keepdim


def _axis_or_last(axis: int | None, dim: int | None) -> int:
    """Like _axis, for ops whose axis defaults to the last one (softmax, cumsum, ...)."""
    axis = _axis(axis, dim)
    return -1 if axis is None else axis


def _norm_axes(axis: Axis, ndim: int, op: str) -> tuple[int, ...]:
    """Axis argument as a sorted tuple of non-negative axes (None = all).

    A 0-d tensor accepts axis 0 and -1 as PyTorch does; they name no axis, so the result is ().
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -(ndim or 1) <= a < (ndim or 1):
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimension(s)")
        if ndim:
            out.append(int(a) % ndim)
    return tuple(sorted(out))


def _one_axis(axis: int, ndim: int, op: str) -> int | None:
    """One axis as a non-negative int; None for a 0-d tensor (whose only 'axis' is 0 or -1)."""
    axes = _norm_axes(axis, ndim, op)
    return axes[0] if axes else None


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
    """x as a Tensor for an op defined on real numbers: integer and bool tensors become the default
    float dtype first (float32), as PyTorch's exp(int_tensor) does."""
    if not isinstance(x, Tensor):
        x = as_tensor(x, op=op)
    if x._data.dtype.kind in "biu":
        return wrap(x._data.astype(dtypes.DEFAULT_FLOAT))
    return x


def _constant(array: Any) -> Tensor:
    """A tensor that is never differentiated (masks, indices); NumPy's 0-d scalars become 0-d arrays."""
    return wrap(np.asarray(array) if isinstance(array, np.generic) else array)


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    """The shape left after reducing `axes` of `shape`."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape) if keepdims or i not in axes)


# =================================================================================================
# Elementwise binary ops
# =================================================================================================
def add(a: Any, b: Any, *, alpha: float = 1) -> Tensor:
    """a + alpha * b, broadcasting (alpha as in torch.add)."""
    if alpha != 1:
        return add(a, mul(b, alpha))
    a, b, out = _binary("add", a, b, operator.add)
    return record_op("add", out, (a, b), lambda g, _: (g, g))  # reads neither operand: the tape keeps neither


def sub(a: Any, b: Any, *, alpha: float = 1) -> Tensor:
    """a - alpha * b, broadcasting."""
    if alpha != 1:
        return sub(a, mul(b, alpha))
    a, b, out = _binary("sub", a, b, operator.sub)
    b_needs_grad = b.requires_grad  # (a flag, not b: the rule reads no operand, so the tape keeps none)
    return record_op("sub", out, (a, b), lambda g, _: (g, -g if b_needs_grad else None))


def mul(a: Any, b: Any) -> Tensor:
    """a * b, broadcasting."""
    a, b, out = _binary("mul", a, b, operator.mul)

    def backward(g: Tensor, _: Tensor) -> tuple:
        return g * b if a.requires_grad else None, g * a if b.requires_grad else None

    return record_op("mul", out, (a, b), backward)


def div(a: Any, b: Any) -> Tensor:
    """a / b, broadcasting; true division, so integers give the default float dtype (float32)."""
    a, b, out = _binary("div", a, b, _true_divide)
    a_needs_grad = a.requires_grad  # (the rule reads b and the output, never a)

    def backward(g: Tensor, out: Tensor) -> tuple:
        return g / b if a_needs_grad else None, -g * out / b if b.requires_grad else None

    return record_op("div", out, (a, b), backward)


def _true_divide(x: Any, y: Any) -> Any:
    """x / y on arrays; integers and bools divide in the default float dtype (float32), as in PyTorch."""
    if x.dtype.kind in "biu" and y.dtype.kind in "biu":
        return xp_of(x).true_divide(x, y, dtype=dtypes.DEFAULT_FLOAT)
    return x / y


def pow(a: Any, b: Any) -> Tensor:
    """a ** b, broadcasting; the gradient for b needs a > 0."""
    a, b, out = _binary("pow", a, b, operator.pow)

    def backward(g: Tensor, out: Tensor) -> tuple:
        return g * b * a ** (b - 1) if a.requires_grad else None, g * out * log(a) if b.requires_grad else None

    return record_op("pow", out, (a, b), backward)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise max; at ties the gradient goes to a."""
    a, b, (out, a_wins) = _binary("maximum", a, b, lambda x, y: (xp_of(x).maximum(x, y), x >= y))
    return record_op("maximum", out, (a, b), _select_backward(a, b, a_wins))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise min; at ties the gradient goes to a."""
    a, b, (out, a_wins) = _binary("minimum", a, b, lambda x, y: (xp_of(x).minimum(x, y), x <= y))
    return record_op("minimum", out, (a, b), _select_backward(a, b, a_wins))


def _select_backward(a: Tensor, b: Tensor, a_wins: Any):
    """Backward of an op that picks a where `a_wins`, else b (maximum, minimum, where)."""
    take_a, take_b = _constant(a_wins), _constant(~a_wins)
    a_needs_grad, b_needs_grad = a.requires_grad, b.requires_grad  # (the rule reads the choice, not a or b)

    def backward(g: Tensor, _: Tensor) -> tuple:
        return g * take_a if a_needs_grad else None, g * take_b if b_needs_grad else None

    return backward


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """a where condition is true, else b (all three broadcast)."""
    a, b = _pair("where", a, b)
    cond = condition._data if isinstance(condition, Tensor) else as_array(condition)
    cond = cond.astype(bool, copy=False)
    xp = xp_of(a._data)
    try:
        x, y = _promoted(a, b)
        out = xp.where(cond, x, y)
        cond = xp.broadcast_to(cond, out.shape)
    except ValueError:
        raise _broadcast_error("where", _constant(cond), a, b) from None
    return record_op("where", out, (a, b), _select_backward(a, b, cond))


def masked_fill(x: Any, mask: Any, value: Any) -> Tensor:
    """x with `value` written where mask is true (mask broadcasts against x; value a number or 0-d tensor)."""
    x = as_tensor(x, op="masked_fill")
    value = as_tensor(value, x, op="masked_fill")
    if value.ndim != 0:
        raise ShapeError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
    return where(mask, astype(value, x.dtype), x)


# =================================================================================================
# Elementwise unary ops
# =================================================================================================
def neg(x: Any) -> Tensor:
    """-x."""
    x = as_tensor(x, op="neg")
    return record_op("neg", -x._data, (x,), lambda g, _: (-g,))


def exp(x: Any) -> Tensor:
    """e ** x."""
    x = _float_input("exp", x)
    return record_op("exp", xp_of(x._data).exp(x._data), (x,), lambda g, out: (g * out,))


def log(x: Any) -> Tensor:
    """Natural logarithm."""
    x = _float_input("log", x)
    return record_op("log", xp_of(x._data).log(x._data), (x,), lambda g, _: (g / x,))


def log1p(x: Any) -> Tensor:
    """log(1 + x), accurate for small x."""
    x = _float_input("log1p", x)
    return record_op("log1p", xp_of(x._data).log1p(x._data), (x,), lambda g, _: (g / (x + 1),))


def log2(x: Any) -> Tensor:
    """Base-2 logarithm."""
    return log(x) * (1 / math.log(2))


def log10(x: Any) -> Tensor:
    """Base-10 logarithm."""
    return log(x) * (1 / math.log(10))


def sqrt(x: Any) -> Tensor:
    """Square root."""
    x = _float_input("sqrt", x)
    return record_op("sqrt", xp_of(x._data).sqrt(x._data), (x,), lambda g, out: (g * 0.5 / out,))


def abs(x: Any) -> Tensor:
    """|x|; the gradient at 0 is 0."""
    x = as_tensor(x, op="abs")
    sign = _constant(xp_of(x._data).sign(x._data))
    return record_op("abs", xp_of(x._data).abs(x._data), (x,), lambda g, _: (g * sign,))


def sin(x: Any) -> Tensor:
    """Sine."""
    x = _float_input("sin", x)
    return record_op("sin", xp_of(x._data).sin(x._data), (x,), lambda g, _: (g * cos(x),))


def cos(x: Any) -> Tensor:
    """Cosine."""
    x = _float_input("cos", x)
    return record_op("cos", xp_of(x._data).cos(x._data), (x,), lambda g, _: (-g * sin(x),))


def tanh(x: Any) -> Tensor:
    """Hyperbolic tangent."""
    x = _float_input("tanh", x)
    return record_op("tanh", xp_of(x._data).tanh(x._data), (x,), lambda g, out: (_tanh_backward(g, out),))


def _tanh_backward(g: Tensor, out: Tensor) -> Tensor:
    """g · (1 − out²), tanh's backward as one op (like torch's tanh_backward): one tape entry instead of three.

    Its own backward (for second derivatives): ∂/∂g = 1 − out², ∂/∂out = −2 g out.
    """
    return record_op("tanh_backward", g._data * (1 - out._data * out._data), (g, out),
                     lambda gg, _: (gg * (1 - out * out), -2 * gg * g * out))  # fmt: skip


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + e^-x), computed without overflow for large |x|."""
    x = _float_input("sigmoid", x)
    xp = xp_of(x._data)
    z = xp.exp(-xp.abs(x._data))  # in (0, 1], never overflows
    out = xp.where(x._data >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
    return record_op("sigmoid", out, (x,), lambda g, out: (_sigmoid_backward(g, out),))


def _sigmoid_backward(g: Tensor, out: Tensor) -> Tensor:
    """g · out (1 − out), sigmoid's backward as one op: ∂/∂g = out (1 − out), ∂/∂out = g (1 − 2 out)."""
    return record_op("sigmoid_backward", g._data * (out._data * (1 - out._data)), (g, out),
                     lambda gg, _: (gg * out * (1 - out), gg * g * (1 - 2 * out)))  # fmt: skip


def relu(x: Any) -> Tensor:
    """max(x, 0)."""
    x = as_tensor(x, op="relu")
    out = xp_of(x._data).maximum(x._data, 0)  # NaN stays NaN
    return record_op("relu", out, (x,), lambda g, out: (g * _constant(out._data > 0),))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    x = _float_input("leaky_relu", x)
    slope = xp_of(x._data).where(x._data > 0, 1, negative_slope).astype(x.dtype)
    return record_op("leaky_relu", x._data * slope, (x,), lambda g, _: (g * _constant(slope),))


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha * (e^x - 1) otherwise."""
    x = _float_input("elu", x)
    xp = xp_of(x._data)
    positive = x._data > 0
    out = xp.where(positive, x._data, alpha * xp.expm1(xp.minimum(x._data, 0))).astype(x.dtype, copy=False)

    def backward(g: Tensor, out: Tensor) -> tuple:
        return (where(positive, g, g * (out + alpha)),)

    return record_op("elu", out, (x,), backward)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, stable for large |x|; x itself where beta x > threshold (as torch)."""
    x = _float_input("softplus", x)
    xp = xp_of(x._data)
    bx = beta * x._data
    smooth = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / beta
    linear = bx > threshold
    out = xp.where(linear, x._data, smooth).astype(x.dtype, copy=False)
    return record_op("softplus", out, (x,), lambda g, _: (where(linear, g, g * sigmoid(x * beta)),))


def gelu(x: Any, approximate: str = "tanh") -> Tensor:
    """GELU (Hendrycks & Gimpel): x Φ(x), exactly with approximate="none" (PyTorch's default), or with
    tinyzoo's default "tanh" approximation 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).

    *tinyzoo defaults to "tanh"* (what its GPT, BERT and ViT were trained with, as in GPT-2); pass
    approximate="none" for torch.nn.functional.gelu's default.
    """
    x = _float_input("gelu", x)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * float(np.sqrt(2 / np.pi))
        return x * 0.5 * (tanh(inner) + 1)
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    cdf = record_op("normal_cdf", (1 + erf(x._data / math.sqrt(2))) / 2, (x,),
                    lambda g, _: (g * exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi)),))  # fmt: skip
    return x * cdf


def clamp(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """x limited to [min, max] (numbers or tensors that broadcast); the gradient is 0 where x was clipped.

    Tensor bounds are differentiable, as in PyTorch: a bound receives the gradient where it was taken.
    """
    float_bound = isinstance(min, float) or isinstance(max, float)
    x = _float_input("clamp", x) if float_bound else as_tensor(x, op="clamp")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        low = x if min is None else maximum(x, min)
        return low if max is None else minimum(low, max)
    out = xp_of(x._data).clip(x._data, min, max)
    inside = out == x._data
    return record_op("clamp", out, (x,), lambda g, _: (g * _constant(inside),))


clip = clamp


def clone(x: Any) -> Tensor:
    """A copy of x with its own memory; the gradient passes straight through."""
    x = as_tensor(x, op="clone")
    return record_op("clone", x._data.copy(), (x,), lambda g, _: (g,))


def contiguous(x: Any) -> Tensor:
    """x itself when its memory is in row-major order, else a row-major copy."""
    x = as_tensor(x, op="contiguous")
    return x if x._data.flags.c_contiguous else clone(x)


def equal(a: Any, b: Any) -> bool:
    """True when a and b have the same shape and the same values (torch.equal)."""
    a, b = _pair("equal", a, b)
    return a.shape == b.shape and bool(xp_of(a._data).array_equal(a._data, b._data))


def allclose(a: Any, b: Any, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False) -> bool:
    """True when every |a - b| ≤ atol + rtol |b| (torch.allclose, np.allclose)."""
    a, b = _pair("allclose", a, b)
    try:
        return bool(xp_of(a._data).allclose(*_promoted(a, b), rtol=rtol, atol=atol, equal_nan=equal_nan))
    except ValueError:
        raise _broadcast_error("allclose", a, b) from None


def astype(x: Any, dtype: Any) -> Tensor:
    """x converted to `dtype` (a dtype, or a name such as "float32" or PyTorch's "long"); the gradient
    is converted back."""
    x = as_tensor(x, op="astype")
    dtype = dtypes.as_dtype(dtype)
    if x.dtype == dtype:
        return x
    source = x.dtype
    return record_op("astype", x._data.astype(dtype), (x,), lambda g, _: (astype(g, source),))


def to(x: Any, device: str) -> Tensor:
    """x moved to `device`; the gradient moves back."""
    from tinyzoo.backend import normalize_device, to_device

    x = as_tensor(x, op="to")
    device = normalize_device(device)
    if x.device == device:
        return x
    source = x.device
    return record_op("to", to_device(x._data, device), (x,), lambda g, _: (to(g, source),))


# =================================================================================================
# Reductions
# =================================================================================================
def sum(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None) -> Tensor:
    """Sum over `axis` (all axes by default)."""
    x = as_tensor(x, op="sum")
    axes, keepdims = _norm_axes(_axis(axis, dim, "sum"), x.ndim, "sum"), _keep(keepdims, keepdim)
    out = x._data.sum(axis=axes, keepdims=keepdims)
    shape = x.shape
    return record_op("sum", out, (x,), lambda g, _: (_expand_reduced(g, shape, axes, keepdims),))


def mean(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None) -> Tensor:
    """Mean over `axis`; NaN over an empty axis, as in PyTorch."""
    x = _float_input("mean", x)
    axes = _norm_axes(_axis(axis, dim, "mean"), x.ndim, "mean")
    count = math.prod(x.shape[a] for a in axes)
    total = sum(x, axes, _keep(keepdims, keepdim))
    return total / count if count else total * math.nan


class ValuesIndices(NamedTuple):
    """What max/min return when given a `dim`, as torch.return_types: (values, indices)."""

    values: Tensor
    indices: Tensor


def _amax_amin(op: str, x: Any, axis: Axis, keepdims: bool) -> Tensor:
    """max/min values over axes (NumPy's meaning); ties share the gradient equally, as torch.amax."""
    x = as_tensor(x, op=op)
    axes = _norm_axes(axis, x.ndim, op)
    if 0 in [x.shape[a] for a in axes] or (x.size == 0 and not axes and x.ndim):
        raise ShapeError(f"{op}: cannot reduce an empty axis of a tensor of shape {x.shape} (no identity)")
    reduce = x._data.max if op in ("max", "amax") else x._data.min
    out_keep = reduce(axis=axes, keepdims=True)
    hits = (x._data == out_keep).astype(x.dtype)
    share = _constant(hits / hits.sum(axis=axes, keepdims=True))
    shape = x.shape
    out = out_keep if keepdims else out_keep.reshape(_reduced_shape(shape, axes, False))
    return record_op(op, out, (x,), lambda g, _: (_expand_reduced(g, shape, axes, keepdims) * share,))


def _extreme(op: str, x: Any, dim: Any, keepdim: bool | None, axis: Axis, keepdims: bool) -> Any:
    """max/min with both libraries' meanings (see `max`)."""
    if isinstance(dim, Tensor):
        return (maximum if op == "max" else minimum)(x, dim)
    if dim is None:
        return _amax_amin(op, x, axis, _keep(keepdims, keepdim))
    if axis is not None:
        raise TypeError(f"{op}: pass either axis= (values) or dim (values and indices), not both")
    x = as_tensor(x, op=op)
    keep = _keep(keepdims, keepdim)
    indices = (argmax if op == "max" else argmin)(x, dim, keepdim=True)
    values = gather(x, dim, indices)
    if not keep:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return ValuesIndices(values, indices)


def max(x: Any, dim: Any = None, keepdim: bool | None = None, *, axis: Axis = None, keepdims: bool = False) -> Any:
    """The largest values, with both libraries' meanings:

    - `max(x)`, `max(x, axis=a)`: the values (NumPy's max; ties share the gradient, as torch.amax);
    - `max(x, dim)`: `(values, indices)` along `dim`, as torch.max (the gradient goes to the index returned);
    - `max(x, other_tensor)`: elementwise `maximum`, as torch.max.
    """
    return _extreme("max", x, dim, keepdim, axis, keepdims)


def min(x: Any, dim: Any = None, keepdim: bool | None = None, *, axis: Axis = None, keepdims: bool = False) -> Any:
    """The smallest values, with both libraries' meanings (see `max`)."""
    return _extreme("min", x, dim, keepdim, axis, keepdims)


def amax(x: Any, dim: Axis = None, keepdim: bool = False, *, axis: Axis = None, keepdims: bool | None = None) -> Tensor:
    """Largest values over one or more axes (torch.amax / NumPy's max): values only."""
    return _amax_amin("amax", x, _axis(axis, dim, "amax"), keepdim if keepdims is None else keepdims)


def amin(x: Any, dim: Axis = None, keepdim: bool = False, *, axis: Axis = None, keepdims: bool | None = None) -> Tensor:
    """Smallest values over one or more axes (torch.amin / NumPy's min): values only."""
    return _amax_amin("amin", x, _axis(axis, dim, "amin"), keepdim if keepdims is None else keepdims)


def _correction(op: str, ddof: int | None, correction: int | None, unbiased: bool | None) -> int:
    """The count correction of var/std from NumPy's ddof= or PyTorch's correction=/unbiased= (default 1)."""
    given = [v for v in (ddof, correction, unbiased) if v is not None]
    if len(given) > 1:
        raise TypeError(f"{op}: pass one of ddof=, correction=, unbiased=")
    if unbiased is not None:
        return int(bool(unbiased))
    return 1 if not given else int(given[0])


def var(
    x: Any, axis: Axis = None, keepdims: bool = False, ddof: int | None = None, *, dim: Axis = None,
    keepdim: bool | None = None, correction: int | None = None, unbiased: bool | None = None,
) -> Tensor:  # fmt: skip
    """Variance over `axis`: Σ(x - mean)² / (N - correction).

    *The default is PyTorch's, correction=1 (the sample variance)*; NumPy's default is ddof=0 — pass
    `ddof=0` or `correction=0` for the population variance. N ≤ correction gives NaN or Inf, as in PyTorch.
    """
    return _variance("var", x, _axis(axis, dim, "var"), _keep(keepdims, keepdim),
                     _correction("var", ddof, correction, unbiased))  # fmt: skip


def _variance(op: str, x: Any, axis: Axis, keepdims: bool, correction: int) -> Tensor:
    """Σ(x - mean)² / (N - correction) over `axis`, errors naming `op` (var or std)."""
    x = _float_input(op, x)
    axes = _norm_axes(axis, x.ndim, op)
    count = math.prod(x.shape[a] for a in axes)
    centred = x - mean(x, axes, keepdims=True)
    squares = sum(centred * centred, axes, keepdims)
    denominator = count - correction
    return squares / denominator if denominator > 0 else squares * (math.nan if count == 0 else math.inf)


def std(
    x: Any, axis: Axis = None, keepdims: bool = False, ddof: int | None = None, *, dim: Axis = None,
    keepdim: bool | None = None, correction: int | None = None, unbiased: bool | None = None,
) -> Tensor:  # fmt: skip
    """Standard deviation over `axis`: the square root of `var` (default correction=1, as PyTorch)."""
    return sqrt(_variance("std", x, _axis(axis, dim, "std"), _keep(keepdims, keepdim),
                          _correction("std", ddof, correction, unbiased)))  # fmt: skip


def _on_one_axis(fn: Callable[..., Tensor], x: Tensor, axis: int | None, **options: Any) -> Tensor:
    """Run an op that works along one axis on a 0-d tensor, as PyTorch does: as a 1-element vector."""
    return reshape(fn(reshape(x, (1,)), 0, **options), ())


def logsumexp(
    x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None
) -> Tensor:
    """log Σ e^x over `axis` (every axis by default), shifted by the max so it never overflows."""
    x = _float_input("logsumexp", x)
    xp = xp_of(x._data)
    axes, keepdims = _norm_axes(_axis(axis, dim, "logsumexp"), x.ndim, "logsumexp"), _keep(keepdims, keepdim)
    if 0 in [x.shape[a] for a in axes]:  # log of an empty sum
        return sum(x, axes, keepdims) - math.inf
    peak = xp.max(x._data, axis=axes, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)
    out_keep = xp.log(xp.exp(x._data - peak).sum(axis=axes, keepdims=True)) + peak
    out = out_keep if keepdims else out_keep.reshape(_reduced_shape(x.shape, axes, False))

    def backward(g: Tensor, out: Tensor) -> tuple:
        out_keep = out if keepdims else reshape(out, _reduced_shape(x.shape, axes, True))
        return (_expand_reduced(g, x.shape, axes, keepdims) * exp(x - out_keep),)

    return record_op("logsumexp", out, (x,), backward)


def prod(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
         keepdim: bool | None = None) -> Tensor:  # fmt: skip
    """Product over one axis (or all); zeros in x are handled exactly."""
    x = as_tensor(x, op="prod")
    axis, keepdims = _axis(axis, dim, "prod"), _keep(keepdims, keepdim)
    if axis is None:
        return prod(reshape(x, (-1,)), 0, keepdims=False) if not keepdims else reshape(prod(x), (1,) * x.ndim)
    axis = _one_axis(axis, x.ndim, "prod")
    if axis is None:
        return x
    out = x._data.prod(axis=axis, keepdims=keepdims)

    def backward(g: Tensor, _: Tensor) -> tuple:
        # d prod / d x_i = product of all the other entries: exclusive products from the left and
        # from the right, which stay exact when some x_j is zero (out / x_i would not).
        moved = swapaxes(x, axis, -1)
        others = swapaxes(_exclusive_cumprod(moved) * flip(_exclusive_cumprod(flip(moved, -1)), -1), axis, -1)
        return (_expand_reduced(g, x.shape, (axis,), keepdims) * others,)

    return record_op("prod", out, (x,), backward)


def _exclusive_cumprod(x: Tensor) -> Tensor:
    """[1, x0, x0·x1, ...] along the last axis: the product of the entries before each one."""
    ones = wrap(xp_of(x._data).ones(x.shape[:-1] + (1,), dtype=x.dtype))
    return cumprod(concat([ones, x[..., :-1]], axis=-1), -1)


def cumsum(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running sum along `axis` (the last by default)."""
    x = as_tensor(x, op="cumsum")
    axis = _one_axis(_axis_or_last(axis, dim), x.ndim, "cumsum")
    if axis is None:
        return _on_one_axis(cumsum, x, axis)
    out = xp_of(x._data).cumsum(x._data, axis=axis)
    return record_op("cumsum", out, (x,), lambda g, _: (flip(cumsum(flip(g, axis), axis), axis),))


def cumprod(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running product along `axis` (the last by default); the gradient is exact where x holds zeros."""
    x = as_tensor(x, op="cumprod")
    axis = _one_axis(_axis_or_last(axis, dim), x.ndim, "cumprod")
    if axis is None:
        return _on_one_axis(cumprod, x, axis)
    out = xp_of(x._data).cumprod(x._data, axis=axis)

    def backward(g: Tensor, _: Tensor) -> tuple:
        # out_j = Π_{k≤j} x_k, so ∂L/∂x_i = (Π_{k<i} x_k) · T_i with T_i = Σ_{j≥i} g_j Π_{i<k≤j} x_k,
        # and T obeys T_i = g_i + x_{i+1} T_{i+1}: a reverse scan with no division (x may hold zeros).
        moved_x, moved_g = swapaxes(x, axis, -1), swapaxes(g, axis, -1)
        n = x.shape[axis]
        scan = [moved_g[..., n - 1]] if n else []
        for i in range(n - 2, -1, -1):
            scan.append(moved_g[..., i] + moved_x[..., i + 1] * scan[-1])
        after = stack(scan[::-1], -1) if n else moved_g
        return (swapaxes(_exclusive_cumprod(moved_x) * after, axis, -1),)

    return record_op("cumprod", out, (x,), backward)


def _arg_extreme(op: str, x: Any, axis: int | None, keepdims: bool) -> Tensor:
    """argmax/argmin (not differentiable); a 0-d tensor's only index is 0."""
    x = as_tensor(x, op=op)
    if x.size == 0:
        raise ShapeError(f"{op}: cannot take the {op[3:]} of an empty tensor of shape {x.shape}")
    xp = xp_of(x._data)
    find = xp.argmax if op == "argmax" else xp.argmin
    if axis is None:
        flat = find(x._data.reshape(-1))
        return wrap(xp.asarray(flat).reshape((1,) * x.ndim if keepdims else ()))
    axis = _one_axis(axis, x.ndim, op)
    if axis is None:
        return wrap(xp.zeros((), dtype=np.int64))
    return wrap(find(x._data, axis=axis, keepdims=keepdims))


def argmax(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
           keepdim: bool | None = None) -> Tensor:  # fmt: skip
    """Index of the largest value along `axis` (of the flattened tensor by default; not differentiable)."""
    return _arg_extreme("argmax", x, _axis(axis, dim, "argmax"), _keep(keepdims, keepdim))


def argmin(x: Any, axis: int | None = None, keepdims: bool = False, *, dim: int | None = None,
           keepdim: bool | None = None) -> Tensor:  # fmt: skip
    """Index of the smallest value along `axis` (not differentiable)."""
    return _arg_extreme("argmin", x, _axis(axis, dim, "argmin"), _keep(keepdims, keepdim))


def all(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None) -> Tensor:
    """True where every element along `axis` is non-zero (a bool tensor)."""
    x = as_tensor(x, op="all")
    axes = _norm_axes(_axis(axis, dim, "all"), x.ndim, "all")
    return wrap(xp_of(x._data).asarray(x._data.astype(bool).all(axis=axes, keepdims=_keep(keepdims, keepdim))))


def any(x: Any, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None, keepdim: bool | None = None) -> Tensor:
    """True where some element along `axis` is non-zero (a bool tensor)."""
    x = as_tensor(x, op="any")
    axes = _norm_axes(_axis(axis, dim, "any"), x.ndim, "any")
    return wrap(xp_of(x._data).asarray(x._data.astype(bool).any(axis=axes, keepdims=_keep(keepdims, keepdim))))


def norm(x: Any, ord: Any = None, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None,
         keepdim: bool | None = None, p: Any = None) -> Tensor:  # fmt: skip
    """Vector norm over `axis` (all axes by default): ord (or torch's p) = 2 / "fro" (default), 1, inf,
    -inf, 0 or any real p. The 2-norm's gradient at a zero vector is 0 (a subgradient), not NaN.

    *The second positional argument is the order, as in torch.norm and np.linalg.norm.*
    """
    x = _float_input("norm", x)
    if p is not None and ord is not None:
        raise TypeError("norm: pass either ord= or p=, not both")
    order = 2 if ord is None and p is None else (ord if p is None else p)
    axes, keepdims = _norm_axes(_axis(axis, dim, "norm"), x.ndim, "norm"), _keep(keepdims, keepdim)
    if order in (2, "fro"):
        return _two_norm(x, axes, keepdims)
    if isinstance(order, str) or not isinstance(order, (int, float)):
        raise ValueError(f"norm: ord must be a number or 'fro' (matrix norms such as {order!r} are not supported)")
    if order == math.inf:
        return amax(abs(x), axes, keepdims) if x.size else sum(abs(x), axes, keepdims)
    if order == -math.inf:
        return amin(abs(x), axes, keepdims)
    if order == 0:
        return sum(astype(ne(x, 0), x.dtype), axes, keepdims)
    if order == 1:
        return sum(abs(x), axes, keepdims)
    return sum(abs(x) ** order, axes, keepdims) ** (1 / order)


def _two_norm(x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """The Euclidean norm as one op."""
    xp = xp_of(x._data)
    out = xp.sqrt((x._data * x._data).sum(axis=axes, keepdims=keepdims))

    def backward(g: Tensor, out: Tensor) -> tuple:
        safe = where(out._data > 0, out, as_tensor(1.0, out))
        return (_expand_reduced(g / safe, x.shape, axes, keepdims) * x,)

    return record_op("norm", out, (x,), backward)


def softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """e^x / Σ e^x along `axis` (the last by default), shifted by the max for stability."""
    x = _float_input("softmax", x)
    xp = xp_of(x._data)
    axis = _one_axis(_axis_or_last(axis, dim), x.ndim, "softmax")
    if axis is None:
        return _on_one_axis(softmax, x, axis)
    shifted = xp.exp(x._data - x._data.max(axis=axis, keepdims=True)) if x.size else x._data
    out = shifted / shifted.sum(axis=axis, keepdims=True)
    return record_op("softmax", out, (x,), lambda g, out: (out * (g - sum(g * out, axis, keepdims=True)),))


def log_softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """x - logsumexp(x) along `axis`, stable for logits of any magnitude."""
    x = _float_input("log_softmax", x)
    xp = xp_of(x._data)
    axis = _one_axis(_axis_or_last(axis, dim), x.ndim, "log_softmax")
    if axis is None:
        return _on_one_axis(log_softmax, x, axis)
    shifted = x._data - x._data.max(axis=axis, keepdims=True) if x.size else x._data
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
        out = x._data.reshape(shape)
    except ValueError:
        message = f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) into {shape}"
        raise ShapeError(message) from None
    shape = x.shape  # (the rule reads the shape only: the tape does not keep x)
    return record_op("reshape", out, (x,), lambda g, _: (reshape(g, shape),))


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
    order = [a % (x.ndim or 1) for a in axes]
    if sorted(order) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    back = [0] * x.ndim  # axis order[i] of x became axis i of out, so g's axis i goes back to axis order[i]
    for i, a in enumerate(order):
        back[a] = i
    inverse = tuple(back)
    return record_op("permute", x._data.transpose(axes), (x,), lambda g, _: (permute(g, inverse),))


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
    axes = _norm_axes((axis1, axis2), x.ndim, "swapaxes")  # (sorted: a swap does not care)
    if len(axes) < 2:  # the same axis twice, or a 0-d tensor
        return x
    a, b = axes
    return record_op("swapaxes", x._data.swapaxes(a, b), (x,), lambda g, _: (swapaxes(g, a, b),))


def squeeze(x: Any, axis: Axis = None, *, dim: Axis = None) -> Tensor:
    """Drop size-1 axes (all of them, or those given)."""
    x = as_tensor(x, op="squeeze")
    axis = _axis(axis, dim, "squeeze")
    axes = tuple(i for i, n in enumerate(x.shape) if n == 1) if axis is None else _norm_axes(axis, x.ndim, "squeeze")
    axes = tuple(a for a in axes if x.shape[a] == 1)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Any, axis: int, *, dim: int | None = None) -> Tensor:
    """Insert a size-1 axis at `axis` (np.expand_dims)."""
    x = as_tensor(x, op="unsqueeze")
    axis = _axis(axis, dim, "unsqueeze")
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
        out = xp_of(x._data).broadcast_to(x._data, shape)
    except ValueError:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
    return record_op("broadcast_to", out, (x,), lambda g, _: (g,))  # (the engine sums g back to x's shape)


def expand(x: Any, *shape: Any) -> Tensor:
    """torch's expand: broadcast_to where -1 keeps an axis as it is."""
    x = as_tensor(x, op="expand")
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    return broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))


def concat(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors along an existing axis."""
    tensors = [as_tensor(t, op="concat") for t in tensors]
    if not tensors:
        raise ShapeError("concat: needs at least one tensor")
    for t in tensors[1:]:
        _pair("concat", tensors[0], t)
    if tensors[0].ndim == 0:
        raise ShapeError("concat: 0-d tensors have no axis to join along; use stack")
    axis = _one_axis(_axis(axis, dim, "concat") or 0, tensors[0].ndim, "concat")
    try:
        out = xp_of(tensors[0]._data).concatenate([t._data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ShapeError(f"concat: shapes {shapes} differ outside axis {axis}") from None
    bounds = np.cumsum([t.shape[axis] for t in tensors])
    needs_grad = [t.requires_grad for t in tensors]  # (the rule reads no operand: the tape keeps none)

    def backward(g: Tensor, _: Tensor) -> tuple:
        starts = [0, *bounds[:-1]]
        return tuple(_slice_axis(g, axis, int(s), int(e)) if needed else None
                     for needed, s, e in zip(needs_grad, starts, bounds))

    return record_op("concat", out, tuple(tensors), backward)


cat = concat


def _slice_axis(x: Tensor, axis: int, start: int, stop: int) -> Tensor:
    """x[..., start:stop, ...] along one axis."""
    return x[(slice(None),) * axis + (slice(start, stop),)]


def stack(tensors: Sequence[Any], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = [as_tensor(t, op="stack") for t in tensors]
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    axis = _axis(axis, dim, "stack") or 0
    return concat([unsqueeze(t, axis) for t in tensors], axis=axis)


def split(
    x: Any, split_size_or_sections: int | Sequence[int], axis: int | None = None, *, dim: int | None = None
) -> list[Tensor]:
    """torch.split: pieces of `split_size` along axis (an int), or of the listed sizes."""
    x = as_tensor(x, op="split")
    if x.ndim == 0:
        raise ShapeError("split: a 0-d tensor has no axis to split")
    axis = _one_axis(_axis(axis, dim, "split") or 0, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise ShapeError(f"split: split_size must be positive, got {size}")
        sizes = [size if start + size <= n else n - start for start in range(0, n, size)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if int(np.sum(sizes)) != n:
            raise ShapeError(f"split: sizes {sizes} do not add up to {n}, the length of axis {axis} of {x.shape}")
    bounds = np.cumsum([0, *sizes])
    return [_slice_axis(x, axis, int(start), int(stop)) for start, stop in itertools.pairwise(bounds)]


def chunk(x: Any, chunks: int, axis: int | None = None, *, dim: int | None = None) -> list[Tensor]:
    """Split into `chunks` nearly equal pieces (the last may be smaller), as torch.chunk."""
    x = as_tensor(x, op="chunk")
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
    if x.ndim == 0:
        raise ShapeError("chunk: a 0-d tensor has no axis to split")
    axis = _one_axis(_axis(axis, dim, "chunk") or 0, x.ndim, "chunk")
    return split(x, -(-x.shape[axis] // chunks) or 1, axis)


def pad(x: Any, pad_width: Any, value: float = 0.0) -> Tensor:
    """Constant padding with NumPy's pad_width ((before, after) per axis, or one pair/int for all)."""
    x = as_tensor(x, op="pad")
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (x.ndim, 2))
    if (widths < 0).any():
        raise ShapeError(f"pad: negative pad widths {widths.tolist()} (crop with indexing instead)")
    out = xp_of(x._data).pad(x._data, [tuple(w) for w in widths.tolist()], constant_values=value)
    inner = tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, x.shape))
    return record_op("pad", out, (x,), lambda g, _: (g[inner],))


def flip(x: Any, axis: Axis = None, *, dim: Axis = None, dims: Axis = None) -> Tensor:
    """Reverse the order of elements along `axis` (torch: `dims`; all axes by default)."""
    x = as_tensor(x, op="flip")
    axes = _norm_axes(_axis(_axis(axis, dim, "flip"), dims, "flip"), x.ndim, "flip")
    out = xp_of(x._data).flip(x._data, axis=axes)
    return record_op("flip", out, (x,), lambda g, _: (flip(g, axes),))


def repeat_interleave(x: Any, repeats: int, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Each element `repeats` times along axis (flattened when axis is None): torch.repeat_interleave, np.repeat."""
    x = as_tensor(x, op="repeat_interleave")
    axis = _axis(axis, dim, "repeat_interleave")
    if axis is None or x.ndim == 0:
        return repeat_interleave(reshape(x, (-1,)), repeats, 0)
    axis = _one_axis(axis, x.ndim, "repeat_interleave")
    out = xp_of(x._data).repeat(x._data, repeats, axis=axis)
    split_shape = x.shape[:axis] + (x.shape[axis], repeats) + x.shape[axis + 1 :]
    return record_op("repeat_interleave", out, (x,), lambda g, _: (sum(reshape(g, split_shape), axis + 1),))


def repeat(x: Any, *sizes: Any, axis: Any = None) -> Tensor:
    """PyTorch's Tensor.repeat: the whole tensor repeated `sizes[i]` times along axis i (NumPy's tile).

    *NumPy's np.repeat (each element repeated) is `repeat_interleave`*; passing `axis=` here says so.
    """
    sizes = _shape_arg(sizes)
    x = as_tensor(x, op="repeat")
    if axis is not None:
        raise TypeError("repeat: tinyzoo's repeat is PyTorch's (tile the tensor); for NumPy's np.repeat(x, n, axis) "
                        "use tz.repeat_interleave(x, n, axis)")  # fmt: skip
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: {len(sizes)} repeat counts for a tensor with {x.ndim} dimensions; give at least one "
                         "per dimension (torch's rule)")  # fmt: skip
    return tile(x, sizes)


def tile(x: Any, reps: int | Sequence[int]) -> Tensor:
    """NumPy's tile (torch's Tensor.repeat): the whole tensor repeated along each axis."""
    x = as_tensor(x, op="tile")
    reps = (reps,) if isinstance(reps, int) else tuple(reps)
    ndim = len(reps) if len(reps) > x.ndim else x.ndim
    reps = (1,) * (ndim - len(reps)) + reps
    base = reshape(x, (1,) * (ndim - x.ndim) + x.shape)
    out = xp_of(x._data).tile(base._data, reps)
    interleaved = tuple(v for r, n in zip(reps, base.shape) for v in (r, n))
    rep_axes = tuple(range(0, 2 * ndim, 2))
    shape = x.shape
    return record_op("tile", out, (x,), lambda g, _: (reshape(sum(reshape(g, interleaved), rep_axes), shape),))


# =================================================================================================
# Indexing
# =================================================================================================
def _has_advanced(index: Any) -> bool:
    """True when an index holds integer arrays (which may repeat positions)."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if hasattr(part, "dtype") and part.dtype.kind in "iu":
            return True
    return False


def getitem(x: Any, index: Any) -> Tensor:
    """x[index]: ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    x = as_tensor(x, op="getitem")
    index = tensor_index(index)
    try:
        out = x._data[index]
    except IndexError as exc:
        raise index_error("getitem", x.shape, exc) from None
    advanced, shape = _has_advanced(index), x.shape

    def backward(g: Tensor, _: Tensor) -> tuple:
        if is_grad_enabled():  # create_graph: the gradient must itself be differentiable
            return (_index_put_zeros(g, shape, index),)
        return (IndexedGrad(g._data, shape, index, advanced),)

    return record_op("getitem", out, (x,), backward)


def _index_put_zeros(values: Tensor, shape: tuple[int, ...], index: Any) -> Tensor:
    """zeros(shape) with `values` added at `index` (repeated positions add up): getitem's backward."""
    xp = xp_of(values._data)
    out = xp.zeros(shape, dtype=values.dtype)
    if _has_advanced(index):
        _scatter_add_arrays(out, index, values._data)
    else:
        out[index] = values._data
    return record_op("index_put", out, (values,), lambda g, _: (g[index],))


def take_along_axis(x: Any, indices: Any, axis: int | None) -> Tensor:
    """NumPy's take_along_axis: x's entries along `axis` at `indices`, the other axes broadcast together
    (axis=None: of the flattened x)."""
    x = as_tensor(x, op="take_along_axis")
    index = indices._data if isinstance(indices, Tensor) else as_array(indices)
    if axis is None:
        return take_along_axis(reshape(x, (-1,)), index.reshape(-1) if index.ndim != 1 else index, 0)
    if index.ndim != x.ndim:
        raise ShapeError(f"take_along_axis: indices have {index.ndim} axes but x has {x.ndim} (shape {x.shape})")
    axis = _one_axis(axis, x.ndim, "take_along_axis")
    if axis is None:
        return gather(x, 0, index)
    try:  # every axis but `axis` broadcasts between x and the indices
        off_axis = [tuple(1 if i == axis else n for i, n in enumerate(s)) for s in (x.shape, index.shape)]
        others = np.broadcast_shapes(*off_axis)
    except ValueError:
        raise ShapeError(f"take_along_axis: indices of shape {index.shape} do not broadcast against x of shape "
                         f"{x.shape} outside axis {axis}") from None  # fmt: skip
    fit = lambda shape, length: tuple(length if i == axis else n for i, n in enumerate(shape))  # noqa: E731
    xp = xp_of(x._data)
    index = xp.broadcast_to(index, fit(others, index.shape[axis]))
    return gather(broadcast_to(x, fit(others, x.shape[axis])), axis, index)


def _checked_index(op: str, index: Any, length: int, where: str) -> Any:
    """An integer index array, with every entry checked to lie in [-length, length) (on a GPU without
    waiting for it: a bad index is reported at the next copy to the host, see backend.check_index_range)."""
    index = index._data if isinstance(index, Tensor) else as_array(index)
    if index.dtype.kind not in "iu":
        raise DTypeError(f"{op}: index must hold integers, got dtype {index.dtype}")
    check_index_range(index, -length, length, f"{op}: index values {{span}} but {where} has length {length}")
    return index


def _positions(index: Any, axis: int) -> tuple:
    """The coordinates torch.gather/scatter visit: index's own positions, with `index` itself along `axis`."""
    positions = list(xp_of(index).indices(index.shape, sparse=True))
    positions[axis] = index
    return tuple(positions)


def _fits_inside(op: str, index: Any, shape: tuple[int, ...], axis: int, what: str, along_axis: bool = False) -> None:
    """torch's rule: the index is no larger than `shape` on every axis (but `axis`, unless along_axis)."""
    if index.ndim != len(shape):
        raise ShapeError(f"{op}: index has {index.ndim} axes but {what} has {len(shape)} (shape {shape})")
    for i, (m, n) in enumerate(zip(index.shape, shape)):
        if m > n and (i != axis or along_axis):
            raise ShapeError(f"{op}: index of shape {index.shape} is larger than {what} of shape {shape} on axis {i}")


def gather(x: Any, axis: int, index: Any, *, dim: int | None = None) -> Tensor:
    """torch.gather: out[i][j] = x[index[i][j]][j] for axis 0; out has index's shape, which may be
    smaller than x's on the other axes."""
    x = as_tensor(x, op="gather")
    if x.ndim == 0:
        return reshape(gather(reshape(x, (1,)), 0, _as_vector_index(index)), ())
    axis = _one_axis(_axis(axis, dim, "gather"), x.ndim, "gather")
    index = _checked_index("gather", index, x.shape[axis], f"axis {axis} of {x.shape}")
    _fits_inside("gather", index, x.shape, axis, "x")
    positions = _positions(index, axis)
    out, shape = x._data[positions], x.shape
    return record_op("gather", out, (x,), lambda g, _: (_scatter_into_zeros(g, shape, axis, index),))


def _scatter_into_zeros(g: Tensor, shape: tuple[int, ...], axis: int, index: Any) -> Tensor:
    """zeros(shape) with g added at the gathered positions (gather's backward; allocated only when run)."""
    return scatter_add(wrap(xp_of(g._data).zeros(shape, dtype=g.dtype)), axis, index, g)


def _as_vector_index(index: Any) -> Any:
    """A 0-d index as a 1-element vector (for the ops that see a 0-d tensor as a vector of one)."""
    array = index._data if isinstance(index, Tensor) else as_array(index)
    return array.reshape(1) if array.ndim == 0 else array


def scatter_add(x: Any, axis: int, index: Any, src: Any, *, dim: int | None = None) -> Tensor:
    """torch.scatter_add: out = x, then out[index[i][j]][j] += src[i][j] for axis 0; only src's first
    index.shape entries are used (index may be smaller than src, and than x off `axis`)."""
    x, src = _pair("scatter_add", x, src)
    if x.ndim == 0:
        vector_src = reshape(src, (1,)) if src.ndim == 0 else src
        return reshape(scatter_add(reshape(x, (1,)), 0, _as_vector_index(index), vector_src), ())
    axis = _one_axis(_axis(axis, dim, "scatter_add"), x.ndim, "scatter_add")
    index = _checked_index("scatter_add", index, x.shape[axis], f"axis {axis} of {x.shape}")
    _fits_inside("scatter_add", index, x.shape, axis, "x")
    _fits_inside("scatter_add", index, src.shape, axis, "src", along_axis=True)
    used = tuple(slice(0, n) for n in index.shape)
    out = x._data.copy()
    _scatter_add_arrays(out, _positions(index, axis), src._data[used].astype(out.dtype, copy=False))
    unused = [(0, n - m) for n, m in zip(src.shape, index.shape)]
    src_needs_grad = src.requires_grad

    def backward(g: Tensor, _: Tensor) -> tuple:
        return g, pad(gather(g, axis, index), unused) if src_needs_grad else None

    return record_op("scatter_add", out, (x, src), backward)


def index_select(x: Any, axis: int, index: Any, *, dim: int | None = None) -> Tensor:
    """torch.index_select: the slices of x at `index` (1-D, or 0-d as one entry) along `axis`."""
    x = as_tensor(x, op="index_select")
    if x.ndim == 0:
        vector_index = _as_vector_index(index)
        if vector_index.shape != (1,):
            raise ShapeError(f"index_select: a 0-d x takes one index, got index of shape {vector_index.shape}")
        return reshape(index_select(reshape(x, (1,)), 0, vector_index), ())
    axis = _one_axis(_axis(axis, dim, "index_select"), x.ndim, "index_select")
    index = _as_vector_index(_checked_index("index_select", index, x.shape[axis], f"axis {axis} of {x.shape}"))
    if index.ndim != 1:
        raise ShapeError(f"index_select: index must be 0-d or 1-D, got shape {index.shape}")
    out, shape = xp_of(x._data).take(x._data, index, axis=axis), x.shape

    def backward(g: Tensor, _: Tensor) -> tuple:
        return (index_add(wrap(xp_of(g._data).zeros(shape, dtype=g.dtype)), axis, index, g),)

    return record_op("index_select", out, (x,), backward)


def index_add(x: Any, axis: int, index: Any, source: Any, *, dim: int | None = None, alpha: float = 1) -> Tensor:
    """torch.index_add: out = x, then out[..., index[i], ...] += alpha * source[..., i, ...] along `axis`."""
    x, source = _pair("index_add", x, source)
    if alpha != 1:
        source = source * alpha
    if x.ndim == 0:
        return reshape(index_add(reshape(x, (1,)), 0, _as_vector_index(index), reshape(source, (-1,))), ())
    axis = _one_axis(_axis(axis, dim, "index_add"), x.ndim, "index_add")
    index = _as_vector_index(_checked_index("index_add", index, x.shape[axis], f"axis {axis} of {x.shape}"))
    expected = x.shape[:axis] + (index.shape[0],) + x.shape[axis + 1 :]
    if index.ndim != 1 or source.shape != expected:
        raise ShapeError(f"index_add: source has shape {source.shape}, expected {expected} for index {index.shape}")
    out = x._data.copy()
    _scatter_add_arrays(out, (slice(None),) * axis + (index,), source._data.astype(out.dtype, copy=False))
    source_needs_grad = source.requires_grad

    def backward(g: Tensor, _: Tensor) -> tuple:
        return g, index_select(g, axis, index) if source_needs_grad else None

    return record_op("index_add", out, (x, source), backward)


# =================================================================================================
# Linear algebra
# =================================================================================================
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules: batched, broadcasting, 1-D operands promoted and squeezed."""
    a, b = _pair("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands need at least one axis, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1 and b.ndim == 1:  # a dot product
        return reshape(matmul(reshape(a, (1, a.shape[0])), reshape(b, (b.shape[0], 1))), ())
    if a.ndim == 1:
        return reshape(matmul(reshape(a, (1, a.shape[0])), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, (b.shape[0], 1))), a.shape[:-1])
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit ({a.shape[-1]} columns vs {b.shape[-2]} rows)"
        )
    if b.ndim == 2 and a.ndim > 2:  # [..., n, k] @ [k, m] as one 2-D product: BLAS is far faster than a batch
        rows = math.prod(a.shape[:-1])
        return reshape(matmul(reshape(a, (rows, a.shape[-1])), b), (*a.shape[:-1], b.shape[-1]))
    a, b, out = _binary("matmul (batch axes)", a, b, operator.matmul)

    def backward(g: Tensor, _: Tensor) -> tuple:
        return (
            g @ swapaxes(b, -1, -2) if a.requires_grad else None,
            swapaxes(a, -1, -2) @ g if b.requires_grad else None,
        )

    return record_op("matmul", out, (a, b), backward)


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of two vectors."""
    a, b = _pair("outer", a, b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def diagonal(x: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of x over axes dim1 and dim2 (offset above it when positive), as a new last axis
    (torch.diagonal, np.diagonal)."""
    x = as_tensor(x, op="diagonal")
    if x.ndim < 2:
        raise ShapeError(f"diagonal: needs at least 2 axes, got shape {x.shape}")
    axes = _norm_axes((dim1, dim2), x.ndim, "diagonal")
    if len(axes) != 2:
        raise ShapeError(f"diagonal: dim1 and dim2 must differ, got {dim1} and {dim2}")
    dim1, dim2 = dim1 % x.ndim, dim2 % x.ndim
    out, shape = xp_of(x._data).diagonal(x._data, offset, dim1, dim2).copy(), x.shape
    return record_op("diagonal", out, (x,), lambda g, _: (_diagonal_put(g, shape, offset, dim1, dim2),))


def _diagonal_put(g: Tensor, shape: tuple[int, ...], offset: int, dim1: int, dim2: int) -> Tensor:
    """zeros(shape) with g on the diagonal: diagonal's backward (whose own backward is diagonal)."""
    xp = xp_of(g._data)
    out = xp.zeros(shape, dtype=g.dtype)
    length = g.shape[-1]
    rows, cols = xp.arange(length) + (-offset if offset < 0 else 0), xp.arange(length) + (offset if offset > 0 else 0)
    moved = xp.moveaxis(out, (dim1, dim2), (-2, -1))  # a view: writing into it writes into out
    moved[..., rows, cols] = g._data
    return record_op("diagonal_put", out, (g,), lambda gg, _: (diagonal(gg, offset, dim1, dim2),))


def _expand_ellipsis(terms: list[str], tensors: list[Tensor], named: set[str]) -> tuple[list[str], str]:
    """Replace each "..." by letters of its own, aligned from the right across operands and broadcast
    to one shape (a size-1 axis stretched as NumPy's einsum does); returns the terms and those letters."""
    def under_ellipsis(term: str, t: Tensor) -> tuple[int, ...]:
        start = term.index("...")
        return t.shape[start : start + t.ndim - len(term) + 3]

    parts = [under_ellipsis(term, t) for term, t in zip(terms, tensors) if "..." in term]
    if not parts:
        return terms, ""
    try:
        common = np.broadcast_shapes(*parts)
    except ValueError:
        raise ShapeError(f"einsum: the axes under '...' ({parts}) do not broadcast together") from None
    letters = "".join(c for c in string.ascii_letters if c not in named)[: len(common)]
    for k, (term, t) in enumerate(zip(terms, tensors)):
        if "..." in term:
            own = t.ndim - len(term.replace("...", ""))
            start = term.index("...")
            shape = t.shape[:start] + common + t.shape[start + own :]
            tensors[k] = broadcast_to(reshape(t, t.shape[:start] + (1,) * (len(common) - own) + t.shape[start:]), shape)
            terms[k] = term.replace("...", letters)
    return terms, letters


def _take_diagonals(term: str, t: Tensor) -> tuple[str, Tensor]:
    """A term with a repeated letter ("ii", "bjj") made distinct by taking the diagonal it names."""
    while len(set(term)) != len(term):
        letter = next(c for c in term if term.count(c) > 1)
        first, second = term.index(letter), term.index(letter, term.index(letter) + 1)
        if t.shape[first] != t.shape[second]:
            raise ShapeError(f"einsum: letter {letter!r} labels axes of lengths {t.shape[first]} and {t.shape[second]}")
        t = diagonal(t, 0, first, second)
        term = term[:first] + term[first + 1 : second] + term[second + 1 :] + letter
    return term, t


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation as NumPy's and PyTorch's: "bij,bjk->bik", "...ij,...jk", "ii->i" (diagonals),
    "ii" (trace); implicit output (no "->") in alphabetical order."""
    tensors = [as_tensor(o, op="einsum") for o in (operands[0] if len(operands) == 1 and
               isinstance(operands[0], (list, tuple)) else operands)]  # fmt: skip
    for t in tensors[1:]:
        _pair("einsum", tensors[0], t)
    spec = subscripts.replace(" ", "")
    lhs, arrow, rhs = spec.partition("->")
    terms = lhs.split(",")
    named = set(spec) - set(".,->")
    if len(terms) != len(tensors) or not named <= set(string.ascii_letters):
        raise ShapeError(f"einsum: {subscripts!r} must name {len(tensors)} operand(s) with letters, ',', '->', '...'")
    for term, t in zip(terms, tensors):
        if len(term.replace("...", "")) > t.ndim or ("..." not in term and len(term) != t.ndim):
            raise ShapeError(f"einsum: {term!r} does not fit an operand of shape {t.shape}")
    terms, broadcast_letters = _expand_ellipsis(terms, tensors, named)
    if arrow:
        output = rhs.replace("...", broadcast_letters)
    else:
        letters = "".join(terms)
        output = broadcast_letters + "".join(sorted(c for c in set(letters) - set(broadcast_letters)
                                                    if letters.count(c) == 1))  # fmt: skip
    if len(set(output)) != len(output) or not set(output) <= set("".join(terms)):
        raise ShapeError(f"einsum: output {output!r} of {subscripts!r} repeats a letter or names one no operand has")
    for k in range(len(terms)):
        terms[k], tensors[k] = _take_diagonals(terms[k], tensors[k])
    return _einsum_distinct(terms, output, tensors)


def _einsum_distinct(inputs: list[str], output: str, tensors: list[Tensor]) -> Tensor:
    """einsum where every letter appears at most once per term (what `einsum` reduces every spec to)."""
    full = ",".join(inputs) + "->" + output
    try:
        out = xp_of(tensors[0]._data).einsum(full, *[t._data for t in tensors], optimize=len(tensors) > 1)
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
            grad = _einsum_distinct([output, *others], kept, [g, *other_tensors])
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
        return Tensor(getattr(a._data, f"__{op}__")(b._data))
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


# =================================================================================================
# Writing into a tensor: item assignment and in-place ops
# =================================================================================================
def index_put(x: Any, index: Any, values: Any) -> Tensor:
    """A copy of x with `values` written at x[index] (values broadcast to the indexed shape);
    differentiable for both, as PyTorch's index_put. `x[index] = values` does this in place."""
    x, values = _pair("index_put", x, values)
    array_index = tensor_index(index)
    out = x._data.copy()
    try:
        out[array_index] = values._data
    except IndexError as exc:
        raise index_error("index_put", x.shape, exc) from None
    except ValueError:
        raise ShapeError(f"index_put: values of shape {values.shape} do not fit x{_index_text(index)} "
                         f"of shape {x._data[array_index].shape}") from None  # fmt: skip

    x_needs_grad, values_needs_grad = x.requires_grad, values.requires_grad

    def backward(g: Tensor, _: Tensor) -> tuple:
        return index_put(g, index, 0.0) if x_needs_grad else None, g[index] if values_needs_grad else None

    return record_op("index_put", out, (x, values), backward)


def _index_text(index: Any) -> str:
    return f"[{index!r}]" if not isinstance(index, Tensor) else f"[tensor of shape {index.shape}]"


def _inplace(op: str, x: Tensor, compute: Callable[..., Tensor], *others: Any) -> Tensor:
    """x takes the value compute(x, *others), in place: the one frame of every `_` method and `x op= y`.

    Outside the tape (no grad mode, or nothing involved requires grad) the result is written into x's
    own array, so views and `x.numpy()` see it. On the tape, x's old value moves, with its history, to
    a fresh tensor that `compute` reads, and x becomes the result — so the backward of every earlier op
    still sees the values it saw. Either way x's version moves on, and a backward through an op that
    read x before the change refuses to run (see engine._check_unchanged).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: in-place ops need a tinyzoo Tensor, got {type(x).__name__}")
    recording = is_grad_enabled() and (x.requires_grad or _some_requires_grad(others))
    if recording and x.requires_grad and x._node is None:
        raise GraphError(
            f"{op}: x (shape {x.shape}) is a leaf tensor that requires grad, and changing it in place would "
            "lose its gradient; do the update inside `with tz.no_grad():` (as optimizers do)"
        )
    if not recording:
        with no_grad():
            result = compute(x, *others)
        _check_fits(op, x, result)
        try:
            x._data[...] = result._data
        except ValueError as exc:  # a read-only array: a broadcast view, a cached constant
            raise GraphError(f"{op}: x (shape {x.shape}) is a read-only view and cannot be written to; "
                             f"change a copy (x.clone()): {exc}") from None  # fmt: skip
        x.bump_version()
        return x
    change = next_sequence()  # ops recorded before this number read the old x; compute's own ops come after it
    old = wrap(x._data)
    old._node, old.requires_grad, old._version = x._node, x.requires_grad, x._version
    result = compute(old, *(old if o is x else o for o in others))  # (x.mul_(x) reads the old x twice)
    _check_fits(op, x, result)
    if result.dtype != x.dtype:
        result = astype(result, x.dtype)
    array = result._data if getattr(result._data.flags, "writeable", True) else result._data.copy()
    x._data, x._node, x.requires_grad = array, result._node, result.requires_grad
    if result._node is not None:  # ops recorded before this one that read x must not run backward any more
        x._version = MODE.last_inplace = change
    return x


def _some_requires_grad(values: Sequence[Any]) -> bool:
    """True when one of `values` is a tensor that requires grad."""
    for value in values:
        if isinstance(value, Tensor) and value.requires_grad:
            return True
    return False


def _check_fits(op: str, x: Tensor, result: Tensor) -> None:
    """An in-place result must keep x's shape, and may not need a higher dtype category (as PyTorch)."""
    if result.shape != x.shape:
        raise ShapeError(f"{op}: the result has shape {result.shape} but x has shape {x.shape} (in-place ops "
                         "cannot broadcast x itself)")  # fmt: skip
    if dtypes.category(result.dtype) > dtypes.category(x.dtype):
        raise DTypeError(f"{op}: the result is {result.dtype} but x is {x.dtype}; it cannot be stored in x in "
                         f"place (use x = x.{op.strip('_')}(...) for a new tensor)")  # fmt: skip


def setitem(x: Tensor, index: Any, values: Any) -> None:
    """x[index] = values, in place (ints, slices, None, Ellipsis, integer arrays, boolean masks)."""
    _inplace("setitem", x, lambda old, v: index_put(old, index, v), values)


def add_(x: Tensor, other: Any, *, alpha: float = 1) -> Tensor:
    """x += alpha * other, in place."""
    return _inplace("add_", x, lambda old, o: add(old, o, alpha=alpha), other)


def sub_(x: Tensor, other: Any, *, alpha: float = 1) -> Tensor:
    """x -= alpha * other, in place."""
    return _inplace("sub_", x, lambda old, o: sub(old, o, alpha=alpha), other)


def mul_(x: Tensor, other: Any) -> Tensor:
    """x *= other, in place."""
    return _inplace("mul_", x, lambda old, o: mul(old, o), other)


def div_(x: Tensor, other: Any) -> Tensor:
    """x /= other, in place."""
    return _inplace("div_", x, lambda old, o: div(old, o), other)


def pow_(x: Tensor, other: Any) -> Tensor:
    """x **= other, in place."""
    return _inplace("pow_", x, lambda old, o: pow(old, o), other)


def clamp_(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """x limited to [min, max], in place."""
    return _inplace("clamp_", x, lambda old, low, high: clamp(old, low, high), min, max)


def masked_fill_(x: Tensor, mask: Any, value: Any) -> Tensor:
    """x with `value` where mask is true, in place."""
    return _inplace("masked_fill_", x, lambda old, v: masked_fill(old, mask, v), value)


def _filled_like(old: Tensor, value: Any) -> Tensor:
    """`value` (a number or a tensor) broadcast to old's shape in old's dtype: what fill_ and copy_ write."""
    return broadcast_to(astype(as_tensor(value, old, op="fill_/copy_"), old.dtype), old.shape)


def fill_(x: Tensor, value: Any) -> Tensor:
    """Every element of x set to `value` (a number or a 0-d tensor), in place."""
    return _inplace("fill_", x, _filled_like, value)


def zero_(x: Tensor) -> Tensor:
    """Every element of x set to 0, in place."""
    return fill_(x, 0)


def copy_(x: Tensor, src: Any) -> Tensor:
    """x's values replaced by src's (broadcast to x's shape), in place; differentiable for src."""
    return _inplace("copy_", x, _filled_like, src)

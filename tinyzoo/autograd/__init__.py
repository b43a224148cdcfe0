"""tinyzoo's autograd: the Tensor, the tape, the op set and gradient checking.

The ops live in `ops.py` as plain functions; this module also binds them to `Tensor` as methods and
operators, so `x.exp()`, `x @ w` and `tinyzoo.exp(x)` are the same op.
"""

from __future__ import annotations

from typing import Any

from tinyzoo import rng
from tinyzoo.autograd import creation, ops
from tinyzoo.autograd.creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from tinyzoo.autograd.engine import backward, grad
from tinyzoo.autograd.gradcheck import gradcheck, gradgradcheck
from tinyzoo.autograd.tensor import (
    Tensor,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    record_op,
)

__all__ = [
    "Tensor",
    "arange",
    "backward",
    "detect_anomaly",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "linspace",
    "multinomial",
    "no_grad",
    "normal",
    "ones",
    "ones_like",
    "ops",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "record_op",
    "tensor",
    "zeros",
    "zeros_like",
]


def _reflected(op: Any) -> Any:
    return lambda self, other: op(other, self)


def _new(make: Any) -> Any:
    """A Tensor.new_* method: make(shape, ...) with the tensor's dtype and device unless given."""

    def method(self: Tensor, *shape: Any, dtype: Any = None, requires_grad: bool = False, **options: Any) -> Tensor:
        dtype = self.dtype if dtype is None else dtype
        return make(creation._shape(shape), dtype=dtype, device=self.device, requires_grad=requires_grad, **options)

    return method


def _random_fill(draw: Any) -> Any:
    """A Tensor.uniform_/normal_ method: fill the tensor in place with draws (outside the tape)."""

    def method(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator: Any = None) -> Tensor:
        draws = draw(rng.generator(self.device, generator), self.shape, a, b)
        with no_grad():
            return ops.copy_(self, Tensor(draws.astype(self.dtype, copy=False)))

    return method


def _install_tensor_methods() -> None:
    """Bind the ops to Tensor as methods and Python operators (PyTorch's Tensor surface)."""
    operators = {
        "__add__": ops.add, "__radd__": _reflected(ops.add),
        "__sub__": ops.sub, "__rsub__": _reflected(ops.sub),
        "__mul__": ops.mul, "__rmul__": _reflected(ops.mul),
        "__truediv__": ops.div, "__rtruediv__": _reflected(ops.div),
        "__pow__": ops.pow, "__rpow__": _reflected(ops.pow),
        "__matmul__": ops.matmul, "__rmatmul__": _reflected(ops.matmul),
        "__neg__": ops.neg, "__abs__": ops.abs, "__getitem__": ops.getitem, "__setitem__": ops.setitem,
        "__iadd__": ops.add_, "__isub__": ops.sub_, "__imul__": ops.mul_, "__itruediv__": ops.div_,
        "__ipow__": ops.pow_,
        "__eq__": ops.eq, "__ne__": ops.ne, "__lt__": ops.lt,
        "__le__": ops.le, "__gt__": ops.gt, "__ge__": ops.ge,
    }  # fmt: skip
    for name, fn in operators.items():
        setattr(Tensor, name, fn)
    methods = [
        "exp", "log", "log1p", "log2", "log10", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "elu",
        "gelu", "softplus", "clamp", "clip", "maximum", "minimum", "where", "masked_fill", "astype", "to", "abs",
        "pow", "neg", "add", "sub", "mul", "div", "matmul", "clone", "contiguous", "equal", "allclose",
        "sum", "mean", "max", "min", "amax", "amin", "var", "std", "logsumexp", "prod", "cumsum", "cumprod",
        "argmax", "argmin", "all", "any", "norm", "softmax", "log_softmax",
        "reshape", "view", "flatten", "permute", "transpose", "swapaxes", "squeeze", "unsqueeze", "expand",
        "broadcast_to", "split", "chunk", "flip", "repeat", "repeat_interleave", "tile", "diagonal",
        "gather", "scatter_add", "index_select", "index_add", "take_along_axis", "index_put",
        "add_", "sub_", "mul_", "div_", "pow_", "clamp_", "masked_fill_", "fill_", "zero_", "copy_",
    ]  # fmt: skip
    for name in methods:
        setattr(Tensor, name, getattr(ops, name))
    Tensor.T = property(lambda self: ops.transpose(self), doc="All axes reversed.")
    Tensor.t = lambda self: ops.transpose(self)
    for name, dtype in [("float", "float32"), ("double", "float64"), ("half", "float16"), ("long", "int64"),
                        ("int", "int32"), ("bool", "bool")]:  # fmt: skip
        setattr(Tensor, name, lambda self, dtype=dtype: ops.astype(self, dtype))
    Tensor.type_as = lambda self, other: ops.astype(self, other.dtype)
    Tensor.view_as = lambda self, other: ops.reshape(self, other.shape)
    Tensor.reshape_as = Tensor.view_as
    Tensor.expand_as = lambda self, other: ops.broadcast_to(self, other.shape)
    Tensor.cpu = lambda self: ops.to(self, "cpu")
    Tensor.cuda = lambda self, index=0: ops.to(self, f"cuda:{index}")
    Tensor.new_zeros = _new(creation.zeros)
    Tensor.new_ones = _new(creation.ones)
    Tensor.new_empty = _new(creation.empty)
    Tensor.new_full = lambda self, shape, value, dtype=None: creation.full(
        shape, value, dtype=self.dtype if dtype is None else dtype, device=self.device)
    Tensor.new_tensor = lambda self, data, dtype=None: creation.tensor(
        data, dtype=self.dtype if dtype is None else dtype, device=self.device)
    Tensor.uniform_ = _random_fill(lambda stream, shape, low, high: stream.uniform(low, high, shape))
    Tensor.normal_ = _random_fill(lambda stream, shape, mean, std: stream.normal(mean, std, shape))


_install_tensor_methods()

"""tinyzoo's autograd: the Tensor, the tape, the op set and gradient checking.

The ops live in `ops.py` as plain functions; this module also binds them to `Tensor` as methods and
operators, so `x.exp()`, `x @ w` and `tinyzoo.exp(x)` are the same op.
"""

from __future__ import annotations

from typing import Any

from tinyzoo.autograd import ops
from tinyzoo.autograd.creation import (
    arange,
    eye,
    full,
    ones,
    ones_like,
    rand,
    randint,
    randn,
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
    "enable_grad",
    "eye",
    "full",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "no_grad",
    "ones",
    "ones_like",
    "ops",
    "rand",
    "randint",
    "randn",
    "record_op",
    "tensor",
    "zeros",
    "zeros_like",
]


def _reflected(op: Any) -> Any:
    return lambda self, other: op(other, self)


def _install_tensor_methods() -> None:
    """Bind the ops to Tensor as methods and Python operators."""
    operators = {
        "__add__": ops.add, "__radd__": _reflected(ops.add),
        "__sub__": ops.sub, "__rsub__": _reflected(ops.sub),
        "__mul__": ops.mul, "__rmul__": _reflected(ops.mul),
        "__truediv__": ops.div, "__rtruediv__": _reflected(ops.div),
        "__pow__": ops.pow, "__rpow__": _reflected(ops.pow),
        "__matmul__": ops.matmul, "__rmatmul__": _reflected(ops.matmul),
        "__neg__": ops.neg, "__abs__": ops.abs, "__getitem__": ops.getitem,
        "__eq__": ops.eq, "__ne__": ops.ne, "__lt__": ops.lt,
        "__le__": ops.le, "__gt__": ops.gt, "__ge__": ops.ge,
    }  # fmt: skip
    for name, fn in operators.items():
        setattr(Tensor, name, fn)
    methods = [
        "exp", "log", "log1p", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu",
        "softplus", "clamp", "maximum", "minimum", "masked_fill", "astype", "to",
        "sum", "mean", "max", "min", "var", "std", "logsumexp", "prod", "cumsum", "cumprod", "argmax", "argmin",
        "norm", "softmax", "log_softmax",
        "reshape", "view", "flatten", "permute", "transpose", "swapaxes", "squeeze", "unsqueeze", "expand",
        "broadcast_to", "split", "chunk", "flip", "repeat", "tile",
        "gather", "scatter_add", "index_select", "index_add", "matmul",
    ]  # fmt: skip
    for name in methods:
        setattr(Tensor, name, getattr(ops, name))
    Tensor.T = property(lambda self: ops.transpose(self), doc="All axes reversed.")
    Tensor.float = lambda self: ops.astype(self, "float32")
    Tensor.double = lambda self: ops.astype(self, "float64")
    Tensor.half = lambda self: ops.astype(self, "float16")


_install_tensor_methods()

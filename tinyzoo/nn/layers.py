"""The everyday layers, with PyTorch's names, arguments, defaults and initialisation.

Each layer is a thin Module around a function of `tinyzoo.nn.functional`: it owns the parameters
(and buffers, for BatchNorm's running statistics), checks that its input has the shape it was built
for, and says what it is in its repr. A shape error names the layer and both shapes:

    Linear(784→256) got input of shape (32, 100): last axis must be 784
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinyzoo.autograd import ops
from tinyzoo.autograd.engine import grad as autograd_grad
from tinyzoo.autograd.tensor import Tensor, is_grad_enabled, record_op
from tinyzoo.backend import xp_of
from tinyzoo.errors import ShapeError
from tinyzoo.nn import functional as F
from tinyzoo.nn import init
from tinyzoo.nn.module import Module, Parameter

__all__ = [
    "ELU",
    "GELU",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormReLU2d",
    "Dropout",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "Unflatten",
]


def _parameter(*shape: int, fill: float = 0.0) -> Parameter:
    """A float32 Parameter of `shape` filled with a constant (initialisers then overwrite it in place)."""
    return Parameter(np.full(shape, fill, dtype=np.float32))


def _shape_error(layer: _Layer, x: Any, expected: str) -> ShapeError:
    """ShapeError naming the layer, the input's shape and what it should have been."""
    return ShapeError(f"{layer.short_name()} got input of shape {tuple(x.shape)}: {expected}")


class _Layer(Module):
    """A Module that can describe itself in one short phrase for error messages."""

    def short_name(self) -> str:
        """The layer as it appears in error messages, e.g. "Linear(784→256)"."""
        return f"{type(self).__name__}({self.extra_repr()})"


# =================================================================================================
# Linear and embedding
# =================================================================================================
class Linear(_Layer):
    """y = x Wᵀ + b over the last axis: weight [out_features, in_features], bias [out_features].

    Initialised like torch: W ~ kaiming_uniform(a=√5), i.e. U(±1/√in_features), and b ~ U(±1/√in_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform_(_parameter(out_features, in_features), a=math.sqrt(5))
        bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.register_parameter("bias", init.uniform_(_parameter(out_features), -bound, bound) if bias else None)

    def forward(self, x: Any) -> Tensor:
        """x [..., in_features] → [..., out_features]."""
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise _shape_error(self, x, f"last axis must be {self.in_features}")
        return F.linear(x, self.weight, self.bias)

    def short_name(self) -> str:
        """Linear(in→out)."""
        return f"Linear({self.in_features}→{self.out_features})"

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(_Layer):
    """A lookup table: integer indices of any shape → rows of weight [num_embeddings, embedding_dim].

    Initialised N(0, 1) like torch; the row at padding_idx starts at zero and never gets a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} is outside the {num_embeddings} embeddings")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = init.normal_(_parameter(num_embeddings, embedding_dim))
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices: Any) -> Tensor:
        """indices [...] (integers in [0, num_embeddings)) → [..., embedding_dim]."""
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


# =================================================================================================
# Normalisation
# =================================================================================================
def _channels_last_rows(x: Any) -> Any:
    """x [N, C, *] as rows [N·∏*, C] (a view when x's memory is channels-last, as a conv's output is)."""
    return x.reshape(-1, x.shape[1]) if x.ndim == 2 else x.transpose(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])


def _like_input(rows: Any, shape: tuple[int, ...]) -> Any:
    """Rows [N·∏*, C] back as an [N, C, *] view (channels-last in memory)."""
    if len(shape) == 2:
        return rows
    return rows.reshape(shape[0], *shape[2:], shape[1]).transpose(0, len(shape) - 1, *range(1, len(shape) - 1))


def batch_norm_training(
    x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, relu: bool = False
) -> tuple[Tensor, Any, Any]:
    """Training-mode batch norm (optionally followed by ReLU) as one op; also returns the batch μ and biased σ².

    The same function as `F.batch_norm(x, None, None, weight, bias, training=True)` (then `F.relu`),
    which stays the readable reference it is tested against. That one records five ops and keeps x̂,
    x̂·γ and the output until backward; this one keeps only x (its input) and two numbers per channel,
    recomputing x̂ = (x - μ)·s in backward (s = 1/√(σ² + ε)), and works on channels-last rows [M, C]:

        forward:   y = max(x̂·γ + β, 0)
        backward:  g' = g·[y > 0],  dβ = Σ g',  dγ = Σ g'·x̂,  dx = γ·s·(g' - dβ/M - x̂·dγ/M)

    A second derivative (create_graph=True) differentiates the reference composition instead.
    """
    xp, shape = xp_of(x.data), x.shape
    rows = _channels_last_rows(x.data)  # [M, C]
    count = rows.shape[0]
    mu = rows.mean(axis=0)  # [C]
    out = rows - mu  # [M, C], becomes the output in place
    var = xp.einsum("mc,mc->c", out, out) / count
    inv_std = (1 / xp.sqrt(var + eps)).astype(x.dtype)
    scale = inv_std if weight is None else inv_std * weight.data
    out *= scale
    if bias is not None:
        out += bias.data
    if relu:
        xp.maximum(out, 0, out=out)

    inputs = (x,) + tuple(t for t in (weight, bias) if t is not None)

    def backward(g: Tensor, y: Tensor) -> tuple:
        if is_grad_enabled():  # create_graph: differentiate the unfused reference, which records every step
            reference = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
            reference = F.relu(reference) if relu else reference
            wanted = [t for t in inputs if t.requires_grad]
            grads = iter(autograd_grad(reference, wanted, g, create_graph=True))
            return tuple(next(grads) if t.requires_grad else None for t in inputs)
        grad_rows = _channels_last_rows(g.data)
        if relu:
            grad_rows = grad_rows * (_channels_last_rows(y.data) > 0)
        x_hat = (_channels_last_rows(x.data) - mu) * inv_std  # [M, C]
        grad_bias = grad_rows.sum(axis=0)
        grad_weight = xp.einsum("mc,mc->c", grad_rows, x_hat)
        grads = {id(weight): grad_weight, id(bias): grad_bias}
        if x.requires_grad:
            x_hat *= grad_weight / count
            x_hat += grad_bias / count
            grad_x = xp.subtract(grad_rows, x_hat, out=x_hat)
            grad_x *= scale
            grads[id(x)] = _like_input(grad_x, shape)
        return tuple(Tensor(grads[id(t)]) if t.requires_grad else None for t in inputs)

    return record_op("batch_norm_relu" if relu else "batch_norm", _like_input(out, shape), inputs, backward), mu, var


class _BatchNorm(_Layer):
    """Shared by BatchNorm1d and BatchNorm2d: γ, β and the running statistics of `num_features` channels.

    Training normalises with the batch's statistics and updates the running ones (an exponential
    moving average with `momentum`, or the plain average of all batches when momentum is None);
    evaluation uses the running ones. num_batches_tracked counts the training batches seen.
    """

    input_ndims: tuple[int, ...] = ()
    input_layout = ""
    fused_relu = False  # BatchNormReLU2d: a ReLU follows, computed in the same pass

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.register_parameter("weight", _parameter(num_features, fill=1.0) if affine else None)
        self.register_parameter("bias", _parameter(num_features) if affine else None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def forward(self, x: Any) -> Tensor:
        """Normalise each channel of x (axis 1)."""
        if x.ndim not in self.input_ndims or x.shape[1] != self.num_features:
            raise _shape_error(self, x, f"expected {self.input_layout} with C = {self.num_features}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # a plain average over every batch so far
                momentum = 1.0 / float(self.num_batches_tracked.data)
        count = x.size // x.shape[1]
        if not (self.training or self.running_mean is None) or count <= 1:  # evaluation, or F's error for count 1
            out = F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, momentum, self.eps
            )
            return F.relu(out) if self.fused_relu else out
        out, mu, var = batch_norm_training(ops.as_tensor(x), self.weight, self.bias, self.eps, self.fused_relu)
        if self.training and self.running_mean is not None:  # as F.batch_norm: the unbiased variance
            self.running_mean.data[...] = (1 - momentum) * self.running_mean.data + momentum * mu
            self.running_var.data[...] = (1 - momentum) * self.running_var.data + momentum * var * count / (count - 1)
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def short_name(self) -> str:
        """BatchNorm2d(C)."""
        return f"{type(self).__name__}({self.num_features})"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of x [N, C] or [N, C, L] per channel C."""

    input_ndims = (2, 3)
    input_layout = "[N, C] or [N, C, L]"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of images x [N, C, H, W] per channel C."""

    input_ndims = (4,)
    input_layout = "[N, C, H, W]"


class BatchNormReLU2d(BatchNorm2d):
    """BatchNorm2d followed by ReLU, as one op while training (PyTorch's fused `torch.ao.nn.intrinsic.BNReLU2d`).

    The same parameters, buffers and state-dict keys as BatchNorm2d; one pass over the activations
    instead of two, and one activation-sized array fewer allocated per step.
    """

    fused_relu = True


class LayerNorm(_Layer):
    """Normalise over the trailing `normalized_shape` axes of each sample, then · γ + β (γ = 1, β = 0 at start)."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.register_parameter("weight", _parameter(*self.normalized_shape, fill=1.0) if elementwise_affine else None)
        self.register_parameter("bias", _parameter(*self.normalized_shape) if elementwise_affine and bias else None)

    def forward(self, x: Any) -> Tensor:
        """x [..., *normalized_shape] → the same shape."""
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.normalized_shape:
            raise _shape_error(self, x, f"last axes must be {self.normalized_shape}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(_Layer):
    """Normalise x [N, C, *] over groups of C / num_groups channels (and all positions), then a per-channel γ, β."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels {num_channels} is not divisible by num_groups {num_groups}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.register_parameter("weight", _parameter(num_channels, fill=1.0) if affine else None)
        self.register_parameter("bias", _parameter(num_channels) if affine else None)

    def forward(self, x: Any) -> Tensor:
        """x [N, C, *] → the same shape."""
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise _shape_error(self, x, f"expected [N, C, ...] with C = {self.num_channels}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class Dropout(_Layer):
    """Zero each element with probability p while training (scaling the rest by 1 / (1 - p)); identity in eval."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Any) -> Tensor:
        """x, with dropout applied in training mode."""
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# =================================================================================================
# Activations and shape helpers
# =================================================================================================
class ReLU(_Layer):
    """max(x, 0)."""

    def forward(self, x: Any) -> Tensor:
        """Elementwise ReLU."""
        return F.relu(x)


class LeakyReLU(_Layer):
    """x for x > 0, negative_slope · x otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Any) -> Tensor:
        """Elementwise leaky ReLU."""
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(_Layer):
    """x for x > 0, alpha · (e^x - 1) otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: Any) -> Tensor:
        """Elementwise ELU."""
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(_Layer):
    """GELU with the tanh approximation, 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).

    torch's default is the exact x·Φ(x) (approximate="none"); tinyzoo has only the tanh form, which
    differs from it by less than 1e-3, so approximate must be "tanh".
    """

    def __init__(self, approximate: str = "tanh") -> None:
        super().__init__()
        if approximate != "tanh":
            raise ValueError(f"GELU: only approximate='tanh' is implemented, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        """Elementwise GELU."""
        return F.gelu(x)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(_Layer):
    """Hyperbolic tangent."""

    def forward(self, x: Any) -> Tensor:
        """Elementwise tanh."""
        return F.tanh(x)


class Sigmoid(_Layer):
    """1 / (1 + e^-x)."""

    def forward(self, x: Any) -> Tensor:
        """Elementwise logistic sigmoid."""
        return F.sigmoid(x)


class Softplus(_Layer):
    """log(1 + e^(beta·x)) / beta, a smooth ReLU."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: Any) -> Tensor:
        """Elementwise softplus."""
        return F.softplus(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class Softmax(_Layer):
    """e^x / Σ e^x along `dim` (the last axis by default; torch's implicit choice is deprecated)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        """Softmax along dim."""
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log softmax along `dim`, computed stably as x - logsumexp(x)."""

    def forward(self, x: Any) -> Tensor:
        """Log-softmax along dim."""
        return F.log_softmax(x, self.dim)


class Flatten(_Layer):
    """Merge axes start_dim..end_dim into one (by default every axis after the batch axis)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Any) -> Tensor:
        """x [N, d1, d2, ...] → [N, d1·d2·...] (for the defaults)."""
        ndim = x.ndim
        if ndim and not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim):
            raise _shape_error(self, x, f"needs axes {self.start_dim} and {self.end_dim}")
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(_Layer):
    """[N, C·H·W] → [N, C, H, W]: split the features of every row into `shape` (the inverse of Flatten)."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Any) -> Tensor:
        """Reshape every row of x into `shape`."""
        if x.ndim < 2 or x.shape[-1] != int(np.prod(self.shape)):
            raise _shape_error(self, x, f"needs [batch, {int(np.prod(self.shape))}]")
        return ops.reshape(x, (x.shape[0], *self.shape))

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))


class Identity(_Layer):
    """Returns its input unchanged (a placeholder, e.g. for a removed classifier head); ignores any arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """x itself."""
        return x

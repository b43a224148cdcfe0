"""tinyzoo.nn.functional — the stateless ops layers are made of, with PyTorch's names and signatures.

    import tinyzoo.nn.functional as F
    loss = F.cross_entropy(F.linear(x, w, b), labels)

The ops that run in every training step (linear, the normalisations, cross_entropy) are single fused
ops with a hand-written backward right beside the forward, like the ops in `tinyzoo.autograd.ops`;
the rest are short compositions of those ops. Backward rules are written with tinyzoo ops, so second
derivatives (gradient penalties, Hessian-vector products) work through every function here.
Convolutions and pooling live in `tinyzoo.nn.conv` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinyzoo import rng
from tinyzoo.autograd import ops
from tinyzoo.autograd.ops import elu, gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, softplus, tanh
from tinyzoo.autograd.tensor import Tensor, is_grad_enabled, record_op
from tinyzoo.backend import check_index_range, cupy_if_loaded, to_device, xp_of
from tinyzoo.errors import DeviceError, DTypeError, ShapeError
from tinyzoo.nn.conv import adaptive_avg_pool2d, avg_pool2d, conv1d, conv2d, conv_transpose2d, max_pool2d

__all__ = [
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "cross_entropy",
    "dropout",
    "elu",
    "embedding",
    "gelu",
    "group_norm",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "sequence_cross_entropy",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]


# =================================================================================================
# Helpers
# =================================================================================================
def _same_device(op: str, *tensors: Tensor | None) -> None:
    """Raise DeviceError unless every given tensor lives on one device."""
    if cupy_if_loaded() is None:  # nothing can be on a GPU before CuPy is imported
        return
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise DeviceError(f"{op}: inputs are on different devices ({', '.join(sorted(devices))}); move them with .to()")


def _saved(array: Any, rebuild: Callable[[], Tensor]) -> Tensor:
    """A value the forward already computed, for use in a backward rule.

    Normally it is reused as a constant. When the backward itself is being recorded
    (`create_graph=True`, so grad mode is on inside it) it is rebuilt with tinyzoo ops instead, so
    second derivatives see how it depends on the input.
    """
    return rebuild() if is_grad_enabled() else Tensor(array)


def _integer_array(op: str, values: Any, noun: str, device: str | None = None) -> Any:
    """The array of integer labels/indices on `device` (a tiny copy when they come from the host; None: where
    they are); DTypeError for any other dtype."""
    array = values.data if isinstance(values, Tensor) else ops.as_tensor(values).data
    if array.dtype.kind not in "iu":
        raise DTypeError(f"{op}: {noun} must be integers, got dtype {array.dtype}; convert with .astype('int64')")
    return array if device is None else to_device(array, device)


def _check_range(op: str, values: Any, count: int, noun: str, what: str, also: str = "") -> None:
    """Raise IndexRangeError unless every entry of `values` lies in [0, count)."""
    check_index_range(values, 0, count, f"{op}: {noun} {{span}} but {what} (valid {noun} are 0..{count - 1}{also})")


def _check_reduction(op: str, reduction: str, allowed: Sequence[str] = ("mean", "sum", "none")) -> None:
    """ValueError for a reduction the op does not know."""
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str, denominator: Any = None) -> Tensor:
    """Per-element losses to the requested reduction; "mean" divides by `denominator` when given."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return ops.sum(loss)
    if denominator is None:
        return ops.mean(loss)
    return ops.sum(loss) / Tensor(xp_of(loss.data).asarray(denominator, dtype=loss.dtype))


def _same_shape(op: str, input: Tensor, target: Tensor) -> None:
    """Elementwise losses insist on equal shapes: a silently broadcast [N, 1] vs [N] is a classic bug."""
    if input.shape != target.shape:
        raise ShapeError(
            f"{op}: input has shape {input.shape} but target has shape {target.shape}; they must match "
            "(reshape one of them, e.g. target.reshape(input.shape))"
        )


def _pointwise_loss(op: str, input: Any, target: Any, reduction: str, fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """fn(input, target) elementwise, after checking shapes and the reduction, then reduced."""
    _check_reduction(op, reduction)
    input, target = ops.as_tensor(input), ops.as_tensor(target)
    _same_shape(op, input, target)
    return _reduce(fn(input, target), reduction)


# =================================================================================================
# Linear maps, dropout, lookups, padding
# =================================================================================================
def linear(input: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b over the last axis of x; weight is [out_features, in_features], as in torch.

    One op. With g = dL/dy and every leading axis of x flattened into rows:
    dL/dx = g W,   dL/dW = gᵀ x,   dL/db = Σ_rows g.
    """
    x, weight = ops.as_tensor(input), ops.as_tensor(weight)
    bias = None if bias is None else ops.as_tensor(bias)
    _same_device("linear", x, weight, bias)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(
            f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} [out, in]: "
            f"the input's last axis must be {weight.shape[-1]}"
        )
    n_out, n_in = weight.shape
    if bias is not None and bias.shape != (n_out,):
        raise ShapeError(f"linear: bias has shape {bias.shape}, expected ({n_out},) for weight {weight.shape}")
    # Leading axes are folded into rows first: NumPy's batched matmul of [B, T, in] by a 2-D matrix
    # is about 10x slower than one [B·T, in] matrix product.
    rows = math.prod(x.shape[:-1])  # (spelled out, not -1: an empty axis makes -1 ambiguous)
    out = x.data.reshape(rows, n_in) @ weight.data.T
    if bias is not None:
        out += bias.data
    if x.ndim != 2:
        out = out.reshape(*x.shape[:-1], n_out)

    inputs = (x, weight) if bias is None else (x, weight, bias)

    def backward(g: Tensor, _: Tensor) -> tuple:
        g_rows = ops.reshape(g, (rows, n_out))
        grad_x = ops.reshape(ops.matmul(g_rows, weight), x.shape) if x.requires_grad else None
        grad_w = ops.matmul(ops.transpose(g_rows), ops.reshape(x, (rows, n_in))) if weight.requires_grad else None
        grad_b = ops.sum(g_rows, 0) if bias is not None and bias.requires_grad else None
        grads = (grad_x, grad_w, grad_b)
        return tuple(None if grad is None else ops.astype(grad, t.dtype) for grad, t in zip(grads, inputs))

    return record_op("linear", out, inputs, backward)


def dropout(input: Any, p: float = 0.5, training: bool = True, generator: rng.Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p).

    The expected value is unchanged, so evaluation (training=False) is the identity. The mask comes
    from tinyzoo's seeded generator for the input's device, or from `generator` (a tinyzoo.Generator).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p}")
    x = ops.as_tensor(input)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    xp = xp_of(x.data)
    keep = rng.generator(x.device, generator).random(x.shape, dtype=np.float32) >= p
    scale = xp.where(keep, 1.0 / (1.0 - p), 0.0).astype(x.dtype)
    return x * Tensor(scale)


def embedding(input: Any, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight [num_embeddings, dim] at the integer indices `input` (any shape): shape input.shape + (dim,).

    The backward adds each output row's gradient into the row it came from (an index_add). Rows at
    `padding_idx` get no gradient, as in torch.
    """
    weight = ops.as_tensor(weight)
    index = _integer_array("embedding", input, "indices", weight.device)
    count = weight.shape[0]
    _check_range("embedding", index, count, "indices", f"the vocabulary has {count} entries")
    out = ops.reshape(ops.index_select(weight, 0, index.reshape(-1)), (*index.shape, weight.shape[1]))
    if padding_idx is None:
        return out
    padding = (index == padding_idx % count)[..., None]
    return ops.where(padding, Tensor(out.data), out)


def one_hot(indices: Any, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape indices.shape + (num_classes,) with a 1 at each index (num_classes=-1: max + 1,
    which reads the indices back from a GPU), on the indices' device."""
    index = _integer_array("one_hot", indices, "indices")
    xp = xp_of(index)
    if num_classes < 0:
        num_classes = int(index.max()) + 1 if index.size else 0
    _check_range("one_hot", index, num_classes, "indices", f"num_classes is {num_classes}")
    return Tensor((index[..., None] == xp.arange(num_classes)).astype(np.int64))


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """torch.nn.functional.pad, constant mode: `pad` lists (before, after) pairs starting from the LAST axis.

    pad=(1, 2) pads the last axis by 1 before and 2 after; pad=(1, 1, 2, 2) also pads the axis before it
    by 2 on each side. This is converted to NumPy's per-axis widths for `tinyzoo.pad`.
    """
    x = ops.as_tensor(input)
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is implemented, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(
            f"pad: {tuple(pad)} must hold (before, after) pairs for at most {x.ndim} axes (shape {x.shape})"
        )
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    return ops.pad(x, widths, value)


# =================================================================================================
# Normalisation
# =================================================================================================
def _normalize(x: Tensor, axes: tuple[int, ...], eps: float) -> tuple[Tensor, Any, Any]:
    """x̂ = (x - μ) / √(σ² + ε), statistics over `axes`, as one op; also returns μ and the biased σ² (arrays).

    Backward, with means taken over `axes`:  dL/dx = (g - mean(g) - x̂ · mean(g x̂)) / √(σ² + ε).
    A constant input has σ² = 0, so x̂ = 0 and everything stays finite thanks to ε.
    """
    xp = xp_of(x.data)
    mu = x.data.mean(axis=axes, keepdims=True)
    centred = x.data - mu
    var = (centred * centred).mean(axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt(var + eps)
    out = centred * inv_std

    def backward(g: Tensor, x_hat: Tensor) -> tuple:
        scale = _saved(inv_std, lambda: 1 / ops.sqrt(ops.var(x, axes, keepdims=True, correction=0) + eps))
        mean_g, mean_gx = ops.mean(g, axes, keepdims=True), ops.mean(g * x_hat, axes, keepdims=True)
        return (scale * (g - mean_g - x_hat * mean_gx),)

    return record_op("normalize", out, (x,), backward), mu, var


def _affine(x: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    """x · weight + bias, with the parameters reshaped to `shape` so they broadcast over x."""
    if weight is not None:
        x = x * ops.reshape(weight, shape)
    if bias is not None:
        x = x + ops.reshape(bias, shape)
    return x


def _channel_shape(op: str, x: Tensor, params: Sequence[Tensor | None]) -> tuple[int, ...]:
    """(C, 1, 1, ...): how per-channel parameters broadcast over x [N, C, *]; checks their sizes."""
    if x.ndim < 2:
        raise ShapeError(f"{op}: input must be [N, C, ...] with at least 2 axes, got shape {x.shape}")
    for p in params:
        if p is not None and p.shape != (x.shape[1],):
            raise ShapeError(f"{op}: a per-channel tensor has shape {p.shape} but the input has {x.shape[1]} channels")
    return (x.shape[1],) + (1,) * (x.ndim - 2)


def batch_norm(
    input: Any,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation of x [N, C, *] per channel C (Ioffe & Szegedy 2015).

    Training: y = (x - μ_B) / √(σ²_B + ε) · γ + β with the batch's mean and biased variance; the running
    statistics (if given) move in place: r ← (1 - momentum)·r + momentum·stat, using the unbiased
    variance σ²_B · m / (m - 1) as torch does (m = values per channel). Evaluation: the running
    statistics replace the batch's, so the op is a fixed per-channel affine map.
    """
    x = ops.as_tensor(input)
    shape = _channel_shape("batch_norm", x, (running_mean, running_var, weight, bias))
    if training or running_mean is None:
        axes = (0, *range(2, x.ndim))
        count = x.size // x.shape[1]
        if training and count <= 1:
            raise ShapeError(
                f"batch_norm: training needs more than one value per channel, got input of shape {x.shape}"
            )
        out, mu, var = _normalize(x, axes, eps)
        if training and running_mean is not None:
            running_mean.data[...] = (1 - momentum) * running_mean.data + momentum * mu.reshape(-1)
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * var.reshape(-1) * count / (count - 1)
        return _affine(out, weight, bias, shape)
    scale = 1 / ops.sqrt(running_var + eps)
    scale = scale if weight is None else weight * scale
    shift = -running_mean * scale
    shift = shift if bias is None else shift + bias
    return x * ops.reshape(scale, shape) + ops.reshape(shift, shape)


def layer_norm(
    input: Any,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation (Ba et al. 2016): normalise over the trailing `normalized_shape` axes, then · γ + β."""
    x = ops.as_tensor(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) > x.ndim or x.shape[x.ndim - len(shape) :] != shape:
        raise ShapeError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}")
    out, _, _ = _normalize(x, tuple(range(x.ndim - len(shape), x.ndim)), eps)
    return _affine(out, weight, bias, shape)


def group_norm(
    input: Any, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Group normalisation (Wu & He 2018): split the C channels of x [N, C, *] into groups, normalise each
    group of each sample over its channels and positions, then a per-channel · γ + β."""
    x = ops.as_tensor(input)
    shape = _channel_shape("group_norm", x, (weight, bias))
    if x.shape[1] % num_groups:
        raise ShapeError(
            f"group_norm: {x.shape[1]} channels (input {x.shape}) cannot be split into {num_groups} groups"
        )
    grouped, _, _ = _normalize(ops.reshape(x, (x.shape[0], num_groups, -1)), (2,), eps)
    return _affine(ops.reshape(grouped, x.shape), weight, bias, shape)


# =================================================================================================
# Classification losses
# =================================================================================================
def _class_layout(input: Tensor) -> tuple[int, tuple[int, ...]]:
    """(number of classes, shape of the per-element loss) for input [N, C, d...] (or unbatched [C])."""
    if input.ndim == 1:
        return input.shape[0], ()
    return input.shape[1], input.shape[:1] + input.shape[2:]


def _classes_last(x: Tensor) -> Tensor:
    """[N, C, d1, d2, ...] (or [C]) as rows [N·d1·d2·..., C], one row per prediction."""
    if x.ndim == 2:
        return x
    if x.ndim == 1:
        return ops.reshape(x, (1, -1))
    return ops.reshape(ops.permute(x, (0, *range(2, x.ndim), 1)), (-1, x.shape[1]))


def _class_targets(op: str, input: Tensor, target: Any, weight: Tensor | None, ignore_index: int) -> tuple:
    """Check integer class targets against input [N, C, *] and flatten them: (labels, 0/1 mask of the
    rows not ignored, weight of each row's label). Ignored rows get label 0 and weight 0."""
    labels = _integer_array(op, target, "target labels", input.device)
    classes, loss_shape = _class_layout(input)
    if labels.shape != loss_shape:
        raise ShapeError(
            f"{op}: input of shape {input.shape} needs class-index targets of shape {loss_shape}, got {labels.shape}"
        )
    labels = labels.reshape(-1)
    valid = labels != ignore_index
    labels = xp_of(labels).where(valid, labels, 0)  # (a boolean-mask index would wait for the GPU)
    _check_range(
        op, labels, classes, "target labels", f"the input has {classes} classes", f", or ignore_index={ignore_index}"
    )
    valid = valid.astype(input.dtype)
    row_weight = valid if weight is None else (weight.data[labels] * valid).astype(input.dtype)
    return labels, valid, row_weight


def _cross_entropy_rows(z: Tensor, labels: Any, a: Any, b: Any | None, class_weight: Any | None) -> Tensor:
    """Per-row loss  a·(lse - z_t) + b·(Σw·lse - z·w)  for logits z [M, C], labels t, as one op.

    lse = log Σ_c e^(z_c) is -log_softmax without the dense log-probabilities: it is shifted by the
    row max, so logits of any size stay finite. `a` weighs the label's negative log-likelihood, `b`
    the label-smoothing term (the cross entropy against the class weights w, all ones when None).
    Backward:  dL/dz = g · (softmax(z) · (a + b·Σw) - a · onehot(t) - b · w).
    """
    xp = xp_of(z.data)
    peak = z.data.max(axis=1, keepdims=True)
    peak = xp.where(xp.isfinite(peak), peak, 0)
    probs = xp.exp(z.data - peak)
    total = probs.sum(axis=1, keepdims=True)
    lse = (xp.log(total) + peak)[:, 0]
    probs /= total  # now softmax(z), kept for the backward
    rows = xp.arange(z.shape[0])
    loss = a * (lse - z.data[rows, labels])
    weights = xp.ones(z.shape[1], dtype=z.dtype) if class_weight is None else class_weight.astype(z.dtype)
    if b is not None:
        loss += b * (weights.sum() * lse - z.data @ weights)
    row_scale = a if b is None else a + b * weights.sum()  # Σ_c of the target distribution a·onehot + b·w

    def backward(g: Tensor, _: Tensor) -> tuple:
        p = _saved(probs, lambda: ops.softmax(z, 1))
        dz = ops.scatter_add(
            p * ops.reshape(g * Tensor(row_scale), (-1, 1)), 1, labels[:, None], ops.reshape(-g * Tensor(a), (-1, 1))
        )
        if b is not None:
            dz = dz - ops.reshape(g * Tensor(b), (-1, 1)) * Tensor(weights)
        return (dz,)

    return record_op("cross_entropy", loss, (z,), backward)


def cross_entropy(
    input: Any,
    target: Any,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits input [N, C] or [N, C, d...] against class indices [N, d...] or
    class probabilities (input's shape), as torch.nn.functional.cross_entropy.

    With p = softmax(input) over C, class weights w (default 1) and label smoothing ε, the loss of an
    element with label t is  -(1-ε)·w_t·log p_t - (ε/C)·Σ_c w_c·log p_c ; "mean" divides the sum by
    Σ w_t over the elements whose label is not ignore_index. For probability targets q it is
    -Σ_c w_c·q'_c·log p_c with q' = (1-ε)·q + ε/C, and "mean" divides by the number of elements.
    Index targets take one fused op (logsumexp + gather, no dense log-probabilities); weight gets
    no gradient. NaN logits give a NaN loss; run under tinyzoo.detect_anomaly() to find where.
    """
    _check_reduction("cross_entropy", reduction)
    input = ops.as_tensor(input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing}")
    classes, loss_shape = _class_layout(input)
    class_weight = None if weight is None else ops.as_tensor(weight)
    if class_weight is not None and class_weight.shape != (classes,):
        raise ShapeError(f"cross_entropy: weight has shape {class_weight.shape}, expected ({classes},)")
    target = target if isinstance(target, Tensor) else ops.as_tensor(target)
    z = _classes_last(input)
    if target.dtype.kind == "f":
        _same_shape("cross_entropy (probability targets)", input, target)
        q = _classes_last(target) * (1 - label_smoothing) + label_smoothing / classes
        if class_weight is not None:
            q = q * class_weight
        loss = -ops.sum(q * log_softmax(z, 1), 1)
        return _reduce(ops.reshape(loss, loss_shape), reduction)
    labels, valid, row_weight = _class_targets("cross_entropy", input, target, class_weight, ignore_index)
    smooth = None if label_smoothing == 0 else valid * (label_smoothing / classes)
    loss = _cross_entropy_rows(
        z, labels, row_weight * (1 - label_smoothing), smooth, None if class_weight is None else class_weight.data
    )
    return _reduce(ops.reshape(loss, loss_shape), reduction, row_weight.sum())


def sequence_cross_entropy(logits: Any, targets: Any, ignore_index: int = -100) -> Tensor:
    """Mean cross entropy over every position of logits [..., C] against class indices [...] (e.g. [B, T, V]
    against [B, T]): both are flattened, each position an example; targets equal to ignore_index count for nothing.

    The loss of the zoo's sequence models (language models, masked LMs, seq2seq, pointer networks).
    """
    logits, targets = ops.as_tensor(logits), ops.as_tensor(targets)  # (targets stay on their device)
    if logits.ndim < 2 or tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(f"sequence_cross_entropy: logits {logits.shape} must be [..., C] over targets of shape "
                         f"[...], got targets {tuple(targets.shape)}")  # fmt: skip
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)


def nll_loss(
    input: Any, target: Any, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Negative log-likelihood of log-probabilities input [N, C, d...] at class indices target [N, d...]:
    -w_t · input_t per element; "mean" divides by Σ w_t over elements not equal to ignore_index."""
    _check_reduction("nll_loss", reduction)
    input = ops.as_tensor(input)
    class_weight = None if weight is None else ops.as_tensor(weight)
    labels, _, row_weight = _class_targets("nll_loss", input, target, class_weight, ignore_index)
    picked = ops.gather(_classes_last(input), 1, labels[:, None])
    loss = -ops.reshape(picked, (-1,)) * Tensor(row_weight)
    return _reduce(ops.reshape(loss, _class_layout(input)[1]), reduction, row_weight.sum())


def _xlogy(x: Tensor, y: Tensor) -> Tensor:
    """x · log y, defined as 0 where x = 0 (and with finite gradients there)."""
    zero = x.data == 0
    return ops.where(zero, 0.0, x * ops.log(ops.where(zero, 1.0, y)))


def _clamped_log(x: Tensor) -> Tensor:
    """max(log x, -100), torch's clamp for binary_cross_entropy (log of e^-100 ≈ 4e-44 instead of log 0)."""
    return ops.log(ops.maximum(x, ops.as_tensor(float(np.exp(-100.0)), x)))


def binary_cross_entropy(input: Any, target: Any, weight: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """-w·(y·log p + (1 - y)·log(1 - p)) for probabilities p = input in [0, 1], as one op.

    Each log is clamped at -100, as torch does, so p = 0 or 1 gives a large finite loss instead of
    inf. Backward (torch's): dL/dp = g·(p - y) / max(p(1 - p), 1e-12),  dL/dy = g·(log(1 - p) - log p).
    Prefer binary_cross_entropy_with_logits, which needs no clamp.
    """

    def fn(p: Tensor, y: Tensor) -> Tensor:
        if bool(((p.data < 0) | (p.data > 1)).any()):
            raise ValueError(
                "binary_cross_entropy: input must hold probabilities in [0, 1]; for logits use "
                "binary_cross_entropy_with_logits"
            )
        log_p, log_not_p = _clamped_log(Tensor(p.data)).data, _clamped_log(Tensor(1 - p.data)).data
        loss = -(y.data * log_p + (1 - y.data) * log_not_p)

        def backward(g: Tensor, _: Tensor) -> tuple:
            grad_p = g * (p - y) / ops.clamp(p * (1 - p), min=1e-12) if p.requires_grad else None
            grad_y = g * (_clamped_log(1 - p) - _clamped_log(p)) if y.requires_grad else None
            return grad_p, grad_y

        loss = record_op("binary_cross_entropy", loss, (p, y), backward)
        return loss if weight is None else loss * weight

    return _pointwise_loss("binary_cross_entropy", input, target, reduction, fn)


def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross entropy of logits x: -w·(k·y·log σ(x) + (1 - y)·log(1 - σ(x))), k = pos_weight (default 1).

    Written as (1 - y)·x + (1 + (k - 1)·y)·softplus(-x), which never exponentiates a large number:
    finite for |x| up to float32's range.
    """

    def fn(x: Tensor, y: Tensor) -> Tensor:
        log_weight = 1 if pos_weight is None else (pos_weight - 1) * y + 1
        loss = (1 - y) * x + log_weight * softplus(-x)
        return loss if weight is None else loss * weight

    return _pointwise_loss("binary_cross_entropy_with_logits", input, target, reduction, fn)


# =================================================================================================
# Regression losses and divergences
# =================================================================================================
def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """(input - target)² per element."""
    return _pointwise_loss("mse_loss", input, target, reduction, lambda x, y: (x - y) * (x - y))


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """|input - target| per element."""
    return _pointwise_loss("l1_loss", input, target, reduction, lambda x, y: ops.abs(x - y))


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss of d = input - target: d²/2 where |d| < δ, else δ·(|d| - δ/2) (quadratic near 0, linear beyond)."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")

    def fn(x: Tensor, y: Tensor) -> Tensor:
        d = x - y
        size = ops.abs(d)
        return ops.where(size.data < delta, d * d * 0.5, (size - 0.5 * delta) * delta)

    return _pointwise_loss("huber_loss", input, target, reduction, fn)


def kl_div(input: Any, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target ‖ model) with input = model log-probabilities: target·(log target - input) per element.

    As in torch: with log_target the target is given as log-probabilities (e^t·(t - input));
    "batchmean" divides the sum by the batch size input.shape[0] (the true KL divergence per sample),
    while "mean" divides by the number of elements.
    """
    _check_reduction("kl_div", reduction, ("mean", "batchmean", "sum", "none"))
    input, target = ops.as_tensor(input), ops.as_tensor(target)
    _same_shape("kl_div", input, target)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        loss = _xlogy(target, target) - target * input
    if reduction == "batchmean":
        return ops.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)

"""A fixed-shape inference path for feed-forward networks that allocates nothing per call but its output.

`model(x)` under `no_grad()` is already cheap, but every op still makes a new array and a Tensor
around it. When a trained network answers one request at a time (an embedded device, a serverless
function), those allocations and the Python around them are most of the cost. `InferencePlan` walks
a `Sequential` once, allocates one buffer per layer for a fixed batch size, and then replays the
forward pass as NumPy (or CuPy) calls that write into those buffers:

    Linear:      matmul(h, Wᵀ, out=buffer); add(buffer, b, out=buffer)
    Conv2d:      copyto(columns, windows of the input); matmul(columns, K, out=buffer); add bias
    BatchNorm2d: folded into the convolution before it at build time: K·s and (b - μ)·s + β, s = γ/√(σ² + ε)
    MaxPool2d:   copyto(buffer, first window offset); maximum(buffer, next offset, out=buffer) ...
    ReLU:        maximum(buffer, 0, out=buffer)          (in place)
    Flatten:     a reshaped view of the buffer, made once at build time

    plan = nn.InferencePlan(mlp.layers, input_shape=(784,))   # batch size 1 by default
    logits = plan(image)                                      # a new [1, 10] array; nothing else is allocated
    plan(image, out=logits)                                   # or fill the caller's array: no allocation at all

Images travel channels-last, [batch, H, W, C], as in the training path (see nn/conv.py): a window row
is then kw·C contiguous numbers, and the "windows" of each convolution are a strided view of its
(padded) input buffer made once at build time, so a call copies them into the column buffer with one
`copyto`. A Flatten of such a buffer orders the features (H, W, C) instead of torch's (C, H, W); the
plan permutes the columns of the next Linear's weight once instead of the activations every call.

The plan reads Linear weights' arrays when it is built (in-place updates of those arrays are seen;
arrays replaced later are not); convolution kernels and biases, and a Linear weight after a Flatten
of images, are copied (BatchNorm folded in, columns permuted): build the plan after loading a
checkpoint. Float16 models run in float16.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyzoo.autograd.tensor import Tensor
from tinyzoo.backend import xp_of
from tinyzoo.errors import ShapeError
from tinyzoo.nn.conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d, Window
from tinyzoo.nn.layers import BatchNorm2d, Dropout, Flatten, Identity, LeakyReLU, Linear, ReLU, Tanh
from tinyzoo.nn.module import Module, Sequential

Step = Callable[[], None]


def _layers(model: Module) -> Iterator[Module]:
    """The layers of a Sequential in order, nested Sequentials opened up."""
    for layer in model._modules.values():
        if isinstance(layer, Sequential):
            yield from _layers(layer)
        else:
            yield layer


def _linear_step(source: Any, weight_t: Any, bias: Any, target: Any) -> Step:
    """target = source Wᵀ + b, written into target."""
    xp = xp_of(target)

    def step() -> None:
        xp.matmul(source, weight_t, out=target)
        if bias is not None:
            xp.add(target, bias, out=target)

    return step


def _activation_step(layer: Module, buffer: Any) -> Step:
    """The activation applied to buffer in place."""
    xp = xp_of(buffer)
    if isinstance(layer, ReLU):
        return lambda: xp.maximum(buffer, 0, out=buffer)
    if isinstance(layer, Tanh):
        return lambda: xp.tanh(buffer, out=buffer)
    slope = buffer.dtype.type(layer.negative_slope)  # LeakyReLU: max(x, slope·x) for 0 ≤ slope ≤ 1
    scaled = xp.empty_like(buffer)

    def leaky() -> None:
        xp.multiply(buffer, slope, out=scaled)
        xp.maximum(buffer, scaled, out=buffer)

    return leaky


def _padded_source(source: Any, padding: tuple[int, int], fill: float) -> tuple[Any, list[Step]]:
    """A buffer holding `source` [B, H, W, C] inside a frame of `fill`, and the step that copies it in (if any)."""
    (ph, pw), xp = padding, xp_of(source)
    if not (ph or pw):
        return source, []
    b, h, w, c = source.shape
    padded = xp.full((b, h + 2 * ph, w + 2 * pw, c), fill, dtype=source.dtype)
    inside = padded[:, ph : ph + h, pw : pw + w]
    return padded, [lambda: xp.copyto(inside, source)]


def _offset_views(padded: Any, window: Window, grid: tuple[int, int]) -> Iterator[Any]:
    """For each kernel offset (i, j), the [B, Ho, Wo, C] view of a padded channels-last buffer it reads."""
    for rows, columns in window.offset_slices(grid):
        yield padded[:, rows, columns]


class _ConvStep:
    """One convolution into a fixed buffer: window rows copied into a column buffer, one GEMM, the bias.

    `kernels` [kh·kw·C, O] and the bias are the plan's own copies, so a BatchNorm after the
    convolution can be folded into them (`fold_batch_norm`). The bias is kept spelled out over every
    output row: NumPy allocates a scratch buffer for an in-place add that broadcasts, not for this one.
    """

    def __init__(self, layer: Conv2d, source: Any) -> None:
        xp, (b, h, w, c) = xp_of(source), source.shape
        self.window = window = layer.window
        self.grid = window.grid(layer.short_name(), (h, w))
        weight = layer.weight.data.astype(source.dtype)  # [O, C, kh, kw]
        self.kernels = xp.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(-1, weight.shape[0]))  # [K, O]
        self.target = xp.empty((b, *self.grid, weight.shape[0]), dtype=source.dtype)  # [B, Ho, Wo, O]
        self.rows = self.target.reshape(-1, weight.shape[0])  # [B·Ho·Wo, O]
        self.bias_rows = None if layer.bias is None else self._spelled_out(layer.bias.data)  # [B·Ho·Wo, O]
        self.steps: list[Step] = []
        if window.kernel == (1, 1) and window.stride == (1, 1) and window.padding == (0, 0):
            self.columns = source.reshape(-1, c)  # a 1×1 convolution reads its input as it is
            return
        padded, self.steps = _padded_source(source, window.padding, 0.0)
        (kh, kw), (sh, sw), _, (dh, dw) = window
        step_b, step_h, step_w, step_c = padded.strides
        windows = xp.lib.stride_tricks.as_strided(  # [B, Ho, Wo, kh, kw, C], a view made once
            padded, (b, *self.grid, kh, kw, c), (step_b, sh * step_h, sw * step_w, dh * step_h, dw * step_w, step_c)
        )
        buffer = xp.empty(windows.shape, dtype=source.dtype)
        self.columns = buffer.reshape(-1, kh * kw * c)  # [B·Ho·Wo, kh·kw·C]
        self.steps.append(lambda: xp.copyto(buffer, windows))

    def fold_batch_norm(self, norm: BatchNorm2d) -> None:
        """Absorb an evaluation-mode BatchNorm: y = (conv - μ)·s + β with s = γ/√(σ² + ε), per output channel."""
        xp = xp_of(self.kernels)
        scale = 1 / xp.sqrt(norm.running_var.data.astype(np.float64) + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.data
        bias = 0.0 if self.bias_rows is None else self.bias_rows[0]
        shift = (bias - norm.running_mean.data) * scale
        if norm.bias is not None:
            shift = shift + norm.bias.data
        self.kernels *= scale.astype(self.kernels.dtype)
        self.bias_rows = self._spelled_out(shift)

    def _spelled_out(self, bias: Any) -> Any:
        """bias [O] repeated on every output row, [B·Ho·Wo, O], in the plan's dtype."""
        xp = xp_of(self.rows)
        return xp.ascontiguousarray(xp.broadcast_to(bias.astype(self.rows.dtype), self.rows.shape))

    def __call__(self) -> None:
        for step in self.steps:
            step()
        xp = xp_of(self.rows)
        xp.matmul(self.columns, self.kernels, out=self.rows)
        if self.bias_rows is not None:
            xp.add(self.rows, self.bias_rows, out=self.rows)


def _plans_padding(layer: Conv2d) -> bool:
    """True for the padding a plan computes: symmetric ("same" with an even span is not)."""
    return not isinstance(layer.padding_arg, str) or all(2 * p == d * (k - 1) or layer.padding_arg == "valid"
                                                         for p, k, d in zip(layer.padding, layer.kernel_size,
                                                                            layer.dilation))  # fmt: skip


def _plans_pooling(layer: MaxPool2d | AvgPool2d) -> bool:
    """True for the pooling a plan computes: no ceil_mode, no dilation, padded zeros counted."""
    plain = not layer.ceil_mode and layer.dilation == (1, 1)
    return plain and (isinstance(layer, MaxPool2d) or (layer.count_include_pad and layer.divisor_override is None))


def _pool_step(layer: MaxPool2d | AvgPool2d, source: Any, index: int) -> tuple[Any, list[Step]]:
    """Max or average pooling of a channels-last buffer as a running max (or sum) over the kernel offsets."""
    xp, (b, h, w, c) = xp_of(source), source.shape
    window = layer.window
    grid = window.grid(f"InferencePlan: layer {index} ({layer.short_name()})", (h, w))
    is_max = isinstance(layer, MaxPool2d)
    padded, steps = _padded_source(source, window.padding, -np.inf if is_max else 0.0)
    first, *rest = _offset_views(padded, window, grid)
    target = xp.empty((b, *grid, c), dtype=source.dtype)  # [B, Ho, Wo, C]
    combine = xp.maximum if is_max else xp.add
    count = target.dtype.type(1 / math.prod(window.kernel))  # padded zeros count, as torch's default

    def step() -> None:
        xp.copyto(target, first)
        for view in rest:
            combine(target, view, out=target)
        if not is_max:
            xp.multiply(target, count, out=target)

    return target, [*steps, step]


class InferencePlan:
    """A Sequential of Linear, Conv2d, BatchNorm2d, pooling, activation, Flatten, Dropout and Identity layers,
    replayed into fixed buffers."""

    def __init__(self, model: Sequential, input_shape: tuple[int, ...], batch_size: int = 1) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(
                f"InferencePlan needs an nn.Sequential, got {type(model).__name__} (for an MLP: mlp.layers)"
            )
        parameters = list(model.parameters())
        if not parameters:
            raise ValueError("InferencePlan: the model has no parameters to take a dtype and device from")
        xp, dtype = xp_of(parameters[0].data), parameters[0].data.dtype
        if len(input_shape) == 3:  # images [C, H, W]: kept channels-last, the caller's NCHW copied in transposed
            c, h, w = input_shape
            current = xp.zeros((batch_size, h, w, c), dtype=dtype)  # [B, H, W, C]
            self.input = current.transpose(0, 3, 1, 2)  # the [B, C, H, W] view the caller's array is copied into
        else:
            current = self.input = xp.zeros((batch_size, *input_shape), dtype=dtype)  # [batch, *input_shape]
        self.steps: list[Step] = []
        self._feature_order: tuple[int, int, int] | None = None  # (H, W, C) of a flattened channels-last buffer
        self._last_conv: _ConvStep | None = None  # the step a BatchNorm just after it folds into
        for index, layer in enumerate(_layers(model)):
            current = self._add(layer, current, index)
        if self._feature_order is not None:  # flattened images with no Linear after: put torch's (C, H, W) order back
            current = self._torch_feature_order(current)
        self.output = current.transpose(0, 3, 1, 2) if self._is_image(current) else current

    def _torch_feature_order(self, rows: Any) -> Any:
        """A buffer [B, C·H·W] with a step filling it from flattened channels-last rows [B, H·W·C]."""
        (h, w, c), b = self._feature_order, rows.shape[0]
        target = xp_of(rows).empty((b, c * h * w), dtype=rows.dtype)
        images, source = target.reshape(b, c, h, w), rows.reshape(b, h, w, c).transpose(0, 3, 1, 2)
        self.steps.append(lambda: xp_of(rows).copyto(images, source))
        self._feature_order = None
        return target

    def _is_image(self, buffer: Any) -> bool:
        """Whether the buffer is a channels-last batch of images (and not rows of features)."""
        return buffer.ndim == 4 and self._feature_order is None

    def _add(self, layer: Module, current: Any, index: int) -> Any:
        """Plan one layer; returns the buffer that holds its output."""
        conv, self._last_conv = self._last_conv, None
        if isinstance(layer, (Identity, Dropout)):  # the plan is for evaluation: dropout is the identity
            self._last_conv = conv
            return current
        if isinstance(layer, Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
            if current.ndim == 4:
                self._feature_order = current.shape[1:]
            return current.reshape(current.shape[0], -1)  # a view: no copy, no step
        if isinstance(layer, Linear):
            return self._linear(layer, current, index)
        image_layers = (Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d)
        if isinstance(layer, image_layers) and not self._is_image(current):
            raise ShapeError(f"InferencePlan: layer {index} ({layer.short_name()}) needs images [N, C, H, W], "
                             f"gets rows of shape {current.shape[1:]}; give input_shape as (C, H, W)")  # fmt: skip
        if isinstance(layer, Conv2d) and current.shape[3] != layer.in_channels:
            raise ShapeError(f"InferencePlan: layer {index} ({layer.short_name()}) gets {current.shape[3]} channels")
        if isinstance(layer, Conv2d) and layer.groups == 1 and _plans_padding(layer):
            step = _ConvStep(layer, current)
            self.steps.append(step)
            self._last_conv = step
            return step.target
        if isinstance(layer, BatchNorm2d) and conv is not None and layer.running_mean is not None:
            conv.fold_batch_norm(layer)
            if layer.fused_relu:  # BatchNormReLU2d
                self.steps.append(_activation_step(ReLU(), current))
            return current
        if isinstance(layer, (MaxPool2d, AvgPool2d)) and _plans_pooling(layer):
            target, steps = _pool_step(layer, current, index)
            self.steps += steps
            return target
        if isinstance(layer, AdaptiveAvgPool2d) and layer.output_size in (1, (1, 1)):
            target = xp_of(current).empty((current.shape[0], 1, 1, current.shape[3]), dtype=current.dtype)
            self.steps.append(lambda: xp_of(current).mean(current, axis=(1, 2), keepdims=True, out=target))
            return target
        if isinstance(layer, (ReLU, Tanh)) or (isinstance(layer, LeakyReLU) and 0 <= layer.negative_slope <= 1):
            self.steps.append(_activation_step(layer, current))
            return current
        raise TypeError(
            f"InferencePlan: layer {index} ({type(layer).__name__}) is not supported; it plans Linear, Conv2d "
            "(groups=1), BatchNorm2d right after a Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), ReLU, "
            "LeakyReLU (slope in [0, 1]), Tanh, Flatten (of all but the batch axis), Dropout and Identity — run "
            "other models with model(x)"
        )

    def _linear(self, layer: Linear, current: Any, index: int) -> Any:
        """Plan a Linear layer on rows; after a flattened channels-last buffer its weight's columns are permuted."""
        if current.ndim != 2 or current.shape[1] != layer.in_features:
            raise ShapeError(f"InferencePlan: layer {index} ({layer.short_name()}) gets rows of shape "
                             f"{current.shape[1:]}; add a Flatten or fix input_shape")  # fmt: skip
        weight = layer.weight.data  # [out, in]
        if self._feature_order is not None:  # in = (C, H, W) in torch's order; the buffer holds (H, W, C)
            h, w, c = self._feature_order
            weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
            self._feature_order = None
        target = xp_of(current).empty((current.shape[0], layer.out_features), dtype=current.dtype)
        bias = None if layer.bias is None else layer.bias.data
        self.steps.append(_linear_step(current, weight.T, bias, target))  # Wᵀ: a transposed view, read by BLAS
        return target

    def __call__(self, x: Any, out: Any = None) -> Any:
        """The network's output for x (shape [batch, *input_shape]): a new array, or written into `out`."""
        data = x.data if isinstance(x, Tensor) else x
        if data.shape != self.input.shape:
            raise ShapeError(f"InferencePlan: input of shape {data.shape}, the plan was built for {self.input.shape}")
        self.input[...] = data
        for step in self.steps:
            step()
        if out is None:
            return self.output.copy()
        out[...] = self.output
        return out

    def __repr__(self) -> str:
        return f"InferencePlan(input {self.input.shape} → output {self.output.shape}, {len(self.steps)} steps)"


__all__ = ["InferencePlan"]

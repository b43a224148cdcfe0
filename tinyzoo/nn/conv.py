"""Convolutions and pooling over NCHW images (and NCL sequences), with PyTorch's signatures.

A convolution is a matrix product (Chellapilla et al. 2006): lay every kernel window of x out as a
row, and multiply by the kernels as a matrix,

    conv2d(x, W)[n, o, p, q] = Σ_{i, j, c} x_pad[n, p·sh + i·dh, q·sw + j·dw, c] · W[o, c, i, j]
                             = (rows(x) [N·Ho·Wo, kh·kw·C] @ K [kh·kw·C, O])[(n, p, q), o]

(per group). The convolution is bilinear, <conv(x, W), g> = <x, input_grad(g, W)> = <weight_grad(x, g), W>,
so its two gradients are convolutions of a kind too: three ops (`_conv`, `_conv_input_grad`,
`_conv_weight_grad`) whose backward rules are written with one another, so every layer here is
differentiable to any order while the tape keeps only x and W — never the window rows, which are
kh·kw times the input and are built a few images at a time (COLUMN_BYTES) inside each op. The
transposed convolution is the input gradient itself, <conv2d(x, W), y> = <x, conv_transpose2d(y, W)>;
at stride 1 that gradient is again a forward convolution (with the mirrored kernel), elsewhere each
kernel offset's rows are added back onto the image (col2im).

Inside the ops images are channels-last, NHWC (chosen by measurement, see "The fast path" below); a
Tensor keeps torch's shape [N, C, H, W] as a transposed view, so the layout costs nothing between
layers and is invisible outside.

Max pooling takes a running maximum over the kh·kw strided views of x (one per kernel offset) and
saves, for backward, which offset won each window (a byte per output); average pooling takes the
window mean (padding zeros count, as torch's default count_include_pad=True) through `unfold`, and
adaptive average pooling multiplies by two small averaging matrices (its bins are separable).

`unfold` (im2col) and its adjoint `fold` (col2im) are torch's F.unfold / F.fold; the first version of
this file built every convolution from them, and that path (`conv2d_unfold`, `conv_transpose2d_unfold`)
is kept as the plainest reference the fast ops are tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd import ops
from tinyzoo.autograd.tensor import Tensor, record_op
from tinyzoo.backend import xp_of
from tinyzoo.errors import ShapeError
from tinyzoo.nn import init
from tinyzoo.nn.module import Module, Parameter

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "MaxPool2d",
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "fold",
    "max_pool2d",
    "unfold",
]

IntOrPair = int | Sequence[int]


# =================================================================================================
# Window geometry
# =================================================================================================
def _tuple(value: IntOrPair, n: int, name: str, smallest: int) -> tuple[int, ...]:
    """An int or a sequence of n ints as an n-tuple, each checked to be >= smallest."""
    values = (int(value),) * n if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(values) != n or min(values) < smallest:
        raise ValueError(f"{name} must be an int or {n} ints, each at least {smallest}; got {value!r}")
    return values


class Window(NamedTuple):
    """Where the kernel windows lie along each spatial axis: the sizes of kernel, stride, padding, dilation."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @classmethod
    def of(cls, n: int, kernel: IntOrPair, stride: IntOrPair, padding: IntOrPair, dilation: IntOrPair) -> Window:
        """A window over n spatial axes from torch-style int-or-tuple arguments (validated)."""
        return cls(
            _tuple(kernel, n, "kernel_size", 1),
            _tuple(stride, n, "stride", 1),
            _tuple(padding, n, "padding", 0),
            _tuple(dilation, n, "dilation", 1),
        )

    def spans(self) -> tuple[int, ...]:
        """How far one dilated kernel reaches along each axis: d·(k - 1) + 1."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def grid(self, where: str, size: Sequence[int]) -> tuple[int, ...]:
        """Window positions along each axis for an input of `size`: ⌊(n + 2p - span) / s⌋ + 1."""
        padded = tuple(n + 2 * p for n, p in zip(size, self.padding))
        if any(span > n for span, n in zip(self.spans(), padded)):
            raise ShapeError(
                f"{where}: the kernel {_size_text(self.kernel)} (dilation {_size_text(self.dilation)}, so it spans "
                f"{_size_text(self.spans())}) is larger than the padded input {_size_text(padded)} (input "
                f"{_size_text(size)}, padding {_size_text(self.padding)})"
            )
        return tuple((n - span) // s + 1 for n, span, s in zip(padded, self.spans(), self.stride))

    def offset_slices(self, grid: tuple[int, int]) -> Iterator[tuple[slice, slice]]:
        """For each kernel offset (i, j) in row-major order, the (rows, columns) of the padded image it reads
        at the `grid` window positions."""
        (kh, kw), (sh, sw), (dh, dw), (ho, wo) = self.kernel, self.stride, self.dilation, grid
        for i in range(kh):
            for j in range(kw):
                yield slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)


def _size_text(sizes: Sequence[int]) -> str:
    """(3, 5) as "3×5"."""
    return "×".join(str(n) for n in sizes)


def _check_input(where: str, x: Tensor, layout: str, channels: int | None = None, window: Window | None = None) -> None:
    """Raise a ShapeError naming `where` when x has the wrong rank, channel count, or is smaller than the kernel."""
    if x.ndim != len(layout):
        hint = "; add a batch axis with x.unsqueeze(0)" if x.ndim == len(layout) - 1 else ""
        raise ShapeError(f"{where} got input {x.shape}: expected a {len(layout)}-D input [{', '.join(layout)}]{hint}")
    if channels is not None and x.shape[1] != channels:
        raise ShapeError(f"{where} got input {x.shape}: expected {channels} input channels")
    if window is not None:
        window.grid(where, x.shape[2:])


def _image(where: str, x: Any) -> Tensor:
    """x as a Tensor checked to be a batch of images [N, C, H, W]."""
    x = ops.as_tensor(x)
    _check_input(where, x, "NCHW")
    return x


def _one_sample(fn: Callable[..., Tensor], x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """fn on one unbatched sample ([C, H, W], [C, L]) as PyTorch's layers take it: a batch of one, then dropped."""
    return ops.squeeze(fn(ops.unsqueeze(x, 0), *args, **kwargs), 0)


def _string_padding(where: str, padding: Any, kernel: Sequence[int], stride: IntOrPair,
                    dilation: IntOrPair) -> tuple[tuple[int, ...], tuple[int, ...]] | None:  # fmt: skip
    """PyTorch's padding="valid" (none) or "same" (the output keeps the input's size; stride 1 only) as the
    padding before and after each spatial axis — "same" puts the odd one after, as PyTorch does. None for numbers."""
    if not isinstance(padding, str):
        return None
    n = len(kernel)
    if padding == "valid":
        return (0,) * n, (0,) * n
    if padding != "same":
        raise ValueError(f"{where}: padding must be a number, a tuple, 'valid' or 'same', got {padding!r}")
    if any(s != 1 for s in _tuple(stride, n, "stride", 1)):
        raise ValueError(f"{where}: padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
    total = [d * (k - 1) for k, d in zip(kernel, _tuple(dilation, n, "dilation", 1))]
    return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)


def _pad_after(x: Tensor, extra: Sequence[int], value: float = 0.0) -> Tensor:
    """x with `extra` more entries after each of its last len(extra) axes (x itself when there are none)."""
    if not any(extra):
        return x
    return ops.pad(x, [(0, 0)] * (x.ndim - len(extra)) + [(0, e) for e in extra], value=value)


# =================================================================================================
# unfold (im2col) and fold (col2im): torch's F.unfold/F.fold, average pooling and the reference path
# =================================================================================================
def _im2col(x: Any, window: Window, grid: tuple[int, int], fill: float) -> Any:
    """Array im2col: x [N, C, H, W] → columns [C·kh·kw, N·Ho·Wo], padding with `fill`.

    The batch sits in the columns, next to the window positions, so a convolution is one matrix
    product for the whole batch (per group) rather than one small product per image.
    """
    xp = xp_of(x)
    (kh, kw), (sh, sw), _, (dh, dw) = window
    x = _padded(x, window, fill)
    n, c = x.shape[:2]
    ho, wo = grid
    step_n, step_c, step_h, step_w = x.strides
    windows = xp.lib.stride_tricks.as_strided(  # a view, read only: [C, kh, kw, N, Ho, Wo]
        x, (c, kh, kw, n, ho, wo), (step_c, dh * step_h, dw * step_w, step_n, sh * step_h, sw * step_w)
    )
    return windows.reshape(c * kh * kw, n * ho * wo)  # the one copy: [C·kh·kw, N·L]


def _col2im(cols: Any, window: Window, grid: tuple[int, int], size: tuple[int, int]) -> Any:
    """Array col2im: columns [C·kh·kw, N·Ho·Wo] → x [N, C, H, W], adding up the entries that share a pixel.

    Entry (i, j, p, q) lands on padded pixel (i·dh + p·sh, j·dw + q·sw): one vectorised add per kernel
    offset (i, j) covers every image, channel and window position. The result is a transposed view of
    a [C, N, H, W] array.
    """
    xp = xp_of(cols)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = window
    (ho, wo), (h, w) = grid, size
    c, n = cols.shape[0] // (kh * kw), cols.shape[1] // (ho * wo)
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    out = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)  # [C, N, H + 2ph, W + 2pw]
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            out[:, :, rows, j * dw : j * dw + sw * (wo - 1) + 1 : sw] += cols[:, i, j]
    return out[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)


def _unfold(x: Tensor, window: Window, grid: tuple[int, int], fill: float = 0.0) -> Tensor:
    """The unfold op, [N, C, H, W] → [C·kh·kw, N·L]; its backward is `_fold` (padding is cropped whatever its fill)."""
    size = x.shape[2:]
    out = _im2col(x.data, window, grid, fill)
    return record_op("unfold", out, (x,), lambda g, _: (_fold(g, window, grid, size),))


def _fold(cols: Tensor, window: Window, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """The fold op, [C·kh·kw, N·L] → [N, C, H, W]; its backward is `_unfold`."""
    out = _col2im(cols.data, window, grid, size)
    return record_op("fold", out, (cols,), lambda g, _: (_unfold(g, window, grid),))


def unfold(
    x: Any, kernel_size: IntOrPair, dilation: IntOrPair = 1, padding: IntOrPair = 0, stride: IntOrPair = 1
) -> Tensor:
    """torch's F.unfold (im2col): every kernel window of x [N, C, H, W] as a column, [N, C·kh·kw, L]."""
    x = _image("unfold", x)
    window = Window.of(2, kernel_size, stride, padding, dilation)
    grid = window.grid("unfold", x.shape[2:])
    cols = ops.reshape(_unfold(x, window, grid), (-1, x.shape[0], math.prod(grid)))  # [C·kh·kw, N, L]
    return ops.permute(cols, (1, 0, 2))


def fold(
    cols: Any,
    output_size: IntOrPair,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> Tensor:
    """torch's F.fold (col2im): columns [N, C·kh·kw, L] summed back into images [N, C, H, W]."""
    cols = ops.as_tensor(cols)
    window = Window.of(2, kernel_size, stride, padding, dilation)
    size = _tuple(output_size, 2, "output_size", 1)
    grid = window.grid("fold", size)
    per_column = math.prod(window.kernel)
    if cols.ndim != 3 or cols.shape[1] % per_column or cols.shape[2] != math.prod(grid):
        raise ShapeError(
            f"fold got input {cols.shape}: expected [N, C·{per_column}, {math.prod(grid)}] for kernel "
            f"{_size_text(window.kernel)} on output {_size_text(size)} ({_size_text(grid)} window positions)"
        )
    columns = ops.reshape(ops.permute(cols, (1, 0, 2)), (cols.shape[1], -1))  # [C·kh·kw, N·L]
    return _fold(columns, window, grid, size)


# =================================================================================================
# Convolutions
# =================================================================================================
def _check_weight(where: str, weight: Tensor, ndim: int, groups: int) -> None:
    """Raise a ShapeError for a weight of the wrong rank or whose first axis is not divisible by groups."""
    if weight.ndim != ndim:
        raise ShapeError(f"{where}: weight has shape {weight.shape}, expected {ndim} axes")
    if groups < 1 or weight.shape[0] % groups:
        raise ShapeError(
            f"{where}: weight {weight.shape} has {weight.shape[0]} filters, not divisible by groups={groups}"
        )


def _check_bias(where: str, bias: Any, out_channels: int) -> Tensor | None:
    """bias as a Tensor of shape [out_channels] (or None)."""
    if bias is None:
        return None
    bias = ops.as_tensor(bias)
    if bias.shape != (out_channels,):
        raise ShapeError(f"{where}: bias has shape {bias.shape}, expected ({out_channels},)")
    return bias


def _add_bias(out: Tensor, bias: Tensor | None) -> Tensor:
    """out [N, O, *spatial] + bias [O] on every position."""
    if bias is None:
        return out
    return out + ops.reshape(bias, (1, -1) + (1,) * (out.ndim - 2))


# -------------------------------------------------------------------------------------------------
# The fast path: three ops on channels-last arrays, each the others' backward
# -------------------------------------------------------------------------------------------------
# The convolution is bilinear, <conv(x, W), g> = <x, input_grad(g, W)> = <weight_grad(x, g), W>, so
# its two gradients are themselves convolutions of a kind, and the three ops below are closed under
# differentiation (the backward of each is written with the other two): conv2d and conv_transpose2d
# are differentiable to any order without unfold/fold on the tape. Only x and W are saved; the
# window rows (kh·kw times the input) live inside one op, a few images at a time, never until backward.
#
# Internally the arrays are channels-last, NHWC: a window row is then kw·C contiguous numbers, so
# building the columns copies long runs instead of Wo-long rows, the 1×1 convolution needs no copy
# at all (x as [N·H·W, C] @ W), and the GEMM's result [N·Ho·Wo, O] is already the output. For 3×3
# layers the two layouts cost about the same (bench/bench_conv_design.py: NHWC rows + GEMM took 0.83–1.11×
# the time of [C·kh·kw, N·L] columns + GEMM on ResNet-18 and CNN shapes); NHWC wins on the rest: 1×1
# convolutions, BatchNorm over contiguous [M, C] rows, and pooling views whose inner axis is contiguous.
# A Tensor still has shape [N, C, H, W]: its data is a transposed view of the NHWC array, which the
# next convolution transposes back for free and element-wise ops (BatchNorm, ReLU, +) keep as it is.
def _channels_last(x: Any) -> Any:
    """An [N, C, H, W] array as an [N, H, W, C] view (a free transpose; contiguous if x came from a conv)."""
    return x.transpose(0, 2, 3, 1)


def _is_pointwise(window: Window, groups: int) -> bool:
    """A 1×1 kernel with stride 1, no padding and one group: the convolution is a plain [N·H·W, C] @ [C, O]."""
    return window.kernel == (1, 1) and window.stride == (1, 1) and window.padding == (0, 0) and groups == 1


def _columns(x: Any, window: Window, grid: tuple[int, int], groups: int) -> Any:
    """x [N, C, H, W] → its windows as rows, [G, N·Ho·Wo, kh·kw·C/G] (the one copy; none for 1×1 convolutions)."""
    xp, x = xp_of(x), _channels_last(x)
    n, _, _, c = x.shape
    if _is_pointwise(window, groups):  # (cut to `grid`: the adjoint of an output_padding can ask for fewer)
        return x[:, : grid[0], : grid[1]].reshape(1, -1, c)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = window
    if ph or pw:
        x = xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))  # [N, H + 2ph, W + 2pw, C]
    step_n, step_h, step_w, step_c = x.strides
    windows = xp.lib.stride_tricks.as_strided(  # a read-only view: [N, Ho, Wo, kh, kw, G, C/G]
        x,
        (n, *grid, kh, kw, groups, c // groups),
        (step_n, sh * step_h, sw * step_w, dh * step_h, dw * step_w, c // groups * step_c, step_c),
    )
    windows = windows.transpose(5, 0, 1, 2, 3, 4, 6)  # [G, N, Ho, Wo, kh, kw, C/G]
    return windows.reshape(groups, n * math.prod(grid), -1)


def _kernel_matrices(weight: Any, groups: int) -> Any:
    """W [O, C/G, kh, kw] → [G, kh·kw·C/G, O/G], the right-hand side of the column GEMM."""
    out_channels, per_group, kh, kw = weight.shape
    per_group_kernels = weight.reshape(groups, out_channels // groups, per_group, kh, kw)
    return per_group_kernels.transpose(0, 3, 4, 2, 1).reshape(groups, kh * kw * per_group, -1)


def _per_group(g: Any, groups: int) -> Any:
    """A gradient [N, O, Ho, Wo] as [G, N·Ho·Wo, O/G] rows."""
    g = _channels_last(g)
    rows = g.reshape(-1, g.shape[3])  # [N·Ho·Wo, O] (a copy unless g is channels-last)
    return rows.reshape(rows.shape[0], groups, -1).transpose(1, 0, 2)


def _to_image(rows: Any, batch: int, grid: tuple[int, int]) -> Any:
    """[G, N·Ho·Wo, O/G] → an [N, O, Ho, Wo] view of an NHWC array."""
    groups, _, per_group = rows.shape
    rows = rows[0] if groups == 1 else rows.transpose(1, 0, 2).reshape(-1, groups * per_group)  # [N·Ho·Wo, O]
    return rows.reshape(batch, *grid, groups * per_group).transpose(0, 3, 1, 2)


COLUMN_BYTES = 16 << 20  # the most bytes of window rows built at once (a few images at a time, never the batch's)


def _image_chunks(batch: int, bytes_per_image: int) -> list[slice]:
    """The batch cut into runs of images whose window rows fit in COLUMN_BYTES (at least one image each)."""
    step = max(1, COLUMN_BYTES // max(1, bytes_per_image))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def _conv_forward(x: Any, weight: Any, window: Window, groups: int, grid: tuple[int, int]) -> Any:
    """Array conv2d at the first `grid` window positions: one GEMM per group of window rows and kernels.

    The window rows (kh·kw times the input) are built a few images at a time and each run's GEMM writes
    its block of the output, so they never take more than COLUMN_BYTES.
    """
    xp, kernels = xp_of(x), _kernel_matrices(weight, groups)  # [G, kh·kw·C/G, O/G]
    n, positions = x.shape[0], math.prod(grid)
    rows = xp.empty((groups, n * positions, kernels.shape[2]), dtype=xp.result_type(x, weight))  # [G, N·L, O/G]
    for images in _image_chunks(n, positions * kernels.shape[1] * groups * x.itemsize):
        block = rows[:, images.start * positions : images.stop * positions]
        xp.matmul(_columns(x[images], window, grid, groups), kernels, out=block)
    return _to_image(rows, n, grid)


def _mirror_window(window: Window, grid: tuple[int, int], size: tuple[int, int]) -> Window | None:
    """For stride 1, the window of the convolution that computes the input gradient directly (or None).

    With stride 1, x's gradient is g convolved with the kernel flipped in space and transposed in
    channels, padded by d·(k - 1) - p: a plain forward convolution, whose columns are one copy of g
    rather than col2im's kh·kw scattered adds. It applies when that padding is not negative and the
    result has x's size (a conv_transpose2d with output_padding does not).
    """
    padding = tuple(d * (k - 1) - p for k, p, d in zip(window.kernel, window.padding, window.dilation))
    if window.stride != (1, 1) or min(padding) < 0:
        return None
    mirror = Window(window.kernel, (1, 1), padding, window.dilation)
    reach = tuple(n + 2 * p - span + 1 for n, p, span in zip(grid, padding, mirror.spans()))  # its grid, unchecked
    return mirror if reach == tuple(size) else None


def _mirror_kernels(weight: Any, groups: int) -> Any:
    """W [O, C/G, kh, kw] → W' [C, O/G, kh, kw], W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j] within each group."""
    out_channels, per_group, kh, kw = weight.shape
    per_group_kernels = weight.reshape(groups, out_channels // groups, per_group, kh, kw)
    return per_group_kernels.transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1].reshape(groups * per_group, -1, kh, kw)


def _conv_backward_input(g: Any, weight: Any, window: Window, groups: int, size: tuple[int, int]) -> Any:
    """Array input gradient (= conv_transpose2d): columns g @ Wᵀ, each kernel offset's slice added back onto x."""
    xp = xp_of(g)
    n, _, *grid = g.shape
    mirror = _mirror_window(window, tuple(grid), size)
    if mirror is not None:
        return _conv_forward(g, _mirror_kernels(weight, groups), mirror, groups, size)
    kernels_t = _kernel_matrices(weight, groups).transpose(0, 2, 1)  # [G, O/G, kh·kw·C/G]
    offsets, (ph, pw) = math.prod(window.kernel), window.padding
    (ho, wo), (h, w) = grid, size
    per_group = kernels_t.shape[2] // offsets
    padded_size = (n, h + 2 * ph, w + 2 * pw, groups, per_group)  # [N, Hp, Wp, G, C/G]
    out = xp.zeros(padded_size, dtype=xp.result_type(g, weight))
    for images in _image_chunks(n, ho * wo * kernels_t.shape[2] * groups * g.itemsize):
        rows = _per_group(g[images], groups) @ kernels_t  # [G, n·Ho·Wo, kh·kw·C/G] for these n images
        cols = rows.reshape(groups, -1, ho, wo, offsets, per_group)  # [G, n, Ho, Wo, kh·kw, C/G]
        for k, (image_rows, image_columns) in enumerate(window.offset_slices((ho, wo))):
            out[images, image_rows, image_columns] += cols[:, :, :, :, k].transpose(1, 2, 3, 0, 4)
    out = out[:, ph : ph + h, pw : pw + w].reshape(n, h, w, -1)  # (a copy only when there was padding)
    return out.transpose(0, 3, 1, 2)


def _conv_backward_weight(x: Any, g: Any, window: Window, groups: int) -> Any:
    """Array weight gradient: window rowsᵀ @ g per group → [O, C/G, kh, kw]."""
    (kh, kw), grid = window.kernel, tuple(g.shape[2:])
    chunks = _image_chunks(x.shape[0], math.prod(grid) * kh * kw * x.shape[1] * x.itemsize)
    grads = sum(_columns(x[images], window, grid, groups).transpose(0, 2, 1) @ _per_group(g[images], groups)
                for images in chunks)  # fmt: skip
    per_group_out = grads.shape[2]  # grads: [G, kh·kw·C/G, O/G]
    grads = grads.reshape(groups, kh, kw, -1, per_group_out).transpose(0, 4, 3, 1, 2)  # [G, O/G, C/G, kh, kw]
    return grads.reshape(groups * per_group_out, -1, kh, kw)


def _conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, window: Window, groups: int, grid: tuple[int, int] | None = None
) -> Tensor:
    """The conv2d op on checked operands, saving x and W only; `grid` cuts the window positions short.

    (Only the adjoint of a conv_transpose2d with output_padding needs `grid`: its input has a row or
    column more than the windows it came from.)
    """
    grid = window.grid("conv2d", x.shape[2:]) if grid is None else grid
    out = _conv_forward(x.data, weight.data, window, groups, grid)
    if bias is not None:
        out += bias.data.reshape(1, -1, 1, 1)  # in place: out is a fresh array

    def backward(g: Tensor, _: Tensor) -> tuple:
        grad_x = _conv_input_grad(g, weight, window, groups, x.shape[2:]) if x.requires_grad else None
        grad_w = _conv_weight_grad(x, g, window, groups) if weight.requires_grad else None
        grad_b = ops.sum(g, axis=(0, 2, 3)) if bias is not None and bias.requires_grad else None
        return grad_x, grad_w, grad_b

    return record_op("conv2d", out, (x, weight) if bias is None else (x, weight, bias), backward)


def _conv_input_grad(g: Tensor, weight: Tensor, window: Window, groups: int, size: tuple[int, int]) -> Tensor:
    """The op g, W ↦ ∂<conv(x, W), g>/∂x (conv_transpose2d); its backward is conv and the weight gradient."""
    out = _conv_backward_input(g.data, weight.data, window, groups, size)

    def backward(h: Tensor, _: Tensor) -> tuple:
        grad_g = _conv(h, weight, None, window, groups, g.shape[2:]) if g.requires_grad else None
        grad_w = _conv_weight_grad(h, g, window, groups) if weight.requires_grad else None
        return grad_g, grad_w

    return record_op("conv2d_input_grad", out, (g, weight), backward)


def _conv_weight_grad(x: Tensor, g: Tensor, window: Window, groups: int) -> Tensor:
    """The op x, g ↦ ∂<conv(x, W), g>/∂W; its backward is the input gradient and conv."""
    out = _conv_backward_weight(x.data, g.data, window, groups)

    def backward(h: Tensor, _: Tensor) -> tuple:
        grad_x = _conv_input_grad(g, h, window, groups, x.shape[2:]) if x.requires_grad else None
        grad_g = _conv(x, h, None, window, groups, g.shape[2:]) if g.requires_grad else None
        return grad_x, grad_g

    return record_op("conv2d_weight_grad", out, (x, g), backward)


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation: x [N, C, H, W] (or one image [C, H, W]), weight [O, C/groups, kh, kw], bias [O]
    → [N, O, Ho, Wo]; padding is a number, a pair, "valid" or "same", as in PyTorch."""
    x, weight = ops.as_tensor(x), ops.as_tensor(weight)
    if x.ndim == 3:
        return _one_sample(conv2d, x, weight, bias, stride, padding, dilation, groups)
    _check_weight("conv2d", weight, 4, groups)
    uneven = _string_padding("conv2d", padding, weight.shape[2:], stride, dilation)
    if uneven:
        padding, after = uneven
        x = _pad_after(x, [a - b for a, b in zip(after, padding)])
    bias = _check_bias("conv2d", bias, weight.shape[0])
    _check_input("conv2d", x, "NCHW", channels=weight.shape[1] * groups)
    window = Window.of(2, weight.shape[2:], stride, padding, dilation)
    window.grid("conv2d", x.shape[2:])
    return _conv(x, weight, bias, window, groups)


def conv1d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> Tensor:
    """1-D cross-correlation: x [N, C, L] (or one sequence [C, L]), weight [O, C/groups, k], bias [O] → [N, O, Lo]
    (conv2d on a unit axis); padding is a number, "valid" or "same"."""
    x, weight = ops.as_tensor(x), ops.as_tensor(weight)
    if x.ndim == 2:
        return _one_sample(conv1d, x, weight, bias, stride, padding, dilation, groups)
    _check_weight("conv1d", weight, 3, groups)
    uneven = _string_padding("conv1d", padding, weight.shape[2:], stride, dilation)
    if uneven:
        (padding,), (after,) = uneven
        x = _pad_after(x, [after - padding])
    bias = _check_bias("conv1d", bias, weight.shape[0])
    _check_input("conv1d", x, "NCL", channels=weight.shape[1] * groups)
    line = Window.of(1, weight.shape[2:], stride, padding, dilation)
    (k,), (s,), (p,), (d,) = line
    window = Window((1, k), (1, s), (0, p), (1, d))  # the unit height axis: k = s = d = 1, p = 0
    line.grid("conv1d", x.shape[2:])
    out = _conv(ops.unsqueeze(x, 2), ops.unsqueeze(weight, 2), bias, window, groups)  # [N, O, 1, Lo]
    return ops.squeeze(out, 2)


def conv_transpose2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Transposed 2-D convolution (conv2d's adjoint): x [N, C, H, W] (or [C, H, W]), weight [C, O/groups, kh, kw]
    → [N, O, Ho, Wo].

    Ho = (H - 1)·s - 2p + d·(kh - 1) + output_padding + 1, the input size of the conv2d it undoes.
    """
    x, weight = ops.as_tensor(x), ops.as_tensor(weight)
    if x.ndim == 3:
        return _one_sample(conv_transpose2d, x, weight, bias, stride, padding, output_padding, groups, dilation)
    _check_weight("conv_transpose2d", weight, 4, groups)
    bias = _check_bias("conv_transpose2d", bias, weight.shape[1] * groups)
    _check_input("conv_transpose2d", x, "NCHW", channels=weight.shape[0])
    window = Window.of(2, weight.shape[2:], stride, padding, dilation)
    extra = _tuple(output_padding, 2, "output_padding", 0)
    if any(e >= max(s, d) for e, s, d in zip(extra, window.stride, window.dilation)):
        raise ValueError(f"conv_transpose2d: output_padding {extra} must be smaller than stride or dilation")
    grid = x.shape[2:]
    size = tuple((g - 1) * s - 2 * p + span + e for g, s, p, span, e in
                 zip(grid, window.stride, window.padding, window.spans(), extra))  # fmt: skip
    if min(size) < 1:
        raise ShapeError(f"conv_transpose2d: input {x.shape} with padding {window.padding} gives output size {size}")
    return _add_bias(_conv_input_grad(x, weight, window, groups, size), bias)  # [N, O, Ho, Wo]


# -------------------------------------------------------------------------------------------------
# The reference path: unfold and one matmul, every step on the tape
# -------------------------------------------------------------------------------------------------
# The first way this file computed convolutions, kept because it is the plainest to check: the fast
# ops above are tested against it on random shapes, strides, paddings, dilations and groups. It
# saves the unfolded columns (kh·kw times the input) on the tape, which is why it is not used.
def conv2d_unfold(x: Tensor, weight: Tensor, bias: Tensor | None, window: Window, groups: int) -> Tensor:
    """Reference conv2d on checked operands: unfold, then one matmul per group for the whole batch."""
    n, out_channels = x.shape[0], weight.shape[0]
    grid = window.grid("conv2d", x.shape[2:])
    cols = ops.reshape(_unfold(x, window, grid), (groups, -1, n * math.prod(grid)))  # [G, C/G·kh·kw, N·L]
    kernels = ops.reshape(weight, (groups, out_channels // groups, -1))  # [G, O/G, C/G·kh·kw]
    out = ops.reshape(ops.matmul(kernels, cols), (out_channels, n, *grid))  # [G, O/G, N·L] → [O, N, Ho, Wo]
    return _add_bias(ops.permute(out, (1, 0, 2, 3)), bias)  # [N, O, Ho, Wo]


def conv_transpose2d_unfold(x: Tensor, weight: Tensor, window: Window, groups: int, size: tuple[int, int]) -> Tensor:
    """Reference conv_transpose2d (no bias) on checked operands: one matmul per group, then fold."""
    n, in_channels, *grid = x.shape
    kernels = ops.reshape(weight, (groups, in_channels // groups, -1))  # [G, C/G, O/G·kh·kw]
    y = ops.reshape(ops.permute(x, (1, 0, 2, 3)), (groups, in_channels // groups, -1))  # [G, C/G, N·L]
    cols = ops.matmul(ops.swapaxes(kernels, -1, -2), y)  # [G, O/G·kh·kw, N·L]
    return _fold(ops.reshape(cols, (-1, n * math.prod(grid))), window, tuple(grid), size)  # [N, O, Ho, Wo]


# =================================================================================================
# Pooling
# =================================================================================================
def _pool_window(where: str, kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair,
                 dilation: IntOrPair = 1) -> Window:  # fmt: skip
    """The window of a pooling layer: stride defaults to the kernel, padding is at most half the kernel."""
    window = Window.of(2, kernel_size, kernel_size if stride is None else stride, padding, dilation)
    if any(2 * p > k for p, k in zip(window.padding, window.kernel)):
        raise ValueError(f"{where}: padding {window.padding} must be at most half the kernel size {window.kernel}")
    return window


def _ceil_overhang(window: Window, size: Sequence[int]) -> tuple[int, ...]:
    """How far ceil_mode's last window reaches past the padded input, per axis (PyTorch's rule: one more
    window when the remainder is partial, as long as that window starts inside the input or its left padding)."""
    extra = []
    for n, span, s, p in zip(size, window.spans(), window.stride, window.padding):
        out = -(-(n + 2 * p - span) // s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
        extra.append(max((out - 1) * s + span - (n + 2 * p), 0))  # (negative: the grid stops short anyway)
    return tuple(extra)


def _offset_views(x: Any, window: Window, grid: tuple[int, int]) -> Iterator[Any]:
    """For each kernel offset (i, j) in row-major order, the [N, C, Ho, Wo] view of padded x it reads."""
    for rows, columns in window.offset_slices(grid):
        yield x[:, :, rows, columns]


def _padded(x: Any, window: Window, fill: float) -> Any:
    """x [N, C, H, W] with `fill` around its two spatial axes (x itself when there is no padding)."""
    ph, pw = window.padding
    if not (ph or pw):
        return x
    return xp_of(x).pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)


def _window_max(x: Any, window: Window, grid: tuple[int, int]) -> tuple[Any, Any]:
    """Each window's largest value and which kernel offset holds its first maximum (or first NaN), [N, C, Ho, Wo].

    A running maximum over the kh·kw offset views; an offset takes over only where it is strictly larger,
    so ties keep the first. NaN (rare) is routed by a second pass over the windows that hold one.
    """
    xp = xp_of(x)
    padded = _padded(x, window, -np.inf)
    views = _offset_views(padded, window, grid)
    best = next(views).copy(order="K")  # (in x's memory order, which the views share)
    offsets = xp.zeros_like(best, dtype=np.int8 if math.prod(window.kernel) < 128 else np.int32)
    later, taken = xp.empty_like(best, dtype=bool), xp.empty_like(offsets)
    for k, view in enumerate(views, start=1):
        xp.greater(view, best, out=later)
        xp.multiply(later, k, out=taken)
        xp.maximum(offsets, taken, out=offsets)  # k only grows, so this sets offsets to k exactly where `later`
        xp.maximum(best, view, out=best)  # NaN wins, as the window max should
    nan = xp.isnan(best)
    if xp is not np or nan.any():  # (on a GPU the pass runs unasked: asking would wait for the device)
        for k, view in reversed(list(enumerate(_offset_views(padded, window, grid)))):
            xp.copyto(offsets, k, where=nan & xp.isnan(view))
    return best, offsets


def _pool_gather(x: Tensor, offsets: Any, window: Window) -> Tensor:
    """The op x ↦ out[n, c, p, q] = x_pad[n, c, window (p, q) at kernel offset offsets[n, c, p, q]]."""
    xp = xp_of(x.data)
    out = xp.zeros(offsets.shape, dtype=x.dtype)  # [N, C, Ho, Wo]
    for k, view in enumerate(_offset_views(_padded(x.data, window, 0.0), window, offsets.shape[2:])):
        xp.copyto(out, view, where=offsets == k)
    size = x.shape[2:]
    return record_op("max_pool2d_gather", out, (x,), lambda g, _: (_pool_scatter(g, offsets, window, size),))


def _pool_scatter(g: Tensor, offsets: Any, window: Window, size: tuple[int, int]) -> Tensor:
    """The adjoint of `_pool_gather`: each g[n, c, p, q] added onto the input entry that window picked."""
    xp = xp_of(g.data)
    (ph, pw), (h, w) = window.padding, size
    n, c = g.shape[:2]
    if _channels_last(offsets).flags.c_contiguous:  # keep the input's memory order (channels-last after a conv)
        out = xp.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=g.dtype).transpose(0, 3, 1, 2)  # [N, C, Hp, Wp] view
    else:
        out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)  # [N, C, Hp, Wp]
    overlapping = any(span > s for span, s in zip(window.spans(), window.stride))
    for k, view in enumerate(_offset_views(out, window, offsets.shape[2:])):
        if overlapping:
            view += g.data * (offsets == k)  # (one offset never reads a pixel twice: safe in place)
        else:
            xp.multiply(g.data, offsets == k, out=view)  # each pixel lies in one window at most
    out = out[:, :, ph : ph + h, pw : pw + w]
    return record_op("max_pool2d_backward", out, (g,), lambda h, _: (_pool_gather(h, offsets, window),))


def max_pool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               dilation: IntOrPair = 1, ceil_mode: bool = False) -> Tensor:  # fmt: skip
    """Largest value of each window (padding is -inf); x [N, C, H, W] (or [C, H, W]) → [N, C, Ho, Wo];
    PyTorch's arguments, in its order (ceil_mode: a last, partial window where the input leaves one).

    Gradient routing: each output's gradient goes to one input, the first maximal entry of its window in
    row-major order (as torch does on the CPU); tied entries after it get nothing. A window holding a NaN
    returns NaN and routes to the first NaN. The windows are read as kh·kw strided views of x (no unfold):
    only the winning offset of each window, a byte per output, is saved for backward.
    """
    x = ops.as_tensor(x)
    if x.ndim == 3:
        return _one_sample(max_pool2d, x, kernel_size, stride, padding, dilation, ceil_mode)
    x = _image("max_pool2d", x)
    window = _pool_window("max_pool2d", kernel_size, stride, padding, dilation)
    if ceil_mode:
        x = _pad_after(x, _ceil_overhang(window, x.shape[2:]), -np.inf)
    grid = window.grid("max_pool2d", x.shape[2:])
    out, offsets = _window_max(x.data, window, grid)
    size = x.shape[2:]
    return record_op("max_pool2d", out, (x,), lambda g, _: (_pool_scatter(g, offsets, window, size),))


def avg_pool2d(x: Any, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:  # fmt: skip
    """Mean of each window, x [N, C, H, W] (or [C, H, W]) → [N, C, Ho, Wo], with PyTorch's arguments in its order:
    padded zeros count towards the mean unless count_include_pad=False (ceil_mode's overhang never does);
    divisor_override replaces the count."""
    x = ops.as_tensor(x)
    if x.ndim == 3:
        return _one_sample(avg_pool2d, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    x = _image("avg_pool2d", x)
    window = _pool_window("avg_pool2d", kernel_size, stride, padding)
    overhang = _ceil_overhang(window, x.shape[2:]) if ceil_mode else (0, 0)
    (ph, pw), (h, w) = window.padding, x.shape[2:]
    padded = ops.pad(x, ((0, 0), (0, 0), (ph, ph + overhang[0]), (pw, pw + overhang[1])))  # zeros
    flat = Window(window.kernel, window.stride, (0, 0), window.dilation)
    grid = flat.grid("avg_pool2d", padded.shape[2:])
    n, c = x.shape[:2]
    cols = ops.reshape(_unfold(padded, flat, grid), (c, -1, n, *grid))  # [C, kh·kw, N, Ho, Wo]
    sums = ops.permute(ops.sum(cols, axis=1), (1, 0, 2, 3))  # [N, C, Ho, Wo]
    if divisor_override:
        return sums / divisor_override
    counted = np.zeros((1, 1, *padded.shape[2:]), dtype=x.dtype)  # which padded cells count towards the mean
    counted[..., : h + 2 * ph, : w + 2 * pw] = 1 if count_include_pad else 0
    counted[..., ph : ph + h, pw : pw + w] = 1
    divisor = _im2col(counted, flat, grid, 0.0).sum(axis=0).reshape(grid)  # [Ho, Wo]
    return sums / Tensor(backend.to_device(divisor, x.device))


def _bin_means(size: int, bins: int) -> np.ndarray:
    """[bins, size] matrix averaging torch's adaptive bins [⌊i·size/bins⌋, ⌈(i+1)·size/bins⌉)."""
    matrix = np.zeros((bins, size))
    for i in range(bins):
        start, stop = i * size // bins, -(-(i + 1) * size // bins)
        matrix[i, start:stop] = 1 / (stop - start)
    return matrix


def adaptive_avg_pool2d(x: Any, output_size: int | Sequence[int | None]) -> Tensor:
    """Average over an output_size grid of (possibly overlapping) bins: [N, C, H, W] → [N, C, *output_size].

    A rectangular bin's mean is the row-bin mean of the column-bin means, so
    out[n, c] = A_h @ x[n, c] @ A_wᵀ with A the [bins, size] averaging matrices. None keeps an axis's size.
    """
    x = ops.as_tensor(x)
    if x.ndim == 3:
        return _one_sample(adaptive_avg_pool2d, x, output_size)
    x = _image("adaptive_avg_pool2d", x)
    sizes = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or 2 entries, got {output_size!r}")
    bins = tuple(n if b is None else _tuple(b, 1, "output_size", 1)[0] for b, n in zip(sizes, x.shape[2:]))
    rows, columns = (Tensor(backend.to_device(_bin_means(n, b).astype(x.dtype), x.device))
                     for n, b in zip(x.shape[2:], bins))  # fmt: skip
    return ops.einsum("ih,nchw,jw->ncij", rows, x, columns)


# =================================================================================================
# Modules
# =================================================================================================
class _ConvNd(Module):
    """What Conv1d, Conv2d and ConvTranspose2d share: the settings, the parameters and torch's initialisation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        window: Window,
        groups: int,
        bias: bool,
        weight_shape: tuple[int, ...],
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels={in_channels} and out_channels={out_channels} must be divisible by groups={groups}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding, self.dilation = window
        self.weight = Parameter(np.empty(weight_shape, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def window(self) -> Window:
        """The kernel window (kernel, stride, padding, dilation)."""
        return Window(self.kernel_size, self.stride, self.padding, self.dilation)

    def reset_parameters(self) -> None:
        """torch's default: weight ~ kaiming_uniform(a=√5) = U(±1/√fan_in), bias ~ U(±1/√fan_in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def short_name(self) -> str:
        """A short name for error messages, e.g. "Conv2d(1→32, k=3)"."""
        kernel = self.kernel_size[0] if len(set(self.kernel_size)) == 1 else _size_text(self.kernel_size)
        return f"{type(self).__name__}({self.in_channels}→{self.out_channels}, k={kernel})"

    def extra_repr(self) -> str:
        """torch's format: "1, 32, kernel_size=(3, 3), stride=(1, 1)" plus the non-default settings."""
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if any(getattr(self, "output_padding", ())):
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-D convolution layer, weight [out, in/groups, kh, kw] (see `conv2d`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        uneven = _string_padding("Conv2d", padding, _tuple(kernel_size, 2, "kernel_size", 1), stride, dilation)
        window = Window.of(2, kernel_size, stride, uneven[0] if uneven else padding, dilation)
        shape = (out_channels, in_channels // groups, *window.kernel)
        super().__init__(in_channels, out_channels, window, groups, bias, shape)
        self.padding_arg = padding  # what forward passes on: numbers, "valid" or "same"

    def forward(self, x: Tensor) -> Tensor:
        """[N, in, H, W] → [N, out, Ho, Wo] (one image [in, H, W] → [out, Ho, Wo])."""
        x = ops.as_tensor(x)
        if x.ndim == 3:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCHW", channels=self.in_channels, window=self.window)
        return conv2d(x, self.weight, self.bias, self.stride, self.padding_arg, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution layer over sequences, weight [out, in/groups, k] (see `conv1d`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | str = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        uneven = _string_padding("Conv1d", padding, _tuple(kernel_size, 1, "kernel_size", 1), stride, dilation)
        window = Window.of(1, kernel_size, stride, uneven[0] if uneven else padding, dilation)
        shape = (out_channels, in_channels // groups, *window.kernel)
        super().__init__(in_channels, out_channels, window, groups, bias, shape)
        self.padding_arg = padding  # what forward passes on: numbers, "valid" or "same"

    def forward(self, x: Tensor) -> Tensor:
        """[N, in, L] → [N, out, Lo] (one sequence [in, L] → [out, Lo])."""
        x = ops.as_tensor(x)
        if x.ndim == 2:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCL", channels=self.in_channels, window=self.window)
        return conv1d(x, self.weight, self.bias, self.stride, self.padding_arg, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (learned upsampling), weight [in, out/groups, kh, kw] (see `conv_transpose2d`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntOrPair = 1,
    ) -> None:
        window = Window.of(2, kernel_size, stride, padding, dilation)
        shape = (in_channels, out_channels // groups, *window.kernel)
        super().__init__(in_channels, out_channels, window, groups, bias, shape)
        self.output_padding = _tuple(output_padding, 2, "output_padding", 0)

    def forward(self, x: Tensor) -> Tensor:
        """[N, in, H, W] → [N, out, Ho, Wo], Ho = (H - 1)·s - 2p + d·(k - 1) + output_padding + 1."""
        x = ops.as_tensor(x)
        if x.ndim == 3:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCHW", channels=self.in_channels)
        return conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )


class _Pool2d(Module):
    """What MaxPool2d and AvgPool2d share: a window with stride defaulting to the kernel size."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
                 dilation: IntOrPair = 1, ceil_mode: bool = False) -> None:  # fmt: skip
        super().__init__()
        window = _pool_window(type(self).__name__, kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding, self.dilation = window
        self.window, self.ceil_mode = window, ceil_mode

    def short_name(self) -> str:
        """A short name for error messages, e.g. "MaxPool2d(k=2)"."""
        kernel = self.kernel_size[0] if len(set(self.kernel_size)) == 1 else _size_text(self.kernel_size)
        return f"{type(self).__name__}(k={kernel})"

    def extra_repr(self) -> str:
        """torch's format: "kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)"."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling layer (see `max_pool2d` for how ties route the gradient)."""

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] → [N, C, Ho, Wo] (one image [C, H, W] → [C, Ho, Wo])."""
        x = ops.as_tensor(x)
        if x.ndim == 3:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCHW", window=self.window)
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(_Pool2d):
    """Average pooling layer (padded zeros count towards the mean unless count_include_pad=False)."""

    def __init__(self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode)
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] → [N, C, Ho, Wo] (one image [C, H, W] → [C, Ho, Wo])."""
        x = ops.as_tensor(x)
        if x.ndim == 3:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCHW", window=self.window)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)  # fmt: skip


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size (1 gives global average pooling)."""

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        """[N, C, H, W] → [N, C, *output_size] (one image [C, H, W] → [C, *output_size])."""
        x = ops.as_tensor(x)
        if x.ndim == 3:
            return _one_sample(self.forward, x)
        _check_input(self.short_name(), x, "NCHW")
        return adaptive_avg_pool2d(x, self.output_size)

    def short_name(self) -> str:
        """A short name for error messages, e.g. "AdaptiveAvgPool2d(1)"."""
        return f"AdaptiveAvgPool2d({self.output_size})"

    def extra_repr(self) -> str:
        """torch's format: "output_size=(1, 1)"."""
        return f"output_size={self.output_size}"

"""Convolutions and pooling: forward against naive NumPy loops, gradients against finite differences.

Hypothesis draws the geometry (kernel sizes, strides, padding, dilation, groups, odd input sizes);
every layer is checked against a direct loop written here (test-only references), by gradcheck in
float64 for input, weight and bias, and conv_transpose2d against the adjoint identity
<conv2d(x, W), y> = <x, conv_transpose2d(y, W)>. The channels-last GEMM ops that conv2d and
conv_transpose2d run on are compared with the unfold + matmul reference path (values and gradients).
Where torch is installed, values and gradients are also compared with torch in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.errors import ShapeError
from tinyzoo.nn.conv import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    Window,
    adaptive_avg_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv2d_unfold,
    conv_transpose2d,
    conv_transpose2d_unfold,
    fold,
    max_pool2d,
    unfold,
)

FAST = settings(max_examples=40, deadline=None)
GRADCHECK = settings(max_examples=25, deadline=None)


# =================================================================================================
# Naive references: direct loops over output positions (test only)
# =================================================================================================
def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """out[n, o, p, q] = b[o] + Σ_{c,i,j} w[o, c, i, j] x_pad[n, g·C/G + c, p·sh + i·dh, q·sw + j·dw]."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for g in range(groups):
        for p in range(ho):
            for q in range(wo):
                patch = xp[:, g * cg : (g + 1) * cg, p * sh : p * sh + dh * (kh - 1) + 1 : dh,
                           q * sw : q * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
                out[:, g * og : (g + 1) * og, p, q] = np.einsum("ncij,ocij->no", patch, w[g * og : (g + 1) * og])
    return out if b is None else out + b[None, :, None, None]


def naive_conv_transpose2d(y, w, b, stride, padding, output_padding, groups, dilation):
    """Scatter every input pixel times its kernel into the (padded) output, then crop the padding."""
    (sh, sw), (ph, pw), (eh, ew), (dh, dw) = stride, padding, output_padding, dilation
    n, c, h, wd = y.shape
    _, og, kh, kw = w.shape
    cg = c // groups
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + eh, (wd - 1) * sw + dw * (kw - 1) + 1 + ew
    out = np.zeros((n, og * groups, full_h, full_w))
    for g in range(groups):
        for p in range(h):
            for q in range(wd):
                contribution = np.einsum("nc,coij->noij", y[:, g * cg : (g + 1) * cg, p, q], w[g * cg : (g + 1) * cg])
                out[:, g * og : (g + 1) * og, p * sh : p * sh + dh * (kh - 1) + 1 : dh,
                    q * sw : q * sw + dw * (kw - 1) + 1 : dw] += contribution  # fmt: skip
    out = out[:, :, ph : full_h - ph, pw : full_w - pw]
    return out if b is None else out + b[None, :, None, None]


def naive_pool2d(x, kernel, stride, padding, reduce, fill):
    """reduce (np.max or np.mean) over every window of x padded with `fill`."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (ho, wo))
    for p in range(ho):
        for q in range(wo):
            out[:, :, p, q] = reduce(xp[:, :, p * sh : p * sh + kh, q * sw : q * sw + kw], axis=(2, 3))
    return out


def naive_adaptive_avg_pool2d(x, out_h, out_w):
    """torch's bins: rows [⌊i·H/Ho⌋, ⌈(i+1)·H/Ho⌉), likewise columns."""
    h, w = x.shape[2:]
    out = np.zeros(x.shape[:2] + (out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            rows = slice(math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h))
            cols = slice(math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w))
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out


# =================================================================================================
# Strategies
# =================================================================================================
@st.composite
def conv_setups(draw, max_channels: int = 2, max_extra: int = 4):
    """A conv2d geometry and arrays: x [N, C, H, W], w [O, C/G, kh, kw], b [O], and the settings."""
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), d * (k - 1) + 1 - 2 * p + max_extra))
        for k, p, d in zip(kernel, padding, dilation)
    )  # the smallest input the kernel fits, up to max_extra more
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), cg * groups, *size))
    w = rng.standard_normal((og * groups, cg, *kernel))
    b = rng.standard_normal(og * groups)
    return x, w, b, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


@st.composite
def pool_setups(draw):
    """x [N, C, H, W] of distinct values (so max ties never straddle a finite-difference step) and a window."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(max(1, k - 2 * p), k - 2 * p + 5)) for k, p in zip(kernel, padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *size)
    x = rng.permutation(math.prod(shape)).reshape(shape) * 0.01 + rng.uniform(0, 1e-3, shape)
    return x, kernel, stride, padding


def _transpose_settings(x: np.ndarray, w: np.ndarray, settings_: dict) -> dict:
    """The conv_transpose2d arguments that undo conv2d(x, w, **settings_) exactly (output_padding included)."""
    kernel = w.shape[2:]
    extra = tuple(
        (n + 2 * p - d * (k - 1) - 1) % s
        for n, k, s, p, d in zip(x.shape[2:], kernel, settings_["stride"], settings_["padding"], settings_["dilation"])
    )
    return {**settings_, "output_padding": extra}


def _tensors(*arrays: np.ndarray) -> list[tz.Tensor]:
    """Leaf tensors (requires_grad) holding the arrays."""
    return [tz.tensor(a, requires_grad=True) for a in arrays]


# =================================================================================================
# conv2d
# =================================================================================================
@FAST
@given(conv_setups(max_channels=3, max_extra=6))
def test_conv2d_matches_naive_loops(setup):
    x, w, b, kw = setup
    out = conv2d(tz.tensor(x), tz.tensor(w), tz.tensor(b), **kw)
    np.testing.assert_allclose(out.numpy(), naive_conv2d(x, w, b, **kw), rtol=1e-10, atol=1e-12)


@GRADCHECK
@given(conv_setups())
def test_conv2d_gradcheck_input_weight_bias(setup):
    x, w, b, kw = setup
    tz.gradcheck(lambda x, w, b: conv2d(x, w, b, **kw), _tensors(x, w, b))


def test_conv2d_second_derivatives():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    fn = lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)  # noqa: E731
    tz.gradgradcheck(fn, _tensors(x, w, b))


def test_conv2d_float32_stays_float32_and_no_grad_records_nothing():
    x, w = tz.randn(2, 3, 8, 8), tz.randn(4, 3, 3, 3, requires_grad=True)
    assert conv2d(x, w).dtype == np.float32
    with tz.no_grad():
        assert conv2d(x, w).grad_fn is None


def test_strided_inputs_and_outputs_chain():
    """Outputs are transposed views ([O, N, H, W] in memory); every op takes them, and any other strides."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 3, 4, 9)).transpose(1, 2, 0, 3)  # [3, 4, 5, 9] with scrambled strides
    w1, w2 = rng.standard_normal((6, 4, 3, 3)), rng.standard_normal((6, 2, 2, 2))

    def net(x):
        h = max_pool2d(conv2d(x, w1, padding=1), 2, 1)
        return avg_pool2d(conv_transpose2d(h, w2, stride=2), 2)

    strided, packed = net(tz.tensor(x)), net(tz.tensor(np.ascontiguousarray(x)))
    np.testing.assert_allclose(strided.numpy(), packed.numpy(), rtol=1e-12, atol=1e-12)
    tz.gradcheck(net, _tensors(x[:1]))  # (gradcheck nudges its leaves in place, so they are packed)


def _values_and_gradients(fn, arrays: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """fn's output and the gradients of a random projection of it with respect to every array."""
    leaves = _tensors(*arrays)
    out = fn(*leaves)
    (out * tz.tensor(np.random.default_rng(seed).standard_normal(out.shape))).sum().backward()
    return [out.numpy()] + [leaf.grad.numpy() for leaf in leaves]


@FAST
@given(conv_setups(max_channels=3, max_extra=6), st.integers(0, 2**32 - 1))
def test_fast_conv_ops_equal_the_unfold_reference(setup, seed):
    """The channels-last GEMM ops (conv2d, conv_transpose2d) against unfold + matmul + fold: values and gradients."""
    x, w, b, kw = setup
    window = Window.of(2, w.shape[2:], kw["stride"], kw["padding"], kw["dilation"])
    fast = _values_and_gradients(lambda x, w, b: conv2d(x, w, b, **kw), [x, w, b], seed)
    reference = _values_and_gradients(lambda x, w, b: conv2d_unfold(x, w, b, window, kw["groups"]), [x, w, b], seed)
    for ours, theirs in zip(fast, reference):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    y = np.random.default_rng(seed).standard_normal(fast[0].shape)
    settings_ = _transpose_settings(x, w, kw)
    fast = _values_and_gradients(lambda y, w: conv_transpose2d(y, w, **settings_), [y, w], seed)
    reference = _values_and_gradients(
        lambda y, w: conv_transpose2d_unfold(y, w, window, kw["groups"], x.shape[2:]), [y, w], seed
    )
    for ours, theirs in zip(fast, reference):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_fast_conv_one_image_at_a_time_equals_the_whole_batch(monkeypatch, stride):
    """With a window-row budget of one byte every image is its own run: the same values and gradients."""
    import tinyzoo.nn.conv as conv_module

    rng = np.random.default_rng(stride)
    x, w, b = rng.standard_normal((3, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    settings_ = {"stride": stride, "padding": 1, "groups": 2}
    whole = _values_and_gradients(lambda x, w, b: conv2d(x, w, b, **settings_), [x, w, b], seed=0)
    monkeypatch.setattr(conv_module, "COLUMN_BYTES", 1)
    chunked = _values_and_gradients(lambda x, w, b: conv2d(x, w, b, **settings_), [x, w, b], seed=0)
    for ours, theirs in zip(chunked, whole):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_fast_conv_saves_no_columns_on_the_tape():
    """A conv node keeps x and W only: the unfolded columns (kh·kw times x) are not held until backward."""
    x, w = _tensors(np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3)))
    out = conv2d(x, w, padding=1)
    assert out.grad_fn == "conv2d" and len(out._node.inputs) == 2
    assert out._node.inputs[0] is x and out._node.inputs[1] is w


# =================================================================================================
# conv_transpose2d: the adjoint of conv2d
# =================================================================================================
@FAST
@given(conv_setups(max_channels=3))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(setup):
    x, w, _, kw = setup
    y = np.random.default_rng(0).standard_normal(naive_conv2d(x, w, None, **kw).shape)
    forward = np.vdot(conv2d(tz.tensor(x), tz.tensor(w), **kw).numpy(), y)
    back = conv_transpose2d(tz.tensor(y), tz.tensor(w), **_transpose_settings(x, w, kw))
    assert back.shape == x.shape
    np.testing.assert_allclose(forward, np.vdot(x, back.numpy()), rtol=1e-10, atol=1e-10)


@FAST
@given(conv_setups(max_channels=3))
def test_conv_transpose2d_matches_naive_loops(setup):
    x, w, _, kw = setup
    y = np.random.default_rng(0).standard_normal(naive_conv2d(x, w, None, **kw).shape)
    bias = np.random.default_rng(1).standard_normal(x.shape[1])  # conv_transpose2d's output has x's channels
    settings_ = _transpose_settings(x, w, kw)
    out = conv_transpose2d(tz.tensor(y), tz.tensor(w), tz.tensor(bias), **settings_)
    expected = naive_conv_transpose2d(y, w, bias, **settings_)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@GRADCHECK
@given(conv_setups())
def test_conv_transpose2d_gradcheck(setup):
    x, w, _, kw = setup
    rng = np.random.default_rng(2)
    y = rng.standard_normal(naive_conv2d(x, w, None, **kw).shape)
    bias = rng.standard_normal(w.shape[1] * kw["groups"])
    settings_ = _transpose_settings(x, w, kw)
    tz.gradcheck(lambda y, w, b: conv_transpose2d(y, w, b, **settings_), _tensors(y, w, bias))


def test_conv_transpose2d_second_derivatives_and_output_padding_below_dilation():
    rng = np.random.default_rng(3)
    y, w = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((2, 3, 2, 3))
    fn = lambda y, w: conv_transpose2d(y, w, stride=1, output_padding=1, dilation=2)  # noqa: E731  (op < dilation)
    assert fn(tz.tensor(y), tz.tensor(w)).shape == (1, 3, 3 + 2 + 1, 4 + 4 + 1)
    tz.gradgradcheck(fn, _tensors(y, w))


# =================================================================================================
# conv1d, unfold and fold
# =================================================================================================
@FAST
@given(conv_setups())
def test_conv1d_is_conv2d_on_a_unit_axis(setup):
    x, w, b, kw = setup
    x1, w1 = x[:, :, 0], w[:, :, 0]
    kw1 = {key: v[1] if isinstance(v, tuple) else v for key, v in kw.items()}  # the width axis's settings
    kw2 = {"stride": (1, kw1["stride"]), "padding": (0, kw1["padding"]), "dilation": (1, kw1["dilation"]),
           "groups": kw1["groups"]}  # fmt: skip
    out = conv1d(tz.tensor(x1), tz.tensor(w1), tz.tensor(b), **kw1)
    expected = naive_conv2d(x1[:, :, None], w1[:, :, None], b, **kw2)[:, :, 0]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    tz.gradcheck(lambda x, w, b: conv1d(x, w, b, **kw1), _tensors(x1[:1], w1, b))


@FAST
@given(conv_setups())
def test_fold_is_the_adjoint_of_unfold(setup):
    x, w, _, kw = setup
    window = {"kernel_size": w.shape[2:], "dilation": kw["dilation"], "padding": kw["padding"], "stride": kw["stride"]}
    cols = unfold(tz.tensor(x), **window)
    c = np.random.default_rng(0).standard_normal(cols.shape)
    back = fold(tz.tensor(c), x.shape[2:], **window)
    np.testing.assert_allclose(np.vdot(cols.numpy(), c), np.vdot(x, back.numpy()), rtol=1e-10, atol=1e-10)


# =================================================================================================
# Pooling
# =================================================================================================
@FAST
@given(pool_setups())
def test_max_pool2d_matches_naive_loops_and_gradcheck(setup):
    x, kernel, stride, padding = setup
    out = max_pool2d(tz.tensor(x), kernel, stride, padding)
    np.testing.assert_array_equal(out.numpy(), naive_pool2d(x, kernel, stride, padding, np.max, -np.inf))
    tz.gradcheck(lambda x: max_pool2d(x, kernel, stride, padding), _tensors(x))


@FAST
@given(pool_setups())
def test_avg_pool2d_matches_naive_loops_and_gradcheck(setup):
    x, kernel, stride, padding = setup
    out = avg_pool2d(tz.tensor(x), kernel, stride, padding)
    np.testing.assert_allclose(out.numpy(), naive_pool2d(x, kernel, stride, padding, np.mean, 0.0), rtol=1e-12)
    tz.gradcheck(lambda x: avg_pool2d(x, kernel, stride, padding), _tensors(x))


@FAST
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_adaptive_avg_pool2d_matches_torch_bins(h, w, out_h, out_w, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    out = adaptive_avg_pool2d(tz.tensor(x), (out_h, out_w))
    np.testing.assert_allclose(out.numpy(), naive_adaptive_avg_pool2d(x, out_h, out_w), rtol=1e-12, atol=1e-14)
    tz.gradcheck(lambda x: adaptive_avg_pool2d(x, (out_h, out_w)), _tensors(x))


def test_adaptive_avg_pool2d_none_keeps_the_axis():
    x = tz.randn(1, 2, 5, 7)
    assert adaptive_avg_pool2d(x, (None, 3)).shape == (1, 2, 5, 3)
    expected = x.numpy().mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, 1).numpy(), expected, rtol=1e-6, atol=1e-7)  # (means near 0)


def test_max_pool2d_ties_route_the_gradient_to_the_first_maximum():
    """A tie sends the whole gradient to the first maximal entry of the window in row-major order."""
    x = tz.tensor(np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]]]]), requires_grad=True)  # one 2×3 window
    max_pool2d(x, (2, 3)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[0, 1, 0], [0, 0, 0]]]])


def test_pools_second_derivatives():
    """Pooling is (piecewise) linear, so square it: the first gradient then runs through the pool's backward."""
    x = np.random.default_rng(4).permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 0.1
    tz.gradgradcheck(lambda x: max_pool2d(x, 3, 2, 1) ** 2, _tensors(x))
    tz.gradgradcheck(lambda x: avg_pool2d(x, (2, 3), 1, (1, 0)) ** 2, _tensors(x))
    tz.gradgradcheck(lambda x: adaptive_avg_pool2d(x, (2, 4)) ** 2, _tensors(x))


# =================================================================================================
# Modules: initialisation, repr, errors
# =================================================================================================
@pytest.mark.parametrize(
    ("layer", "fan_in", "weight_shape"),
    [
        (Conv2d(3, 8, 3), 27, (8, 3, 3, 3)),
        (Conv2d(4, 6, (1, 5), groups=2), 10, (6, 2, 1, 5)),
        (Conv1d(2, 5, 7), 14, (5, 2, 7)),
        (ConvTranspose2d(6, 4, 3, groups=2), 2 * 9, (6, 2, 3, 3)),
    ],
)
def test_conv_layers_use_torch_default_initialisation(layer, fan_in, weight_shape):
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=√5): gain √(2/6) · √(3/fan_in)
    assert layer.weight.shape == weight_shape and layer.weight.dtype == np.float32
    assert np.abs(layer.weight.numpy()).max() <= bound and np.abs(layer.weight.numpy()).max() > 0.5 * bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]


def test_conv_layers_forward_shapes():
    assert Conv2d(1, 32, 3)(tz.randn(4, 1, 28, 28)).shape == (4, 32, 26, 26)
    assert Conv2d(3, 6, 3, stride=2, padding=1, groups=3)(tz.randn(2, 3, 9, 9)).shape == (2, 6, 5, 5)
    assert Conv1d(2, 4, 3, padding=1)(tz.randn(5, 2, 11)).shape == (5, 4, 11)
    assert ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)(tz.randn(1, 4, 7, 7)).shape == (1, 2, 14, 14)
    assert MaxPool2d(2)(tz.randn(2, 3, 9, 8)).shape == (2, 3, 4, 4)
    assert AvgPool2d(3, 1, 1)(tz.randn(2, 3, 9, 8)).shape == (2, 3, 9, 8)
    assert AdaptiveAvgPool2d(1)(tz.randn(2, 3, 9, 8)).shape == (2, 3, 1, 1)


def test_conv_layers_learn_through_backward():
    layer = Conv2d(2, 3, 3, padding=1, bias=False)
    assert layer.bias is None and layer.num_parameters() == 3 * 2 * 9
    layer(tz.randn(2, 2, 5, 5)).sum().backward()
    assert layer.weight.grad.shape == layer.weight.shape


def test_reprs():
    assert Conv2d(1, 32, 3).extra_repr() == "1, 32, kernel_size=(3, 3), stride=(1, 1)"
    assert (
        Conv2d(4, 8, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=4, bias=False).extra_repr()
        == "4, 8, kernel_size=(3, 5), stride=(2, 2), padding=(1, 2), dilation=(2, 2), groups=4, bias=False"
    )
    assert ConvTranspose2d(4, 2, 3, stride=2, output_padding=1).extra_repr() == (
        "4, 2, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 1)"
    )
    assert Conv1d(2, 4, 5).extra_repr() == "2, 4, kernel_size=(5,), stride=(1,)"
    assert MaxPool2d(2).extra_repr() == "kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)"
    assert AdaptiveAvgPool2d((2, 3)).extra_repr() == "output_size=(2, 3)"


def test_wrong_channels_name_the_layer_and_shapes():
    message = r"^Conv2d\(1→32, k=3\) got input \(64, 3, 28, 28\): expected 1 input channels$"
    with pytest.raises(ShapeError, match=message):
        Conv2d(1, 32, 3)(tz.randn(64, 3, 28, 28))
    with pytest.raises(ShapeError, match=r"ConvTranspose2d\(4→2, k=3\) got input \(1, 3, 5, 5\): expected 4 input"):
        ConvTranspose2d(4, 2, 3)(tz.randn(1, 3, 5, 5))
    with pytest.raises(ShapeError, match=r"conv2d got input \(2, 3, 5, 5\): expected 4 input channels"):
        conv2d(tz.randn(2, 3, 5, 5), tz.randn(8, 2, 3, 3), groups=2)


def test_wrong_rank_names_the_expected_layout():
    assert Conv2d(1, 32, 3)(tz.randn(1, 28, 28)).shape == (32, 26, 26)  # one unbatched image, as in PyTorch
    with pytest.raises(ShapeError, match=r"Conv2d\(1→32, k=3\) got input \(1, 28\): expected a 4-D input "
                                         r"\[N, C, H, W\]"):  # fmt: skip
        Conv2d(1, 32, 3)(tz.randn(1, 28))  # (a 2-D input is neither a batch nor one image)
    with pytest.raises(ShapeError, match=r"Conv1d\(2→4, k=3\) got input \(2, 2, 5, 5\): expected a 3-D input"):
        Conv1d(2, 4, 3)(tz.randn(2, 2, 5, 5))
    with pytest.raises(ShapeError, match=r"MaxPool2d\(k=2\) got input \(8,\)"):
        MaxPool2d(2)(tz.randn(8))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ShapeError, match=r"Conv2d\(1→2, k=5\): the kernel 5×5 .* larger than the padded input 4×6"):
        Conv2d(1, 2, 5, padding=(0, 1))(tz.randn(1, 1, 4, 4))
    with pytest.raises(ShapeError, match=r"conv1d: the kernel 3 \(dilation 2, so it spans 5\) is larger"):
        conv1d(tz.randn(1, 1, 4), tz.randn(1, 1, 3), dilation=2)
    with pytest.raises(ShapeError, match=r"max_pool2d: the kernel 3×3"):
        max_pool2d(tz.randn(1, 1, 2, 2), 3)


def test_bad_settings():
    with pytest.raises(ShapeError, match="not divisible by groups=3"):
        conv2d(tz.randn(1, 6, 5, 5), tz.randn(4, 2, 3, 3), groups=3)
    with pytest.raises(ShapeError, match=r"bias has shape \(3,\), expected \(4,\)"):
        conv2d(tz.randn(1, 2, 5, 5), tz.randn(4, 2, 3, 3), tz.randn(3))
    with pytest.raises(ValueError, match="stride must be"):
        Conv2d(1, 2, 3, stride=0)
    with pytest.raises(ValueError, match="must be divisible by groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d(tz.randn(1, 2, 3, 3), tz.randn(2, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPool2d(2, padding=2)


# =================================================================================================
# Against PyTorch (float64, where torch is installed)
# =================================================================================================
TORCH = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module")
def torch():
    """PyTorch on one thread (quicker for these tiny float64 ops), or skip where it is not installed."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def _torch_leaves(torch, *arrays):
    """torch leaf tensors (requires_grad) holding the arrays."""
    return [torch.tensor(a, requires_grad=True) for a in arrays]


def _assert_same(ours: list[tz.Tensor], theirs: list, out: tz.Tensor, torch_out) -> None:
    """Same output and, after backward with the same random cotangent, the same gradients (to 1e-5)."""
    np.testing.assert_allclose(out.numpy(), torch_out.detach().numpy(), rtol=1e-5, atol=1e-5)
    cotangent = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(cotangent)
    torch_out.backward(torch_out.new_tensor(cotangent))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)


@TORCH
@given(conv_setups(max_channels=3))
def test_conv2d_and_conv1d_match_torch(torch, setup):
    x, w, b, kw = setup
    ours, theirs = _tensors(x, w, b), _torch_leaves(torch, x, w, b)
    _assert_same(ours, theirs, conv2d(*ours, **kw), torch.nn.functional.conv2d(*theirs, **kw))
    kw1 = {key: v[1] if isinstance(v, tuple) else v for key, v in kw.items()}
    ours, theirs = _tensors(x[:, :, 0], w[:, :, 0], b), _torch_leaves(torch, x[:, :, 0], w[:, :, 0], b)
    _assert_same(ours, theirs, conv1d(*ours, **kw1), torch.nn.functional.conv1d(*theirs, **kw1))


@TORCH
@given(conv_setups(max_channels=3))
def test_conv_transpose2d_matches_torch(torch, setup):
    x, w, _, kw = setup
    y = np.random.default_rng(0).standard_normal(naive_conv2d(x, w, None, **kw).shape)
    bias = np.random.default_rng(1).standard_normal(x.shape[1])
    settings_ = _transpose_settings(x, w, kw)
    ours, theirs = _tensors(y, w, bias), _torch_leaves(torch, y, w, bias)
    _assert_same(ours, theirs, conv_transpose2d(*ours, **settings_),
                 torch.nn.functional.conv_transpose2d(*theirs, **settings_))  # fmt: skip


@TORCH
@given(pool_setups(), st.integers(1, 4), st.integers(1, 4))
def test_pools_match_torch(torch, setup, out_h, out_w):
    F = torch.nn.functional
    x, kernel, stride, padding = setup
    for ours_fn, torch_fn in [
        (lambda t: max_pool2d(t, kernel, stride, padding), lambda t: F.max_pool2d(t, kernel, stride, padding)),
        (lambda t: avg_pool2d(t, kernel, stride, padding), lambda t: F.avg_pool2d(t, kernel, stride, padding)),
        (lambda t: adaptive_avg_pool2d(t, (out_h, out_w)), lambda t: F.adaptive_avg_pool2d(t, (out_h, out_w))),
    ]:
        ours, theirs = _tensors(x), _torch_leaves(torch, x)
        _assert_same(ours, theirs, ours_fn(*ours), torch_fn(*theirs))


def test_max_pool2d_ties_route_like_torch(torch):
    x = np.random.default_rng(5).integers(0, 3, (2, 3, 7, 8)).astype(np.float64)  # many ties
    ours, theirs = _tensors(x), _torch_leaves(torch, x)
    _assert_same(ours, theirs, max_pool2d(ours[0], 3, 2, 1), torch.nn.functional.max_pool2d(theirs[0], 3, 2, 1))


def test_unfold_and_fold_match_torch(torch):
    x = np.random.default_rng(6).standard_normal((2, 3, 9, 8))
    window = {"kernel_size": (3, 2), "dilation": (1, 2), "padding": (1, 0), "stride": (2, 1)}
    ours, theirs = _tensors(x), _torch_leaves(torch, x)
    _assert_same(ours, theirs, unfold(ours[0], **window), torch.nn.functional.unfold(theirs[0], **window))
    cols = np.random.default_rng(7).standard_normal((2, 3 * 3 * 2, 5 * 6))
    ours, theirs = _tensors(cols), _torch_leaves(torch, cols)
    _assert_same(ours, theirs, fold(ours[0], (9, 8), **window), torch.nn.functional.fold(theirs[0], (9, 8), **window))


def test_layers_load_torch_weights_and_agree(torch):
    x = np.random.default_rng(8).standard_normal((2, 4, 9, 9)).astype(np.float32)
    pairs = [
        (Conv2d(4, 6, 3, stride=2, padding=1, groups=2), torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)),
        (ConvTranspose2d(4, 2, 3, stride=2, output_padding=1), torch.nn.ConvTranspose2d(4, 2, 3, 2, output_padding=1)),
    ]
    for ours, theirs in pairs:
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        assert ours.extra_repr() == theirs.extra_repr()
        np.testing.assert_allclose(ours(tz.tensor(x)).numpy(), theirs(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


# =================================================================================================
# GPU (CuPy): the same numbers as on the CPU
# =================================================================================================
@pytest.mark.gpu
def test_conv_and_pools_on_gpu_match_cpu():
    pytest.importorskip("cupy")
    if not tz.gpu_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    results = {}
    for device in ("cpu", "cuda"):
        xs, ws, bs = (tz.tensor(a, requires_grad=True, device=device) for a in (x, w, b))
        out = conv2d(xs, ws, bs, stride=2, padding=1, groups=2)
        out = max_pool2d(out, 2) + avg_pool2d(out, 2) + adaptive_avg_pool2d(out, 2)
        conv_transpose2d(out, ws, stride=2, groups=2).sum().backward()
        results[device] = [t.numpy() for t in (out, xs.grad, ws.grad, bs.grad)]
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-10)

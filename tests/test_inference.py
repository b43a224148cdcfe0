"""Inference use: no tape under no_grad, float16 weights, and InferencePlan's allocation-free batch-1 path."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.cnn import SimpleCNN
from tinyzoo.models.mlp import MLP


def mlp(hidden: int = 64, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A small trained-looking MLP (random weights, eval mode)."""
    tz.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), activation(), nn.Dropout(0.5),
                         nn.Sequential(nn.Linear(hidden, 32), activation()), nn.Linear(32, 10)).eval()  # fmt: skip


def images(batch: int, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, 1, 28, 28)).astype(dtype)


def test_no_grad_records_no_tape():
    model = MLP([784, 32, 10])
    with tz.no_grad():
        out = model(tz.tensor(images(2)))
    assert out.grad_fn is None and not out.requires_grad


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, lambda: nn.LeakyReLU(0.1)])
@pytest.mark.parametrize("batch", [1, 5])
def test_plan_equals_the_model(activation, batch):
    model = mlp(activation=activation)
    plan = nn.InferencePlan(model, (1, 28, 28), batch_size=batch)
    x = images(batch)
    with tz.no_grad():
        expected = model(tz.tensor(x)).numpy()
    np.testing.assert_allclose(plan(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plan(tz.tensor(x)), expected, rtol=1e-5, atol=1e-6)  # a Tensor input too


def test_plan_returns_fresh_outputs_or_fills_the_callers_array():
    plan = nn.InferencePlan(mlp(), (784,))
    first, second = plan(images(1).reshape(1, 784)), plan(np.zeros((1, 784), np.float32))
    assert not np.shares_memory(first, second) and not np.allclose(first, second)
    out = np.empty((1, 10), np.float32)
    assert plan(np.zeros((1, 784), np.float32), out=out) is out
    np.testing.assert_array_equal(out, second)


def peak_bytes(fn) -> int:
    """Peak traced allocation while fn() runs (NumPy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_plan_allocates_nothing_per_call():
    model, x = mlp(hidden=4096), images(1)
    plan, out = nn.InferencePlan(model, (1, 28, 28)), np.empty((1, 10), np.float32)
    plan(x, out=out)
    hidden_bytes = 4096 * 4
    with tz.no_grad():
        assert peak_bytes(lambda: model(tz.tensor(x))) > hidden_bytes  # the ordinary path makes new arrays
    assert peak_bytes(lambda: plan(x, out=out)) < hidden_bytes // 4  # only Python's transient objects


def test_plan_refuses_what_it_cannot_run():
    with pytest.raises(TypeError, match=r"layer 1 \(GELU\) is not supported"):
        nn.InferencePlan(nn.Sequential(nn.Flatten(), nn.GELU(), nn.Linear(64, 2)), (1, 8, 8))
    with pytest.raises(TypeError, match=r"layer 0 \(Conv2d\) is not supported"):
        nn.InferencePlan(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), (2, 8, 8))
    with pytest.raises(TypeError, match=r"layer 2 \(BatchNorm2d\) is not supported"):  # (not after a Conv2d)
        nn.InferencePlan(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)), (1, 8, 8))
    with pytest.raises(tz.ShapeError, match=r"needs images"):
        nn.InferencePlan(nn.Sequential(nn.Flatten(), nn.Conv2d(1, 2, 3)), (1, 8, 8))
    with pytest.raises(TypeError, match=r"nn\.Sequential"):
        nn.InferencePlan(MLP([784, 10]), (784,))
    with pytest.raises(tz.ShapeError, match="add a Flatten"):
        nn.InferencePlan(nn.Sequential(nn.Linear(784, 10)), (1, 28, 28))
    plan = nn.InferencePlan(mlp(), (1, 28, 28))
    with pytest.raises(tz.ShapeError, match=r"built for \(1, 1, 28, 28\)"):
        plan(images(2))


@pytest.mark.parametrize("build", [lambda: MLP([784, 64, 10]), SimpleCNN])
def test_float16_inference_follows_float32(build):
    model = build().eval()
    x = images(4)
    with tz.no_grad():
        full = model(tz.tensor(x)).numpy()
        half = model.half()(tz.tensor(x, dtype="float16"))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.numpy().astype(np.float32), full, atol=2e-2 * np.abs(full).max())
    assert (half.numpy().argmax(1) == full.argmax(1)).all()


def test_float16_plan():
    model = mlp().half()
    plan = nn.InferencePlan(model, (1, 28, 28))
    x = images(1)
    assert plan(x).dtype == np.float16
    with tz.no_grad():
        np.testing.assert_allclose(plan(x), model(tz.tensor(x, dtype="float16")).numpy(), rtol=1e-2, atol=1e-3)


@pytest.mark.gpu
def test_plan_on_the_gpu_equals_the_model():
    if not tz.gpu_available():
        pytest.skip("needs a CUDA GPU and CuPy")
    model = mlp(activation=lambda: nn.LeakyReLU(0.1)).to("gpu")
    plan = nn.InferencePlan(model, (1, 28, 28), batch_size=3)
    x = tz.tensor(images(3), device="gpu")
    with tz.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(tz.backend.to_host(plan(x)), expected, rtol=1e-5, atol=1e-6)


# =================================================================================================
# Conv nets: Conv2d, BatchNorm2d folded into it, pooling, ReLU, then the dense layers
# =================================================================================================
def trained_bn(norm: nn.BatchNorm2d, rng: np.random.Generator) -> nn.BatchNorm2d:
    """A BatchNorm2d whose statistics and affine parameters are far from their defaults."""
    c = norm.num_features
    norm.running_mean.data[...] = rng.standard_normal(c)
    norm.running_var.data[...] = rng.uniform(0.5, 2.0, c)
    norm.weight.data[...] = rng.uniform(0.5, 1.5, c)
    norm.bias.data[...] = rng.standard_normal(c)
    return norm


def conv_net(rng: np.random.Generator) -> nn.Sequential:
    """Every kind of layer the plan takes for images: strides, padding, dilation, 1×1, BN (and BN+ReLU) with and
    without bias."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), trained_bn(nn.BatchNorm2d(8), rng), nn.ReLU(),  # [N, 8, 12, 12]
        nn.MaxPool2d(3, stride=2, padding=1),  # [N, 8, 6, 6]
        nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2), trained_bn(nn.BatchNormReLU2d(8), rng),  # [N, 8, 3, 3]
        nn.Conv2d(8, 6, 1), nn.LeakyReLU(0.1), nn.Dropout(),  # [N, 6, 3, 3]
        nn.AvgPool2d(2, stride=1, padding=1),  # [N, 6, 4, 4]
        nn.Sequential(nn.Flatten(), nn.Linear(96, 10)),
    ).eval()  # fmt: skip


@pytest.mark.parametrize("batch", [1, 3])
def test_conv_plan_equals_the_model(batch):
    tz.manual_seed(1)
    rng = np.random.default_rng(2)
    model = conv_net(rng)
    plan = nn.InferencePlan(model, (3, 12, 12), batch_size=batch)
    for _ in range(2):  # the second call reuses every buffer
        x = rng.standard_normal((batch, 3, 12, 12)).astype(np.float32)
        with tz.no_grad():
            expected = model(tz.tensor(x)).numpy()
        np.testing.assert_allclose(plan(x), expected, rtol=1e-4, atol=1e-5)


def test_conv_plan_ends_in_images_or_global_pooling():
    """A plan may end on images ([N, C, H, W] back in torch's layout) or on flattened, globally pooled features."""
    tz.manual_seed(3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    models = [nn.Sequential(nn.Conv2d(2, 4, 3), trained_bn(nn.BatchNorm2d(4), rng), nn.MaxPool2d(2)),
              nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten()),
              nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))]  # fmt: skip
    for model in models:
        model.eval()
        with tz.no_grad():
            expected = model(tz.tensor(x)).numpy()
        np.testing.assert_allclose(nn.InferencePlan(model, (2, 7, 7), 2)(x), expected, rtol=1e-5, atol=1e-5)


def test_simple_cnn_plan_allocates_nothing_per_call():
    model = SimpleCNN().eval()
    plan = nn.InferencePlan(nn.Sequential(model.features, model.classifier), (1, 28, 28))
    x, out = images(1), np.empty((1, 10), np.float32)
    with tz.no_grad():
        np.testing.assert_allclose(plan(x, out=out), model(tz.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
        feature_bytes = 16 * 24 * 24 * 4  # the first convolution's output
        assert peak_bytes(lambda: model(tz.tensor(x))) > feature_bytes
    # no layer buffer: only Python's transient objects and NumPy's bounded scratch for a strided ufunc operand
    assert peak_bytes(lambda: plan(x, out=out)) < feature_bytes // 2

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
    with pytest.raises(TypeError, match=r"layer 1 \(Conv2d\) is not supported"):
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

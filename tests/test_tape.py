"""The tape itself: freeing, retain_graph, no_grad, detach, accumulation, hooks, deep graphs, bad input."""

from __future__ import annotations

import gc
import types
import weakref

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import backend


def test_backward_accumulates_into_leaves_across_calls():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_leaves_never_share_a_gradient_array():
    x, y = tz.tensor([1.0, 2.0], requires_grad=True), tz.tensor([3.0, 4.0], requires_grad=True)
    (x + y).sum().backward()
    x.grad.data *= 10
    assert y.grad.tolist() == [1.0, 1.0]


def test_slices_and_dense_uses_of_one_tensor_add_up():
    """Indexed gradients (x[i]) are added in place into one buffer, mixed with dense ones, in any order."""
    x = tz.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    total = x[0].sum() * 2 + x.sum() + x[np.array([0, 0, 2])].sum() + sum(x[t, 1] for t in range(3))
    total.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1 + 2 + 2, 1 + 2 + 2 + 1], [1, 1 + 1], [1 + 1, 1 + 1 + 1]])


def test_graph_is_freed_and_second_backward_says_so():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).exp()
    loss = y.sum()
    loss.backward()
    assert y._node.freed and loss._node.freed
    with pytest.raises(tz.GraphError, match=r"second time.*retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_pass():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_tape_keeps_only_what_backward_rules_read_and_frees_it_after_backward():
    x = tz.tensor(np.ones(1000), requires_grad=True)
    hidden = x * 2  # tanh's rule reads its output, not its input: nothing keeps `hidden` but this name
    squared = hidden.tanh() * 3
    kept = squared * squared  # mul's rule reads both operands: `squared` stays until backward
    output = weakref.ref(squared.data)
    watchers = [weakref.ref(hidden), weakref.ref(squared)]
    loss = kept.sum()
    del hidden, squared, kept
    gc.disable()
    try:
        assert watchers[0]() is None  # freed at once, by reference counting
        assert watchers[1]() is not None and output() is not None  # the tape keeps it alive until backward
        loss.backward()
        assert watchers[1]() is None and output() is None  # freed by reference counting alone, no cycle collector
    finally:
        gc.enable()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 9 * 2 * np.tanh(2.0) * (1 - np.tanh(2.0) ** 2))


@pytest.mark.parametrize("op", [
    lambda h: h + 1.0, lambda h: 2.0 - h, lambda h: h.reshape(-1), lambda h: h[1:, ::2], lambda h: h.T,
    lambda h: h.sum(0), lambda h: tz.cat([h, h], 1), lambda h: h.broadcast_to(2, 3, 4), lambda h: h.relu(),
    lambda h: h.exp(), lambda h: h.astype("float64"), lambda h: h.gather(1, np.zeros((3, 1), np.int64)),
])  # fmt: skip
def test_ops_whose_rule_reads_no_input_leave_the_input_to_be_freed(op):
    """Shape-only and output-reading rules keep no reference to their input's array."""
    x = tz.tensor(np.ones((3, 4)), requires_grad=True)
    hidden = x * 2
    array = weakref.ref(hidden.data)
    loss = op(hidden).sum()
    del hidden
    assert array() is None
    loss.backward()
    assert x.grad.shape == (3, 4)


def test_a_rule_reading_its_output_keeps_only_the_output_array():
    x = tz.tensor(np.ones(10), requires_grad=True)
    hidden = x * 2
    out = hidden.exp()  # exp's rule reads its output
    node, array = out._node, weakref.ref(out.data)
    watcher = weakref.ref(hidden)
    loss = out.sum()
    del hidden, out
    assert watcher() is None and array() is not None and node.saved_output is array()
    loss.backward()
    assert array() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2.0), rtol=1e-6)


def test_no_grad_records_nothing_and_works_as_decorator():
    x = tz.tensor([1.0], requires_grad=True)
    with tz.no_grad():
        y = x * 2
        with tz.enable_grad():
            z = x * 3
    assert y._node is None and not y.requires_grad
    assert z.requires_grad

    @tz.no_grad()
    def infer(t):
        return t * 2

    assert not infer(x).requires_grad and tz.is_grad_enabled()


def test_detach_cuts_the_tape():
    x = tz.tensor([2.0], requires_grad=True)
    y = x * x
    (y.detach() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0])  # only the direct x path


def test_non_scalar_backward_needs_grad():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tz.GraphError, match=r"shape \(2,\) needs `grad`"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0], dtype=np.float32))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])


def test_deep_chain_and_unrolled_rnn_do_not_recurse():
    x = tz.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0
    w = tz.tensor(np.eye(4) * 0.5, requires_grad=True)
    h = tz.ones(1, 4, dtype="float64")
    for _ in range(1_000):
        h = (h @ w).tanh()
    h.sum().backward()
    assert np.isfinite(w.grad.numpy()).all()


def test_tensor_hooks_see_and_replace_gradients_in_order():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(("first", g.tolist())))
    x.register_hook(lambda g: g * 10)
    (x * 3).sum().backward()
    assert seen == [("first", [3.0, 3.0])]
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])


def test_a_tensor_gets_all_its_gradient_before_its_own_backward_runs():
    """Nodes run latest-first: h's consumers (a long branch made first, a short one made last) both finish before h."""
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    long_branch = h
    for _ in range(50):
        long_branch = long_branch * 1.0 + 0.0
    short_branch = h * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.tolist()))
    (long_branch + short_branch).sum().backward()
    assert seen == [[4.0, 4.0]]  # one call, with 1 (long branch) + 3 (short branch)
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 8.0])
    y = tz.tensor([1.0], requires_grad=True)
    z = y * 5
    outputs = [z * 2, z, z * z]  # outputs that are also inputs of other outputs
    (grad_z,) = tz.grad(outputs, [z], grad_outputs=[tz.ones(1)] * 3)
    np.testing.assert_allclose(grad_z.numpy(), [2.0 + 1.0 + 2 * 5.0])


def test_grad_does_not_touch_dot_grad_and_reports_unused():
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    unused = tz.tensor([1.0], requires_grad=True)
    (g,) = tz.grad((x * x).sum(), x)
    assert x.grad is None and g.tolist() == [2.0, 4.0]
    with pytest.raises(tz.GraphError, match="not used"):
        tz.grad((x * x).sum(), [x, unused])


def test_detect_anomaly_names_op_and_user_line():
    x = tz.tensor([-1.0, 1.0], requires_grad=True)
    with tz.detect_anomaly(), pytest.raises(tz.AnomalyError, match=r"forward of 'log' produced NaN.*test_tape.py:\d+"):
        x.log()
    y = tz.tensor([0.0], requires_grad=True)
    with tz.detect_anomaly():
        out = y.sqrt()  # forward is fine (0); backward divides by 0
        with pytest.raises(tz.AnomalyError, match="backward of 'sqrt' produced Inf"):
            out.sum().backward()


# ----- bad input ----------------------------------------------------------------------------
def test_integer_tensor_cannot_require_grad():
    with pytest.raises(tz.DTypeError, match="only floating-point tensors can require gradients"):
        tz.tensor([1, 2], requires_grad=True)
    with pytest.raises(tz.DTypeError):
        tz.tensor(["a", "b"])


def test_shape_errors_name_the_op_and_shapes():
    a, b = tz.ones(2, 3), tz.ones(4, 5)
    with pytest.raises(tz.ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(tz.ShapeError, match=r"add: shapes \(2, 3\) and \(4, 5\) cannot be broadcast"):
        a + b
    with pytest.raises(tz.ShapeError, match="reshape"):
        a.reshape(7)
    with pytest.raises(tz.ShapeError, match="axis 5 is out of range"):
        a.sum(axis=5)


def test_index_errors_are_tinyzoo_errors():
    x = tz.ones(3, 2)
    with pytest.raises(tz.IndexRangeError, match=r"getitem.*\(3, 2\)"):
        x[5]
    with pytest.raises(tz.IndexRangeError, match="index_select"):
        tz.index_select(x, 0, np.array([0, 3]))
    with pytest.raises(tz.DTypeError, match="gather"):
        tz.gather(x, 0, np.zeros((1, 2)))


def test_item_on_non_scalar():
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(2,\)"):
        tz.ones(2).item()
    assert tz.ones(1, 1).item() == 1.0


def test_gpu_request_without_cupy_is_one_clear_error(monkeypatch):
    if backend.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(tz.DeviceError, match=r"CuPy|CUDA"):
        tz.zeros(2, device="gpu")
    with pytest.raises(tz.DeviceError, match="unknown device"):
        tz.zeros(2, device="tpu")


def test_mixing_devices_names_the_op_and_both_devices(monkeypatch):
    """A fake CuPy (a NumPy subclass with a device id) stands in for a GPU array."""

    class FakeGpuArray(np.ndarray):
        device = types.SimpleNamespace(id=0)

    monkeypatch.setattr(backend, "_cupy", types.SimpleNamespace(ndarray=FakeGpuArray))
    gpu = tz.Tensor(np.ones(2).view(FakeGpuArray))
    cpu = tz.ones(2, dtype="float64")
    assert gpu.device == "cuda:0"
    with pytest.raises(tz.DeviceError, match=r"mul: operands are on different devices \(cpu and cuda:0\)"):
        cpu * gpu


def test_backend_helpers():
    a = np.arange(3.0)
    assert backend.xp_of(a) is np and backend.device_of(a) == "cpu"
    assert backend.normalize_device("cuda") == "cuda:0" and backend.normalize_device("CPU") == "cpu"
    assert backend.to_device(a, "cpu") is a


def test_manual_seed_makes_draws_repeat():
    tz.manual_seed(7)
    first = tz.randn(3).tolist() + tz.rand(2).tolist()
    tz.manual_seed(7)
    assert tz.randn(3).tolist() + tz.rand(2).tolist() == first


def test_gradcheck_nudges_non_contiguous_inputs_too():
    x = tz.Tensor(np.arange(6.0).reshape(2, 3).T, requires_grad=True)  # a transposed (non-contiguous) view
    assert not x.data.flags.c_contiguous
    tz.gradcheck(lambda t: (t * t).sum(), [x])


def test_in_place_change_of_an_array_a_kernel_rule_kept_refuses_backward():
    """A kernel's rule keeps its input's raw array, not the tensor: the change is still caught, through the
    array's memory."""
    from tinyzoo.kernels import dynamic_routing

    u_hat = tz.tensor(np.random.default_rng(0).normal(size=(2, 3, 2, 4)), requires_grad=True)
    v = dynamic_routing(u_hat, 2, impl="numba")
    with tz.no_grad():
        u_hat.data += 1.0
    with pytest.raises(tz.GraphError, match=r"'dynamic_routing'.*an array it reads.*modified by an in-place"):
        v.sum().backward()

"""Failing loudly, never silently: bad input, numerical stability, determinism and memory.

test_bad_input_is_a_tinyzoo_error_naming_the_op feeds malformed arguments to every public op and to
the layers, and requires a tinyzoo error (ShapeError, DTypeError, DeviceError, IndexRangeError — each
also a ValueError/TypeError/RuntimeError/IndexError) whose message names the op. The cases, by kind:

- non-broadcastable shape pairs: add sub mul div pow maximum minimum where matmul (batch axes) — drawn
- matmul inner-dimension mismatch, einsum operand/spec mismatch, reshape to a wrong size — drawn
- axis out of range: sum mean max min var std logsumexp prod cumsum cumprod norm softmax
  log_softmax flip squeeze unsqueeze concat split chunk — drawn
- wrong dtypes: complex, object and string data into every unary/reduction op; integer and boolean
  tensors asking for gradients; float index arrays for gather/index_select/index_add/scatter_add
- out-of-range and negative-out-of-range indices: getitem, gather, index_select, index_add,
  scatter_add, embedding, cross_entropy labels, edge_softmax destinations — drawn
- empty arrays: max/min of an empty tensor, mean over an empty axis
- wrong device: every binary op with a (simulated) GPU operand
- layers: Linear/Conv2d/LSTM/MultiheadAttention/LayerNorm/BatchNorm given the wrong feature or
  channel count or rank; load_state_dict from another architecture
NaN and Inf are not errors (they propagate, as in NumPy and PyTorch); `detect_anomaly()` turns the
first one into an AnomalyError naming the op — tested below. The test counts the cases it tried.
"""

from __future__ import annotations

import functools
import gc
import resource
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyzoo as tz
from tinyzoo import backend, nn
from tinyzoo.kernels import edge_softmax
from tinyzoo.nn import functional as F

TRIED: dict[str, int] = {}


def expect_error(kind: str, error: type, op: str, fn, *args, **kwargs) -> None:
    """fn(*args) raises `error` (a tinyzoo error) whose message names `op`; count the case."""
    with pytest.raises(error) as caught:
        fn(*args, **kwargs)
    assert isinstance(caught.value, tz.TinyzooError), f"{op}: raised a bare {type(caught.value).__name__}"
    assert op in str(caught.value), f"the message does not name {op!r}: {caught.value}"
    TRIED[kind] = TRIED.get(kind, 0) + 1


BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]
AXIS_OPS = ["sum", "mean", "max", "min", "var", "std", "logsumexp", "prod", "cumsum", "cumprod", "norm", "softmax",
            "log_softmax", "flip", "squeeze", "unsqueeze"]  # fmt: skip
UNARY = ["exp", "log", "tanh", "sigmoid", "relu", "sum", "mean", "softmax", "reshape", "abs", "sqrt"]


@st.composite
def incompatible_shapes(draw):
    """Two shapes that do not broadcast together."""
    a = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    b = list(a)
    axis = draw(st.integers(0, len(a) - 1))
    b[axis] = a[axis] + draw(st.integers(1, 3))
    return a, tuple(b)


BAD_INPUT_EXAMPLES = 25


@settings(max_examples=BAD_INPUT_EXAMPLES, deadline=None)
@given(shapes=incompatible_shapes(), data=st.data())
def test_bad_input_is_a_tinyzoo_error_naming_the_op(shapes, data):
    a, b = (tz.ones(*s) for s in shapes)
    for op in BINARY:
        expect_error("non-broadcastable", tz.ShapeError, op, getattr(tz, op), a, b)
    expect_error("non-broadcastable", tz.ShapeError, "where", tz.where, np.ones(shapes[0], bool), a, b)
    expect_error("matmul mismatch", tz.ShapeError, "matmul", tz.matmul, tz.ones(2, 3), tz.ones(4, 2))
    expect_error("einsum mismatch", tz.ShapeError, "einsum", tz.einsum, "ij,jk->ik", tz.ones(2, 3), tz.ones(4, 2))
    expect_error("reshape", tz.ShapeError, "reshape", tz.reshape, a, (a.size + 1,))

    x = tz.ones(*shapes[0])
    bad_axis = data.draw(st.sampled_from([x.ndim + 2, -x.ndim - 2, x.ndim + 5]))
    for op in AXIS_OPS:  # (norm's second positional argument is the order, as in torch.norm)
        args = (x,) if op == "norm" else (x, bad_axis)
        call = functools.partial(getattr(tz, op), *args, **({"axis": bad_axis} if op == "norm" else {}))
        expect_error("axis out of range", tz.ShapeError, op, call)
    expect_error("axis out of range", tz.ShapeError, "concat", tz.concat, [x, x], bad_axis)

    rows = shapes[0][0]
    index = np.array([data.draw(st.sampled_from([rows, rows + 5, -rows - 1]))])
    expect_error("index out of range", tz.IndexRangeError, "getitem", tz.getitem, x, index)
    expect_error("index out of range", tz.IndexRangeError, "index_select", tz.index_select, x, 0, index)
    src = tz.ones(*((1,) + x.shape[1:]))
    expect_error("index out of range", tz.IndexRangeError, "index_add", tz.index_add, x, 0, index, src)
    gather_index = np.broadcast_to(index.reshape((1,) * x.ndim), (1,) + x.shape[1:]).copy()
    expect_error("index out of range", tz.IndexRangeError, "gather", tz.gather, x, 0, gather_index)
    expect_error("index out of range", tz.IndexRangeError, "scatter_add", tz.scatter_add, x, 0, gather_index, src)


NOT_NUMBERS = [np.array([1 + 2j]), np.array(["a"]), np.array([object()], dtype=object)]


@pytest.mark.parametrize("op", UNARY)
@pytest.mark.parametrize("data", NOT_NUMBERS)
def test_wrong_dtypes(op, data):
    expect_error("wrong dtype", tz.DTypeError, op, getattr(tz, op), data)


def test_wrong_dtypes_for_gradients_and_indices():
    for dtype in ("int64", "int32", "bool"):
        with pytest.raises(tz.DTypeError, match="only floating-point tensors can require gradients"):
            tz.tensor(np.zeros(2, dtype=dtype), requires_grad=True)
        TRIED["wrong dtype"] = TRIED.get("wrong dtype", 0) + 1
    x, float_index = tz.ones(3, 2), np.zeros((1, 2))
    for op, args in [("gather", (x, 0, float_index)), ("index_select", (x, 0, np.zeros(1))),
                     ("index_add", (x, 0, np.zeros(1), tz.ones(1, 2))),
                     ("scatter_add", (x, 0, float_index, tz.ones(1, 2)))]:  # fmt: skip
        expect_error("wrong dtype", tz.DTypeError, op, getattr(tz, op), *args)


def test_empty_tensors():
    empty = tz.zeros(0, 3)
    expect_error("empty", tz.ShapeError, "max", tz.max, empty)
    expect_error("empty", tz.ShapeError, "min", tz.min, empty)
    expect_error("empty", tz.ShapeError, "argmax", tz.argmax, empty)
    assert tz.sum(empty).item() == 0.0  # summing nothing is well defined
    assert np.isnan(tz.mean(empty, 0).numpy()).all()  # the mean of nothing is NaN, as in PyTorch


def test_wrong_device_for_every_binary_op(monkeypatch):
    class FakeGpuArray(np.ndarray):  # a NumPy array that says it lives on cuda:0
        device = types.SimpleNamespace(id=0)

    monkeypatch.setattr(backend, "_cupy", types.SimpleNamespace(ndarray=FakeGpuArray))
    gpu, cpu = tz.Tensor(np.ones(2).view(FakeGpuArray)), tz.ones(2, dtype="float64")
    for op in [*BINARY, "matmul", "concat"]:
        args = ([cpu, gpu],) if op == "concat" else (cpu, gpu)
        expect_error("wrong device", tz.DeviceError, op, getattr(tz, op), *args)


def test_layers_name_themselves_and_the_shapes():
    expect_error("layer", tz.ShapeError, "Linear(784→256)", nn.Linear(784, 256), tz.ones(32, 100))
    expect_error("layer", tz.ShapeError, "Conv2d", nn.Conv2d(1, 32, 3), tz.ones(2, 3, 28, 28))
    expect_error("layer", tz.ShapeError, "LSTM", nn.LSTM(8, 16, batch_first=True), tz.ones(2, 5, 7))
    expect_error("layer", tz.ShapeError, "LayerNorm", nn.LayerNorm(8), tz.ones(2, 5))
    expect_error("layer", tz.ShapeError, "BatchNorm1d", nn.BatchNorm1d(8), tz.ones(4, 5))
    expect_error("layer", tz.ShapeError, "MultiheadAttention", nn.MultiheadAttention(8, 2), tz.ones(2, 3, 6),
                 tz.ones(2, 3, 6), tz.ones(2, 3, 6))  # fmt: skip
    expect_error("index out of range", tz.IndexRangeError, "embedding", nn.Embedding(10, 4), np.array([3, 10]))
    expect_error("index out of range", tz.IndexRangeError, "cross_entropy", F.cross_entropy, tz.ones(2, 3),
                 np.array([0, 3]))  # fmt: skip
    expect_error("index out of range", tz.IndexRangeError, "edge_softmax", edge_softmax, tz.ones(3, 1),
                 np.array([0, 1, 5]), 3)  # fmt: skip
    expect_error("state_dict", tz.ShapeError, "load_state_dict", nn.Linear(3, 2).load_state_dict,
                 nn.Linear(4, 2).state_dict())  # fmt: skip


def test_the_cases_tried_are_counted(monkeypatch):
    """Every kind of case is exercised: the case tests above run once more here, counted from zero, so this
    test stands alone (it needs no other test to have run before it, and no particular order)."""
    TRIED.clear()
    test_bad_input_is_a_tinyzoo_error_naming_the_op()
    for op in UNARY:
        for data in NOT_NUMBERS:
            test_wrong_dtypes(op, data)
    test_wrong_dtypes_for_gradients_and_indices()
    test_empty_tensors()
    test_wrong_device_for_every_binary_op(monkeypatch)
    test_layers_name_themselves_and_the_shapes()
    kinds = {"non-broadcastable", "matmul mismatch", "einsum mismatch", "reshape", "axis out of range",
             "index out of range", "wrong dtype", "empty", "wrong device", "layer", "state_dict"}  # fmt: skip
    assert kinds <= set(TRIED), f"kinds never tried: {kinds - set(TRIED)}"
    # every drawn example tried all its cases (hypothesis may replay extra examples from its database,
    # never fewer than max_examples), so these floors hold under every hypothesis profile, CI's included
    drawn_per_example = {"non-broadcastable": len(BINARY) + 1, "axis out of range": len(AXIS_OPS) + 1,
                         "index out of range": 5, "matmul mismatch": 1, "einsum mismatch": 1, "reshape": 1}
    for kind, per_example in drawn_per_example.items():
        assert TRIED[kind] >= BAD_INPUT_EXAMPLES * per_example, (kind, TRIED)
    assert sum(TRIED.values()) >= 880, TRIED


# ----- NaN and Inf ---------------------------------------------------------------------------------
def test_nan_propagates_and_detect_anomaly_names_the_op():
    x = tz.tensor([1.0, np.nan], requires_grad=True)
    assert np.isnan(F.cross_entropy(x[None], np.array([0])).item())  # silent, like NumPy and torch
    with tz.detect_anomaly(), pytest.raises(tz.AnomalyError, match="'mul' produced NaN"):
        x * 2


# ----- numerical stability -------------------------------------------------------------------------
def test_logits_of_magnitude_1e4_stay_finite_and_accurate_in_float32():
    logits = tz.tensor(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=np.float32), requires_grad=True)
    assert np.allclose(tz.softmax(logits, -1).numpy(), [[1, 0, 0], [0, 0, 1]])
    assert np.allclose(tz.log_softmax(logits, -1).numpy()[0], [0, -2e4, -1e4])
    assert np.allclose(tz.logsumexp(logits, -1).numpy(), [1e4, 1e4])
    loss = F.cross_entropy(logits, np.array([1, 2])) + F.binary_cross_entropy_with_logits(
        logits, tz.tensor(np.array([[0, 1, 1], [1, 0, 1]], dtype=np.float32))
    )
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(logits.grad.numpy()).all()
    np.testing.assert_allclose(F.cross_entropy(logits, np.array([1, 2]), reduction="none").numpy(), [2e4, 0])


def test_normalisation_of_constant_inputs_and_norms_at_zero():
    constant = tz.full((4, 6), 3.0, requires_grad=True)
    out = F.layer_norm(constant, (6,)) + nn.BatchNorm1d(6)(constant)
    out.sum().backward()
    assert np.isfinite(out.numpy()).all() and np.isfinite(constant.grad.numpy()).all()
    zero = tz.zeros(2, 3, requires_grad=True)
    from tinyzoo.kernels import squash

    (squash(zero).sum() + tz.norm(zero, axis=1).sum()).backward()
    assert np.isfinite(zero.grad.numpy()).all()


# ----- determinism -----------------------------------------------------------------------------------
def _losses_of_a_short_run(seed: int) -> list[float]:
    """A few steps of a model with dropout, an LSTM and the Numba edge-softmax kernel."""
    tz.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lstm, head, drop = nn.LSTM(4, 8, batch_first=True), nn.Linear(8, 3), nn.Dropout(0.3)
    params = [*lstm.parameters(), *head.parameters()]
    opt = tz.optim.Adam(params, lr=1e-2)
    dst = rng.integers(0, 6, 40)
    losses = []
    for _ in range(5):
        x = tz.tensor(rng.standard_normal((6, 5, 4)).astype(np.float32))
        out, _ = lstm(x)
        logits = head(drop(out[:, -1]))  # [6, 3]
        alpha = edge_softmax(logits[dst % 6][:, :1], dst, 6)  # [40, 1] through the kernel
        loss = F.cross_entropy(logits, rng.integers(0, 3, 6)) + alpha.sum() * 0.01
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_same_seed_gives_bit_identical_losses():
    assert _losses_of_a_short_run(3) == _losses_of_a_short_run(3)
    assert _losses_of_a_short_run(3) != _losses_of_a_short_run(4)


# ----- memory ---------------------------------------------------------------------------------------
def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_mlp(steps: int) -> None:
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = tz.optim.SGD(model.parameters(), lr=0.01)
    x, y = tz.randn(32, 64), np.arange(32) % 10
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_training_keeps_memory_flat_without_the_garbage_collector():
    """The peak RSS after 300 more steps equals the peak after the first 300: the tape never piles up."""
    gc.disable()
    try:
        _train_mlp(300)
        before = _rss_mib()
        _train_mlp(300)
        assert _rss_mib() - before < 5
    finally:
        gc.enable()


@pytest.mark.slow
def test_long_runs_keep_memory_flat():
    """10,000 MLP steps and 1,000 LSTM steps (slow): peak RSS grows by less than 20 MiB after warm-up."""
    _train_mlp(500)
    before = _rss_mib()
    _train_mlp(10_000)
    lstm = nn.LSTM(16, 32, batch_first=True)
    opt = tz.optim.Adam(lstm.parameters())
    x = tz.randn(8, 20, 16)
    for _ in range(1_000):
        out, _ = lstm(x)
        loss = (out**2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _rss_mib() - before < 20


# ----- exact resume --------------------------------------------------------------------------------
def test_lstm_training_resumes_bit_identically(tmp_path):
    """N steps, save, resume for M == N + M steps straight (dropout between layers included)."""
    from tinyzoo.train import load_training, save_training

    data = np.random.default_rng(0).standard_normal((7, 4, 6, 3)).astype(np.float32)

    def fresh():
        tz.manual_seed(5)
        model = nn.ModuleDict({"lstm": nn.LSTM(3, 8, num_layers=2, dropout=0.3, batch_first=True),
                               "head": nn.Linear(8, 1)})  # fmt: skip
        return model, tz.optim.Adam(model.parameters(), lr=1e-2)

    def train(model, opt, batches):
        losses = []
        for x in batches:
            out, _ = model["lstm"](tz.tensor(x))
            loss = (model["head"](out) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    straight = train(*fresh(), data)
    model, opt = fresh()
    first = train(model, opt, data[:3])
    save_training(tmp_path / "lstm.npz", model, opt, step=3)
    model, opt = fresh()
    tz.manual_seed(99)  # resuming must restore the RNG state, whatever it is now
    assert load_training(tmp_path / "lstm.npz", model, opt) == 3
    assert first + train(model, opt, data[3:]) == straight

"""Recurrent layers: cells against a NumPy re-derivation, the fused sequence layers against a loop of cells,
gradients against finite differences, and (where torch is installed) everything against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.errors import GraphError, ShapeError
from tinyzoo.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

FAST = settings(max_examples=10, deadline=None)
SEQUENCE_LAYERS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}
CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def _params(module: tz.nn.Module) -> dict[str, np.ndarray]:
    return {name: p.numpy() for name, p in module.named_parameters()}


# ----- cells against NumPy ----------------------------------------------------------------------
def _numpy_rnn(p: dict, x: np.ndarray, h: np.ndarray, relu: bool) -> np.ndarray:
    a = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    return np.maximum(a, 0) if relu else np.tanh(a)


def _numpy_gru(p: dict, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    gi = x @ p["weight_ih"].T + p["bias_ih"]
    gh = h @ p["weight_hh"].T + p["bias_hh"]
    H = h.shape[-1]
    r = _sigmoid(gi[:, :H] + gh[:, :H])
    z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    n = np.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
    return (1 - z) * n + z * h


def _numpy_lstm(p: dict, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gates = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_cell_matches_numpy(kind: str) -> None:
    rng = _rng(1)
    x, h, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    if kind.startswith("rnn"):
        cell = RNNCell(4, 5, nonlinearity=kind[4:]).double()
        got, want = cell(tz.tensor(x), tz.tensor(h)), _numpy_rnn(_params(cell), x, h, relu=kind == "rnn_relu")
    elif kind == "gru":
        cell = GRUCell(4, 5).double()
        got, want = cell(tz.tensor(x), tz.tensor(h)), _numpy_gru(_params(cell), x, h)
    else:
        cell = LSTMCell(4, 5).double()
        (got, got_c), (want, want_c) = (
            cell(tz.tensor(x), (tz.tensor(h), tz.tensor(c))),
            _numpy_lstm(_params(cell), x, h, c),
        )
        np.testing.assert_allclose(got_c.numpy(), want_c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_cell_layout_init_and_defaults() -> None:
    cell = LSTMCell(6, 4)
    shapes = {name: p.shape for name, p in cell.named_parameters()}
    assert shapes == {"weight_ih": (16, 6), "weight_hh": (16, 4), "bias_ih": (16,), "bias_hh": (16,)}
    assert all(np.abs(p.numpy()).max() <= 0.5 for p in cell.parameters())  # U(±1/√4)
    assert cell.weight_ih.dtype == np.float32
    x = tz.randn(2, 6)
    h, _ = cell(x)  # zero initial state
    h0, _ = cell(x, (tz.zeros(2, 4), tz.zeros(2, 4)))
    np.testing.assert_array_equal(h.numpy(), h0.numpy())
    h1, c1 = cell(x[0])  # unbatched
    assert h1.shape == c1.shape == (4,)
    np.testing.assert_allclose(h1.numpy(), h.numpy()[0], rtol=1e-5, atol=1e-6)
    assert [n for n, _ in GRUCell(2, 3, bias=False).named_parameters()] == ["weight_ih", "weight_hh"]
    with pytest.raises(ShapeError, match="expected input"):
        cell(tz.randn(2, 5))
    with pytest.raises(ShapeError, match="hidden state"):
        cell(x, (tz.zeros(2, 3), tz.zeros(2, 3)))
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(2, 3, nonlinearity="sigmoid")


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_cell_gradcheck(kind: str) -> None:
    rng = _rng(2)
    cell = CELLS[kind](3, 2).double()
    x = tz.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = tz.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    c = tz.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    params = list(cell.parameters())
    if kind == "lstm":
        tz.gradcheck(lambda x, h, c, *_: tz.concat(cell(x, (h, c)), axis=-1), [x, h, c, *params])
    else:
        tz.gradcheck(lambda x, h, *_: cell(x, h), [x, h, *params])


# ----- sequence layers against a loop of cells --------------------------------------------------
def _cell_loop(module: tz.nn.Module, kind: str, x: np.ndarray, h0: np.ndarray, c0: np.ndarray | None) -> tuple:
    """The stacked layer recomputed step by step with the cells (time-major x [T, B, I])."""
    extra = {"nonlinearity": module.nonlinearity} if kind == "rnn" else {}
    D, H = module.num_directions, module.hidden_size
    layer_input, finals_h, finals_c = x, [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction, suffix in enumerate(["", "_reverse"][:D]):
            cell = CELLS[kind](layer_input.shape[-1], H, **extra).double()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).data = getattr(module, f"{name}_l{layer}{suffix}").data
            k = layer * D + direction
            state = (tz.tensor(h0[k]), tz.tensor(c0[k])) if kind == "lstm" else tz.tensor(h0[k])
            steps = range(len(x))[::-1] if suffix else range(len(x))
            hs = [None] * len(x)
            for t in steps:
                state = cell(tz.tensor(layer_input[t]), state)
                hs[t] = (state[0] if kind == "lstm" else state).numpy()
            outputs.append(np.stack(hs))
            finals_h.append((state[0] if kind == "lstm" else state).numpy())
            finals_c.append(state[1].numpy() if kind == "lstm" else None)
        layer_input = np.concatenate(outputs, axis=-1)
    return layer_input, np.stack(finals_h), (np.stack(finals_c) if kind == "lstm" else None)


@FAST
@given(
    kind=st.sampled_from(["rnn", "gru", "lstm"]),
    steps=st.integers(1, 5),
    batch=st.integers(1, 3),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    relu=st.booleans(),
)
def test_sequence_layer_matches_cell_loop(kind, steps, batch, layers, bidirectional, batch_first, relu) -> None:
    rng = _rng(steps * 100 + batch * 10 + layers)
    extra = {"nonlinearity": "relu" if relu else "tanh"} if kind == "rnn" else {}
    module = SEQUENCE_LAYERS[kind](3, 4, layers, batch_first=batch_first, bidirectional=bidirectional, **extra)
    module.double()
    D = module.num_directions
    x = rng.standard_normal((steps, batch, 3))
    h0, c0 = rng.standard_normal((2, layers * D, batch, 4))
    hx = (tz.tensor(h0), tz.tensor(c0)) if kind == "lstm" else tz.tensor(h0)
    x_in = x.swapaxes(0, 1) if batch_first else x
    out, h_n = module(tz.tensor(x_in), hx)
    want_out, want_h, want_c = _cell_loop(module, kind, x, h0, c0)
    want_out = want_out.swapaxes(0, 1) if batch_first else want_out
    assert out.shape == want_out.shape
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-10, atol=1e-12)
    if kind == "lstm":
        h_n, c_n = h_n
        np.testing.assert_allclose(c_n.numpy(), want_c, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), want_h, rtol=1e-10, atol=1e-12)


def test_sequence_layer_shapes_names_and_unbatched() -> None:
    lstm = LSTM(5, 7, num_layers=2, bidirectional=True)
    names = [n for n, _ in lstm.named_parameters()]
    assert names[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse"]
    assert lstm.weight_ih_l1.shape == (28, 14) and lstm.weight_hh_l1_reverse.shape == (28, 7)
    assert all(np.abs(p.numpy()).max() <= 1 / np.sqrt(7) for p in lstm.parameters())
    x = tz.randn(6, 3, 5)
    out, (h_n, c_n) = lstm(x)
    assert out.shape == (6, 3, 14) and h_n.shape == c_n.shape == (4, 3, 7)
    out1, (h1, c1) = lstm(x[:, 1])  # unbatched [T, I]
    assert out1.shape == (6, 14) and h1.shape == c1.shape == (4, 7)
    np.testing.assert_allclose(out1.numpy(), out.numpy()[:, 1], rtol=1e-5, atol=1e-6)
    gru = GRU(5, 7, batch_first=True, bias=False)
    assert [n for n, _ in gru.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    out, h_n = gru(tz.randn(3, 6, 5))
    assert out.shape == (3, 6, 7) and h_n.shape == (1, 3, 7)
    with pytest.raises(ShapeError, match="expected input"):
        gru(tz.randn(3, 6, 4))
    with pytest.raises(ShapeError, match="h0 has shape"):
        gru(tz.randn(3, 6, 5), tz.zeros(2, 3, 7))


def test_dropout_only_between_layers() -> None:
    x = tz.randn(5, 2, 3)
    one = GRU(3, 4, num_layers=1, dropout=0.5)
    np.testing.assert_array_equal(one.train()(x)[0].numpy(), one.eval()(x)[0].numpy())  # never after the last
    two = GRU(3, 4, num_layers=2, dropout=0.5)
    train_out, train_h = two.train()(x)
    eval_out, eval_h = two.eval()(x)
    assert not np.allclose(train_out.numpy(), eval_out.numpy())
    np.testing.assert_array_equal(train_h.numpy()[0], eval_h.numpy()[0])  # layer 0 sees no dropout


def test_no_grad_records_nothing() -> None:
    lstm = LSTM(3, 4)
    with tz.no_grad():
        out, _ = lstm(tz.randn(5, 2, 3))
    assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_stacked_bidirectional_gradcheck(kind: str) -> None:
    rng = _rng(3)
    module = SEQUENCE_LAYERS[kind](2, 3, num_layers=2, bidirectional=True).double()
    x = tz.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
    h0 = tz.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    c0 = tz.tensor(rng.standard_normal((4, 2, 3)), requires_grad=True)
    params = list(module.parameters())
    if kind == "lstm":

        def fn(x, h0, c0, *_):
            out, (h_n, c_n) = module(x, (h0, c0))
            return tz.concat([out.reshape(-1), h_n.reshape(-1), c_n.reshape(-1)])

        tz.gradcheck(fn, [x, h0, c0, *params])
    else:

        def fn(x, h0, *_):
            out, h_n = module(x, h0)
            return tz.concat([out.reshape(-1), h_n.reshape(-1)])

        tz.gradcheck(fn, [x, h0, *params])


@pytest.mark.parametrize("relu", [False, True])
def test_rnn_gradcheck(relu: bool) -> None:
    rng = _rng(4)
    module = RNN(2, 3, num_layers=2, nonlinearity="relu" if relu else "tanh", bidirectional=True).double()
    x = tz.tensor(rng.standard_normal((4, 2, 2)), requires_grad=True)
    tz.gradcheck(lambda x, *_: module(x)[0], [x, *module.parameters()])


def test_fused_backward_is_once_differentiable() -> None:
    lstm = LSTM(2, 3).double()
    x = tz.tensor(_rng(5).standard_normal((3, 1, 2)), requires_grad=True)
    (gx,) = tz.grad(lstm(x)[0].sum(), x)  # first derivatives work
    assert gx.shape == x.shape
    with pytest.raises(GraphError, match="once-differentiable"):
        tz.grad(lstm(x)[0].sum(), x, create_graph=True)


def test_thousand_step_unrolled_rnn_backward() -> None:
    cell = RNNCell(3, 4)
    x = tz.randn(1000, 2, 3)
    h = None
    for t in range(1000):
        h = cell(x[t], h)
    h.sum().backward()  # ~10,000 taped ops: the iterative engine must not recurse
    assert np.isfinite(cell.weight_hh.grad.numpy()).all()
    rnn = RNN(3, 4)
    xs = tz.randn(1000, 2, 3, requires_grad=True)
    rnn(xs)[0].sum().backward()
    assert np.isfinite(xs.grad.numpy()).all() and np.abs(xs.grad.numpy()[0]).sum() > 0


# ----- against PyTorch (skipped when torch is not installed) ------------------------------------
def _copy_from_torch(module: tz.nn.Module, torch_module) -> None:
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_cell_matches_torch(kind: str) -> None:
    torch = pytest.importorskip("torch")
    rng = _rng(6)
    name = kind.split("_")[0]
    extra = {"nonlinearity": kind[4:]} if name == "rnn" else {}
    theirs = getattr(torch.nn, {"rnn": "RNNCell", "gru": "GRUCell", "lstm": "LSTMCell"}[name])(3, 4, **extra).double()
    ours = CELLS[name](3, 4, **extra).double()
    _copy_from_torch(ours, theirs)
    x, h, c, w = rng.standard_normal((4, 2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4)), None
    tx, zx = torch.tensor(x, requires_grad=True), tz.tensor(x, requires_grad=True)
    if name == "lstm":
        t_out = torch.cat(theirs(tx[0], (torch.tensor(h), torch.tensor(c))), -1)
        z_out = tz.concat(ours(zx[0], (tz.tensor(h), tz.tensor(c))), -1)
    else:
        t_out, z_out = theirs(tx[0], torch.tensor(h)), ours(zx[0], tz.tensor(h))
    np.testing.assert_allclose(z_out.numpy(), t_out.detach().numpy(), rtol=1e-6, atol=1e-6)
    w = rng.standard_normal(t_out.shape)
    (t_out * torch.tensor(w)).sum().backward()
    (z_out * tz.tensor(w)).sum().backward()
    np.testing.assert_allclose(zx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)
    for n, p in theirs.named_parameters():
        np.testing.assert_allclose(getattr(ours, n).grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_sequence_layer_matches_torch(kind: str, batch_first: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = _rng(7)
    name = kind.split("_")[0]
    extra = {"nonlinearity": kind[4:]} if name == "rnn" else {}
    options = dict(num_layers=2, bidirectional=True, batch_first=batch_first, **extra)
    theirs = getattr(torch.nn, name.upper())(3, 5, **options).double()
    ours = SEQUENCE_LAYERS[name](3, 5, **options).double()
    _copy_from_torch(ours, theirs)
    x = rng.standard_normal((2, 6, 3) if batch_first else (6, 2, 3))
    h0, c0 = rng.standard_normal((2, 4, 2, 5))
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    zx, zh0, zc0 = (tz.tensor(a, requires_grad=True) for a in (x, h0, c0))
    if name == "lstm":
        t_out, (t_h, t_c) = theirs(tx, (th0, tc0))
        z_out, (z_h, z_c) = ours(zx, (zh0, zc0))
        t_all, z_all = [t_out, t_h, t_c], [z_out, z_h, z_c]
    else:
        t_out, t_h = theirs(tx, th0)
        z_out, z_h = ours(zx, zh0)
        t_all, z_all = [t_out, t_h], [z_out, z_h]
    t_loss, z_loss = 0, 0
    for t_y, z_y in zip(t_all, z_all):
        np.testing.assert_allclose(z_y.numpy(), t_y.detach().numpy(), rtol=1e-6, atol=1e-6)
        w = rng.standard_normal(t_y.shape)
        t_loss, z_loss = t_loss + (t_y * torch.tensor(w)).sum(), z_loss + (z_y * tz.tensor(w)).sum()
    t_loss.backward()
    z_loss.backward()
    pairs = [(zx, tx), (zh0, th0)] + ([(zc0, tc0)] if name == "lstm" else [])
    pairs += [(getattr(ours, n), p) for n, p in theirs.named_parameters()]
    for z_t, t_t in pairs:
        np.testing.assert_allclose(z_t.grad.numpy(), t_t.grad.numpy(), rtol=1e-6, atol=1e-6)

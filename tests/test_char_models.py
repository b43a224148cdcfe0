"""Character language models: char-rnn (RNN/GRU/LSTM), HyperLSTM and RHN, and their examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.data import Shakespeare
from tinyzoo.models.char_rnn import (
    CharLM,
    bits_per_char,
    char_rnn,
    fixed_windows,
    loss_nats,
    random_windows,
    sample,
)
from tinyzoo.models.hyper_lstm import HyperLSTM, HyperLSTMCell
from tinyzoo.models.rhn import RHN, RHNCell

KINDS = ("rnn", "gru", "lstm", "hyperlstm", "rhn")


def make_lm(kind: str, vocab: int = 5, hidden: int = 3, embed: int = 2, layers: int = 1) -> CharLM:
    """A tiny character LM of the given kind."""
    tz.manual_seed(0)
    if kind == "hyperlstm":
        return CharLM(vocab, embed, HyperLSTM(embed, hidden, hyper_size=3, n_z=2, num_layers=layers), hidden)
    if kind == "rhn":
        return CharLM(vocab, embed, RHN(embed, hidden, depth=2, num_layers=layers), hidden)
    return char_rnn(kind, vocab, hidden, layers, embed)


def random_ids(batch: int, length: int, vocab: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, length))


def jittered(model: CharLM) -> CharLM:
    """The model in float64 with every parameter moved off its initial value (HyperLSTM's W_bz starts at 0)."""
    model = model.double()
    rng = np.random.default_rng(2)
    for p in model.parameters():
        p.data += rng.normal(0.0, 0.3, p.shape)
    return model


# ----------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_whole_model(kind):
    model = jittered(make_lm(kind))
    ids = tz.tensor(random_ids(2, 4))

    def logits(*_params):
        return model(ids)[0]  # [2, 4, 5]

    tz.gradcheck(logits, list(model.parameters()))


@pytest.mark.parametrize(
    "core",
    [lambda: HyperLSTM(2, 3, hyper_size=2, n_z=2, layer_norm=False), lambda: RHN(2, 3, depth=2, num_layers=2)],
    ids=["hyperlstm-without-layer-norm", "rhn-two-layers"],
)
def test_gradcheck_variants(core):
    tz.manual_seed(1)
    model = jittered(CharLM(5, 2, core(), 3))
    ids = tz.tensor(random_ids(2, 4, seed=1))
    tz.gradcheck(lambda *_: model(ids)[0], list(model.parameters()))


# ----------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers", [1, 2])
def test_output_shapes_and_state_carry(kind, layers):
    model = make_lm(kind, vocab=7, hidden=6, embed=4, layers=layers)
    ids = random_ids(3, 5, vocab=7)
    logits, _ = model(tz.tensor(ids))
    assert logits.shape == (3, 5, 7)
    # reading the sequence in two halves, carrying the state, gives the same logits
    first, state_half = model(tz.tensor(ids[:, :2]))
    second, _ = model(tz.tensor(ids[:, 2:]), state_half)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()], axis=1), logits.numpy(), atol=1e-5)


def test_hyperlstm_state_shapes():
    core = HyperLSTM(4, 6, hyper_size=5, n_z=3, num_layers=2)
    out, states = core(tz.randn(2, 3, 4))
    assert out.shape == (2, 3, 6)
    assert [tuple(t.shape for t in s) for s in states] == [((2, 6), (2, 6), (2, 5), (2, 5))] * 2


# ----------------------------------------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None)
@given(
    input_size=st.integers(1, 5),
    hidden=st.integers(1, 6),
    n_z=st.integers(1, 4),
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_hyperlstm_with_unit_scales_is_an_lstm(input_size, hidden, n_z, batch, steps, seed):
    """d_h = d_x = 1 and b = b_0, without layer norm: HyperLSTM ≡ nn.LSTMCell with the same static weights."""
    tz.manual_seed(seed)
    cell = HyperLSTMCell(input_size, hidden, hyper_size=3, n_z=n_z, layer_norm=False).double()
    for z in (cell.z_h, cell.z_x, cell.z_b):
        z.weight.data[...] = 0.0  # z_h = z_x = 1 (their biases), z_b = 0
    np.testing.assert_array_equal(cell.z_h.bias.data, 1.0)
    cell.w_hz.data[...] = cell.w_xz.data[...] = 1.0 / n_z  # d = W z = 1
    lstm = nn.LSTMCell(input_size, hidden).double()
    lstm.weight_ih.data[...] = cell.w_x.weight.data
    lstm.weight_hh.data[...] = cell.w_h.weight.data
    lstm.bias_ih.data[...] = cell.bias.data.reshape(-1)
    lstm.bias_hh.data[...] = 0.0

    x = tz.tensor(np.random.default_rng(seed).standard_normal((batch, steps, input_size)))
    state, hc = cell.initial_state(x[:, 0]), None
    for t in range(steps):
        h, state = cell(x[:, t], state)
        hc = lstm(x[:, t], hc)
        np.testing.assert_allclose(h.numpy(), hc[0].numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state[1].numpy(), hc[1].numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(input_size=st.integers(1, 5), hidden=st.integers(1, 6), batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_rhn_depth_one_with_open_transform_gate_is_an_elman_rnn(input_size, hidden, batch, seed):
    """t ≡ 1 (huge transform bias) and L = 1: s_t = tanh(W_H x_t + R_H s_{t-1} + b_H), an nn.RNNCell."""
    tz.manual_seed(seed)
    cell = RHNCell(input_size, hidden, depth=1, transform_bias=100.0).double()
    rnn = nn.RNNCell(input_size, hidden).double()
    rnn.weight_ih.data[...] = cell.input.weight.data[:hidden]
    rnn.weight_hh.data[...] = cell.recurrent[0].weight.data[:hidden]
    rnn.bias_ih.data[...] = cell.recurrent[0].bias.data[:hidden]
    rnn.bias_hh.data[...] = 0.0
    x = tz.tensor(np.random.default_rng(seed).standard_normal((3, batch, input_size)))
    s, h = cell.initial_state(x[0]), None
    for t in range(3):
        y, s = cell(x[t], s)
        h = rnn(x[t], h)
        np.testing.assert_allclose(y.numpy(), h.numpy(), rtol=1e-10, atol=1e-12)


def test_rhn_closed_transform_gate_carries_the_state():
    """t ≡ 0 (very negative transform bias): every micro-layer copies s_{ℓ-1}, so the state never changes."""
    cell = RHNCell(3, 4, depth=3, transform_bias=-100.0).double()
    s0 = tz.tensor(np.random.default_rng(0).standard_normal((2, 4)))
    y, _ = cell(tz.tensor(np.ones((2, 3))), s0)
    np.testing.assert_allclose(y.numpy(), s0.numpy(), atol=1e-30)


# ----------------------------------------------------------------------------------------------- data, bpc, sampling
def test_windows_are_shifted_by_one():
    ids = np.arange(100)
    x, y = random_windows(ids, 4, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(y, x + 1)
    fx, fy = fixed_windows(ids, 5, 10)
    np.testing.assert_array_equal(fy, fx + 1)
    assert fx.shape == (5, 10) and fx[0, 0] == 0 and fy[-1, -1] == 99
    np.testing.assert_array_equal(fixed_windows(ids, 5, 10)[0], fx)


def test_bits_per_char_is_nats_over_ln2():
    model = make_lm("lstm", vocab=6, hidden=5, embed=3)
    x, y = fixed_windows(np.random.default_rng(0).integers(0, 6, 300), 10, 12)
    with tz.no_grad():
        nats = loss_nats(model, tz.tensor(x), tz.tensor(y)).item()
    assert bits_per_char(model, x, y, batch_size=3) == pytest.approx(nats / np.log(2), rel=1e-5)
    assert model.training


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_returns_valid_ids(kind):
    model = make_lm(kind, vocab=9, hidden=4, embed=3)
    ids = sample(model, [1, 2, 3], 25, temperature=0.7, rng=np.random.default_rng(0))
    assert len(ids) == 25 and all(isinstance(i, int) and 0 <= i < 9 for i in ids)
    assert ids == sample(model, [1, 2, 3], 25, temperature=0.7, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="temperature"):
        sample(model, [1], 2, temperature=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_short_training_run_lowers_the_loss(kind):
    text = np.tile(np.array([0, 1, 2, 3, 2, 1]), 50)  # a periodic "text" with a learnable next character
    model = make_lm(kind, vocab=4, hidden=16, embed=8)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    x, y = fixed_windows(text, 8, 12)
    before = bits_per_char(model, x, y)
    for _ in range(40):
        xb, yb = random_windows(text, 8, 12, rng)
        loss = loss_nats(model, tz.tensor(xb), tz.tensor(yb))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = bits_per_char(model, x, y)
    assert after < 0.5 * before, (before, after)


# ----------------------------------------------------------------------------------------------- examples
TINY_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me!\n\n" * 30


def tiny_corpus() -> Shakespeare:
    """A small fabricated corpus in the loader's format, so the examples run without any data set."""
    vocab = "".join(sorted(set(TINY_TEXT)))
    ids = np.array([vocab.index(c) for c in TINY_TEXT], dtype=np.int64)
    n_train = int(0.9 * len(ids))
    return Shakespeare(TINY_TEXT, ids[:n_train], ids[n_train:], vocab, "tiny test corpus")


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr("tinyzoo.data.load_tiny_shakespeare", lambda *a, **k: tiny_corpus())


TINY_ARGS = ["--steps", "4", "--hidden", "8", "--embed", "4", "--seq-len", "12", "--batch-size", "4",
             "--eval-every", "2", "--eval-windows", "4", "--sample-length", "20", "--hyper-size", "4", "--n-z", "2",
             "--depth", "2"]  # fmt: skip


@pytest.mark.parametrize("model", KINDS)
def test_char_lm_example(load_example, tiny_data, capsys, model):
    assert load_example("char_lm").main(["--model", model, *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "val bpc" in out and "--- sample from" in out and "ROMEO:" in out


def test_char_lm_example_save_resume_and_plot(load_example, tiny_data, capsys, tmp_path):
    example = load_example("char_lm")
    checkpoint, figure = tmp_path / "lm.npz", tmp_path / "lm.png"
    assert example.main([*TINY_ARGS, "--save", str(checkpoint), "--plot", str(figure)]) == 0
    assert checkpoint.exists() and figure.exists()
    assert example.main([*TINY_ARGS[2:], "--steps", "6", "--resume", str(checkpoint)]) == 0
    assert "2 steps in" in capsys.readouterr().out


def test_char_rnn_shakespeare_example(load_example, tiny_data, capsys, tmp_path):
    args = [*TINY_ARGS, "--match", "params", "--save", str(tmp_path / "run.npz")]
    assert load_example("char_rnn_shakespeare").main(args) == 0
    out = capsys.readouterr().out
    assert "best:" in out and all(f"  {kind} " in out for kind in ("rnn", "gru", "lstm"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-gru.npz", "run-lstm.npz", "run-rnn.npz"]


@pytest.mark.parametrize("model", ["hyperlstm", "rhn"])
def test_hyperlstm_shakespeare_example(load_example, tiny_data, capsys, model):
    assert load_example("hyperlstm_shakespeare").main([*TINY_ARGS, "--model", model]) == 0
    out = capsys.readouterr().out
    assert f"{model} " in out and "lstm " in out and "after 4 steps each" in out

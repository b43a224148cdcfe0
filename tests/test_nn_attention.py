"""Attention: scaled dot-product attention against NumPy, the masks (padding, causal, fully masked rows),
gradients by finite differences, and (where torch is installed) MultiheadAttention and TransformerBlock
against PyTorch with copied weights."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.errors import DTypeError, ShapeError
from tinyzoo.nn.attention import MultiheadAttention, TransformerBlock, scaled_dot_product_attention

FAST = settings(max_examples=15, deadline=None)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray | float = 0.0) -> tuple:
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]) + bias
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


# ----- scaled dot-product attention -------------------------------------------------------------
@FAST
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    L=st.integers(1, 5),
    S=st.integers(1, 5),
    d=st.integers(1, 4),
    dv=st.integers(1, 4),
    with_bias=st.booleans(),
)
def test_attention_matches_numpy(lead, L, S, d, dv, with_bias) -> None:
    rng = _rng(L * 100 + S * 10 + d)
    q, k, v = (
        rng.standard_normal((*lead, L, d)),
        rng.standard_normal((*lead, S, d)),
        rng.standard_normal((*lead, S, dv)),
    )
    bias = rng.standard_normal((L, S)) if with_bias else None
    out, weights = scaled_dot_product_attention(
        tz.tensor(q), tz.tensor(k), tz.tensor(v), bias=None if bias is None else tz.tensor(bias)
    )
    want_out, want_weights = _numpy_attention(q, k, v, 0.0 if bias is None else bias)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weights.numpy(), want_weights, rtol=1e-10, atol=1e-12)


def test_masks_give_exactly_zero_weight() -> None:
    rng = _rng(1)
    q, k, v = (tz.tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True) for _ in range(3))
    padding = np.array([[False, False, True], [False, True, True]])  # True = padding key
    out, weights = scaled_dot_product_attention(q, k, v, key_padding_mask=padding)
    w = weights.numpy()
    assert (w[0, :, :, 2] == 0).all() and (w[1, :, :, 1:] == 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)
    # the surviving keys are attended exactly as if the padded ones were not there
    want, _ = _numpy_attention(q.numpy()[1], k.numpy()[1, :, :1], v.numpy()[1, :, :1])
    np.testing.assert_allclose(out.numpy()[1], want, rtol=1e-12)
    (gk,) = tz.grad(out.sum(), k)
    assert (gk.numpy()[0, :, 2] == 0).all()  # padded keys get no gradient

    causal = np.triu(np.ones((3, 3), bool), 1)  # a boolean attn_mask, True = masked out
    _, w_mask = scaled_dot_product_attention(q, k, v, attn_mask=causal)
    _, w_causal = scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_array_equal(w_mask.numpy(), w_causal.numpy())
    assert (w_causal.numpy()[..., causal] == 0).all()
    additive = np.where(causal, -np.inf, 0.0)  # torch's float-mask convention
    _, w_additive = scaled_dot_product_attention(q, k, v, attn_mask=additive)
    np.testing.assert_allclose(w_additive.numpy(), w_causal.numpy(), rtol=1e-12)
    with pytest.raises(DTypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, attn_mask=causal.astype(int))
    with pytest.raises(ShapeError, match="key_padding_mask"):
        scaled_dot_product_attention(q, k, v, key_padding_mask=padding[:, :2])


def test_fully_masked_row_gives_zero_output_not_nan() -> None:
    rng = _rng(2)
    q, k, v = (tz.tensor(rng.standard_normal((1, 3, 4)), requires_grad=True) for _ in range(3))
    mask = np.zeros((3, 3), bool)
    mask[1] = True  # query 1 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (weights.numpy()[0, 1] == 0).all() and (out.numpy()[0, 1] == 0).all()
    assert np.isfinite(out.numpy()).all()
    grads = tz.grad(out.sum(), [q, k, v])
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert (grads[0].numpy()[0, 1] == 0).all()


def test_attention_dropout_only_while_training() -> None:
    rng = _rng(3)
    q, k, v = (tz.tensor(rng.standard_normal((2, 5, 4))) for _ in range(3))
    out_eval, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    np.testing.assert_allclose(out_eval.numpy(), _numpy_attention(q.numpy(), k.numpy(), v.numpy())[0], rtol=1e-12)
    _, w_train = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    assert (w_train.numpy() == 0).any()


# ----- causality: no gradient from the future ---------------------------------------------------
@pytest.mark.parametrize("which", ["mha", "block_pre", "block_post"])
def test_causal_mask_blocks_gradient_from_future(which: str) -> None:
    tz.manual_seed(0)
    if which == "mha":
        mha = MultiheadAttention(8, 2).double()
        model = lambda x: mha(x, x, x, is_causal=True)[0]  # noqa: E731
    else:
        model = TransformerBlock(8, 2, 16, dropout=0.0, norm_first=which == "block_pre", causal=True).double()
    L = 5
    x = tz.tensor(_rng(4).standard_normal((2, L, 8)), requires_grad=True)
    out = model(x) * tz.tensor(_rng(5).standard_normal(8))  # (a plain sum of a LayerNorm output is constant)
    for t in range(L):
        (g,) = tz.grad(out[:, t].sum(), x, retain_graph=True)
        g = g.numpy()
        assert (g[:, t + 1 :] == 0).all(), f"output {t} depends on a later position"
        assert np.abs(g[:, : t + 1]).sum() > 0


# ----- MultiheadAttention and TransformerBlock --------------------------------------------------
def test_multihead_attention_layout_and_shapes() -> None:
    mha = MultiheadAttention(8, 2)
    assert {n: p.shape for n, p in mha.named_parameters()} == {
        "in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8), "out_proj.bias": (8,)
    }  # fmt: skip
    assert (mha.in_proj_bias.numpy() == 0).all() and (mha.out_proj.bias.numpy() == 0).all()
    cross = MultiheadAttention(8, 2, kdim=3, vdim=5, bias=False)
    assert {n: p.shape for n, p in cross.named_parameters()} == {
        "q_proj_weight": (8, 8), "k_proj_weight": (8, 3), "v_proj_weight": (8, 5), "out_proj.weight": (8, 8)
    }  # fmt: skip
    q, k, v = tz.randn(2, 4, 8), tz.randn(2, 6, 3), tz.randn(2, 6, 5)
    out, weights = cross(q, k, v)
    assert out.shape == (2, 4, 8) and weights.shape == (2, 4, 6)
    np.testing.assert_allclose(weights.numpy().sum(-1), 1.0, rtol=1e-5)
    out1, weights1 = cross(q[0], k[0], v[0])  # unbatched
    assert out1.shape == (4, 8) and weights1.shape == (4, 6)
    np.testing.assert_allclose(out1.numpy(), out.numpy()[0], rtol=1e-5, atol=1e-6)
    seq_first = MultiheadAttention(8, 2, batch_first=False)
    out, weights = seq_first(q.swapaxes(0, 1), q.swapaxes(0, 1), q.swapaxes(0, 1), need_weights=False)
    assert out.shape == (4, 2, 8) and weights is None
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(8, 3)
    with pytest.raises(ShapeError, match="kdim"):
        cross(q, v, v)


def test_transformer_block_layout_and_modes() -> None:
    encoder = TransformerBlock(8, 2, 16)
    assert sorted(n.split(".")[0] for n, _ in encoder.named_parameters() if n.endswith("weight")) == [
        "linear1", "linear2", "norm1", "norm2", "self_attn", "self_attn"
    ]  # fmt: skip
    decoder = TransformerBlock(8, 2, 16, cross_attention=True)
    assert {n.split(".")[0] for n, _ in decoder.named_parameters()} == {
        "self_attn", "multihead_attn", "linear1", "linear2", "norm1", "norm2", "norm3"
    }  # fmt: skip
    x, memory = tz.randn(2, 5, 8), tz.randn(2, 3, 8)
    assert encoder(x).shape == (2, 5, 8) and decoder(x, memory).shape == (2, 5, 8)
    encoder.eval()
    np.testing.assert_array_equal(encoder(x).numpy(), encoder(x).numpy())
    with pytest.raises(ValueError, match="memory"):
        decoder(x)
    with pytest.raises(ValueError, match="activation"):
        TransformerBlock(8, 2, 16, activation="tanh")


def test_multihead_attention_gradcheck() -> None:
    tz.manual_seed(1)
    rng = _rng(5)
    mha = MultiheadAttention(4, 2, kdim=3, vdim=3).double()
    q = tz.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    kv = tz.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True)
    padding = np.array([[False, False, False, True], [False, True, False, False]])

    def fn(q, kv, *_):
        out, weights = mha(q, kv, kv, key_padding_mask=padding)
        return tz.concat([out.reshape(-1), weights.reshape(-1)])

    tz.gradcheck(fn, [q, kv, *mha.parameters()])


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_transformer_block_gradcheck(norm_first: bool, cross: bool) -> None:
    tz.manual_seed(2)
    rng = _rng(6)
    block = TransformerBlock(4, 2, 6, dropout=0.0, norm_first=norm_first, causal=True, cross_attention=cross)
    block.double()
    x = tz.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    memory = tz.tensor(rng.standard_normal((2, 2, 4)), requires_grad=True) if cross else None
    bias = tz.tensor(rng.standard_normal((1, 2, 3, 3)), requires_grad=True)  # T5-style additive bias
    inputs = [x, bias, *([memory] if cross else []), *block.parameters()]
    tz.gradcheck(lambda x, bias, *rest: block(x, rest[0] if cross else None, attn_bias=bias), inputs)


# ----- against PyTorch (skipped when torch is not installed) ------------------------------------
def _copy_from_torch(module: tz.nn.Module, torch_module) -> None:
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})


def _assert_grads_match(pairs) -> None:
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kvdim", [None, 5])
@pytest.mark.parametrize("mask", ["none", "padding", "bool", "per_head", "float"])
def test_multihead_attention_matches_torch(batch_first: bool, kvdim: int | None, mask: str) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rng = _rng(7)
    B, L, S, E, heads = 2, 3, 4, 8, 2
    theirs = torch.nn.MultiheadAttention(E, heads, batch_first=batch_first, kdim=kvdim, vdim=kvdim).double()
    ours = MultiheadAttention(E, heads, batch_first=batch_first, kdim=kvdim, vdim=kvdim).double()
    _copy_from_torch(ours, theirs)
    q, kv = rng.standard_normal((B, L, E)), rng.standard_normal((B, S, kvdim or E))
    if not batch_first:
        q, kv = q.swapaxes(0, 1), kv.swapaxes(0, 1)
    masks = {
        "none": {},
        "padding": {"key_padding_mask": np.array([[False, False, True, False], [False, True, True, True]])},
        "bool": {"attn_mask": np.triu(np.ones((L, S), bool), 1)},
        "per_head": {"attn_mask": rng.random((B * heads, L, S)) < 0.3},
        "float": {"attn_mask": rng.standard_normal((L, S))},
    }[mask]
    if mask == "per_head":
        masks["attn_mask"][..., 0] = False  # keep at least one key per query (torch returns NaN otherwise)
    tq, tkv = torch.tensor(q, requires_grad=True), torch.tensor(kv, requires_grad=True)
    zq, zkv = tz.tensor(q, requires_grad=True), tz.tensor(kv, requires_grad=True)
    t_out, t_w = theirs(tq, tkv, tkv, **{k: torch.tensor(m) for k, m in masks.items()})
    z_out, z_w = ours(zq, zkv, zkv, **masks)
    np.testing.assert_allclose(z_out.numpy(), t_out.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z_w.numpy(), t_w.detach().numpy(), rtol=1e-6, atol=1e-6)
    w_out, w_w = rng.standard_normal(t_out.shape), rng.standard_normal(t_w.shape)
    ((t_out * torch.tensor(w_out)).sum() + (t_w * torch.tensor(w_w)).sum()).backward()
    ((z_out * tz.tensor(w_out)).sum() + (z_w * tz.tensor(w_w)).sum()).backward()
    params = dict(ours.named_parameters())
    _assert_grads_match([(zq, tq), (zkv, tkv)] + [(params[n], p) for n, p in theirs.named_parameters()])


def test_self_attention_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(8, 4, batch_first=True).double()
    ours = MultiheadAttention(8, 4).double()
    _copy_from_torch(ours, theirs)
    x = _rng(8).standard_normal((2, 5, 8))
    tx, zx = torch.tensor(x, requires_grad=True), tz.tensor(x, requires_grad=True)
    causal = np.triu(np.ones((5, 5), bool), 1)
    t_out, _ = theirs(tx, tx, tx, attn_mask=torch.tensor(causal))
    z_out, _ = ours(zx, zx, zx, is_causal=True)  # the one-matmul self-attention path
    np.testing.assert_allclose(z_out.numpy(), t_out.detach().numpy(), rtol=1e-6, atol=1e-6)
    (t_out**2).sum().backward()
    (z_out**2).sum().backward()
    _assert_grads_match([(zx, tx), (ours.in_proj_weight, theirs.in_proj_weight)])


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("cross", [False, True])
def test_transformer_block_matches_torch(norm_first: bool, cross: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    rng = _rng(9)
    layer = torch.nn.TransformerDecoderLayer if cross else torch.nn.TransformerEncoderLayer
    theirs = layer(8, 2, 16, dropout=0.0, activation="relu", batch_first=True, norm_first=norm_first).double()
    ours = TransformerBlock(8, 2, 16, 0.0, norm_first, activation="relu", causal=True, cross_attention=cross)
    ours.double()
    _copy_from_torch(ours, theirs)  # state_dicts share their names
    x, memory = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 3, 8))
    padding = np.array([[False] * 5, [False, False, False, True, True]])
    causal = torch.tensor(np.triu(np.ones((5, 5), bool), 1))
    tx, zx = torch.tensor(x, requires_grad=True), tz.tensor(x, requires_grad=True)
    if cross:
        memory_padding = np.array([[False, False, True], [False, False, False]])
        t_out = theirs(
            tx,
            torch.tensor(memory),
            tgt_mask=causal,
            tgt_key_padding_mask=torch.tensor(padding),
            memory_key_padding_mask=torch.tensor(memory_padding),
        )
        z_out = ours(zx, tz.tensor(memory), key_padding_mask=padding, memory_key_padding_mask=memory_padding)
    else:
        t_out = theirs(tx, src_mask=causal, src_key_padding_mask=torch.tensor(padding))
        z_out = ours(zx, key_padding_mask=padding)
    np.testing.assert_allclose(z_out.numpy(), t_out.detach().numpy(), rtol=1e-6, atol=1e-6)
    w = rng.standard_normal(x.shape)
    (t_out * torch.tensor(w)).sum().backward()
    (z_out * tz.tensor(w)).sum().backward()
    params = dict(ours.named_parameters())
    _assert_grads_match([(zx, tx)] + [(params[n], p) for n, p in theirs.named_parameters()])

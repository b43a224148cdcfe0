"""Transformer (encoder-decoder, masks, greedy and beam decoding), T5's relative position bias and XLNet's
two-stream attention: gradients, the properties the papers rely on, short training and the examples."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.models.t5_bias import RelativePositionBias, relative_position_bucket
from tinyzoo.models.transformer import (
    BOS,
    EOS,
    PAD,
    Transformer,
    exact_match,
    seq2seq_batch,
    sequence_loss,
    sinusoidal_positions,
)
from tinyzoo.models.xlnet import (
    XLNet,
    order_ranks,
    palindrome_best_guess,
    prediction_targets,
    sample_orders,
    sequence_batch,
    two_stream_mask,
    xlnet_loss,
)
from tinyzoo.testing import training_losses

FAST = settings(max_examples=15, deadline=None)


def tiny_transformer(position: str = "sinusoidal", norm_first: bool = True, vocab: int = 7) -> Transformer:
    """A float64 Transformer small enough for finite differences."""
    tz.manual_seed(0)
    model = Transformer(vocab, vocab, d_model=4, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                        d_ff=8, dropout=0.0, norm_first=norm_first, position=position, num_buckets=6,
                        max_distance=8, pad_id=PAD, bos_id=BOS, eos_id=EOS)  # fmt: skip
    return model.double().eval()


def tiny_batch(batch_size: int = 2, max_len: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    return seq2seq_batch("reverse", batch_size, max_len, 4, np.random.default_rng(seed))


def embedding_as_leaf(table) -> tuple[list, callable]:
    """Swap an Embedding's output for a leaf that requires grad (a forward hook); returns (leaves, remove)."""
    leaves = []

    def hook(_module, _inputs, out):
        leaves.append(tz.tensor(out.numpy(), requires_grad=True))
        return leaves[-1]

    return leaves, table.register_forward_hook(hook)


# ----- the Transformer ----------------------------------------------------------------------------
def test_sinusoidal_positions_follow_the_formula():
    pe = sinusoidal_positions(50, 6)
    pos, k = 37, 2
    assert pe[pos, 2 * k] == pytest.approx(math.sin(pos / 10000 ** (2 * k / 6)))
    assert pe[pos, 2 * k + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * k / 6)))
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths work too


@pytest.mark.parametrize("position", ["sinusoidal", "t5"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_output_shapes_and_seq2seq_batch(position, norm_first):
    src, tgt_in, tgt_out = tiny_batch(3, 5)
    assert src.shape == tgt_in.shape == tgt_out.shape == (3, 6)
    n = (src != PAD).sum(axis=1) - 1
    for b in range(3):  # tgt_out is the reversal followed by EOS, and tgt_in is it shifted right after BOS
        np.testing.assert_array_equal(tgt_out[b, : n[b]], src[b, : n[b]][::-1])
        assert tgt_out[b, n[b]] == EOS and src[b, n[b]] == EOS
        np.testing.assert_array_equal(tgt_in[b, 1 : n[b] + 1], tgt_out[b, : n[b]])
    logits = tiny_transformer(position, norm_first)(src, tgt_in)
    assert logits.shape == (3, 6, 7)


@pytest.mark.parametrize(("position", "norm_first"), [("sinusoidal", True), ("t5", False)])
def test_full_model_gradcheck_float64(position, norm_first):
    model = tiny_transformer(position, norm_first)
    src, tgt_in, tgt_out = tiny_batch(2, 3)

    def loss(*_params):  # gradcheck nudges the parameters in place; the model reads them itself
        return sequence_loss(model(src, tgt_in), tgt_out, PAD)

    tz.gradcheck(loss, list(model.parameters()))


@pytest.mark.parametrize("position", ["sinusoidal", "t5"])
def test_padding_changes_nothing(position):
    model = tiny_transformer(position)
    src, tgt_in, _ = tiny_batch(1, 3, seed=3)
    more_padding = [np.pad(a, ((0, 0), (0, 4))) for a in (src, tgt_in)]
    short, long = model(src, tgt_in).numpy(), model(*more_padding).numpy()
    np.testing.assert_allclose(long[:, : src.shape[1]], short, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("position", ["sinusoidal", "t5"])
def test_causal_mask_stops_every_gradient_from_the_future(position):
    model = tiny_transformer(position)
    src, tgt_in, _ = tiny_batch(2, 5, seed=1)
    T = tgt_in.shape[1]
    weights = np.random.default_rng(0).standard_normal((2, T, 7))
    for t in range(T):
        leaves, remove = embedding_as_leaf(model.tgt_embed)
        out = model(src, tgt_in)  # [B, T, V]
        remove()
        (grad,) = tz.grad((out[:, t] * tz.tensor(weights[:, t])).sum(), leaves[0])  # ∂out_t / ∂y   [B, T, d]
        size = np.abs(grad.numpy()).sum(axis=(0, 2))  # [T]
        assert (size[t + 1 :] == 0).all()  # ∂out_t/∂y_{t+k} = 0 exactly
        assert (size[: t + 1] > 0).all()  # while the past and present do matter


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), position=st.sampled_from(["sinusoidal", "t5"]))
def test_beam_search_with_one_beam_is_greedy(seed, position):
    model = tiny_transformer(position)
    for p in model.parameters():  # random weights of a larger scale, so the decoders have real choices
        p.data = np.random.default_rng(seed).standard_normal(p.shape)
    src, _, _ = tiny_batch(4, 5, seed=seed)
    greedy = model.greedy_decode(src, max_len=6)
    np.testing.assert_array_equal(model.beam_search(src, max_len=6, beam_width=1), greedy)
    np.testing.assert_array_equal(model.beam_search(src, max_len=6, beam_width=1, length_penalty=1.0), greedy)


def test_beam_search_with_a_wide_beam_is_exact_search():
    """With k ≥ V^(n-1) nothing is ever pruned: beam search finds the most probable output of length ≤ n."""
    model = tiny_transformer(vocab=5)
    for p in model.parameters():
        p.data = np.random.default_rng(1).standard_normal(p.shape)
    src = np.array([[3, 4, 4, EOS]])
    n, V = 3, 5
    found = model.beam_search(src, max_len=n, beam_width=V ** (n - 1))[0]

    outputs = np.array(list(itertools.product(range(V), repeat=n)))  # every sequence of n tokens
    with tz.no_grad():
        tgt_in = np.concatenate([np.ones((len(outputs), 1), int), outputs[:, :-1]], axis=1)  # BOS first
        log_p = model(np.repeat(src, len(outputs), 0), tgt_in).log_softmax(axis=-1).numpy()
    token_log_p = np.take_along_axis(log_p, outputs[..., None], 2)[..., 0]  # [N, n]
    ended = np.cumsum(outputs == EOS, axis=1) - (outputs == EOS) > 0  # positions after the first EOS
    scores = np.where(ended, 0.0, token_log_p).sum(axis=1)
    best = np.where(ended, PAD, outputs)[np.argmax(scores)]
    np.testing.assert_array_equal(found, best)


def test_exact_match_compares_up_to_eos():
    target = np.array([[5, 4, EOS, PAD], [5, 4, EOS, PAD]])
    predicted = np.array([[5, 4, EOS], [5, 3, EOS]])
    np.testing.assert_array_equal(exact_match(predicted, target), [True, False])


def test_short_training_lowers_the_loss():
    tz.manual_seed(0)
    model = Transformer(7, 7, d_model=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, d_ff=32,
                        dropout=0.0, pad_id=PAD, bos_id=BOS, eos_id=EOS)  # fmt: skip
    optimizer = tz.optim.Adam(model.parameters(), lr=1e-2)
    src, tgt_in, tgt_out = tiny_batch(16, 6)
    losses = training_losses(lambda _: sequence_loss(model(src, tgt_in), tgt_out, PAD), optimizer, 25)
    assert losses[-1] < 0.5 * losses[0]


# ----- T5's relative position bias ----------------------------------------------------------------
def paper_bucket(j_minus_i: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5's _relative_position_bucket for one relative position, written out with Python scalars."""
    n = i_minus_j = -j_minus_i
    offset = 0
    if bidirectional:
        num_buckets //= 2
        if i_minus_j < 0:
            offset = num_buckets
        n = abs(i_minus_j)
    else:
        n = max(i_minus_j, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return offset + n
    fraction = math.log(n / max_exact) / math.log(max_distance / max_exact)  # 0 at max_exact, 1 at max_distance
    log_spaced = max_exact + int(fraction * (num_buckets - max_exact))
    return offset + min(log_spaced, num_buckets - 1)


@FAST
@given(
    bidirectional=st.booleans(),
    num_buckets=st.sampled_from([8, 16, 32, 64]),
    max_distance=st.sampled_from([20, 64, 128, 500]),
    distances=st.lists(st.integers(-1000, 1000), min_size=1, max_size=50),
)
def test_bucket_matches_the_papers_formula(bidirectional, num_buckets, max_distance, distances):
    max_exact = num_buckets // (4 if bidirectional else 2)
    if max_distance <= max_exact:  # log-spaced buckets need max_distance beyond the exact ones
        with pytest.raises(ValueError, match="max_distance"):
            relative_position_bucket(np.array(distances), bidirectional, num_buckets, max_distance)
        return
    distances = distances + list(range(-40, 41))  # every small distance, plus random large ones
    got = relative_position_bucket(np.array(distances), bidirectional, num_buckets, max_distance)
    want = [paper_bucket(d, bidirectional, num_buckets, max_distance) for d in distances]
    np.testing.assert_array_equal(got, want)
    assert got.min() >= 0 and got.max() < num_buckets


def test_buckets_are_exact_near_and_log_spaced_far():
    distance = np.arange(0, 300)
    back = relative_position_bucket(-distance, bidirectional=True, num_buckets=32, max_distance=128)
    np.testing.assert_array_equal(back[:8], np.arange(8))  # one bucket per small distance
    assert (np.diff(back) >= 0).all() and back[128:].tolist() == [15] * 172  # the last bucket beyond max_distance
    ahead = relative_position_bucket(distance, bidirectional=True, num_buckets=32, max_distance=128)
    np.testing.assert_array_equal(ahead[1:], back[1:] + 16)  # keys ahead use the other half of the table
    causal = relative_position_bucket(distance, bidirectional=False, num_buckets=32, max_distance=128)
    assert (causal == 0).all()  # the future (masked anyway) shares bucket 0


@FAST
@given(bidirectional=st.booleans(), shift=st.integers(-50, 50), seed=st.integers(0, 100))
def test_bias_is_translation_invariant(bidirectional, shift, seed):
    tz.manual_seed(seed)
    bias = RelativePositionBias(num_heads=3, bidirectional=bidirectional, num_buckets=16, max_distance=40)
    i, j = np.arange(7) + 100, np.arange(9) + 100
    base = bias(i, j).numpy()  # [1, heads, 7, 9]
    np.testing.assert_array_equal(bias(i + shift, j + shift).numpy(), base)  # shift both: unchanged
    relative = j[None, :] - i[:, None]
    for d in np.unique(relative):  # and within one matrix, bias(i, j) is a function of j − i alone
        values = base[0][:, relative == d]  # [heads, pairs at distance d]
        assert (values == values[:, :1]).all()
    assert bias(7, 9).shape == (1, 3, 7, 9)


def test_t5_bias_gradcheck_float64():
    tz.manual_seed(0)
    bias = RelativePositionBias(num_heads=2, bidirectional=True, num_buckets=8, max_distance=10).double()
    tz.gradcheck(lambda *_: bias(5, 6), list(bias.parameters()))


# ----- XLNet ----------------------------------------------------------------------------------------
def tiny_xlnet(vocab: int = 5) -> XLNet:
    tz.manual_seed(0)
    return XLNet(vocab, d_model=4, num_heads=2, num_layers=2, d_ff=8).double().eval()


@FAST
@given(seed=st.integers(0, 10_000), length=st.integers(1, 7))
def test_two_stream_mask_follows_the_order(seed, length):
    order = sample_orders(2, length, np.random.default_rng(seed))
    mask = two_stream_mask(order)[:, 0]  # [B, 2T, 2T]
    rank = order_ranks(order)
    for b, i, j in itertools.product(range(2), range(length), range(length)):
        assert order[b, rank[b, i]] == i
        assert mask[b, i, j] == (rank[b, j] > rank[b, i])  # content: itself and the tokens before it
        assert mask[b, length + i, j] == (rank[b, j] >= rank[b, i])  # query: strictly before it
    assert mask[:, :, length:].all()  # no one attends to the query stream
    targets = prediction_targets(order, K=3)
    assert (targets.sum(axis=1) == max(1, round(length / 3))).all()
    assert (rank[targets] >= length - targets.sum(axis=1)[0]).all()  # the last ones in the order


def test_query_stream_cannot_see_its_own_token_but_the_content_stream_can():
    model = tiny_xlnet()
    rng = np.random.default_rng(0)
    tokens, order = sequence_batch("progression", 3, 6, 5, rng), sample_orders(3, 6, rng)
    rank = order_ranks(order)
    content = tz.tensor(model.embed(tokens).numpy(), requires_grad=True)  # [B, T, d]
    for i in range(6):
        weights = tz.tensor(rng.standard_normal((3, 4)))
        g = model.streams(content, order)[1]
        (grad_g,) = tz.grad((g[:, i] * weights).sum(), content)
        (grad_h,) = tz.grad((model.streams(content, order)[0][:, i] * weights).sum(), content)
        size_g, size_h = np.abs(grad_g.numpy()).sum(axis=2), np.abs(grad_h.numpy()).sum(axis=2)  # [B, T]
        assert (size_g[:, i] == 0).all()  # ∂g_i / ∂e(x_i) = 0 exactly
        assert (size_h[:, i] > 0).all()  # ∂h_i / ∂e(x_i) ≠ 0
        later = rank >= rank[:, i : i + 1]  # i itself and everything after it in the order
        assert (size_g[later] == 0).all() and (size_g[~later] > 0).all()  # g_i reads exactly z_<t

    changed = tokens.copy()
    changed[:, 2] = (changed[:, 2] + 1) % 5
    h0, g0 = model.streams(model.embed(tokens), order)
    h1, g1 = model.streams(model.embed(changed), order)
    np.testing.assert_array_equal(g1.numpy()[:, 2], g0.numpy()[:, 2])  # g_2 did not change
    assert (np.abs(h1.numpy()[:, 2] - h0.numpy()[:, 2]).max(axis=1) > 0).all()  # h_2 did


def test_xlnet_gradcheck_float64():
    model = tiny_xlnet()
    rng = np.random.default_rng(1)
    tokens, order = sequence_batch("sorted", 2, 5, 5, rng), sample_orders(2, 5, rng)
    targets = prediction_targets(order, K=2)
    tz.gradcheck(lambda *_: xlnet_loss(model(tokens, order), tokens, targets), list(model.parameters()))


def test_sequence_batch_tasks():
    rng = np.random.default_rng(0)
    for length in (7, 8):
        palindromes = sequence_batch("palindrome", 50, length, 10, rng)
        np.testing.assert_array_equal(palindromes, palindromes[:, ::-1])
    order = np.array([[2, 0, 3, 1], [1, 2, 0, 3]])  # position 2 first, then 0, 3, 1 / 1, 2, 0, 3
    best = palindrome_best_guess(order, vocab=10)  # known when the mirror (3 - i) came earlier
    np.testing.assert_allclose(best, [[0.1, 1.0, 0.1, 1.0], [0.1, 0.1, 1.0, 1.0]])
    progressions = sequence_batch("progression", 50, 8, 11, rng)
    steps = (progressions[:, 1:] - progressions[:, :-1]) % 11
    assert (steps == steps[:, :1]).all()  # a constant step modulo 11
    assert (np.diff(sequence_batch("sorted", 50, 8, 10, rng), axis=1) >= 0).all()


def test_xlnet_short_training_lowers_the_loss():
    tz.manual_seed(0)
    model = XLNet(11, d_model=16, num_heads=2, num_layers=1, d_ff=32)
    optimizer = tz.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    tokens = sequence_batch("sorted", 32, 8, 11, rng)
    order = sample_orders(32, 8, rng)
    targets = prediction_targets(order, K=2)
    losses = training_losses(lambda _: xlnet_loss(model(tokens, order), tokens, targets), optimizer, 25)
    assert losses[-1] < 0.7 * losses[0]


# ----- the examples ------------------------------------------------------------------------------
def test_transformer_example_runs_plots_saves_and_resumes(load_example, tmp_path, capsys):
    example = load_example("transformer_reverse")
    args = ["--steps", "6", "--test-size", "8", "--max-len", "5", "--d-model", "16", "--d-ff", "32", "--layers", "1"]
    plot = tmp_path / "run.png"
    assert example.main([*args, "--save", str(tmp_path / "run.npz"), "--plot", str(plot)]) == 0
    assert "exact-sequence accuracy" in capsys.readouterr().out and plot.stat().st_size > 0
    resumed = [*args[:1], "8", *args[2:], "--resume", str(tmp_path / "run.npz"), "--task", "sort"]
    assert example.main(resumed) == 0


def test_transformer_example_t5_post_norm_sort_trace(load_example, capsys):
    args = ["--steps", "3", "--test-size", "4", "--max-len", "4", "--d-model", "16", "--d-ff", "32", "--layers", "1"]
    example = load_example("transformer_reverse")
    assert example.main([*args, "--task", "sort", "--position", "t5", "--post-norm", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "greedy" in out and "backward" in out  # the op profile of the first step


def test_xlnet_example_runs_plots_saves_and_resumes(load_example, tmp_path, capsys):
    example = load_example("xlnet_sequence")
    args = ["--steps", "6", "--test-size", "20", "--length", "6", "--d-model", "16", "--d-ff", "32", "--layers", "1"]
    plot = tmp_path / "run.png"
    assert example.main([*args, "--save", str(tmp_path / "run.npz"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "unigram baseline" in out and plot.stat().st_size > 0
    assert example.main([*args[:1], "8", *args[2:], "--resume", str(tmp_path / "run.npz"), "--task", "sorted"]) == 0

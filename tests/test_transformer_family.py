"""The Transformer family built on tinyzoo.nn.TransformerBlock: GPT, BERT and ViT, and their examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.data import MNIST, Shakespeare
from tinyzoo.errors import ShapeError
from tinyzoo.models.bert import BERT, IGNORE_INDEX, mask_tokens, mlm_correct, mlm_loss
from tinyzoo.models.char_rnn import random_windows
from tinyzoo.models.gpt import GPT, generate, lm_loss, sample_next
from tinyzoo.models.vit import ViT, patchify, unpatchify
from tinyzoo.nn import functional as F
from tinyzoo.nn.conv import Conv2d
from tinyzoo.testing import training_losses
from tinyzoo.train.tasks import image_classifiers


def tiny_gpt(vocab: int = 5, d: int = 4, layers: int = 2, max_len: int = 6) -> GPT:
    tz.manual_seed(0)
    return GPT(vocab, d_model=d, num_layers=layers, num_heads=2, max_len=max_len, d_ff=6)


def tiny_bert(norm_first: bool = False, segments: int = 0, vocab: int = 6) -> BERT:
    tz.manual_seed(0)
    return BERT(vocab, d_model=4, num_layers=1, num_heads=2, max_len=6, d_ff=4, dropout=0.0,
                norm_first=norm_first, num_segments=segments)  # fmt: skip


def tiny_vit(head_hidden: int | None = 3) -> ViT:
    tz.manual_seed(0)
    return ViT(image_size=4, patch_size=2, channels=2, num_classes=3, d_model=4, num_layers=1, num_heads=2,
               d_ff=6, head_hidden=head_hidden)  # fmt: skip


def ids(batch: int, length: int, vocab: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(batch, length))


def train(model, loss_fn, steps: int = 40, lr: float = 1e-2) -> tuple[float, float]:
    """(first loss, mean of the last five) over `steps` Adam steps of loss_fn(step)."""
    losses = training_losses(loss_fn, optimizer=optim.Adam(model.parameters(), lr=lr), steps=steps)
    return losses[0], float(np.mean(losses[-5:]))


# ================================================================================================== GPT
def test_gpt_gradcheck_whole_model():
    model = tiny_gpt().double()
    x = tz.tensor(ids(2, 4))
    tz.gradcheck(lambda *_: model(x), list(model.parameters()))


def test_gpt_shapes_and_length_limit():
    model = tiny_gpt(vocab=7, max_len=6)
    assert model(tz.tensor(ids(3, 6, vocab=7))).shape == (3, 6, 7)
    with pytest.raises(ShapeError, match="max_len"):
        model(tz.tensor(ids(1, 7, vocab=7)))


@settings(max_examples=10, deadline=None)
@given(t=st.integers(0, 4), seed=st.integers(0, 100))
def test_gpt_is_causal(t, seed):
    """∂logits_t / ∂h⁰_s is exactly zero for every s > t, and not zero for s ≤ t."""
    model = tiny_gpt().double()
    with tz.no_grad():
        h0 = model.embed(tz.tensor(ids(2, 5, seed=seed)))
    h0 = tz.tensor(h0.numpy(), requires_grad=True)  # [2, 5, d]
    weights = tz.tensor(np.random.default_rng(seed).standard_normal((2, 5)))
    (grad,) = tz.grad((model.decode(h0)[:, t] * weights).sum(), h0)
    per_position = np.abs(grad.numpy()).sum(axis=(0, 2))  # [5]
    assert np.all(per_position[t + 1 :] == 0.0)
    assert np.all(per_position[: t + 1] > 0.0)


def test_gpt_weight_tying():
    model = tiny_gpt(vocab=5, d=4, layers=2, max_len=6)
    embedding = model.embed.token.weight
    # the only [V, d] matrix is the token embedding, and it is counted once
    assert [name for name, p in model.named_parameters() if p.shape == (5, 4)] == ["embed.token.weight"]
    block = sum(p.size for p in model.blocks[0].parameters())
    assert model.num_parameters() == 5 * 4 + 6 * 4 + 2 * block + 2 * 4  # E, P, blocks, final LayerNorm
    # the readout is h Eᵀ with E itself: a token absent from the input still gets a gradient (through the readout)
    x = tz.tensor(np.array([[0, 1, 2, 0]]))
    lm_loss(model, x, tz.tensor(np.array([[1, 2, 0, 1]]))).backward()
    assert np.abs(embedding.grad.numpy()[3:]).sum() > 0  # tokens 3 and 4 appear nowhere
    with tz.no_grad():
        h = tz.randn(2, 4)
        np.testing.assert_allclose(model.embed.readout(h).numpy(), h.numpy() @ embedding.numpy().T, rtol=1e-6)


def test_sample_next_temperature_and_top_k():
    rng = np.random.default_rng(0)
    logits = np.array([0.0, 1.0, 3.0, 2.0])
    assert {sample_next(logits, 1.0, top_k=1, rng=rng) for _ in range(20)} == {2}
    assert {sample_next(logits, 5.0, top_k=2, rng=rng) for _ in range(200)} == {2, 3}
    cold = [sample_next(logits, 0.05, rng=rng) for _ in range(50)]
    assert set(cold) == {2}
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, 0.0)


def test_generate_length_range_and_long_prompts():
    model = tiny_gpt(vocab=5, max_len=4)
    out = generate(model, [0, 1, 2, 3, 4, 0, 1], length=6, temperature=0.8, top_k=3, rng=np.random.default_rng(0))
    assert len(out) == 6 and all(0 <= i < 5 for i in out)
    # top_k=1 is greedy decoding: the argmax of the last position, fed back
    greedy = generate(model, [1, 2], length=1, top_k=1)
    with tz.no_grad():
        assert greedy == [int(model(tz.tensor(np.array([[1, 2]])))[0, -1].numpy().argmax())]


def test_gpt_short_training_lowers_the_loss():
    text = np.tile(np.array([0, 1, 2, 3, 2, 1]), 50)  # periodic: the next character is learnable
    tz.manual_seed(0)
    model = GPT(4, d_model=16, num_layers=1, num_heads=2, max_len=12, d_ff=32)
    rng = np.random.default_rng(0)

    def loss(_step: int) -> tz.Tensor:
        x, y = random_windows(text, 8, 12, rng)
        return lm_loss(model, tz.tensor(x), tz.tensor(y))

    first, last = train(model, loss)
    assert last < 0.3 * first, (first, last)


# ================================================================================================= BERT
@pytest.mark.parametrize(("norm_first", "segments"), [(False, 0), (True, 2)], ids=["post-norm", "pre-norm-segments"])
def test_bert_gradcheck_whole_model(norm_first, segments):
    model = tiny_bert(norm_first, segments).double()
    x = tz.tensor(ids(2, 4, vocab=6))
    seg = np.array([[0, 0, 1, 1], [0, 1, 1, 1]]) if segments else None
    tz.gradcheck(lambda *_: model(x, seg), list(model.parameters()))


def test_bert_is_bidirectional_and_respects_padding():
    model = tiny_bert(norm_first=True)
    model.eval()
    a = ids(1, 5, vocab=6)
    b = a.copy()
    b[0, 4] = (a[0, 4] + 1) % 6
    with tz.no_grad():
        # changing the last token changes the first position's logits (GPT's would not change)
        assert not np.allclose(model(tz.tensor(a))[0, 0].numpy(), model(tz.tensor(b))[0, 0].numpy())
        # ... unless the last token is padding, masked out of every key
        pad = np.array([[False, False, False, False, True]])
        np.testing.assert_allclose(model(tz.tensor(a), key_padding_mask=pad)[0, :4].numpy(),
                                   model(tz.tensor(b), key_padding_mask=pad)[0, :4].numpy(), atol=1e-6)  # fmt: skip


def test_masking_follows_the_80_10_10_rule():
    """Counts per row are exact; the three treatments of the selected positions have the right proportions."""
    vocab, rows, length = 20, 2000, 100
    original = ids(rows, length, vocab=vocab, seed=3)
    batch = mask_tokens(original, vocab, mask_id=vocab, rng=np.random.default_rng(0))
    selected = batch.targets != IGNORE_INDEX
    assert np.all(selected.sum(axis=1) == 15)  # round(0.15 · 100) per row
    np.testing.assert_array_equal(batch.targets[selected], original[selected])
    np.testing.assert_array_equal(batch.inputs[~selected], original[~selected])  # nothing else is touched
    n = int(selected.sum())  # 30 000
    masked = (batch.inputs == vocab)[selected]
    kept = (batch.inputs == original)[selected]
    randomised = ~masked & ~kept
    # a random replacement draws the original token 1/V of the time, which then looks "kept"
    expected = {"masked": 0.8, "random": 0.1 * (1 - 1 / vocab), "kept": 0.1 + 0.1 / vocab}
    for name, observed in (("masked", masked), ("random", randomised), ("kept", kept)):
        p = expected[name]
        z = (observed.mean() - p) / np.sqrt(p * (1 - p) / n)
        assert abs(z) < 5, (name, observed.mean(), p)
    # random replacements are real tokens (never [MASK]), spread over the whole vocabulary
    replacements = batch.inputs[selected][randomised]
    assert replacements.max() < vocab and len(np.unique(replacements)) == vocab


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 6), length=st.integers(1, 40), seed=st.integers(0, 1000))
def test_masking_selects_at_least_one_position_per_row(rows, length, seed):
    original = ids(rows, length, vocab=7, seed=seed)
    batch = mask_tokens(original, 7, mask_id=7, rng=np.random.default_rng(seed))
    counts = (batch.targets != IGNORE_INDEX).sum(axis=1)
    assert np.all(counts == max(1, round(0.15 * length)))
    assert batch.inputs.max() <= 7 and batch.inputs.shape == original.shape


def test_mlm_loss_counts_the_selected_positions_only():
    model = tiny_bert(vocab=6)
    model.eval()
    batch = mask_tokens(ids(3, 6, vocab=5), 5, mask_id=5, rng=np.random.default_rng(1))
    with tz.no_grad():
        logits = model(tz.tensor(batch.inputs)).numpy().reshape(-1, 6)
        loss = mlm_loss(model, batch).item()
    targets = batch.targets.reshape(-1)
    rows = np.flatnonzero(targets != IGNORE_INDEX)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-log_p[rows, targets[rows]].mean(), rel=1e-5)
    correct, total = mlm_correct(model, batch)
    assert total == len(rows) and correct == int((logits[rows].argmax(axis=1) == targets[rows]).sum())


def test_bert_short_training_lowers_the_loss():
    text = np.tile(np.arange(5), 60)  # 0 1 2 3 4 0 1 ...: a masked character follows from its neighbours
    tz.manual_seed(0)
    model = BERT(6, d_model=32, num_layers=1, num_heads=2, max_len=12, dropout=0.0, norm_first=True)
    rng = np.random.default_rng(0)

    def loss(_step: int) -> tz.Tensor:
        windows, _ = random_windows(text, 64, 12, rng)  # ~115 selected positions per batch
        return mlm_loss(model, mask_tokens(windows, 5, mask_id=5, rng=rng))

    first, last = train(model, loss, steps=50)
    assert last < 0.5 * first, (first, last)


# ================================================================================================== ViT
@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), channels=st.integers(1, 3), patch=st.integers(1, 4), rows=st.integers(1, 3),
       cols=st.integers(1, 3), seed=st.integers(0, 100))  # fmt: skip
def test_patchify_round_trips_and_cuts_blocks(batch, channels, patch, rows, cols, seed):
    height, width = rows * patch, cols * patch
    x = np.random.default_rng(seed).standard_normal((batch, channels, height, width))
    patches = patchify(tz.tensor(x), patch)
    assert patches.shape == (batch, rows * cols, channels * patch * patch)
    for n in range(rows * cols):  # patch n is the block at (n // cols, n % cols), flattened as [C, p, p]
        i, j = divmod(n, cols)
        block = x[:, :, i * patch : (i + 1) * patch, j * patch : (j + 1) * patch]
        np.testing.assert_array_equal(patches.numpy()[:, n], block.reshape(batch, -1))
    np.testing.assert_array_equal(unpatchify(patches, patch, channels, height, width).numpy(), x)


def test_patchify_rejects_indivisible_images():
    with pytest.raises(ShapeError, match="divisible"):
        patchify(tz.zeros(1, 1, 5, 4), 2)


def test_patch_embedding_equals_a_strided_convolution():
    """The linear map of flattened patches is a Conv2d with kernel = stride = p and the same weights."""
    model = tiny_vit()
    images = tz.randn(2, 2, 4, 4)
    conv = Conv2d(2, 4, kernel_size=2, stride=2)
    conv.weight.data[...] = model.patch_embed.weight.data.reshape(4, 2, 2, 2)  # [d, C·p·p] → [d, C, p, p]
    conv.bias.data[...] = model.patch_embed.bias.data
    with tz.no_grad():
        by_conv = conv(images).numpy().reshape(2, 4, -1).transpose(0, 2, 1)  # [B, d, rows, cols] → [B, N, d]
        by_linear = model.patch_embed(patchify(images, 2)).numpy()
    np.testing.assert_allclose(by_linear, by_conv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("head_hidden", [None, 3], ids=["linear-head", "mlp-head"])
def test_vit_gradcheck_whole_model_and_input(head_hidden):
    model = tiny_vit(head_hidden).double()
    images = tz.tensor(np.random.default_rng(0).standard_normal((2, 2, 4, 4)), requires_grad=True)
    tz.gradcheck(lambda x, *_: model(x), [images, *model.parameters()])


def test_vit_shapes():
    model = tiny_vit()
    assert model.num_patches == 4
    assert model.tokens(tz.randn(3, 2, 4, 4)).shape == (3, 5, 4)  # class token + 4 patches
    assert model(tz.randn(3, 2, 4, 4)).shape == (3, 3)
    with pytest.raises(ShapeError, match="expected images"):
        model(tz.randn(3, 1, 4, 4))


def test_vit_short_training_lowers_the_loss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2, 4, 4)).astype(np.float32)
    y = (x[:, 0, :2].mean(axis=(1, 2)) > x[:, 1, 2:].mean(axis=(1, 2))).astype(np.int64)  # compare two regions
    tz.manual_seed(0)
    model = ViT(4, 2, 2, 2, d_model=16, num_layers=1, num_heads=2, d_ff=32)
    first, last = train(model, lambda _: F.cross_entropy(model(tz.tensor(x)), y), steps=60, lr=3e-3)
    assert last < 0.5 * first, (first, last)


# ============================================================================================= examples
TINY_TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me!\n\n" * 30


@pytest.fixture
def tiny_text(monkeypatch):
    """A small fabricated corpus in the loader's format, so the text examples never load the real one."""
    vocab = "".join(sorted(set(TINY_TEXT)))
    text_ids = np.array([vocab.index(c) for c in TINY_TEXT], dtype=np.int64)
    corpus = Shakespeare(TINY_TEXT, text_ids[:1800], text_ids[1800:], vocab, "tiny test corpus")
    monkeypatch.setattr("tinyzoo.data.load_tiny_shakespeare", lambda *a, **k: corpus)


def fake_mnist(*_args, **_kwargs) -> MNIST:
    """Small random MNIST-shaped images (the label is which half of the image is brighter)."""
    rng = np.random.default_rng(0)
    x = rng.random((150, 784), dtype=np.float32)
    y = x.reshape(-1, 28, 28)[:, :14].mean(axis=(1, 2)) > x.reshape(-1, 28, 28)[:, 14:].mean(axis=(1, 2))
    return MNIST(x[:100], y[:100].astype(np.int64), x[100:], y[100:].astype(np.int64), "random test images")


GPT_ARGS = ["--d-model", "8", "--layers", "1", "--heads", "2", "--seq-len", "12", "--batch-size", "4",
            "--eval-every", "2", "--eval-windows", "4", "--sample-length", "20", "--warmup", "1"]  # fmt: skip
BERT_ARGS = ["--d-model", "8", "--layers", "1", "--heads", "2", "--seq-len", "12", "--batch-size", "4",
             "--eval-every", "2", "--eval-windows", "8", "--show", "1", "--warmup", "1"]  # fmt: skip
VIT_ARGS = ["--d-model", "8", "--layers", "1", "--heads", "2", "--d-ff", "16", "--head-hidden", "8",
            "--batch-size", "50"]  # fmt: skip


def test_gpt_example_compares_saves_resumes_and_plots(load_example, tiny_text, capsys, tmp_path):
    example = load_example("gpt_shakespeare")
    checkpoint, figure = tmp_path / "gpt.npz", tmp_path / "gpt.png"
    assert example.main([*GPT_ARGS, "--steps", "4", "--save", str(checkpoint), "--plot", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "gpt   val bpc" in out and "lstm  val bpc" in out and " wins: " in out
    assert "--- sample from gpt (temperature 0.8, top-k 10) ---\nROMEO:" in out
    assert checkpoint.exists() and figure.exists()


def test_gpt_example_resume_continues_both_models(load_example, tiny_text, capsys, tmp_path):
    example = load_example("gpt_shakespeare")
    checkpoint = tmp_path / "gpt.npz"
    assert example.main([*GPT_ARGS, "--steps", "3", "--save", str(checkpoint)]) == 0
    assert example.main([*GPT_ARGS, "--steps", "5", "--resume", str(checkpoint)]) == 0
    assert example.main([*GPT_ARGS, "--steps", "2", "--no-compare-lstm"]) == 0
    out = capsys.readouterr().out
    assert out.count("after 5 steps") == 1 and " wins: " in out


def test_bert_example_reports_accuracy_and_baseline(load_example, tiny_text, capsys, tmp_path):
    example = load_example("bert_shakespeare")
    checkpoint, figure = tmp_path / "bert.npz", tmp_path / "bert.png"
    assert example.main([*BERT_ARGS, "--steps", "4", "--norm", "post", "--save", str(checkpoint),
                         "--plot", str(figure)]) == 0  # fmt: skip
    assert example.main([*BERT_ARGS, "--steps", "6", "--norm", "post", "--resume", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "held-out MLM accuracy" in out and "unigram-frequency baseline (always ' ')" in out
    assert "  input:" in out and "█" in out and figure.exists()


def test_vit_example_trains_plots_and_resumes(load_example, capsys, tmp_path, monkeypatch):
    example = load_example("vit_mnist")
    monkeypatch.setattr(image_classifiers, "load_mnist", fake_mnist)
    checkpoint, figure = tmp_path / "vit.npz", tmp_path / "vit.png"
    assert example.main([*VIT_ARGS, "--epochs", "1", "--save", str(checkpoint), "--plot", str(figure)]) == 0
    assert example.main([*VIT_ARGS, "--epochs", "2", "--resume", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "16 patches of 7×7" in out and "epoch 2: test accuracy" in out
    assert {p.name for p in tmp_path.glob("*.png")} == {"vit.png", "vit_positions.png"}


def test_demos_build_the_example_models():
    from tinyzoo.models import bert, gpt, vit

    with tz.no_grad():
        for module, shape in ((gpt, (4, 64, 64)), (bert, (4, 64, 65)), (vit, (4, 10))):
            model, sample = module.demo()
            assert model(sample).shape == shape

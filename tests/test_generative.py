"""Generative models: autoencoders, the DCGAN and RBMs/DBNs (tinyzoo/models/{autoencoder,gan,rbm}.py) and their
examples. The RBM's formulas are checked against brute-force enumeration of every state of a 3×2 RBM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.data import MNIST, load_digits
from tinyzoo.models.autoencoder import ConvAutoencoder, DenseAutoencoder, build_autoencoder, reconstruction_loss
from tinyzoo.models.gan import GAN, Discriminator, Generator, classifier_score, discriminator_loss, generator_loss
from tinyzoo.models.rbm import DBN, RBM, bernoulli, cd_optimizer, cd_step, contrastive_divergence
from tinyzoo.testing import training_losses


# ---------------------------------------------------------------------------------------------------- data
def digits_as_mnist(n_train: int = 128, n_test: int = 32) -> MNIST:
    """MNIST-shaped data made from the shipped 8x8 digits: each scaled 3x to 24x24 and padded to 28x28."""
    digits = load_digits()
    images = np.kron(digits.x.reshape(-1, 8, 8), np.ones((3, 3), dtype=np.float32))  # [n, 24, 24]
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))).reshape(-1, 784).astype(np.float32) * 0.999
    x_train, x_test = images[:n_train], images[n_train : n_train + n_test]
    y_train, y_test = digits.y[:n_train], digits.y[n_train : n_train + n_test]
    return MNIST(x_train, y_train, x_test, y_test, "8x8 digits blown up to 28x28 (test data)")


@pytest.fixture
def small_mnist() -> MNIST:
    return digits_as_mnist()


# -------------------------------------------------------------------------------------------- autoencoders
@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_autoencoder_shapes(arch):
    tz.manual_seed(0)
    model = build_autoencoder(arch, code_size=10)
    x = tz.rand(5, 784)
    assert model.encode(x).shape == (5, 10)
    assert model(x).shape == (5, 784)


def test_unknown_autoencoder_and_loss_raise():
    with pytest.raises(ValueError, match="architecture"):
        build_autoencoder("lstm")
    with pytest.raises(ValueError, match="loss"):
        reconstruction_loss(tz.zeros(2, 3), tz.zeros(2, 3), "l1")


@pytest.mark.parametrize("model_fn", [lambda: DenseAutoencoder(hidden=2, code_size=2),
                                      lambda: ConvAutoencoder(channels=1, code_size=2)])  # fmt: skip
def test_autoencoder_gradcheck(model_fn):
    tz.manual_seed(0)
    model = model_fn().double()
    x = tz.rand(2, 784, dtype="float64")
    tz.gradcheck(lambda *_: reconstruction_loss(model(x), x, "bce"), list(model.parameters()))


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_reconstruction_losses_match_their_formulas(kind):
    logits, x = tz.randn(3, 784, dtype="float64"), tz.rand(3, 784, dtype="float64")
    p, t = 1 / (1 + np.exp(-logits.numpy())), x.numpy()
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean() if kind == "bce" else ((p - t) ** 2).mean()
    assert reconstruction_loss(logits, x, kind).item() == pytest.approx(expected, rel=1e-9)


def test_dense_autoencoder_training_lowers_the_loss(small_mnist):
    tz.manual_seed(0)
    model = DenseAutoencoder(hidden=16, code_size=8)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    x = tz.tensor(small_mnist.x_train)
    losses = training_losses(lambda _: reconstruction_loss(model(x), x), optimizer, 40)
    assert losses[-1] < 0.6 * losses[0]


# ---------------------------------------------------------------------------------------------------- GAN
def test_gan_shapes_and_ranges():
    tz.manual_seed(0)
    gan = GAN(z_dim=8, channels=4)
    images = gan.generator(gan.noise(5))
    assert images.shape == (5, 1, 28, 28)
    assert np.abs(images.numpy()).max() <= 1.0
    assert gan.discriminator(images).shape == (5,)
    assert gan.sample(gan.noise(3)).shape == (3, 1, 28, 28)
    assert gan.generator.training  # sample() puts the generator back in training mode


def test_generator_and_discriminator_gradcheck():
    tz.manual_seed(0)
    generator, discriminator = Generator(z_dim=3, channels=1).double(), Discriminator(channels=1).double()
    z = tz.randn(3, 3, dtype="float64", requires_grad=True)
    tz.gradcheck(lambda z, *_: generator(z), [z, *generator.parameters()])
    x = tz.tanh(tz.randn(3, 1, 28, 28, dtype="float64"))
    tz.gradcheck(lambda *_: discriminator(x), list(discriminator.parameters()))


def test_gan_losses_match_their_formulas():
    real, fake = np.array([2.0, -0.5, 0.3]), np.array([-1.0, 0.7, -3.0])
    d = 1 / (1 + np.exp(-np.concatenate([real, fake])))
    d_real, d_fake = d[:3], d[3:]
    expected_d = -np.log(d_real).mean() - np.log(1 - d_fake).mean()
    assert discriminator_loss(tz.tensor(real), tz.tensor(fake)).item() == pytest.approx(expected_d)
    assert generator_loss(tz.tensor(fake)).item() == pytest.approx(-np.log(d_fake).mean())


def test_non_saturating_loss_keeps_gradients_where_d_rejects_samples():
    """Where D(G(z)) ≈ 0, -log D has slope ≈ -1 in the logit; the minimax log(1 - D) has slope ≈ 0."""
    logits = tz.tensor(np.array([-12.0]), requires_grad=True)
    (non_saturating,) = tz.grad(generator_loss(logits), [logits])
    (minimax,) = tz.grad(-nn.functional.softplus(logits).sum(), [logits])  # log(1 - σ(l)) = -softplus(l)
    assert non_saturating.item() == pytest.approx(-1.0, abs=1e-4)
    assert abs(minimax.item()) < 1e-4


def test_gan_training_steps_keep_losses_finite(small_mnist):
    tz.manual_seed(0)
    gan = GAN(z_dim=8, channels=4)
    g_opt = optim.Adam(gan.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = optim.Adam(gan.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = tz.tensor(small_mnist.x_train[:16] * 2 - 1).reshape(-1, 1, 28, 28)
    for _ in range(3):
        fake = gan.generator(gan.noise(16))
        loss_d = discriminator_loss(gan.discriminator(real), gan.discriminator(fake.detach()))
        d_opt.zero_grad()
        loss_d.backward()
        d_opt.step()
        loss_g = generator_loss(gan.discriminator(fake))
        g_opt.zero_grad()
        loss_g.backward()
        g_opt.step()
        assert np.isfinite(loss_d.item()) and np.isfinite(loss_g.item())


def test_classifier_score_extremes():
    one_hot = np.eye(10)[np.arange(100) % 10]
    perfect = classifier_score(tz.tensor(one_hot))
    assert perfect["score"] == pytest.approx(10.0, rel=1e-6)
    assert perfect["class_entropy"] == pytest.approx(np.log(10))
    assert perfect["confidence"] == pytest.approx(1.0)
    collapsed = classifier_score(tz.tensor(np.eye(10)[np.zeros(100, dtype=int)]))
    assert collapsed["score"] == pytest.approx(1.0) and collapsed["class_entropy"] == pytest.approx(0.0, abs=1e-9)
    unsure = classifier_score(tz.tensor(np.full((7, 10), 0.1)))
    assert unsure["score"] == pytest.approx(1.0) and unsure["sample_entropy"] == pytest.approx(np.log(10))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 20))
def test_classifier_score_lies_between_one_and_the_class_count(seed, n):
    logits = np.random.default_rng(seed).normal(0, 3, (n, 10))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    s = classifier_score(tz.tensor(probs))
    assert 1 - 1e-9 <= s["score"] <= 10 + 1e-9
    assert 0 <= s["class_entropy"] <= np.log(10) + 1e-9


# ---------------------------------------------------------------------------------------------------- RBM
def all_states(n: int) -> np.ndarray:
    """Every binary vector of length n, [2^n, n]."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def tiny_rbm(seed: int = 0, scale: float = 1.0) -> RBM:
    """A 3-visible, 2-hidden RBM in float64 with N(0, scale²) weights and biases."""
    tz.manual_seed(seed)
    rbm = RBM(3, 2).double()
    values = np.random.default_rng(seed).normal(0, scale, 3 * 2 + 3 + 2)
    rbm.W.data, rbm.b.data, rbm.c.data = values[:6].reshape(3, 2), values[6:9], values[9:]
    return rbm


def joint_table(rbm: RBM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V [8, 3], H [4, 2], exp(-E(v, h)) [8, 4]) computed directly with NumPy."""
    V, H = all_states(3), all_states(2)
    W, b, c = rbm.W.numpy(), rbm.b.numpy(), rbm.c.numpy()
    energy = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W @ H.T  # E(v, h) = -bᵀv - cᵀh - vᵀWh
    return V, H, np.exp(-energy)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_energy_and_free_energy_match_enumeration(seed):
    rbm = tiny_rbm(seed)
    V, H, unnormalised = joint_table(rbm)
    pairs_v, pairs_h = np.repeat(V, len(H), axis=0), np.tile(H, (len(V), 1))
    energy = rbm.energy(tz.tensor(pairs_v), tz.tensor(pairs_h)).numpy().reshape(len(V), len(H))
    np.testing.assert_allclose(np.exp(-energy), unnormalised, rtol=1e-12)
    # exp(-F(v)) = Σ_h exp(-E(v, h)), so p(v) ∝ exp(-F(v)) is the marginal of the joint
    free_energy = rbm.free_energy(tz.tensor(V)).numpy()
    np.testing.assert_allclose(np.exp(-free_energy), unnormalised.sum(axis=1), rtol=1e-12)
    p_v = np.exp(-free_energy) / np.exp(-free_energy).sum()
    np.testing.assert_allclose(p_v, unnormalised.sum(axis=1) / unnormalised.sum(), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conditionals_match_enumeration(seed):
    rbm = tiny_rbm(seed)
    V, H, unnormalised = joint_table(rbm)
    p_h_given_v = unnormalised / unnormalised.sum(axis=1, keepdims=True)  # [8 v, 4 h]
    np.testing.assert_allclose(rbm.hidden_probs(tz.tensor(V)).numpy(), p_h_given_v @ H, rtol=1e-12)
    p_v_given_h = (unnormalised / unnormalised.sum(axis=0, keepdims=True)).T  # [4 h, 8 v]
    np.testing.assert_allclose(rbm.visible_probs(tz.tensor(H)).numpy(), p_v_given_h @ V, rtol=1e-12)


def exact_negative_log_likelihood_gradient(rbm: RBM, data: np.ndarray) -> tuple[np.ndarray, ...]:
    """-∂/∂θ of the mean log p(v) over `data`, by enumeration: -(⟨·⟩_data - ⟨·⟩_model) for W, b, c."""
    V, H, unnormalised = joint_table(rbm)
    p_joint = unnormalised / unnormalised.sum()  # [8, 4]
    model_vh = np.einsum("vh,vi,hj->ij", p_joint, V, H)
    model_v, model_h = p_joint.sum(axis=1) @ V, p_joint.sum(axis=0) @ H
    W, c = rbm.W.numpy(), rbm.c.numpy()
    h_data = 1 / (1 + np.exp(-(data @ W + c)))
    data_vh, data_v, data_h = data.T @ h_data / len(data), data.mean(axis=0), h_data.mean(axis=0)
    return -(data_vh - model_vh), -(data_v - model_v), -(data_h - model_h)


def test_cd_with_many_long_chains_is_the_exact_gradient():
    rbm = tiny_rbm(seed=3, scale=0.8)
    data = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    chains = tz.tensor(np.tile(data, (5000, 1)))  # 20,000 chains, each started at a data vector
    tz.manual_seed(0)
    end = contrastive_divergence(rbm, tz.tensor(data), chains, k=30)
    assert end.shape == chains.shape
    for got, expected in zip((rbm.W.grad, rbm.b.grad, rbm.c.grad), exact_negative_log_likelihood_gradient(rbm, data)):
        assert got.grad_fn is None  # computed without a graph
        np.testing.assert_allclose(got.numpy(), expected, atol=0.015)


def test_cd_1_differs_from_the_exact_gradient():
    """CD-1 is biased: with chains that barely move, the estimate is far from the gradient above."""
    rbm = tiny_rbm(seed=3, scale=0.8)
    data = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    tz.manual_seed(0)
    contrastive_divergence(rbm, tz.tensor(data), tz.tensor(np.tile(data, (5000, 1))), k=1)
    exact_w = exact_negative_log_likelihood_gradient(rbm, data)[0]
    assert np.abs(rbm.W.grad.numpy() - exact_w).max() > 0.04  # (it is about 0.06; CD-30 is within 0.007)


def test_bernoulli_samples_have_the_given_means():
    tz.manual_seed(0)
    p = tz.tensor(np.array([0.0, 0.2, 0.5, 0.9, 1.0]))
    samples = bernoulli(tz.broadcast_to(p, (20000, 5))).numpy()
    assert set(np.unique(samples)) <= {0.0, 1.0}
    np.testing.assert_allclose(samples.mean(axis=0), p.numpy(), atol=0.015)


def test_gibbs_chain_samples_the_model_distribution():
    rbm = tiny_rbm(seed=4, scale=0.8)
    tz.manual_seed(0)
    v = rbm.gibbs(tz.zeros(20000, 3, dtype="float64"), k=30).numpy()
    _, _, unnormalised = joint_table(rbm)
    p_v = unnormalised.sum(axis=1) / unnormalised.sum()
    index = (v @ np.array([4, 2, 1])).astype(int)  # all_states is in binary order
    np.testing.assert_allclose(np.bincount(index, minlength=8) / len(v), p_v, atol=0.015)


@pytest.mark.parametrize("persistent", [False, True])
def test_rbm_training_lowers_reconstruction_error(persistent):
    tz.manual_seed(0)
    x = tz.tensor((load_digits().x[:500] > 0.5).astype(np.float32))
    rbm = RBM(64, 32)
    optimizer = cd_optimizer(rbm, lr=0.1)
    before = rbm.reconstruction_error(x).item()
    chain = bernoulli(x[:50]) if persistent else None
    for _ in range(5):
        for start in range(0, 500, 50):
            end = cd_step(rbm, optimizer, x[start : start + 50], k=1, chain=chain)
            chain = end if persistent else None
    assert rbm.reconstruction_error(x).item() < 0.6 * before
    assert not any(p.grad is not None and p.grad.grad_fn for p in rbm.parameters())


def test_pcd_chains_may_outnumber_the_batch():
    tz.manual_seed(0)
    rbm = RBM(6, 4)
    chain = cd_step(rbm, cd_optimizer(rbm, 0.1), tz.ones(3, 6), k=2, chain=tz.zeros(10, 6))
    assert chain.shape == (10, 6)
    assert rbm.W.grad.shape == (6, 4) and rbm.b.grad.shape == (6,) and rbm.c.grad.shape == (4,)


def test_dbn_feature_shapes():
    tz.manual_seed(0)
    dbn = DBN([64, 32, 16])
    v = tz.rand(5, 64)
    assert dbn(v).shape == (5, 16)
    assert dbn(v, depth=1).shape == (5, 32)
    assert dbn(v, depth=0).shape == (5, 64)
    with pytest.raises(ValueError):
        DBN([10])


# ----------------------------------------------------------------------------------------------- examples
@pytest.fixture
def example_with(load_example, monkeypatch, small_mnist):
    """Import an example with its load_mnist replaced by one returning the small test data (no download)."""

    def load(name: str):
        module = load_example(name)
        monkeypatch.setattr(module, "load_mnist", lambda: small_mnist)
        return module

    return load


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_autoencoder_example_runs_and_resumes(arch, example_with, tmp_path, capsys):
    example = example_with("autoencoder_mnist")
    figure, checkpoint = tmp_path / "ae.png", tmp_path / "ae.npz"
    common = ["--arch", arch, "--batch-size", "64", "--code-size", "8"]
    assert example.main([*common, "--epochs", "1", "--plot", str(figure), "--save", str(checkpoint), "--trace"]) == 0
    out = capsys.readouterr().out
    assert "test MSE per pixel" in out and "wall time inside the trace" in out and figure.exists()
    assert example.main([*common, "--epochs", "2", "--resume", str(checkpoint), "--loss", "mse"]) == 0
    assert "2 epochs" in capsys.readouterr().out


def test_gan_example_runs_plots_and_scores(example_with, tmp_path, capsys):
    example = example_with("gan_mnist")
    prefix, checkpoint, cache = tmp_path / "gan.png", tmp_path / "gan.npz", tmp_path / "clf.npz"
    args = ["--batch-size", "16", "--channels", "2", "--z-dim", "4", "--samples", "40", "--classifier-epochs", "1",
            "--classifier", str(cache)]  # fmt: skip
    plots = ["--plot", str(prefix), "--plot-every", "2"]
    assert example.main([*args, *plots, "--steps", "2", "--save", str(checkpoint), "--trace"]) == 0
    out = capsys.readouterr().out
    assert "wall time inside the trace" in out and "losses stayed finite" in out
    assert "generated digits: classifier score" in out and "real test digits" in out
    for name in ("step00002", "progress", "samples", "losses"):
        assert (tmp_path / f"gan_{name}.png").exists()
    assert cache.exists()
    assert example.main([*args, "--steps", "3", "--resume", str(checkpoint)]) == 0
    assert "for 3 steps" in capsys.readouterr().out


def test_rbm_example_runs_and_resumes(example_with, tmp_path, capsys):
    example = example_with("rbm_mnist")
    figure, checkpoint = tmp_path / "rbm.png", tmp_path / "rbm.npz"
    args = ["--sizes", "784", "16", "8", "--epochs", "2", "--classifier-epochs", "1", "--batch-size", "32",
            "--monitor-size", "32"]  # fmt: skip
    assert example.main([*args, "--persistent", "--plot", str(figure), "--save", str(checkpoint), "--trace"]) == 0
    out = capsys.readouterr().out
    assert out.count("wall time inside the trace") == 2  # the first update of each layer
    assert "RBM 1 reconstruction error" in out and "RBM 2 reconstruction error" in out
    assert "test accuracy" in out and "top 8 DBN features" in out
    for name in ("filters", "gibbs", "recon"):
        assert (tmp_path / f"rbm_{name}.png").exists()
    assert example.main([*args, "--resume", str(checkpoint)]) == 0  # both layers done: straight to the classifier
    out = capsys.readouterr().out
    assert "reconstruction error" not in out and "test accuracy" in out

"""CapsNet: gradients end to end through routing, the losses against their formulas, squash at zero,
the shift augmentation, a short training run and the example (on fabricated MNIST-shaped digits)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.data import MNIST, load_digits
from tinyzoo.kernels import squash
from tinyzoo.models.capsnet import (
    CapsNet,
    CapsNetConfig,
    capsnet_loss,
    margin_loss,
    mask_capsules,
    perturbed_reconstructions,
    random_shift,
    reconstruction_loss,
)
from tinyzoo.testing import strategies as tzst
from tinyzoo.testing import training_losses

# A CapsNet small enough for finite differences: 1×12×12 → conv 3×3 (10×10) → 2 maps of 3-D capsules
# on a 3×3 grid (18 primary capsules) → 3 digit capsules of 4 D, 2 routing iterations.
TINY = CapsNetConfig(image_size=12, conv_channels=3, conv_kernel=3, primary_maps=2, primary_dim=3, primary_kernel=3,
                     primary_stride=3, num_classes=3, digit_dim=4, routing_iterations=2, decoder_hidden=(4, 4))
# For the 8×8 digits: conv 3×3 (6×6) → 4 maps of 6-D capsules on a 4×4 grid → 10 capsules of 8 D.
DIGITS = CapsNetConfig(image_size=8, conv_channels=16, conv_kernel=3, primary_maps=4, primary_dim=6, primary_kernel=3,
                       primary_stride=1, digit_dim=8, decoder_hidden=(32, 64))  # fmt: skip


def digits_batch(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` 8×8 digits as images [count, 1, 8, 8] and their labels."""
    digits = load_digits()
    return digits.x[:count].reshape(-1, 1, 8, 8), digits.y[:count]


def test_full_model_gradcheck_float64():
    tz.manual_seed(0)
    model = CapsNet(TINY).double()
    rng = np.random.default_rng(1)
    x = tz.tensor(rng.random((2, 1, 12, 12)))
    labels = np.array([0, 2])

    def loss(*_params):  # gradcheck nudges the parameters in place; the model reads them itself
        out = model(x, labels)  # the routing kernel (Numba) with its hand-written backward
        return capsnet_loss(out, x, labels, reconstruction_weight=0.05)[0]

    tz.gradcheck(loss, list(model.parameters()), atol=1e-6, rtol=1e-4)


def test_shapes_and_paper_sizes():
    tz.manual_seed(0)
    model = CapsNet(TINY)
    out = model(tz.randn(5, 1, 12, 12))
    assert out.digit_caps.shape == (5, 3, 4) and out.lengths.shape == (5, 3) and out.reconstruction.shape == (5, 144)
    assert ((out.lengths.numpy() >= 0) & (out.lengths.numpy() < 1)).all()  # squashed lengths
    assert ((out.reconstruction.numpy() > 0) & (out.reconstruction.numpy() < 1)).all()  # sigmoid

    paper = CapsNetConfig.paper()
    assert paper.primary_grid == 6 and paper.num_primary == 1152
    model = CapsNet(paper)
    assert model.digits.weight.shape == (1152, 10, 16, 8)
    assert model.num_parameters() == 8_215_568  # the paper's "8.2M parameters"


def test_predictions_are_w_ij_times_u_i():
    tz.manual_seed(0)
    model = CapsNet(TINY).double()
    u = np.random.default_rng(0).standard_normal((2, TINY.num_primary, TINY.primary_dim))
    u_hat = model.digits.predictions(tz.tensor(u)).numpy()  # [B, in, out, dim]
    w = model.digits.weight.numpy()
    direct = np.array([[[w[i, j] @ u[b, i] for j in range(3)] for i in range(TINY.num_primary)] for b in range(2)])
    np.testing.assert_allclose(u_hat, direct, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_margin_loss_matches_the_papers_formula(data):
    batch, classes = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 10))
    lengths = data.draw(tzst.arrays((batch, classes), low=0.0, high=1.0))
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)))
    t = np.eye(classes)[labels]
    direct = (t * np.maximum(0, 0.9 - lengths) ** 2 + 0.5 * (1 - t) * np.maximum(0, lengths - 0.1) ** 2).sum(1).mean()
    np.testing.assert_allclose(margin_loss(tz.tensor(lengths), labels).item(), direct, rtol=1e-12, atol=1e-15)


def test_reconstruction_loss_is_a_sum_of_squares_over_pixels():
    rng = np.random.default_rng(0)
    recon, images = rng.random((3, 16)), rng.random((3, 1, 4, 4))
    direct = ((recon - images.reshape(3, 16)) ** 2).sum(axis=1).mean()
    np.testing.assert_allclose(reconstruction_loss(tz.tensor(recon), tz.tensor(images)).item(), direct, rtol=1e-12)


def test_squash_is_stable_at_zero():
    s = tz.tensor(np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]]), requires_grad=True)
    v = squash(s)
    (v * tz.tensor(np.array([[1.0, -2.0, 0.5], [1.0, 1.0, 1.0]]))).sum().backward()
    assert np.isfinite(v.numpy()).all() and np.isfinite(s.grad.numpy()).all()
    np.testing.assert_array_equal(v.numpy()[0], 0.0)
    np.testing.assert_array_equal(s.grad.numpy()[0], 0.0)  # |s| s has zero slope at s = 0
    np.testing.assert_allclose(np.linalg.norm(v.numpy()[1]), 25 / 26)  # |v| = |s|²/(1 + |s|²)


def test_masking_keeps_one_capsule_and_test_time_uses_the_longest():
    tz.manual_seed(0)
    model = CapsNet(TINY)
    v = tz.randn(4, 3, 4)
    labels = np.array([2, 0, 1, 2])
    masked = mask_capsules(v, labels).numpy()
    keep = np.eye(3, dtype=bool)[labels]
    np.testing.assert_array_equal(masked[keep], v.numpy()[keep])
    np.testing.assert_array_equal(masked[~keep], 0.0)

    x = tz.randn(4, 1, 12, 12)
    with tz.no_grad():
        free = model(x)
        longest = free.lengths.numpy().argmax(axis=1)
        np.testing.assert_array_equal(free.reconstruction.numpy(), model(x, longest).reconstruction.numpy())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), max_shift=st.integers(1, 3))
def test_random_shift_keeps_shapes_and_moves_the_content(seed, max_shift):
    rng = np.random.default_rng(seed)
    images = np.zeros((16, 2, 12, 12), dtype=np.float32)
    images[:, :, 3:9, 3:9] = rng.random((16, 2, 6, 6))  # a blank border of 3 ≥ max_shift: nothing falls off
    shifted = random_shift(images, max_shift, rng)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    np.testing.assert_allclose(shifted.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=1e-5)
    moves = []
    for image, out in zip(images, shifted):  # each output is its input moved by one (dy, dx) for all channels
        found = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)
                 if np.array_equal(np.roll(image, (dy, dx), axis=(1, 2)), out)]  # fmt: skip
        assert len(found) == 1
        moves.append(found[0])
    assert len(set(moves)) > 1  # the shifts differ between images


def test_perturbed_reconstructions_vary_one_dimension_per_row():
    tz.manual_seed(0)
    model = CapsNet(TINY)
    v = tz.randn(3, 4)
    deltas = np.array([-0.25, 0.0, 0.25])
    grid = perturbed_reconstructions(model, v, 1, deltas)
    assert grid.shape == (4, 3, 144)
    with tz.no_grad():
        plain = model.decode(v.unsqueeze(0), np.array([1])).numpy()[0]
    for d in range(4):
        np.testing.assert_allclose(grid[d, 1], plain, rtol=1e-6)  # delta 0 is the plain reconstruction
    assert not np.allclose(grid[0, 0], grid[0, 2])


def test_short_training_on_digits_lowers_the_loss():
    tz.manual_seed(0)
    model = CapsNet(DIGITS)
    optimizer = tz.optim.Adam(model.parameters(), lr=1e-2)
    images, labels = digits_batch(64)

    def loss(_: int) -> tz.Tensor:
        x = tz.tensor(random_shift(images, 1, tz.rng.generator()))
        return capsnet_loss(model(x, labels), x, labels)[0]

    losses = training_losses(loss, optimizer, 30)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def fake_mnist(count: int = 150) -> MNIST:
    """MNIST-shaped data from the shipped 8×8 digits (each pixel a 3×3 block, padded to 28×28): no download."""
    digits = load_digits()
    big = np.kron(digits.x[:count].reshape(-1, 8, 8), np.ones((3, 3), dtype=np.float32))  # [count, 24, 24]
    x = np.pad(big, ((0, 0), (2, 2), (2, 2))).reshape(count, 784)
    y = digits.y[:count]
    half = count * 2 // 3
    return MNIST(x[:half], y[:half], x[half:], y[half:], "8×8 digits blown up to 28×28")


def test_example_runs_plots_saves_and_resumes(load_example, tmp_path, capsys, monkeypatch):
    example = load_example("capsnet_mnist")
    monkeypatch.setattr(example, "load_mnist", fake_mnist)
    figures = {}  # drawing 176 small images takes matplotlib seconds: record what would be drawn instead
    monkeypatch.setattr(tz.plot, "image_grid", lambda images, path, **kw: figures.update({path.name: (images, kw)}))
    monkeypatch.setattr(tz.plot, "panels", lambda series, path: figures.update({path.name: (series, {})}))
    args = ["--batch-size", "50", "--routing", "2"]
    assert example.main([*args, "--epochs", "1", "--save", str(tmp_path / "run.npz"),
                         "--plot", str(tmp_path / "caps.png")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "epoch 1: test accuracy" in out and "errors on 50 test images" in out
    assert figures["caps.png"][0].shape == (16, 28, 28)  # 8 inputs, 8 reconstructions
    dims, kw = figures["caps_dims.png"]
    assert dims.shape == (16 * 11, 28, 28) and kw["columns"] == 11 and kw["labels"][:2] == ["dim 0, Δ -0.25", "Δ -0.20"]
    steps, accuracy = figures["caps_curves.png"][0]["accuracy"]["test (end of each epoch)"]
    assert steps == [2] and 0 <= accuracy[0] <= 1  # one epoch of 100 / 50 = 2 steps
    assert example.main([*args, "--epochs", "2", "--resume", str(tmp_path / "run.npz")]) == 0
    assert "epoch 2: test accuracy" in capsys.readouterr().out

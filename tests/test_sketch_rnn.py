"""Sketch-RNN: the mixture density, the loss terms and their schedule, gradients, sampling and the example."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.data import to_stroke5
from tinyzoo.models.sketch_rnn import (
    Mixture,
    SketchRNN,
    bivariate_log_normal,
    chamfer_distance,
    kl_annealing,
    kl_loss,
    normalised_points,
    offset_loss,
    sketch_loss,
    split_mixture,
    stroke5_to_stroke3,
)


def fake_drawings(count: int, max_len: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random stroke-3 drawings of 2..max_len points, the last point lifting the pen."""
    drawings = []
    for _ in range(count):
        n = int(rng.integers(2, max_len + 1))
        seq = np.column_stack([rng.normal(size=(n, 2)), rng.random(n) < 0.2]).astype(np.float32)
        seq[-1, 2] = 1
        drawings.append(seq)
    return drawings


def stroke5_batch(count: int, max_len: int, seed: int = 0, dtype=np.float32) -> tz.Tensor:
    """A batch of random stroke-5 drawings [count, max_len + 1, 5]."""
    drawings = fake_drawings(count, max_len, np.random.default_rng(seed))
    return tz.tensor(np.stack([to_stroke5(s, max_len) for s in drawings]).astype(dtype))


def numpy_mixture_nll(params: dict[str, np.ndarray], dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """-log Σ_j Π_j N(dx, dy) straight from the bivariate normal's formula."""
    pi = np.exp(params["pi_hat"]) / np.exp(params["pi_hat"]).sum(-1, keepdims=True)
    sx, sy, rho = np.exp(params["log_sx"]), np.exp(params["log_sy"]), np.tanh(params["rho_hat"])
    nx, ny = (dx[..., None] - params["mu_x"]) / sx, (dy[..., None] - params["mu_y"]) / sy
    z = nx**2 + ny**2 - 2 * rho * nx * ny
    density = np.exp(-z / (2 * (1 - rho**2))) / (2 * np.pi * sx * sy * np.sqrt(1 - rho**2))
    return -np.log((pi * density).sum(-1))


def mixture_from(params: dict[str, np.ndarray]) -> Mixture:
    y = np.concatenate([params[k] for k in ("pi_hat", "mu_x", "mu_y", "log_sx", "log_sy", "rho_hat")]
                       + [params["pen"]], axis=-1)  # fmt: skip
    return split_mixture(tz.tensor(y), params["mu_x"].shape[-1])


def random_params(rng: np.random.Generator, shape: tuple[int, ...], m: int) -> dict[str, np.ndarray]:
    params = {k: rng.normal(size=(*shape, m)) for k in ("pi_hat", "mu_x", "mu_y", "rho_hat")}
    params.update({k: rng.uniform(-1.0, 0.5, size=(*shape, m)) for k in ("log_sx", "log_sy")})
    params["pen"] = rng.normal(size=(*shape, 3))
    return params


def test_mixture_nll_matches_the_numpy_formula():
    rng = np.random.default_rng(0)
    params = random_params(rng, (3, 7), m=4)
    target = np.zeros((3, 7, 5))
    target[..., :2] = rng.normal(size=(3, 7, 2))
    target[..., 2] = 1
    target[2, 4:] = [0, 0, 0, 0, 1]  # the third drawing ends after 4 points: its offsets are masked
    got = offset_loss(mixture_from(params), tz.tensor(target)).item()
    nll = numpy_mixture_nll(params, target[..., 0], target[..., 1])
    mask = 1 - target[..., 4]
    np.testing.assert_allclose(got, (nll * mask).sum() / (3 * 7), rtol=1e-10)  # normalised by N_max


@settings(max_examples=25, deadline=None)
@given(mu=st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)), log_s=st.tuples(st.floats(-1.0, 0.0),
       st.floats(-1.0, 0.0)), rho_hat=st.floats(-2.0, 2.0))  # fmt: skip
def test_bivariate_density_integrates_to_one(mu, log_s, rho_hat):
    grid = np.linspace(-8, 8, 801)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    one = np.ones((1, 1, 1))
    mix = Mixture(one * 0, one * mu[0], one * mu[1], one * log_s[0], one * log_s[1], one * rho_hat, None)
    mix = Mixture(*(None if v is None else tz.tensor(v) for v in vars(mix).values()))
    log_n = bivariate_log_normal(tz.tensor(x[..., None]), tz.tensor(y[..., None]), mix).numpy()[..., 0]
    cell = (grid[1] - grid[0]) ** 2
    np.testing.assert_allclose(np.exp(log_n).sum() * cell, 1.0, atol=2e-3)


def test_correlation_is_finite_when_tanh_saturates():
    one = np.ones((1, 1, 1))
    mix = Mixture(*(tz.tensor(v) for v in (one * 0, one * 0, one * 0, one * 0, one * 0, one * 40.0)), None)
    value = bivariate_log_normal(tz.tensor(one * 0.1), tz.tensor(one * 0.1), mix).item()
    assert np.isfinite(value)


def test_kl_annealing_schedule_and_floor():
    assert kl_annealing(0) == pytest.approx(0.01)
    assert kl_annealing(10_000) == pytest.approx(1 - 0.99 * 0.99995**10_000)
    steps = [kl_annealing(s) for s in range(0, 200_000, 5000)]
    assert all(a < b for a, b in itertools.pairwise(steps)) and steps[-1] > 0.99
    assert kl_annealing(100, eta_min=0.2, decay=0.9) == pytest.approx(1 - 0.8 * 0.9**100)

    tz.manual_seed(0)
    model = SketchRNN(3, 4, 2, 2).double()
    x = stroke5_batch(2, 4, dtype=np.float64)
    out = model(x)
    kl = kl_loss(out.mu, out.sigma_hat).item()
    assert 0 <= kl < 0.2  # a fresh model's posterior is near the prior, so the floor is active
    total, recon, _ = sketch_loss(out, x[:, 1:], step=3, w_kl=0.5, kl_min=0.2)
    assert total.item() == pytest.approx(recon.item() + 0.5 * kl_annealing(3) * 0.2)
    kl_grad = tz.grad(total - recon, [out.mu], allow_unused=True)[0]  # below the floor: no KL gradient
    assert kl_grad is None or np.allclose(kl_grad.numpy(), 0)
    total, recon, _ = sketch_loss(out, x[:, 1:], step=3, w_kl=0.5, kl_min=0.0)
    assert total.item() == pytest.approx(recon.item() + 0.5 * kl_annealing(3) * kl)


def test_kl_matches_the_gaussian_formula():
    rng = np.random.default_rng(1)
    mu, sigma_hat = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    var = np.exp(sigma_hat)
    direct = 0.5 * (var + mu**2 - 1 - np.log(var)).sum(axis=1).mean() / 6  # KL(N(μ, σ²) ‖ N(0, 1)) / N_z
    assert kl_loss(tz.tensor(mu), tz.tensor(sigma_hat)).item() == pytest.approx(direct)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), max_len=st.integers(2, 30))
def test_stroke5_round_trip(seed, max_len):
    (seq,) = fake_drawings(1, max_len, np.random.default_rng(seed))
    five = to_stroke5(seq, max_len)
    np.testing.assert_array_equal(five[0], [0, 0, 1, 0, 0])
    assert (five[:, 2:].sum(axis=1) == 1).all()  # one-hot pen states everywhere
    np.testing.assert_array_equal(stroke5_to_stroke3(five[1:]), seq)


def test_full_model_gradcheck_float64():
    tz.manual_seed(0)
    model = SketchRNN(enc_hidden=3, dec_hidden=3, z_dim=2, n_mixtures=2).double()
    x = stroke5_batch(2, 4, seed=1, dtype=np.float64)
    eps = tz.tensor(np.random.default_rng(2).normal(size=(2, 2)))

    def loss(*_params):  # gradcheck nudges the parameters in place; the model reads them itself
        total, _, _ = sketch_loss(model(x, eps), x[:, 1:], step=1000, kl_min=0.0)
        return total

    tz.gradcheck(loss, list(model.parameters()))


def test_shapes_and_sampling_return_valid_stroke5():
    tz.manual_seed(0)
    model = SketchRNN(enc_hidden=8, dec_hidden=8, z_dim=4, n_mixtures=3)
    x = stroke5_batch(5, 12)
    out = model(x)
    assert out.mu.shape == out.sigma_hat.shape == (5, 4)
    assert out.mixture.mu_x.shape == (5, 12, 3) and out.mixture.pen_logits.shape == (5, 12, 3)
    for temperature in (0.1, 1.0):
        drawings = model.sample(tz.randn(6, 4), 15, temperature, np.random.default_rng(0))
        assert len(drawings) == 6
        for seq in drawings:
            assert seq.shape[1] == 5 and 1 <= len(seq) <= 16 and np.isfinite(seq).all()
            np.testing.assert_array_equal(seq[:, 2:].sum(axis=1), 1)  # one-hot pen states
            assert seq[-1, 4] == 1 and (seq[:-1, 4] == 0).all()  # ends with p3, and only there


def test_short_training_lowers_the_loss():
    tz.manual_seed(0)
    model = SketchRNN(enc_hidden=16, dec_hidden=32, z_dim=8, n_mixtures=3)
    optimizer = tz.optim.Adam(model.parameters(), lr=3e-3)
    x = stroke5_batch(16, 20, seed=3)
    losses = []
    for step in range(40):
        total, recon, _ = sketch_loss(model(x), x[:, 1:], step)
        optimizer.zero_grad()
        total.backward()
        tz.optim.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(recon.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_example_smoke_on_fabricated_strokes(load_example, monkeypatch, capsys, tmp_path):
    from tinyzoo.data import KanjiVG

    example = load_example("sketch_rnn")

    def fake_kanjivg(max_len: int = 250, samples_per_curve: int = 8, limit=None) -> KanjiVG:
        drawings = [s * 5 for s in fake_drawings(40, max_len, np.random.default_rng(0))]
        return KanjiVG(drawings, np.arange(40), 5.0, "fabricated strokes")

    monkeypatch.setattr(example, "load_kanjivg", fake_kanjivg)
    figure, checkpoint = tmp_path / "s.png", tmp_path / "c.npz"
    args = ["--steps", "3", "--max-len", "10", "--enc-hidden", "4", "--dec-hidden", "8", "--z-dim", "2",
            "--n-mixtures", "2", "--batch-size", "4", "--valid-size", "8"]  # fmt: skip
    assert example.main([*args, "--plot", str(figure), "--save", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "fabricated strokes" in out and "held-out L_R" in out and "final train L_R" in out
    assert "closer to their own input" in out
    assert figure.stat().st_size > 0
    assert example.main([*args, "--steps", "5", "--resume", str(checkpoint)]) == 0


def test_example_quickdraw_without_path_and_gpu_without_gpu_exit_2(load_example, capsys):
    from tinyzoo.train import run_main

    example = load_example("sketch_rnn")
    assert run_main(example.main, ["--data", "quickdraw"]) == 2
    assert "--data-path" in capsys.readouterr().err
    if tz.gpu_available():
        pytest.skip("a GPU is present, so --device gpu is valid here")
    assert run_main(example.main, ["--device", "gpu"]) == 2
    assert "error:" in capsys.readouterr().err


def test_chamfer_distance_of_normalised_points_ignores_position_and_scale():
    rng = np.random.default_rng(0)
    seq = to_stroke5(fake_drawings(1, 30, rng)[0], 30)[1:]
    moved = seq.copy()
    moved[:, :2] *= 3.0  # the same drawing, three times larger
    moved[0, :2] += 7.0  # and shifted
    a, b = normalised_points(seq), normalised_points(moved)
    assert chamfer_distance(a, a) == 0.0
    np.testing.assert_allclose(chamfer_distance(a, b), 0.0, atol=1e-6)  # float32 offsets
    other = normalised_points(to_stroke5(fake_drawings(1, 30, rng)[0], 30)[1:])
    assert chamfer_distance(a, other) == pytest.approx(chamfer_distance(other, a))
    assert chamfer_distance(a, other) > 0.01
    assert np.ptp(a, axis=0).max() == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.xfail(strict=True, reason="not reproduced on CPU: 49.2 % after these 1,500 steps, 50.8 % after 4,000")
def test_reconstructions_resemble_their_inputs_more_than_other_drawings(load_example, capsys):
    """The paper's claim on a reduced CPU run (1,500 steps, the paper's KL schedule R = 0.99995): decoded
    from their own latent code, held-out drawings land closer to their input than to a random other one."""
    import re

    example = load_example("sketch_rnn")
    assert example.main(["--steps", "1500", "--kl-decay", "0.99995", "--valid-size", "128"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "closer to their own input" in x)
    assert float(re.search(r"drawing: ([\d.]+)%", line).group(1)) >= 65.0  # 50 % is chance

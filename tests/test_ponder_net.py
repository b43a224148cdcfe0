"""PonderNet: the halting distribution, the loss terms, gradients, the parity data and the example."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.errors import TinyzooError
from tinyzoo.models.ponder_net import (
    PonderGRU,
    expected_steps,
    halting_log_probs,
    parity_batch,
    reconstruction_loss,
    regularisation_loss,
    truncated_geometric,
)
from tinyzoo.testing import strategies as tzst


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_halting_distribution_is_a_distribution_matching_the_product_formula(data):
    steps, batch = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 4))
    z = data.draw(tzst.arrays((steps, batch), low=-30.0, high=30.0))
    p = halting_log_probs(tz.tensor(z)).exp().numpy()
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-12)
    lam = 1 / (1 + np.exp(-z))
    direct = lam * np.concatenate([np.ones((1, batch)), np.cumprod(1 - lam, axis=0)[:-1]])
    direct /= direct.sum(axis=0)  # renormalised over the N allowed steps
    np.testing.assert_allclose(p, direct, rtol=1e-6, atol=1e-12)  # 1 - σ(z) in the direct form cancels


def test_halting_by_sampling_draws_steps_from_the_halting_distribution():
    tz.manual_seed(0)
    model = PonderGRU(n_elems=4, n_hidden=6, max_steps=5).double()
    x = tz.tensor(np.repeat(parity_batch(1, 4, np.random.default_rng(0))[0].astype(np.float64), 20_000, axis=0))
    _, steps = model.halt_by_sampling(x, np.random.default_rng(1))
    p = model(x[:1]).p.numpy()[:, 0]
    frequencies = np.bincount(steps - 1, minlength=5) / len(steps)
    np.testing.assert_allclose(frequencies, p, atol=0.015)  # ~4 standard errors at 20,000 draws


def test_kl_is_taken_in_the_papers_direction():
    model = PonderGRU(n_elems=4, n_hidden=5, max_steps=6).double()
    out = model(tz.tensor(np.random.default_rng(0).choice([-1.0, 0.0, 1.0], size=(3, 4))))
    prior = truncated_geometric(0.3, 6)
    p = out.p.numpy()
    kl_p_prior = (p * (np.log(p) - np.log(prior)[:, None])).sum(axis=0).mean()
    kl_prior_p = (prior[:, None] * (np.log(prior)[:, None] - np.log(p))).sum(axis=0).mean()
    got = regularisation_loss(out, tz.tensor(np.log(prior))).item()
    np.testing.assert_allclose(got, kl_p_prior, rtol=1e-10)
    assert abs(got - kl_prior_p) > 1e-3  # the reversed KL is a different number
    np.testing.assert_allclose(truncated_geometric(0.3, 6).sum(), 1.0)
    assert 1 <= expected_steps(out).item() <= 6


def test_full_model_gradcheck_float64():
    tz.manual_seed(0)
    model = PonderGRU(n_elems=4, n_hidden=3, max_steps=4).double()
    x, y = parity_batch(2, 4, np.random.default_rng(1))
    x, y = tz.tensor(x.astype(np.float64)), tz.tensor(y.astype(np.float64))
    log_prior = tz.tensor(np.log(truncated_geometric(0.2, 4)))

    def loss(*_params):  # gradcheck nudges the parameters in place; the model reads them itself
        out = model(x)
        return reconstruction_loss(out, y) + 0.1 * regularisation_loss(out, log_prior)

    tz.gradcheck(loss, list(model.parameters()))


@settings(max_examples=20, deadline=None)
@given(n_elems=st.integers(1, 16), seed=st.integers(0, 1000))
def test_parity_batch_follows_its_definition(n_elems, seed):
    x, y = parity_batch(64, n_elems, np.random.default_rng(seed))
    assert x.dtype == np.float32 and set(np.unique(x)) <= {-1.0, 0.0, 1.0}
    nonzero = x != 0
    k = nonzero.sum(axis=1)
    assert (k >= 1).all() and (nonzero == (np.arange(n_elems) < k[:, None])).all()  # a leading block
    np.testing.assert_array_equal(y, (x == 1).sum(axis=1) % 2)


def test_short_training_lowers_the_loss():
    tz.manual_seed(0)
    model = PonderGRU(n_elems=4, n_hidden=16, max_steps=5)
    optimizer = tz.optim.Adam(model.parameters(), lr=1e-2)
    log_prior = tz.tensor(np.log(truncated_geometric(0.2, 5)).astype(np.float32))
    x, y = parity_batch(64, 4, np.random.default_rng(0))
    losses = []
    for _ in range(40):
        out = model(tz.tensor(x))
        loss = reconstruction_loss(out, tz.tensor(y)) + 0.01 * regularisation_loss(out, log_prior)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_example_runs_saves_and_resumes(load_example, tmp_path, capsys):
    example = load_example("ponder_parity")
    args = ["--steps", "40", "--test-size", "200", "--n-elems", "4", "--max-steps", "5", "--hidden", "8"]
    assert example.main([*args, "--save", str(tmp_path / "run.npz")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert example.main([*args[:1], "60", *args[2:], "--resume", str(tmp_path / "run.npz")]) == 0
    assert " 60/60 " in capsys.readouterr().err  # absolute progress: 40 resumed + 20 run (no over-count at step 50)


def test_example_without_gpu_exits_2(load_example, capsys):
    if tz.gpu_available():
        pytest.skip("a GPU is present")
    example = load_example("ponder_parity")
    assert example.run_main(example.main, ["--device", "gpu", "--steps", "1"]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_parity_batch_draws_the_number_of_non_zero_entries_from_the_given_range():
    x, _ = parity_batch(500, 16, np.random.default_rng(0), nonzero=(9, 16))
    k = (x != 0).sum(axis=1)
    assert k.min() == 9 and k.max() == 16
    x, y = parity_batch(500, 16, np.random.default_rng(0), nonzero=(1, 8), scatter=True)
    assert (x != 0).sum(axis=1).max() == 8 and (x[:, 8:] != 0).any()  # every position sees non-zero inputs
    np.testing.assert_array_equal(y, (x == 1).sum(axis=1) % 2)
    with pytest.raises(TinyzooError, match="nonzero"):
        parity_batch(4, 8, np.random.default_rng(0), nonzero=(0, 4))


def test_extrapolation_example_runs_both_networks(load_example, capsys):
    example = load_example("ponder_parity")
    args = ["--extrapolate", "--n-elems", "6", "--steps", "20", "--test-size", "100", "--max-steps", "4"]
    assert example.main([*args, "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "PonderNet, unseen k = 4..6" in out and "fixed 4 steps, unseen k = 4..6" in out


@pytest.mark.slow
def test_default_run_ponders_longer_on_harder_inputs(load_example):
    """The paper's claim on the default example (3,000 steps, ~35 s on an idle core): ≥ 99 % accuracy, and
    expected steps that rise with the number of non-zero inputs while staying well below the step limit."""
    example = load_example("ponder_parity")
    args = example.parse_args(["--test-size", "4000"])
    model, _ = example.train(args, "cpu")
    result = example.evaluate(model, args, "cpu", np.random.default_rng(args.seed + 1))
    steps = list(result["expected_steps_by_length"].values())
    assert result["accuracy"] >= 0.99
    assert result["steps_trend"] >= 0.8 and steps[-1] > steps[0]
    assert max(steps) < 0.75 * args.max_steps

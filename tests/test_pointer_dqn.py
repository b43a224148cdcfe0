"""Pointer Network and DQN: gradients, pointer masking, CartPole dynamics, the replay buffer, the examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.models import cartpole
from tinyzoo.models.cartpole import CartPole
from tinyzoo.models.dqn import (
    DQNAgent,
    DQNConfig,
    QNetwork,
    ReplayBuffer,
    Transitions,
    blend_parameters,
    greedy_returns,
    linear_epsilon,
    td_loss,
)
from tinyzoo.models.pointer_net import PointerNet, pointer_loss, sequence_accuracy, sort_batch
from tinyzoo.testing import training_losses


# =================================================================================================
# Pointer Network
# =================================================================================================
def test_pointer_net_gradcheck_float64():
    tz.manual_seed(0)
    model = PointerNet(input_size=1, embed_size=3, hidden_size=4).double()
    x, pointers = sort_batch(2, 4, np.random.default_rng(0))
    x = tz.tensor(x.astype(np.float64), requires_grad=True)

    def loss(*_inputs):  # gradcheck nudges the inputs in place; the model reads its parameters itself
        return pointer_loss(model(x, pointers)[0], pointers)

    tz.gradcheck(loss, [x, *model.parameters()])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 7), batch=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_pointer_attention_is_a_distribution_with_masked_positions_exactly_zero(n, batch, seed):
    rng = np.random.default_rng(seed)
    tz.manual_seed(seed)
    model = PointerNet(input_size=1, embed_size=4, hidden_size=5)
    keys = model.w1(tz.tensor(rng.standard_normal((batch, n, 5)).astype(np.float32)))
    query = tz.tensor(rng.standard_normal((batch, 5)).astype(np.float32))
    chosen = rng.random((batch, n)) < 0.5
    chosen[np.arange(batch), rng.integers(0, n, batch)] = False  # at least one position is free
    p = model.attention(keys, query, chosen).softmax(axis=-1).numpy()  # [batch, n]
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-6)
    assert (p[chosen] == 0.0).all()
    assert (p[~chosen] > 0.0).all()


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_greedy_decoding_outputs_a_permutation_and_teacher_forcing_feeds_the_targets(n, seed):
    tz.manual_seed(seed)
    model = PointerNet(input_size=1, embed_size=4, hidden_size=6)
    x, pointers = sort_batch(3, n, np.random.default_rng(seed))
    predicted = model.point(tz.tensor(x))
    assert predicted.shape == (3, n)
    np.testing.assert_array_equal(np.sort(predicted, axis=1), np.tile(np.arange(n), (3, 1)))
    logits, fed = model(tz.tensor(x), pointers)
    assert logits.shape == (3, n, n)
    np.testing.assert_array_equal(fed, pointers)
    p = logits.softmax(axis=-1).numpy()
    for t in range(n):  # step t gives zero probability to the targets of steps before it
        already = pointers[:, :t]
        assert (np.take_along_axis(p[:, t], already, axis=1) == 0).all()


def test_sort_batch_and_sequence_accuracy_follow_their_definitions():
    x, pointers = sort_batch(50, 10, np.random.default_rng(3))
    assert x.shape == (50, 10, 1) and x.dtype == np.float32 and ((0 <= x) & (x < 1)).all()
    assert (np.diff(np.take_along_axis(x[..., 0], pointers, axis=1), axis=1) >= 0).all()
    wrong = pointers.copy()
    wrong[:10, [0, 1]] = wrong[:10, [1, 0]]  # swap two pointers in the first 10 sequences
    assert sequence_accuracy(pointers, pointers) == 1.0
    assert sequence_accuracy(wrong, pointers) == pytest.approx(0.8)


def test_pointer_net_short_training_lowers_the_loss():
    tz.manual_seed(0)
    model = PointerNet(input_size=1, embed_size=16, hidden_size=32)
    optimizer = tz.optim.Adam(model.parameters(), lr=1e-2)
    x, pointers = sort_batch(64, 5, np.random.default_rng(0))
    losses = training_losses(lambda _: pointer_loss(model(tz.tensor(x), pointers)[0], pointers), optimizer, 30)
    assert losses[-1] < 0.5 * losses[0]


def test_pointer_example_runs_saves_and_resumes(load_example, tmp_path, capsys):
    example = load_example("pointer_sort")
    args = ["--steps", "6", "--n", "4", "--embed", "8", "--hidden", "8", "--batch-size", "16", "--eval-every", "3",
            "--val-size", "20", "--test-size", "50"]  # fmt: skip
    assert example.main([*args, "--save", str(tmp_path / "run.npz"), "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "exact-sequence accuracy" in out and (tmp_path / "p.png").exists()
    assert example.main(["--steps", "9", *args[2:], "--resume", str(tmp_path / "run.npz")]) == 0


# =================================================================================================
# CartPole
# =================================================================================================
def test_cartpole_one_step_matches_the_equations_by_hand():
    x, x_dot, theta, theta_dot = 0.01, -0.2, 0.05, 0.3
    env = CartPole(1)
    env.reset(seed=0)
    env.state[0] = (x, x_dot, theta, theta_dot)
    obs, reward, terminated, truncated = env.step(np.array([0]))  # push left: F = -10 N
    g, m_cart, m_pole, l, tau, force = 9.8, 1.0, 0.1, 0.5, 0.02, -10.0
    temp = (force + m_pole * l * theta_dot**2 * math.sin(theta)) / (m_cart + m_pole)
    theta_acc = (g * math.sin(theta) - math.cos(theta) * temp) / (
        l * (4 / 3 - m_pole * math.cos(theta) ** 2 / (m_cart + m_pole))
    )
    x_acc = temp - m_pole * l * theta_acc * math.cos(theta) / (m_cart + m_pole)
    expected = [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc]
    np.testing.assert_allclose(env.state[0], expected, rtol=1e-12)
    np.testing.assert_allclose(obs[0], expected, rtol=1e-6)
    assert obs.dtype == np.float32 and reward[0] == 1.0 and not terminated[0] and not truncated[0]


def test_cartpole_terminates_truncates_and_freezes_finished_episodes():
    env = CartPole(3)
    env.reset(seed=1)
    env.state[1, 2] = 0.25  # beyond 12° = 0.2094 rad: falls on the next step
    env.state[2, 0] = 2.45  # off the track
    env.steps[0] = cartpole.MAX_STEPS - 1  # episode 0 reaches the time limit
    _, reward, terminated, truncated = env.step(np.array([1, 1, 1]))
    np.testing.assert_array_equal(terminated, [False, True, True])
    np.testing.assert_array_equal(truncated, [True, False, False])
    np.testing.assert_array_equal(reward, [1, 1, 1])  # the last step still earns +1
    frozen = env.state.copy()
    _, reward, terminated, truncated = env.step(np.array([0, 0, 0]))
    np.testing.assert_array_equal(env.state, frozen)
    assert reward.sum() == 0 and not terminated.any() and not truncated.any() and env.done.all()


def test_cartpole_seeded_resets_repeat_and_lie_in_the_start_box():
    a, b = CartPole(5).reset(seed=7), CartPole(5).reset(seed=7)
    np.testing.assert_array_equal(a, b)
    assert (np.abs(a) <= 0.05).all()
    assert not np.array_equal(a, CartPole(5).reset(seed=8))


def test_cartpole_matches_gymnasium():
    gym = pytest.importorskip("gymnasium")
    rng = np.random.default_rng(0)
    for seed in range(5):
        reference = gym.make("CartPole-v1")
        expected_obs, _ = reference.reset(seed=seed)
        env = CartPole(1)
        obs = env.reset(seed=seed)
        np.testing.assert_array_equal(obs[0], expected_obs)
        for _ in range(200):
            action = int(rng.integers(2))
            expected_obs, expected_reward, expected_term, expected_trunc, _ = reference.step(action)
            obs, reward, terminated, truncated = env.step(np.array([action]))
            np.testing.assert_array_equal(env.state[0], reference.unwrapped.state)  # same float64 arithmetic
            np.testing.assert_array_equal(obs[0], expected_obs)
            assert (reward[0], terminated[0], truncated[0]) == (expected_reward, expected_term, expected_trunc)
            if terminated[0]:
                break
        assert terminated[0]


# =================================================================================================
# DQN
# =================================================================================================
def _transitions(batch: int, rng: np.random.Generator, dtype=np.float32) -> Transitions:
    return Transitions(
        obs=rng.standard_normal((batch, 4)).astype(dtype),
        action=rng.integers(0, 2, batch),
        reward=rng.uniform(-3, 3, batch).astype(dtype),  # TD errors on both sides of Huber's kink
        next_obs=rng.standard_normal((batch, 4)).astype(dtype),
        terminated=(rng.random(batch) < 0.3).astype(dtype),
    )


def test_q_network_and_huber_td_loss_gradcheck_float64():
    tz.manual_seed(0)
    q_net, target_net = QNetwork(4, 2, hidden=5).double(), QNetwork(4, 2, hidden=5).double()
    batch = _transitions(6, np.random.default_rng(0), np.float64)

    def loss(*_params):
        return td_loss(q_net, target_net, batch, gamma=0.9)

    tz.gradcheck(loss, list(q_net.parameters()))
    assert all(p.grad is None for p in target_net.parameters())  # the target is held constant


def test_td_loss_matches_the_formula_in_numpy():
    tz.manual_seed(1)
    q_net, target_net = QNetwork(4, 2, hidden=8).double(), QNetwork(4, 2, hidden=8).double()
    batch = _transitions(32, np.random.default_rng(1), np.float64)
    q = q_net(tz.tensor(batch.obs)).numpy()[np.arange(32), batch.action]
    y = batch.reward + 0.99 * (1 - batch.terminated) * target_net(tz.tensor(batch.next_obs)).numpy().max(axis=1)
    d = np.abs(q - y)
    assert (d < 1).any() and (d > 1).any()
    expected = np.where(d < 1, 0.5 * d**2, d - 0.5).mean()
    np.testing.assert_allclose(td_loss(q_net, target_net, batch, gamma=0.99).item(), expected, rtol=1e-12)


def test_replay_buffer_is_a_ring_and_samples_what_it_holds():
    buffer = ReplayBuffer(capacity=5, observation_size=4)
    for i in range(3):
        buffer.add(np.full(4, i), i % 2, float(i), np.full(4, i + 0.5), i == 2)
    assert len(buffer) == 3
    batch = buffer.sample(100, np.random.default_rng(0))
    assert set(batch.reward) <= {0.0, 1.0, 2.0}  # never an empty slot
    for i in range(3, 7):
        buffer.add(np.full(4, i), i % 2, float(i), np.full(4, i + 0.5), False)
    assert len(buffer) == 5 and buffer.position == 2
    np.testing.assert_array_equal(buffer.reward, [5, 6, 2, 3, 4])  # 0 and 1 were overwritten, oldest first
    batch = buffer.sample(64, np.random.default_rng(1))
    assert batch.obs.shape == (64, 4) and batch.next_obs.shape == (64, 4) and batch.obs.dtype == np.float32
    assert batch.action.shape == (64,) and batch.action.dtype == np.int64
    assert batch.reward.shape == batch.terminated.shape == (64,)
    np.testing.assert_array_equal(batch.obs[:, 0], batch.reward)  # each row is one whole transition
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.reward + 0.5)
    copy = ReplayBuffer(capacity=5, observation_size=4)
    copy.load_state_dict(buffer.state_dict())
    assert (copy.position, len(copy)) == (2, 5) and np.array_equal(copy.obs, buffer.obs)


def test_epsilon_decays_linearly_then_stays():
    assert linear_epsilon(0, 1.0, 0.05, 100) == 1.0
    assert linear_epsilon(50, 1.0, 0.05, 100) == pytest.approx(0.525)
    assert linear_epsilon(100, 1.0, 0.05, 100) == linear_epsilon(10_000, 1.0, 0.05, 100) == pytest.approx(0.05)


def test_agent_refreshes_the_target_network_every_c_steps():
    tz.manual_seed(0)
    config = DQNConfig(hidden=8, batch_size=4, buffer_size=50, learning_starts=4, target_update=10, tau=1.0)
    agent = DQNAgent(4, 2, config)
    rng = np.random.default_rng(0)
    for step in range(1, 11):
        agent.observe(rng.standard_normal(4), 0, 1.0, rng.standard_normal(4), False, rng)
        same = all(np.array_equal(a, b) for a, b in zip(agent.q_net.state_dict().values(),
                                                        agent.target_net.state_dict().values()))  # fmt: skip
        assert same == (step < 4 or step == 10)  # learning from step 4 moves θ; step 10 copies θ → θ⁻


def test_polyak_blend_moves_the_target_a_fraction_tau_of_the_way():
    tz.manual_seed(0)
    target, source = QNetwork(4, 2, hidden=6), QNetwork(4, 2, hidden=6)
    before = [p.numpy().copy() for p in target.parameters()]
    blend_parameters(target, source, tau=0.25)
    for old, new, src in zip(before, target.parameters(), source.parameters()):
        np.testing.assert_allclose(new.numpy(), 0.25 * src.numpy() + 0.75 * old, rtol=1e-6)
    blend_parameters(target, source, tau=1.0)
    assert all(np.array_equal(t.numpy(), s.numpy()) for t, s in zip(target.parameters(), source.parameters()))


def test_dqn_short_training_lowers_the_td_loss():
    tz.manual_seed(0)
    q_net, target_net = QNetwork(4, 2, hidden=32), QNetwork(4, 2, hidden=32)
    optimizer = tz.optim.Adam(q_net.parameters(), lr=1e-2)
    batch = _transitions(64, np.random.default_rng(0))
    losses = training_losses(lambda _: td_loss(q_net, target_net, batch, gamma=0.99), optimizer, 50)
    assert losses[-1] < 0.3 * losses[0]


def test_greedy_returns_count_the_steps_of_each_episode():
    class AlwaysRight(QNetwork):
        def forward(self, obs):
            return tz.concat([obs[:, :1] * 0, obs[:, :1] * 0 + 1], axis=1)

    returns = greedy_returns(AlwaysRight(4, 2), CartPole(4), seed=0)
    assert returns.shape == (4,) and (returns > 5).all() and (returns < 100).all()  # pushing right soon fails
    assert np.array_equal(returns, greedy_returns(AlwaysRight(4, 2), CartPole(4), seed=0))


def test_dqn_example_runs_saves_and_resumes(load_example, tmp_path, capsys):
    example = load_example("dqn_cartpole")
    args = ["--steps", "300", "--hidden", "16", "--learning-starts", "100", "--buffer-size", "500",
            "--eval-every", "150", "--eval-episodes", "2", "--test-episodes", "3"]  # fmt: skip
    assert example.main([*args, "--save", str(tmp_path / "run.npz"), "--plot", str(tmp_path / "d.png")]) == 0
    out = capsys.readouterr().out
    assert "average return over 3 greedy test episodes" in out and (tmp_path / "d.png").exists()
    assert example.main(["--steps", "450", *args[2:], "--resume", str(tmp_path / "run.npz")]) == 0

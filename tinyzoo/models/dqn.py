"""Deep Q-Networks: human-level control through deep reinforcement learning (Mnih et al., 2015).

An agent sees a state s, takes an action a, receives a reward r and the next state s'. The action value
Q*(s, a) is the expected discounted return Σ_k γ^k r_k of taking a in s and acting optimally after; it
satisfies the Bellman equation

    Q*(s, a) = E[ r + γ max_a' Q*(s', a') ]        (just r when s' is terminal)

DQN fits a network Q_θ(s, ·) — one output per action — to that equation by regression onto its own
bootstrapped targets, with two devices that keep the regression from chasing itself:

- Experience replay. Transitions (s, a, r, s', done) go into a ring buffer of the last N steps; each update
  trains on a minibatch drawn uniformly from it, which breaks the correlation between consecutive steps
  and reuses every transition many times.
- A target network θ⁻, a copy of θ refreshed every C steps, computes the targets, so they hold still
  between refreshes (or, the Polyak variant, θ⁻ ← τ θ + (1 - τ) θ⁻ with a small τ after every step):

      y = r + γ (1 - done) max_a' Q_θ⁻(s', a')
      L(θ) = mean over the minibatch of Huber(Q_θ(s, a) - y)

  The Huber loss (quadratic for |δ| < 1, linear beyond) is the paper's "clip the error term to [-1, 1]":
  its gradient is δ clipped to [-1, 1]. `done` is 1 only when the episode *terminated*; an episode cut
  off by a time limit still has a future, so its last transition bootstraps as usual.

Behaviour is ε-greedy: a uniformly random action with probability ε, else argmax_a Q_θ(s, a), with ε
decaying linearly from 1 to a small floor over the first steps. Updates use Adam and clip the global
gradient norm. The example (examples/dqn_cartpole.py) trains on CartPole (tinyzoo/models/cartpole.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.backend import to_host
from tinyzoo.nn import functional as F


class QNetwork(nn.Module):
    """Q_θ(s, ·): an MLP observation → hidden → hidden → one value per action."""

    def __init__(self, observation_size: int, n_actions: int, hidden: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(observation_size, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_actions),
        )  # fmt: skip

    def forward(self, obs: tz.Tensor) -> tz.Tensor:
        """obs [batch, observation_size] → Q-values [batch, n_actions]."""
        return self.layers(obs)


@dataclass
class Transitions:
    """A minibatch of transitions, as arrays: obs/next_obs [B, obs], action [B] int64, reward/terminated [B]."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """The last `capacity` transitions in NumPy arrays used as a ring: the newest overwrites the oldest."""

    def __init__(self, capacity: int, observation_size: int) -> None:
        self.capacity = capacity
        self.obs = np.zeros((capacity, observation_size), dtype=np.float32)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_obs = np.zeros((capacity, observation_size), dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0  # where the next transition goes
        self.size = 0  # how many slots hold a transition

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition, overwriting the oldest once the buffer is full."""
        i = self.position
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminated[i] = next_obs, terminated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Transitions:
        """A minibatch drawn uniformly, with replacement, from the stored transitions."""
        i = rng.integers(0, self.size, size=batch_size)
        return Transitions(self.obs[i], self.action[i], self.reward[i], self.next_obs[i], self.terminated[i])

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions and the ring's position (for checkpoints)."""
        names = ("obs", "action", "reward", "next_obs", "terminated", "position", "size")
        return {name: getattr(self, name) for name in names}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` gave."""
        for name in ("obs", "action", "reward", "next_obs", "terminated"):
            getattr(self, name)[...] = state[name]
        self.position, self.size = int(state["position"]), int(state["size"])


def linear_epsilon(step: int, start: float, end: float, decay_steps: int) -> float:
    """ε falls linearly from `start` to `end` over `decay_steps` steps, then stays at `end`."""
    return end + (start - end) * max(0.0, 1.0 - step / decay_steps)


def greedy_actions(q_net: QNetwork, obs: np.ndarray) -> np.ndarray:
    """argmax_a Q(s, a) for each row of obs [N, observation_size] → actions [N]."""
    device = next(q_net.parameters()).device
    with tz.no_grad():
        return to_host(q_net(tz.tensor(obs, device=device)).argmax(axis=1).data)


def epsilon_greedy(
    q_net: QNetwork, obs: np.ndarray, epsilon: float, n_actions: int, rng: np.random.Generator
) -> np.ndarray:
    """A random action with probability ε, else the greedy one, for each row of obs [N, observation_size]."""
    explore = rng.random(len(obs)) < epsilon
    actions = rng.integers(0, n_actions, size=len(obs))
    if not explore.all():
        actions[~explore] = greedy_actions(q_net, obs[~explore])
    return actions


def td_loss(q_net: QNetwork, target_net: QNetwork, batch: Transitions, gamma: float) -> tz.Tensor:
    """Huber(Q_θ(s, a) - y) averaged over the batch, y = r + γ (1 - done) max_a' Q_θ⁻(s', a') held constant."""
    device = next(q_net.parameters()).device
    obs, next_obs = tz.tensor(batch.obs, device=device), tz.tensor(batch.next_obs, device=device)
    action = tz.tensor(batch.action[:, None], device=device)  # [B, 1]
    q_taken = q_net(obs).gather(1, action)[:, 0]  # Q_θ(s, a) [B]
    with tz.no_grad():
        next_value = target_net(next_obs).max(axis=1)  # max_a' Q_θ⁻(s', a') [B]
        reward = tz.tensor(batch.reward, device=device)
        alive = tz.tensor(1.0 - batch.terminated, device=device)
        target = reward + gamma * alive * next_value  # y [B]
    return F.huber_loss(q_taken, target.astype(q_taken.dtype))


def blend_parameters(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ⁻ ← τ θ + (1 - τ) θ⁻ for every parameter, in place (τ = 1 copies θ)."""
    for target_p, source_p in zip(target.parameters(), source.parameters()):
        target_p.data = tau * source_p.data + (1 - tau) * target_p.data


@dataclass
class DQNConfig:
    """DQN's hyperparameters (defaults tuned for CartPole on a CPU)."""

    hidden: int = 128
    lr: float = 1e-3
    gamma: float = 0.99
    batch_size: int = 64
    buffer_size: int = 50_000
    learning_starts: int = 1_000  # act (randomly, ε = 1) this long before the first update
    train_every: int = 1  # env steps per gradient update
    target_update: int = 1  # C: env steps between target refreshes θ⁻ ← τ θ + (1 - τ) θ⁻
    tau: float = 0.005  # Polyak averaging every step; τ = 1 with C = 500 is the paper's hard copy every C steps
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 10_000
    grad_clip: float = 10.0


class DQNAgent:
    """The Q-network, its target copy, the replay buffer and Adam — and the agent's two jobs, act and learn."""

    def __init__(self, observation_size: int, n_actions: int, config: DQNConfig, device: str = "cpu") -> None:
        self.config, self.n_actions = config, n_actions
        self.q_net = QNetwork(observation_size, n_actions, config.hidden).to(device)
        self.target_net = QNetwork(observation_size, n_actions, config.hidden).to(device)
        self.target_net.load_state_dict(self.q_net.state_dict())  # θ⁻ = θ
        self.optimizer = optim.Adam(self.q_net.parameters(), lr=config.lr)
        self.buffer = ReplayBuffer(config.buffer_size, observation_size)
        self.steps = 0  # environment steps observed so far

    @property
    def epsilon(self) -> float:
        """The exploration rate at the current step."""
        c = self.config
        return linear_epsilon(self.steps, c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps)

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """ε-greedy actions [N] for obs [N, observation_size]."""
        return epsilon_greedy(self.q_net, obs, self.epsilon, self.n_actions, rng)

    def observe(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, terminated: bool,
                rng: np.random.Generator) -> float | None:  # fmt: skip
        """Store one transition, then learn and refresh θ⁻ when due; returns the TD loss if an update ran."""
        self.buffer.add(obs, action, reward, next_obs, terminated)
        self.steps += 1
        c = self.config
        loss = None
        if self.steps >= c.learning_starts and self.steps % c.train_every == 0:
            loss = self.learn(rng)
        if self.steps % c.target_update == 0:
            blend_parameters(self.target_net, self.q_net, c.tau)
        return loss

    def learn(self, rng: np.random.Generator) -> float:
        """One gradient step on a replayed minibatch; returns its TD loss."""
        c = self.config
        loss = td_loss(self.q_net, self.target_net, self.buffer.sample(c.batch_size, rng), c.gamma)
        self.optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(self.q_net.parameters(), c.grad_clip)
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict[str, Any]:
        """Both networks, the replay buffer and the step count (the optimizer saves itself)."""
        return {"q_net": self.q_net.state_dict(), "target_net": self.target_net.state_dict(),
                "buffer": self.buffer.state_dict(), "steps": self.steps}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` gave."""
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        self.buffer.load_state_dict(state["buffer"])
        self.steps = int(state["steps"])


def greedy_returns(q_net: QNetwork, env: Any, seed: int) -> np.ndarray:
    """Play one greedy episode in each of the env's N slots (env.reset(seed) / env.step) → returns [N]."""
    obs = env.reset(seed=seed)
    returns = np.zeros(env.num_envs)
    while not env.done.all():
        obs, reward, _, _ = env.step(greedy_actions(q_net, obs))
        returns += reward
    return returns


def demo() -> tuple[QNetwork, tz.Tensor]:
    """A Q-network for CartPole and a batch of observations (for `python -m tinyzoo explain dqn`)."""
    obs = np.random.default_rng(0).uniform(-0.05, 0.05, size=(4, 4)).astype(np.float32)
    return QNetwork(observation_size=4, n_actions=2), tz.tensor(obs)

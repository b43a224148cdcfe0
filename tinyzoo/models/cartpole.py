"""CartPole-v1 in NumPy: balance a pole on a cart (Barto, Sutton & Anderson, 1983), with gym's constants.

A pole of mass m = 0.1 kg and half-length l = 0.5 m is hinged on a cart of mass M = 1 kg that rolls on a
track. Each step the agent pushes the cart left or right with a force of F = ±10 N. The state is
s = (x, ẋ, θ, θ̇): cart position and velocity, pole angle from vertical (radians) and angular velocity.

The equations of motion (frictionless version of Barto et al., as derived by Florian 2007), with
g = 9.8 m/s²:

    temp = (F + m l θ̇² sin θ) / (M + m)
    θ̈    = (g sin θ - cos θ · temp) / (l (4/3 - m cos² θ / (M + m)))
    ẍ    = temp - m l θ̈ cos θ / (M + m)

integrated with one explicit Euler step of τ = 0.02 s (every update uses the *old* state):

    x ← x + τ ẋ       ẋ ← ẋ + τ ẍ       θ ← θ + τ θ̇       θ̇ ← θ̇ + τ θ̈

Episodes start from s ~ U(-0.05, 0.05)⁴. The reward is +1 for every step taken, including the last;
the episode *terminates* when |θ| > 12° or |x| > 2.4 (the pole fell or the cart left the track) and is
*truncated* after 500 steps (so the best return is 500). The distinction matters to a learner:
a terminated state has no future, a truncated one does.

`CartPole` runs a batch of N independent episodes at once (N = 1 for training, N = 100 to evaluate a
policy on 100 episodes in one go). The state is kept in float64 and observed as float32, the random
start is drawn from `numpy.random.default_rng(seed)`, and the arithmetic follows gymnasium's
`CartPoleEnv` line by line, so for the same seed and actions the two produce the same trajectory.
"""

from __future__ import annotations

import math

import numpy as np

GRAVITY = 9.8  # g, m/s²
MASS_CART = 1.0  # M, kg
MASS_POLE = 0.1  # m, kg
HALF_LENGTH = 0.5  # l, m (half the pole's length)
FORCE = 10.0  # |F|, N
TAU = 0.02  # seconds per step
THETA_LIMIT = 12 * 2 * math.pi / 360  # terminate beyond ±12°
X_LIMIT = 2.4  # terminate beyond ±2.4 m
MAX_STEPS = 500  # truncate after this many steps (CartPole-v1)


def dynamics(state: np.ndarray, action: np.ndarray) -> np.ndarray:
    """One Euler step of the cart-pole equations: state [N, 4] (x, ẋ, θ, θ̇), action [N] in {0, 1} → [N, 4]."""
    x, x_dot, theta, theta_dot = state.T  # each [N]
    force = np.where(action == 1, FORCE, -FORCE)
    cos, sin = np.cos(theta), np.sin(theta)
    total_mass = MASS_POLE + MASS_CART
    temp = (force + MASS_POLE * HALF_LENGTH * np.square(theta_dot) * sin) / total_mass
    theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * np.square(cos) / total_mass))
    x_acc = temp - MASS_POLE * HALF_LENGTH * theta_acc * cos / total_mass
    euler = [x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc]
    return np.stack(euler, axis=1)


def fallen(state: np.ndarray) -> np.ndarray:
    """Termination for state [N, 4]: |x| > 2.4 or |θ| > 12° → bool [N]."""
    return (np.abs(state[:, 0]) > X_LIMIT) | (np.abs(state[:, 2]) > THETA_LIMIT)


class CartPole:
    """N independent CartPole-v1 episodes stepped together; an episode that has ended stays frozen (reward 0)."""

    observation_size = 4
    n_actions = 2  # 0 pushes left, 1 pushes right

    def __init__(self, num_envs: int = 1, seed: int | None = None) -> None:
        self.num_envs = num_envs
        self.rng = np.random.default_rng(seed)
        self.state = np.zeros((num_envs, 4))  # [N, 4] float64
        self.steps = np.zeros(num_envs, dtype=np.int64)  # steps taken in the current episode
        self.done = np.ones(num_envs, dtype=bool)  # nothing runs until reset()

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start N new episodes from U(-0.05, 0.05)⁴ (reseeding first if `seed` is given) → observation [N, 4]."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(low=-0.05, high=0.05, size=(self.num_envs, 4))
        self.steps[:] = 0
        self.done[:] = False
        return self.state.astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply action [N] → (observation [N, 4] float32, reward [N], terminated [N], truncated [N]).

        Only running episodes move and earn their +1; terminated/truncated say whether *this* step ended
        an episode.
        """
        running = ~self.done
        self.state[running] = dynamics(self.state[running], np.asarray(action)[running])
        self.steps += running
        terminated = running & fallen(self.state)
        truncated = running & ~terminated & (self.steps >= MAX_STEPS)
        self.done |= terminated | truncated
        return self.state.astype(np.float32), running.astype(np.float32), terminated, truncated

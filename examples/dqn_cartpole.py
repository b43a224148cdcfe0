"""DQN on CartPole-v1: replay buffer, target network, ε-greedy, Huber loss (see tinyzoo/models/dqn.py).

    python examples/dqn_cartpole.py --device cpu [--steps 50000] [--hidden 128] [--lr 1e-3]
                                    [--target-update 500 --tau 1] [--plot dqn.png]

The environment is tinyzoo/models/cartpole.py (NumPy, gym's classic dynamics; no gym needed). The agent
takes --steps environment steps, one gradient update per step after the first --learning-starts. Every
--eval-every steps the greedy policy plays --eval-episodes validation episodes, and the network with the
best validation mean is kept (DQN's policy can get worse with more training, so this is the usual model
selection). At the end the kept network, and for comparison the last one, play --test-episodes fresh
greedy episodes on seeds never used before; the target is an average return ≥ 195 over 100 episodes
(500 is the most an episode can give).

Defaults: 2 hidden layers of 128, Adam lr 1e-3, batch 64, γ 0.99, buffer 50k, Polyak target τ = 0.005
every step (--target-update 500 --tau 1 gives the paper's hard copy every 500 steps), ε 1 → 0.05 over
10k steps, Huber loss, gradient norm clipped at 10, 50k steps. Measured (OPENBLAS_NUM_THREADS=1, 2 shared
CPU cores, 80 s to 4 min a run): seeds 0-4 → 500.0, 500.0, 500.0, 494.9, 500.0 with the kept network;
the last network alone gave 500.0, 500.0, 82.5, 146.3, 500.0.

Prints a progress bar (ε, mean return of the last 20 training episodes, validation score, TD loss) and
the test returns. On a machine shared with other jobs, OPENBLAS_NUM_THREADS=1 is much faster.
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo.models.cartpole import CartPole
from tinyzoo.models.dqn import DQNAgent, DQNConfig, QNetwork, greedy_returns
from tinyzoo.train import MetricsLog, TrainingRun, check_device, example_parser, run_main, trace_step

TEST_SEED_OFFSET = 1_000_000  # test episodes use seeds far from the training and validation ones


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus DQN's)."""
    defaults = DQNConfig()
    parser = example_parser(__doc__.splitlines()[0], steps=50_000, lr=defaults.lr, batch_size=defaults.batch_size,
                            grad_clip=defaults.grad_clip)  # fmt: skip
    parser.add_argument("--hidden", type=int, default=defaults.hidden, help="units in each of the 2 hidden layers")
    parser.add_argument("--gamma", type=float, default=defaults.gamma)
    parser.add_argument("--buffer-size", type=int, default=defaults.buffer_size)
    parser.add_argument("--learning-starts", type=int, default=defaults.learning_starts)
    parser.add_argument("--train-every", type=int, default=defaults.train_every)
    parser.add_argument("--target-update", type=int, default=defaults.target_update, help="C, steps between θ⁻ ← θ")
    parser.add_argument("--tau", type=float, default=defaults.tau, help="1: hard copy; <1: Polyak averaging")
    parser.add_argument("--epsilon-end", type=float, default=defaults.epsilon_end)
    parser.add_argument("--epsilon-decay-steps", type=int, default=defaults.epsilon_decay_steps)
    parser.add_argument("--eval-every", type=int, default=2_000, help="steps between validation runs")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--test-episodes", type=int, default=100)
    return parser.parse_args(argv)


def config_from(args) -> DQNConfig:
    """The DQNConfig the flags describe."""
    return DQNConfig(hidden=args.hidden, lr=args.lr, gamma=args.gamma, batch_size=args.batch_size,
                     buffer_size=args.buffer_size, learning_starts=args.learning_starts,
                     train_every=args.train_every, target_update=args.target_update, tau=args.tau,
                     epsilon_end=args.epsilon_end, epsilon_decay_steps=args.epsilon_decay_steps,
                     grad_clip=args.grad_clip)  # fmt: skip


def validate(q_net: QNetwork, args) -> float:
    """Mean greedy return on the validation episodes (the same seeds every time, so scores compare)."""
    return float(greedy_returns(q_net, CartPole(args.eval_episodes), seed=args.seed).mean())


def main(argv: list[str] | None = None) -> int:
    """Train DQN on CartPole and report the average greedy return over the test episodes."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    rng = tz.rng.generator()  # ε-greedy, replay sampling and episode seeds; saved and restored with the run
    agent = DQNAgent(CartPole.observation_size, CartPole.n_actions, config_from(args), device)
    best = QNetwork(CartPole.observation_size, CartPole.n_actions, args.hidden).to(device)
    best.load_state_dict(agent.q_net.state_dict())
    training = TrainingRun(args, agent, agent.optimizer, total=args.steps, desc="DQN", best=best)
    best_score = validate(best, args)  # deterministic, so recomputing it beats saving it
    log = training.metrics_log

    env = CartPole(1)
    obs = env.reset(seed=int(rng.integers(2**31)))
    episode_return, recent, losses = 0.0, [], []
    with training:
        while agent.steps < args.steps:
            action = agent.act(obs, rng)
            next_obs, reward, terminated, truncated = env.step(action)
            first_update = args.trace and agent.steps + 1 == agent.config.learning_starts
            with trace_step(first_update):
                loss = agent.observe(obs[0], action[0], reward[0], next_obs[0], terminated[0], rng)
            losses += [] if loss is None else [loss]
            episode_return += reward[0]
            obs = next_obs
            if terminated[0] or truncated[0]:
                recent = [*recent[-19:], episode_return]
                log.log(agent.steps, episode_return=episode_return)
                obs, episode_return = env.reset(seed=int(rng.integers(2**31))), 0.0
            if agent.steps % args.eval_every == 0 or agent.steps == args.steps:
                score = validate(agent.q_net, args)
                if score >= best_score:
                    best_score = score
                    best.load_state_dict(agent.q_net.state_dict())
                metrics = {"eps": agent.epsilon, "return20": float(np.mean(recent or [0.0])), "val": score,
                           "best": best_score, "loss": float(np.mean(losses or [0.0]))}  # fmt: skip
                log.log(agent.steps, val_return=score, td_loss=metrics["loss"])
                losses = []
                training.bar.update(0, **metrics)
            training.bar.update(1)

    training.save(agent.steps)
    test_seed = args.seed + TEST_SEED_OFFSET
    kept = greedy_returns(best, CartPole(args.test_episodes), seed=test_seed)
    last = greedy_returns(agent.q_net, CartPole(args.test_episodes), seed=test_seed)
    print(f"average return over {args.test_episodes} greedy test episodes: {kept.mean():.1f} "
          f"(min {kept.min():.0f}, max {kept.max():.0f}) with the kept network (validation {best_score:.1f}); "
          f"{last.mean():.1f} with the last one")  # fmt: skip
    if args.plot:
        plot_run(log, args)
    return 0


def plot_run(log: MetricsLog, args) -> None:
    """Training-episode returns, validation returns and the TD loss against environment steps."""
    from tinyzoo import plot

    steps, returns = log.series("episode_return")
    window = 20
    smooth = np.convolve(returns, np.ones(window) / window, mode="valid") if len(returns) >= window else returns
    plot.panels(
        {
            "return": {"training episodes (ε-greedy)": (steps, returns),
                       f"mean of last {window}": (steps[len(steps) - len(smooth):], smooth),
                       "validation (greedy)": log.series("val_return")},
            "TD loss (Huber)": {"mean since last validation": log.series("td_loss")},
        },
        args.plot,
        xlabel="environment step",
    )  # fmt: skip
    print(f"figure written to {args.plot}")


if __name__ == "__main__":
    sys.exit(run_main(main))

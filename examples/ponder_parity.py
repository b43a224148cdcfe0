"""PonderNet on the parity task: learn when to stop thinking (see tinyzoo/models/ponder_net.py).

    python examples/ponder_parity.py --device cpu [--n-elems 8] [--max-steps 20] [--lambda-p 0.2]
                                     [--beta 0.01] [--steps 3000] [--plot ponder.png]

Prints a progress bar with loss, accuracy and expected steps; at the end, the test accuracy on fresh
samples with halting by sampling, the mean number of steps taken, and the expected steps for each
number of non-zero inputs (harder inputs should make the network ponder longer).
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.models.ponder_net import (
    PonderGRU,
    expected_steps,
    parity_batch,
    reconstruction_loss,
    regularisation_loss,
    truncated_geometric,
)
from tinyzoo.train import (
    MetricsLog,
    ProgressBar,
    check_device,
    example_parser,
    load_training,
    run_main,
    save_training,
    trace_step,
)


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus PonderNet's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=3000)
    parser.add_argument("--n-elems", type=int, default=8, help="length of the parity vectors")
    parser.add_argument("--max-steps", type=int, default=20, help="N, the most steps the network may take")
    parser.add_argument("--lambda-p", type=float, default=0.2, help="λ_p of the geometric prior (mean 1/λ_p)")
    parser.add_argument("--beta", type=float, default=0.01, help="weight of KL(p ‖ p_G)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--test-size", type=int, default=10_000)
    return parser.parse_args(argv)


def evaluate(model: PonderGRU, args, device: str, rng: np.random.Generator) -> dict[str, object]:
    """Accuracy and steps with halting by sampling, on fresh samples; expected steps by input difficulty."""
    x, y = parity_batch(args.test_size, args.n_elems, rng)
    xs = tz.tensor(x, device=device)
    predicted, steps = model.halt_by_sampling(xs, rng)
    with tz.no_grad():
        p = model(xs).p.numpy()  # [N, test_size]
    n = np.arange(1, p.shape[0] + 1)[:, None]
    nonzero = (x != 0).sum(axis=1)
    by_length = {int(k): float((p * n).sum(axis=0)[nonzero == k].mean()) for k in np.unique(nonzero)}
    return {
        "accuracy": float((predicted == y).mean()),
        "sampled_steps": float(steps.mean()),
        "expected_steps_by_length": by_length,
        "halting_distribution": p.mean(axis=1),
    }


def main(argv: list[str] | None = None) -> int:
    """Train PonderNet on parity and report test accuracy and pondering steps."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    data_rng = np.random.default_rng(args.seed)
    model = PonderGRU(args.n_elems, args.hidden, args.max_steps).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    log_prior = tz.tensor(np.log(truncated_geometric(args.lambda_p, args.max_steps)), device=device)
    start_step = 0
    if args.resume:
        start_step = load_training(args.resume, model, optimizer)
        data_rng = np.random.default_rng([args.seed, start_step])
    log = MetricsLog(args.log)

    with ProgressBar(args.steps, "ponder", initial=start_step) as bar:
        for step in range(start_step + 1, args.steps + 1):
            x, y = parity_batch(args.batch_size, args.n_elems, data_rng)
            with trace_step(args.trace and step == start_step + 1):
                out = model(tz.tensor(x, device=device))
                target = tz.tensor(y, device=device)
                loss_rec = reconstruction_loss(out, target)
                loss_reg = regularisation_loss(out, log_prior)
                loss = loss_rec + args.beta * loss_reg
                optimizer.zero_grad()
                loss.backward()
                optim.clip_grad_norm_(model.parameters(), args.grad_clip)
                optimizer.step()
            if step % 50 == 0 or step == args.steps:
                with tz.no_grad():
                    best_guess = out.logits[out.log_p.argmax(axis=0).data, np.arange(args.batch_size)]
                    accuracy = float(((best_guess.numpy() > 0) == y).mean())
                    metrics = {"loss": loss.item(), "kl": loss_reg.item(), "acc": accuracy,
                               "E_steps": expected_steps(out).item()}  # fmt: skip
                log.log(step, **metrics)
                bar.update(step - bar.count, **metrics)  # the steps since the last update (or the resumed step)

    if args.save:
        save_training(args.save, model, optimizer, step=args.steps)
    result = evaluate(model, args, device, np.random.default_rng(args.seed + 1))
    print(f"test accuracy {result['accuracy']:.2%} on {args.test_size} fresh samples (halting by sampling), "
          f"mean steps {result['sampled_steps']:.2f}")  # fmt: skip
    print("expected steps by number of non-zero inputs: "
          + ", ".join(f"{k}:{v:.2f}" for k, v in result["expected_steps_by_length"].items()))  # fmt: skip
    if args.plot:
        plot_run(log, result, args)
    return 0


def plot_run(log: MetricsLog, result: dict, args) -> None:
    """Learning curves and the halting distribution, side by side."""
    from tinyzoo import plot

    halting = result["halting_distribution"]
    steps = np.arange(1, len(halting) + 1)
    prior = truncated_geometric(args.lambda_p, args.max_steps)
    plot.panels(
        {
            "loss": {"train loss": log.series("loss")},
            "accuracy": {"train accuracy": log.series("acc")},
            "halting probability p_n": {"learned (test mean)": (steps, halting), f"prior λp={args.lambda_p}":
                                        (steps, prior)},
        },
        args.plot,
        xlabels={"halting probability p_n": "pondering step n"},
    )  # fmt: skip
    print(f"figure written to {args.plot}")


if __name__ == "__main__":
    sys.exit(run_main(main))

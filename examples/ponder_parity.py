"""PonderNet on the parity task: learn when to stop thinking (see tinyzoo/models/ponder_net.py).

    python examples/ponder_parity.py --device cpu [--n-elems 8] [--max-steps 20] [--lambda-p 0.2]
                                     [--beta 0.01] [--steps 3000] [--plot ponder.png]
    python examples/ponder_parity.py --extrapolate [--n-elems 8] [--plot extrapolation.png]
    python examples/ponder_parity.py --extrapolate --paper --device gpu     # 96 elements, 1–48 → 49–96

Prints a progress bar with loss, accuracy and expected steps; at the end, the test accuracy on fresh
samples with halting by sampling, the mean number of steps taken, the KL of the halting distribution to
the prior, and the expected steps for each number of non-zero inputs with their Spearman rank correlation
(harder inputs should make the network ponder longer).

`--extrapolate` is the paper's extrapolation test: train on vectors with 1..n/2 non-zero entries at random
positions, test on n/2+1..n, more than the network has ever seen; the same network trained to answer after
a fixed max_steps steps (no halting) is the baseline. `--paper` sets the paper's n = 96 (the other sizes stay as given).
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
from tinyzoo.nn import functional as F
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
    parser.add_argument(
        "--extrapolate",
        action="store_true",
        help="train on 1..n/2 non-zero inputs, test on n/2+1..n; compare with a fixed-step network",
    )
    parser.add_argument("--paper", action="store_true", help="with --extrapolate: the paper's n = 96 elements")
    args = parser.parse_args(argv)
    if args.paper:
        args.n_elems = 96
    return args


def train(
    args,
    device: str,
    nonzero: tuple[int, int] | None = None,
    halting: bool = True,
    label: str = "ponder",
    scatter: bool = False,
) -> tuple[PonderGRU, MetricsLog]:
    """Train on parity vectors with k ∈ nonzero non-zero entries; halting=False trains the same network to
    answer after exactly max_steps steps (no halting distribution, no KL), the fixed-computation baseline."""
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

    with ProgressBar(args.steps, label, initial=start_step) as bar:
        for step in range(start_step + 1, args.steps + 1):
            x, y = parity_batch(args.batch_size, args.n_elems, data_rng, nonzero, scatter)
            with trace_step(args.trace and step == start_step + 1):
                out = model(tz.tensor(x, device=device))
                target = tz.tensor(y, device=device)
                if halting:
                    loss_reg = regularisation_loss(out, log_prior)
                    loss = reconstruction_loss(out, target) + args.beta * loss_reg
                else:
                    loss = F.binary_cross_entropy_with_logits(out.logits[-1], target)
                optimizer.zero_grad()
                loss.backward()
                optim.clip_grad_norm_(model.parameters(), args.grad_clip)
                optimizer.step()
            if step % 50 == 0 or step == args.steps:
                with tz.no_grad():
                    answer_step = out.log_p.argmax(axis=0).data if halting else np.full(args.batch_size, -1)
                    best_guess = out.logits[answer_step, np.arange(args.batch_size)]
                    metrics = {"loss": loss.item(), "acc": float(((best_guess.numpy() > 0) == y).mean())}
                    if halting:
                        metrics |= {"kl": loss_reg.item(), "E_steps": expected_steps(out).item()}
                log.log(step, **metrics)
                bar.update(step - bar.count, **metrics)  # the steps since the last update (or the resumed step)
    if args.save:
        save_training(args.save, model, optimizer, step=args.steps)
    return model, log


def evaluate(
    model: PonderGRU,
    args,
    device: str,
    rng: np.random.Generator,
    nonzero: tuple[int, int] | None = None,
    halting: bool = True,
    scatter: bool = False,
) -> dict[str, object]:
    """Accuracy and steps on fresh samples (halting by sampling, or the last step's answer when halting=False),
    overall and by the number k of non-zero inputs; the KL to the prior; the trend of expected steps with k."""
    x, y = parity_batch(args.test_size, args.n_elems, rng, nonzero, scatter)
    xs = tz.tensor(x, device=device)
    if halting:
        predicted, steps = model.halt_by_sampling(xs, rng)
    else:
        with tz.no_grad():
            predicted = (model(xs).logits[-1].numpy() > 0).astype(np.float32)
        steps = np.full(len(y), args.max_steps)
    with tz.no_grad():
        p = model(xs).p.numpy()  # [N, test_size]
    expected = (p * np.arange(1, p.shape[0] + 1)[:, None]).sum(axis=0) if halting else steps  # [test_size]
    nonzero_k = (x != 0).sum(axis=1)
    lengths = np.unique(nonzero_k)
    prior = truncated_geometric(args.lambda_p, args.max_steps)[:, None]
    kl = (p * (np.log(np.maximum(p, 1e-30)) - np.log(prior))).sum(axis=0).mean()
    by_length = {int(k): float(expected[nonzero_k == k].mean()) for k in lengths}
    return {
        "accuracy": float((predicted == y).mean()),
        "sampled_steps": float(steps.mean()),
        "kl": float(kl),
        "expected_steps_by_length": by_length,
        "accuracy_by_length": {int(k): float((predicted == y)[nonzero_k == k].mean()) for k in lengths},
        "steps_trend": spearman(list(by_length), list(by_length.values())) if halting else float("nan"),
        "halting_distribution": p.mean(axis=1),
    }


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ties broken by order)."""
    rank_a, rank_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


def report(name: str, result: dict, test_size: int, halting: bool = True) -> None:
    """Print accuracy and steps of one evaluation; for a halting network also the KL and the steps-by-k trend."""
    line = f"{name}test accuracy {result['accuracy']:.2%} on {test_size} fresh samples, "
    if not halting:
        print(line + f"{result['sampled_steps']:.0f} steps")
        return
    print(line + f"mean steps {result['sampled_steps']:.2f} (halting by sampling), KL(p ‖ p_G) {result['kl']:.2f}")
    print("  expected steps by number of non-zero inputs: "
          + ", ".join(f"{k}:{v:.2f}" for k, v in result["expected_steps_by_length"].items())
          + f" (Spearman ρ {result['steps_trend']:.2f})")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Train PonderNet on parity and report test accuracy and pondering steps (or run the extrapolation test)."""
    args = parse_args(argv)
    device = check_device(args.device)
    if args.extrapolate:
        return extrapolate(args, device)
    model, log = train(args, device)
    result = evaluate(model, args, device, np.random.default_rng(args.seed + 1))
    report("", result, args.test_size)
    if args.plot:
        plot_run(log, result, args)
    return 0


def extrapolate(args, device: str) -> int:
    """PonderNet §3.1's extrapolation: train on k ∈ 1..n/2 non-zero inputs, test on k ∈ n/2+1..n; the same
    network trained to answer after a fixed max_steps steps is the baseline."""
    half = args.n_elems // 2
    seen, unseen = (1, half), (half + 1, args.n_elems)
    results = {}
    for name, halting in (("PonderNet", True), (f"fixed {args.max_steps} steps", False)):
        model, _ = train(args, device, nonzero=seen, halting=halting, label=name, scatter=True)
        rng = np.random.default_rng(args.seed + 1)
        results[name] = {
            "seen": evaluate(model, args, device, rng, seen, halting, scatter=True),
            "unseen": evaluate(model, args, device, rng, unseen, halting, scatter=True),
        }
        for split, result in results[name].items():
            k_range = seen if split == "seen" else unseen
            report(f"{name}, {split} k = {k_range[0]}..{k_range[1]}: ", result, args.test_size, halting)
    if args.plot:
        plot_extrapolation(results, seen, args)
    return 0


def plot_extrapolation(results: dict, seen: tuple[int, int], args) -> None:
    """Accuracy and expected steps against the number of non-zero inputs, the training range shaded."""
    from tinyzoo import plot

    plt = plot.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, splits in results.items():
        accuracy = splits["seen"]["accuracy_by_length"] | splits["unseen"]["accuracy_by_length"]
        steps = splits["seen"]["expected_steps_by_length"] | splits["unseen"]["expected_steps_by_length"]
        axes[0].plot(list(accuracy), list(accuracy.values()), marker=".", label=name)
        axes[1].plot(list(steps), list(steps.values()), marker=".", label=name)
    for ax, ylabel in zip(axes, ("test accuracy", "expected steps Σ n·p_n"), strict=True):
        ax.axvspan(seen[0] - 0.5, seen[1] + 0.5, color="0.9", label="training range")
        ax.set_xlabel("number of non-zero inputs")
        ax.set_ylabel(ylabel)
        ax.legend()
    axes[0].axhline(0.5, color="0.6", linestyle=":", linewidth=1)
    fig.suptitle(f"PonderNet extrapolation on parity, {args.n_elems} elements")
    print(f"figure written to {plot.save(fig, args.plot)}")


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

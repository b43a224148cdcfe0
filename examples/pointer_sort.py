"""Pointer Network sorting numbers: point at the inputs in increasing order (see tinyzoo/models/pointer_net.py).

    python examples/pointer_sort.py --device cpu [--n 10] [--steps 2000] [--hidden 128] [--plot pointer.png]

Every step trains on a fresh batch of --n numbers drawn uniformly from [0, 1), teacher-forced, with
Adam and a cosine learning-rate decay. Every --eval-every steps, and at the end, the greedy decoder
sorts held-out sequences; a sequence counts only when the whole permutation is right. The target is
≥ 90 % exact-sequence accuracy for n = 10.

Measured (default settings, OPENBLAS_NUM_THREADS=1, 2 shared CPU cores): seed 0 → 98.79 % exact-sequence
accuracy on 10,000 fresh sequences (99.76 % of pointers right) in 110 s; seed 1 → 98.26 %.

Prints a progress bar (loss, validation accuracy) and the test accuracy on --test-size fresh sequences.
`--plot PATH` draws the loss, the validation accuracy and the pointer distributions of one test
sequence. On a machine shared with other jobs, OPENBLAS_NUM_THREADS=1 is much faster.
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.models.pointer_net import PointerNet, pointer_loss, sequence_accuracy, sort_batch
from tinyzoo.train import MetricsLog, TrainingRun, check_device, example_parser, run_main


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the pointer network's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=2000, lr=2e-3, batch_size=128, grad_clip=1.0)
    parser.add_argument("--n", type=int, default=10, help="how many numbers to sort")
    parser.add_argument("--embed", type=int, default=64, help="size of the element embedding x̃")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM and attention size H")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=10_000)
    return parser.parse_args(argv)


def accuracy(model: PointerNet, x: np.ndarray, pointers: np.ndarray, device: str) -> tuple[float, float]:
    """(exact-sequence accuracy, per-position accuracy) of greedy decoding on x [N, n, 1]."""
    predicted = model.point(tz.tensor(x, device=device))
    return sequence_accuracy(predicted, pointers), float((predicted == pointers).mean())


def main(argv: list[str] | None = None) -> int:
    """Train a pointer network to sort and report its exact-sequence accuracy on fresh sequences."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    model = PointerNet(input_size=1, embed_size=args.embed, hidden_size=args.hidden).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=0.02 * args.lr)
    training = TrainingRun(args, model, optimizer, total=args.steps, desc=f"pointer sort n={args.n}",
                           scheduler=scheduler)  # fmt: skip
    data_rng = np.random.default_rng([args.seed, training.start])  # (seeded by the step from the start)
    x_val, p_val = sort_batch(args.val_size, args.n, np.random.default_rng([args.seed, 1, 0]))

    with training:
        for step in training.steps():
            x, pointers = sort_batch(args.batch_size, args.n, data_rng)
            with training.trace(step):
                logits, _ = model(tz.tensor(x, device=device), pointers)  # teacher forcing
                loss = pointer_loss(logits, pointers)
                optimizer.zero_grad()
                loss.backward()
            optim.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            scheduler.step()
            training.accumulate(loss=loss)
            evaluate = step % args.eval_every == 0 or step == args.steps
            training.log(step, **({"val_acc": accuracy(model, x_val, p_val, device)[0]} if evaluate else {}))

    training.save()
    x_test, p_test = sort_batch(args.test_size, args.n, np.random.default_rng([args.seed, 2, 0]))
    exact, per_position = accuracy(model, x_test, p_test, device)
    print(f"exact-sequence accuracy {exact:.2%} on {args.test_size} fresh sequences of n={args.n} "
          f"(greedy decoding); per-position accuracy {per_position:.2%}")  # fmt: skip
    if args.plot:
        plot_run(model, training.metrics_log, x_test[0], device, args)
    return 0


def plot_run(model: PointerNet, log: MetricsLog, x: np.ndarray, device: str, args) -> None:
    """Training loss, validation accuracy, and p(π(t) = j) of one test sequence as a heat map."""
    from tinyzoo.plot import pyplot, save

    plt = pyplot()

    with tz.no_grad():
        logits, chosen = model(tz.tensor(x[None], device=device))
    probs = logits.softmax(axis=-1).numpy()[0]  # [steps, positions]
    values = x[:, 0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    axes[0].plot(*log.series("loss"))
    axes[0].set(xlabel="training step", ylabel="cross entropy (nats per pointer)", title="training loss",
                yscale="log")  # fmt: skip
    axes[1].plot(*log.series("val_acc"), "o-")
    axes[1].set(xlabel="training step", ylabel="exact-sequence accuracy", title="validation (greedy decoding)",
                ylim=(-0.02, 1.02))  # fmt: skip
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    image = axes[2].imshow(probs, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    labels = [f"{v:.2f}" for v in values]
    axes[2].set_xticks(range(len(values)), labels, rotation=60, fontsize=8)
    axes[2].set_yticks(range(len(values)), [f"{t + 1}: {values[j]:.2f}" for t, j in enumerate(chosen[0])], fontsize=8)
    axes[2].set(xlabel="input value (position order)", ylabel="output step: value pointed at",
                title="pointer distribution p(π(t) = j), one test sequence")  # fmt: skip
    fig.colorbar(image, ax=axes[2], label="probability")
    print(f"figure written to {save(fig, args.plot)}")


if __name__ == "__main__":
    sys.exit(run_main(main))

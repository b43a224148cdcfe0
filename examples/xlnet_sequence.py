"""XLNet: permutation language modelling with two-stream attention on generated sequences (tinyzoo/models/xlnet.py).

    python examples/xlnet_sequence.py --device cpu [--task palindrome|progression|sorted] [--length 12]
        [--vocab 10] [--K 4] [--d-model 64] [--layers 2] [--steps 800] [--plot xlnet.png]

Every step draws fresh sequences and one random factorisation order per sequence, and trains the query
stream to predict the last ≈ length/K tokens of the order from the ones before it. At the end it
reports, on fresh sequences and orders, the accuracy and the cross-entropy on the predicted tokens next
to the unigram baseline (always guess the most frequent token; the entropy of the token frequencies).
On palindromes (the default) a token is known exactly when its mirror image came earlier in the order,
on whichever side it lies, so the best possible accuracy is known and printed too; a left-to-right model
would know nothing about the first half. The figure shows the learning curves and the test accuracy
against how many tokens were visible.
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.models.xlnet import (
    TASKS,
    XLNet,
    order_ranks,
    palindrome_best_guess,
    prediction_targets,
    sample_orders,
    sequence_batch,
    xlnet_loss,
)
from tinyzoo.train import MetricsLog, TrainingRun, check_device, example_parser, run_main


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the task's and the model's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=800, lr=2e-3, batch_size=64)
    parser.add_argument("--task", choices=TASKS, default="palindrome")
    parser.add_argument("--length", type=int, default=12, help="tokens per sequence")
    parser.add_argument("--vocab", type=int, default=10, help="number of tokens (the modulus of progressions)")
    parser.add_argument("--K", type=float, default=4.0, help="predict the last length/K of each order")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-ff", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=100, help="linear warm-up steps before cosine decay")
    parser.add_argument("--test-size", type=int, default=2000)
    return parser.parse_args(argv)


def unigram_baseline(args, rng: np.random.Generator) -> tuple[float, float]:
    """(accuracy of always guessing the most frequent token, entropy of the token frequencies in nats)."""
    tokens = sequence_batch(args.task, 10_000, args.length, args.vocab, rng)
    frequency = np.bincount(tokens.ravel(), minlength=args.vocab) / tokens.size
    nonzero = frequency[frequency > 0]
    return float(frequency.max()), float(-(nonzero * np.log(nonzero)).sum())


def evaluate(model: XLNet, args, rng: np.random.Generator) -> dict[str, object]:
    """Accuracy and cross-entropy on the predicted tokens of fresh sequences and orders; accuracy of every
    position by how many tokens came before it in the order."""
    tokens = sequence_batch(args.task, args.test_size, args.length, args.vocab, rng)
    order = sample_orders(args.test_size, args.length, rng)
    targets = prediction_targets(order, args.K)
    model.eval()
    with tz.no_grad():
        logits = model(tokens, order)  # [N, T, V]
        loss = xlnet_loss(logits, tokens, targets).item()
    model.train()
    correct = logits.argmax(axis=-1).numpy() == tokens  # [N, T]
    visible = order_ranks(order)  # tokens before each position in its order

    def summary(values: np.ndarray) -> tuple[float, list[float]]:
        """Mean over the predicted positions, and mean by the number of visible tokens."""
        return float(values[targets].mean()), [float(values[visible == v].mean()) for v in range(args.length)]

    result = {"loss": loss, "best": None, "best_by_visible": None}
    result["accuracy"], result["by_visible"] = summary(correct)
    if args.task == "palindrome":
        result["best"], result["best_by_visible"] = summary(palindrome_best_guess(order, args.vocab))
    return result


def train_step(model: XLNet, optimizer: optim.Optimizer, tokens: np.ndarray, order: np.ndarray,
               targets: np.ndarray) -> tuple[tz.Tensor, tz.Tensor]:  # fmt: skip
    """One step on the predicted tokens (gradients clipped to norm 1): returns the loss and the logits [B, T, V]."""
    logits = model(tokens, order)  # [B, T, V]
    loss = xlnet_loss(logits, tokens, targets)
    optimizer.zero_grad()
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss, logits


def main(argv: list[str] | None = None) -> int:
    """Train a small XLNet by permutation language modelling and compare it with the unigram baseline."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    model = XLNet(args.vocab, args.d_model, args.heads, args.layers, args.d_ff).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    scheduler = optim.WarmupCosine(optimizer, min(args.warmup, args.steps - 1), args.steps, min_lr=args.lr / 50)
    training = TrainingRun(args, model, optimizer, total=args.steps, desc=f"xlnet {args.task}", log_every=25,
                           scheduler=scheduler)  # fmt: skip
    data_rng = training.data_rng()

    with training:
        for step in training.steps():
            tokens = sequence_batch(args.task, args.batch_size, args.length, args.vocab, data_rng)
            order = sample_orders(args.batch_size, args.length, data_rng)
            targets = prediction_targets(order, args.K)
            with training.trace(step):
                loss, logits = train_step(model, optimizer, tokens, order, targets)
            scheduler.step()
            if training.log_due(step):  # the metrics of this step
                accuracy = float((logits.argmax(axis=-1).numpy() == tokens)[targets].mean())
                training.log(step, loss=loss.item(), acc=accuracy)

    training.save()
    result = evaluate(model, args, np.random.default_rng(args.seed + 1))
    base_accuracy, base_entropy = unigram_baseline(args, np.random.default_rng(args.seed + 2))
    print(f"test accuracy on the predicted tokens ({args.task}, last {args.length / args.K:.3g} of each order): "
          f"{result['accuracy']:.2%}  vs unigram baseline {base_accuracy:.2%}")  # fmt: skip
    if result["best"] is not None:
        print(f"best possible accuracy (1 when the mirror token came earlier in the order, 1/vocab otherwise): "
              f"{result['best']:.2%}")  # fmt: skip
    print(f"test cross-entropy {result['loss']:.3f} nats/token  vs unigram entropy {base_entropy:.3f} nats/token")
    if args.plot:
        plot_run(training.metrics_log, result, base_accuracy, args)
    return 0


def plot_run(log: MetricsLog, result: dict, base_accuracy: float, args) -> None:
    """Learning curves, and test accuracy by the number of tokens visible before the predicted one."""
    from tinyzoo.plot import pyplot, save

    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(*log.series("loss"))
    axes[0].set(xlabel="training step", ylabel="cross-entropy (nats/token)", title="training loss")
    axes[1].plot(*log.series("acc"), label="XLNet (train batches)")
    axes[1].set(xlabel="training step", title="accuracy on the predicted tokens")
    visible = np.arange(args.length)
    axes[2].plot(visible, result["by_visible"], "o-", label="XLNet (test)")
    if result["best_by_visible"] is not None:
        axes[2].plot(visible, result["best_by_visible"], "k--", label="best possible")
    axes[2].set(xlabel="tokens visible before the predicted one", title=f"test accuracy by context ({args.task})")
    for ax in axes[1:]:
        ax.axhline(base_accuracy, color="tab:red", lw=1, label="unigram baseline")
        ax.set(ylabel="accuracy", ylim=(0, 1.02))
        ax.legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    print(f"figure written to {save(fig, args.plot)}")


if __name__ == "__main__":
    sys.exit(run_main(main))

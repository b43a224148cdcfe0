"""Transformer encoder-decoder learning to reverse (or sort) strings (see tinyzoo/models/transformer.py).

    python examples/transformer_reverse.py --device cpu [--task reverse|sort] [--max-len 20] [--alphabet 10]
        [--d-model 64] [--layers 2] [--heads 4] [--post-norm] [--position sinusoidal|t5]
        [--steps 1200] [--beam-width 4] [--plot transformer.png]

Strings of length 1..max_len over a small alphabet, with BOS/EOS/PAD; every batch is freshly sampled.
Prints a progress bar with the loss and the teacher-forced token accuracy; at the end, the
exact-sequence accuracy on fresh test strings with greedy decoding and with beam search. The figure
shows the learning curves, the accuracy by string length, and one cross-attention map (reversal
draws an anti-diagonal: output t reads input n + 1 − t).
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.models.transformer import BOS, EOS, PAD, Transformer, exact_match, seq2seq_batch, sequence_loss
from tinyzoo.train import MetricsLog, TrainingRun, check_device, example_parser, run_main


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the task's and the model's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=1200, lr=2e-3, batch_size=64)
    parser.add_argument("--task", choices=("reverse", "sort"), default="reverse")
    parser.add_argument("--max-len", type=int, default=20, help="longest string")
    parser.add_argument("--alphabet", type=int, default=10, help="number of symbols")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2, help="encoder layers = decoder layers")
    parser.add_argument("--d-ff", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.0, help="fresh data every step: no need to regularise")
    parser.add_argument("--post-norm", action="store_true", help="the paper's post-norm blocks (default pre-norm)")
    parser.add_argument("--position", choices=("sinusoidal", "t5"), default="sinusoidal")
    parser.add_argument("--warmup", type=int, default=200, help="linear warm-up steps before cosine decay")
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--length-penalty", type=float, default=0.6, help="α of GNMT's ((5 + n) / 6)^α")
    parser.add_argument("--test-size", type=int, default=1000)
    return parser.parse_args(argv)


def evaluate(model: Transformer, args, rng: np.random.Generator) -> dict[str, object]:
    """Exact-sequence accuracy of greedy decoding and beam search on fresh strings, overall and by length."""
    src, _, tgt_out = seq2seq_batch(args.task, args.test_size, args.max_len, args.alphabet, rng)
    model.eval()
    greedy = exact_match(model.greedy_decode(src, args.max_len + 1), tgt_out)
    beam = exact_match(model.beam_search(src, args.max_len + 1, args.beam_width, args.length_penalty), tgt_out)
    model.train()
    lengths = (src != PAD).sum(axis=1) - 1  # symbols before EOS
    by_length = {int(n): (greedy[lengths == n].mean(), beam[lengths == n].mean()) for n in np.unique(lengths)}
    return {"greedy": float(greedy.mean()), "beam": float(beam.mean()), "by_length": by_length, "src": src}


def train_step(model: Transformer, optimizer: optim.Optimizer, src: np.ndarray, tgt_in: np.ndarray,
               tgt_out: np.ndarray) -> tuple[tz.Tensor, tz.Tensor]:  # fmt: skip
    """One teacher-forced step (gradients clipped to norm 1): returns the loss and the logits [B, T, V]."""
    logits = model(src, tgt_in)  # [B, T, V]
    loss = sequence_loss(logits, tgt_out, PAD)
    optimizer.zero_grad()
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss, logits


def main(argv: list[str] | None = None) -> int:
    """Train a Transformer on string reversal (or sorting) and report exact-sequence test accuracy."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    vocab = 3 + args.alphabet  # PAD, BOS, EOS, then the symbols
    model = Transformer(vocab, vocab, args.d_model, args.heads, args.layers, args.layers, args.d_ff, args.dropout,
                        norm_first=not args.post_norm, position=args.position,
                        pad_id=PAD, bos_id=BOS, eos_id=EOS).to(device)  # fmt: skip
    optimizer = optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    scheduler = optim.WarmupCosine(optimizer, min(args.warmup, args.steps - 1), args.steps, min_lr=args.lr / 50)
    training = TrainingRun(args, model, optimizer, total=args.steps, desc=args.task, log_every=25, scheduler=scheduler)
    data_rng = training.data_rng()

    with training:
        for step in training.steps():
            src, tgt_in, tgt_out = seq2seq_batch(args.task, args.batch_size, args.max_len, args.alphabet, data_rng)
            with training.trace(step):
                loss, logits = train_step(model, optimizer, src, tgt_in, tgt_out)
            scheduler.step()
            if training.log_due(step):  # the metrics of this step
                real = tgt_out != PAD
                correct = (logits.argmax(axis=-1).numpy() == tgt_out) | ~real
                training.log(step, loss=loss.item(), tok_acc=float(correct[real].mean()),
                             seq_acc=float(correct.all(axis=1).mean()))  # fmt: skip

    training.save()
    result = evaluate(model, args, np.random.default_rng(args.seed + 1))
    beam = f"beam (k={args.beam_width}, α={args.length_penalty})"
    print(f"exact-sequence accuracy on {args.test_size} fresh strings ({args.task}, length 1-{args.max_len}): "
          f"greedy {result['greedy']:.2%}, {beam} {result['beam']:.2%}")  # fmt: skip
    if args.plot:
        plot_run(model, training.metrics_log, result, args)
    return 0


def cross_attention_map(model: Transformer, src: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy output for one source string and the last decoder layer's cross-attention [T, S], head-averaged.

    TransformerBlock asks its attention for no weights, so a forward hook runs the cross-attention
    once more with need_weights=True on the same inputs (query, memory, memory, padding mask).
    """
    output = model.greedy_decode(src, max_len)  # [1, T]
    n_out = int(np.argmax(output[0] == EOS)) + 1
    tgt_in = np.concatenate([[[BOS]], output[:, : n_out - 1]], axis=1)  # BOS y_1 .. y_{T-1}
    captured = []

    def keep_weights(module, inputs, _output):
        captured.append(module.forward(*inputs, need_weights=True)[1].numpy()[0])

    remove = model.decoder[-1].multihead_attn.register_forward_hook(keep_weights)
    model.eval()
    with tz.no_grad():
        model(src, tgt_in)
    remove()
    model.train()
    return output[0, :n_out], captured[0]


def plot_run(model: Transformer, log: MetricsLog, result: dict, args) -> None:
    """Learning curves, accuracy by length, and a cross-attention map of one long test string."""
    from tinyzoo.plot import pyplot, save

    plt = pyplot()

    lengths = sorted(result["by_length"])
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    axes[0].plot(*log.series("loss"))
    axes[0].set(xlabel="training step", ylabel="cross-entropy (nats/token)", title="training loss", yscale="log")
    axes[1].plot(*log.series("tok_acc"), label="tokens")
    axes[1].plot(*log.series("seq_acc"), label="whole sequences")
    axes[1].set(xlabel="training step", ylabel="accuracy", title="teacher-forced training accuracy")
    for i, (name, style) in enumerate((("greedy", "o-"), (f"beam k={args.beam_width}", "x--"))):
        axes[2].plot(lengths, [result["by_length"][n][i] for n in lengths], style, label=name)
    axes[2].set(xlabel="string length", ylabel="exact-sequence accuracy", title=f"test accuracy ({args.task})",
                ylim=(-0.02, 1.02))  # fmt: skip
    src = result["src"][np.argmax((result["src"] != PAD).sum(axis=1))][None]  # the longest test string
    output, weights = cross_attention_map(model, src, args.max_len + 1)
    n_src = int((src != PAD).sum())
    image = axes[3].imshow(weights[:, :n_src], cmap="viridis", aspect="auto")
    names = {PAD: "PAD", BOS: "BOS", EOS: "EOS"}
    axes[3].set_xticks(range(n_src), [names.get(t, chr(ord("a") + t - 3)) for t in src[0, :n_src]], fontsize=7)
    axes[3].set_yticks(range(len(output)), [names.get(t, chr(ord("a") + t - 3)) for t in output], fontsize=7)
    axes[3].set(xlabel="source token", ylabel="generated token", title="cross-attention, last decoder layer")
    fig.colorbar(image, ax=axes[3], label="attention weight (mean over heads)")
    for ax in axes[:3]:
        ax.grid(alpha=0.3)
    for ax in axes[1:3]:
        ax.legend(loc="lower right")
    print(f"figure written to {save(fig, args.plot)}")


if __name__ == "__main__":
    sys.exit(run_main(main))

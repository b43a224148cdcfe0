"""Character-level language model on the Tiny-Shakespeare-like corpus: RNN, GRU, LSTM, HyperLSTM or RHN.

    python examples/char_lm.py --device cpu [--model lstm] [--hidden 256] [--steps 1500] [--seq-len 100]
                               [--batch-size 32] [--lr 1e-2] [--plot char_lm.png] [--save lm.npz]

Trains on random windows of `tinyzoo.data.load_tiny_shakespeare()` (about 1.1 M characters with a
64-character vocabulary; it is *not* byte-identical to the classic tiny-shakespeare file, so its bits
per character are close to, but not directly comparable with, published numbers). The progress bar
shows the training loss in bits per character (a moving average); every --eval-every steps, and at the
end, the model is scored on a fixed set of held-out validation windows, each read from a zero state.
Prints the validation bpc and a sample of generated text.

The models live in tinyzoo/models/char_rnn.py, hyper_lstm.py and rhn.py. The two comparison scripts,
char_rnn_shakespeare.py and hyperlstm_shakespeare.py, import the training loop from this file.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

import tinyzoo as tz
import tinyzoo.train.data_parallel as data_parallel
from tinyzoo import optim
from tinyzoo.models.char_rnn import (
    CORES,
    CharLM,
    bits_per_char,
    char_rnn,
    fixed_windows,
    loss_nats,
    random_windows,
    sample,
)
from tinyzoo.models.hyper_lstm import HyperLSTM
from tinyzoo.models.rhn import RHN
from tinyzoo.train import MetricsLog, ProgressBar, check_device, example_parser, load_training, run_main, save_training

MODELS = (*CORES, "hyperlstm", "rhn")


def add_flags(parser, hidden: int) -> None:
    """The flags every character-LM script shares: model sizes, batching, optimisation, evaluation, sampling."""
    parser.add_argument("--hidden", type=int, default=hidden, help="hidden size of the recurrent core")
    parser.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    parser.add_argument("--embed", type=int, default=64, help="character embedding size")
    parser.add_argument("--hyper-size", type=int, default=64, help="HyperLSTM: hidden size N̂ of the hyper-LSTM")
    parser.add_argument("--n-z", type=int, default=16, help="HyperLSTM: size N_z of the z embeddings")
    parser.add_argument("--depth", type=int, default=3, help="RHN: recurrence depth L")
    parser.add_argument("--seq-len", type=int, default=100, help="characters per training window (BPTT length)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (cosine-decayed to a tenth)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="max global gradient norm")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between validation scores")
    parser.add_argument("--eval-windows", type=int, default=256, help="held-out validation windows")
    parser.add_argument("--sample-length", type=int, default=300, help="characters to generate at the end")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    parser.add_argument("--prompt", default="ROMEO:\n", help="text the sample starts from")
    data_parallel.add_flag(parser)


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones, --model and the character-LM ones)."""
    parser = example_parser(__doc__.splitlines()[0], steps=1500)
    parser.add_argument("--model", choices=MODELS, default="lstm", help="the recurrent core")
    add_flags(parser, hidden=256)
    return parser.parse_args(argv)


def load_corpus():
    """The Tiny-Shakespeare-like corpus (looked up at call time, so tests can swap in a tiny text)."""
    return tz.data.load_tiny_shakespeare()


def build_model(kind: str, vocab_size: int, hidden: int, args) -> CharLM:
    """A character LM with the named core, freshly initialised from --seed."""
    tz.manual_seed(args.seed)
    if kind in CORES:
        return char_rnn(kind, vocab_size, hidden, args.layers, args.embed)
    if kind == "hyperlstm":
        core = HyperLSTM(args.embed, hidden, args.hyper_size, args.n_z, args.layers)
    elif kind == "rhn":
        core = RHN(args.embed, hidden, args.depth, args.layers)
    else:
        raise ValueError(f"unknown model {kind!r}; choose from {MODELS}")
    return CharLM(vocab_size, args.embed, core, hidden)


def hidden_for_params(kind: str, vocab_size: int, target: int, args) -> int:
    """The hidden size whose `kind` model has the parameter count closest to `target`."""

    def count(hidden: int) -> int:
        return build_model(kind, vocab_size, hidden, args).num_parameters()

    low, high = 1, 8
    while count(high) < target:
        low, high = high, 2 * high
    while high - low > 1:  # count grows with the hidden size: bisect for count(low) < target <= count(high)
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < target else (low, mid)
    return min((low, high), key=lambda h: abs(count(h) - target))


class Run(NamedTuple):
    """One trained model and what its run measured."""

    name: str
    model: CharLM
    hidden: int
    log: MetricsLog
    val_bpc: float
    seconds: float  # wall time of the training loop
    cpu_seconds: float  # CPU time of this process over the same loop (all threads)
    steps: int


def per_model(path: str | None, name: str, several: bool) -> str | None:
    """A file path for one model of a comparison: run.npz → run-lstm.npz (unchanged for a single model)."""
    if path is None or not several:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{name}{p.suffix}"))


def train_step(model: CharLM, optimizer, x: tz.Tensor, y: tz.Tensor, grad_clip: float) -> float:
    """One Adam step on a batch of windows; returns the loss in nats."""
    loss = loss_nats(model, x, y)
    optimizer.zero_grad()
    loss.backward()
    data_parallel.synchronize(optimizer)  # --distributed: clip the gradients averaged over the ranks
    optim.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def train(name: str, kind: str, hidden: int, corpus, args, device: str, several: bool = False) -> Run:
    """Train one model for --steps steps (resuming and saving per --resume/--save) and score it."""
    model = build_model(kind, len(corpus.vocab), hidden, args).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 10)
    seed = data_parallel.rank_seed(args.seed)  # each rank its own windows (args.seed itself on one process)
    start_step, data_rng = 0, np.random.default_rng(seed)  # every model of a comparison sees the same batches
    resume = per_model(args.resume, name, several)
    if resume:
        start_step = load_training(resume, model, optimizer, scheduler=scheduler)
        data_rng = np.random.default_rng([seed, start_step])
    optimizer = data_parallel.prepare(model, optimizer)  # --distributed: the step averages gradients over ranks
    val_x, val_y = fixed_windows(corpus.val, args.eval_windows, args.seq_len)
    log = MetricsLog(per_model(args.log, name, several))
    print(f"{name}: hidden {hidden}, {model.num_parameters():,} parameters")
    train_bpc, start, cpu_start = None, time.perf_counter(), time.process_time()
    with ProgressBar(args.steps - start_step, name) as bar:
        for step in range(start_step + 1, args.steps + 1):
            x, y = (tz.tensor(a, device=device) for a in random_windows(corpus.train, args.batch_size,
                                                                         args.seq_len, data_rng))  # fmt: skip
            if args.trace and step == start_step + 1:
                from tinyzoo.study.trace import trace

                with trace() as tr:
                    loss = train_step(model, optimizer, x, y, args.grad_clip)
                print(tr.table())
            else:
                loss = train_step(model, optimizer, x, y, args.grad_clip)
            scheduler.step()
            bpc = loss / math.log(2)
            train_bpc = bpc if train_bpc is None else 0.98 * train_bpc + 0.02 * bpc
            metrics = {"train_bpc": train_bpc}
            if step % args.eval_every == 0 and step < args.steps:  # the last step is scored below
                metrics["val_bpc"] = bits_per_char(model, val_x, val_y, device=device)
                log.log(step, **metrics)
            bar.update(**metrics)
    val_bpc = bits_per_char(model, val_x, val_y, device=device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if train_bpc is not None:
        log.log(args.steps, train_bpc=train_bpc, val_bpc=val_bpc)
    if args.save:
        save_training(per_model(args.save, name, several), model, optimizer, step=args.steps, scheduler=scheduler)
    return Run(name, model, hidden, log, val_bpc, seconds, cpu_seconds, args.steps - start_step)


def sample_text(run: Run, corpus, args, device: str) -> str:
    """The prompt followed by --sample-length characters generated at --temperature."""
    prompt = [corpus.vocab.index(ch) for ch in args.prompt if ch in corpus.vocab] or [int(corpus.val[0])]
    ids = sample(run.model, prompt, args.sample_length, args.temperature, np.random.default_rng(args.seed), device)
    return "".join(corpus.vocab[i] for i in prompt + ids)


def report(runs: list[Run], corpus, args, device: str) -> None:
    """Print every model's validation bpc and a sample of its text."""
    windows = len(fixed_windows(corpus.val, args.eval_windows, args.seq_len)[0])
    print(f"\nvalidation bits per character on {windows} held-out windows of {args.seq_len} characters "
          "(Tiny-Shakespeare-like corpus, not the classic file):")  # fmt: skip
    for run in runs:
        rate = run.steps / run.seconds if run.seconds > 0 else float("nan")
        print(f"  {run.name:<10} val bpc {run.val_bpc:.3f}   hidden {run.hidden:>4}   "
              f"{run.model.num_parameters():>9,} params   {run.steps} steps in {run.seconds:.0f} s "
              f"({rate:.2f} steps/s, CPU time {run.cpu_seconds:.0f} s)")  # fmt: skip
    for run in runs:
        print(f"\n--- sample from {run.name} (temperature {args.temperature}) ---")
        print(sample_text(run, corpus, args, device))


def plot_runs(runs: list[Run], path: str) -> None:
    """Training and validation bpc of every run, in two panels."""
    from tinyzoo import plot

    def label(run: Run) -> str:
        return f"{run.name} (hidden {run.hidden}, {run.model.num_parameters() / 1e3:.0f}k params)"

    plot.panels(
        {
            "training bpc (moving average)": {label(run): run.log.series("train_bpc") for run in runs},
            "validation bpc": {label(run): run.log.series("val_bpc") for run in runs},
        },
        path,
    )
    print(f"figure written to {path}")


def main(argv: list[str] | None = None) -> int:
    """Train one character LM and report its validation bpc and a sample."""
    args = parse_args(argv)
    device = data_parallel.setup(args, check_device(args.device))  # --distributed: only rank 0 prints and saves
    corpus = load_corpus()
    run = train(args.model, args.model, args.hidden, corpus, args, device)
    report([run], corpus, args, device)
    if args.plot:
        plot_runs([run], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

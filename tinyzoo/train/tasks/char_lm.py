"""Character language models on the Tiny-Shakespeare-like corpus: the training run shared by
examples/char_lm.py, char_rnn_shakespeare.py and hyperlstm_shakespeare.py (and the parameter matching
of gpt_shakespeare.py).

Trains on random windows of `tinyzoo.data.load_tiny_shakespeare()` (about 1.1 M characters with a
64-character vocabulary; it is *not* byte-identical to the classic tiny-shakespeare file, so its bits
per character are close to, but not directly comparable with, published numbers). The progress bar
shows the training loss in bits per character (a moving average, kept on the device and read at every
validation); every --eval-every steps, and at the end, the model is scored on a fixed set of held-out
validation windows, each read from a zero state.

The models live in tinyzoo/models/char_rnn.py, hyper_lstm.py and rhn.py.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

import tinyzoo as tz
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
from tinyzoo.train import MetricsLog, TrainingRun, data_parallel
from tinyzoo.train import example_parser as shared_parser

MODELS = (*CORES, "hyperlstm", "rhn")


def example_parser(description: str, steps: int, hidden: int) -> argparse.ArgumentParser:
    """The flags every character-LM script shares: the examples' own, model sizes, batching, optimisation
    (Adam's --lr is cosine-decayed to a tenth), evaluation and sampling."""
    parser = shared_parser(description, steps=steps, lr=1e-2, batch_size=32, grad_clip=1.0)
    parser.add_argument("--hidden", type=int, default=hidden, help="hidden size of the recurrent core")
    parser.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    parser.add_argument("--embed", type=int, default=64, help="character embedding size")
    parser.add_argument("--hyper-size", type=int, default=64, help="HyperLSTM: hidden size N̂ of the hyper-LSTM")
    parser.add_argument("--n-z", type=int, default=16, help="HyperLSTM: size N_z of the z embeddings")
    parser.add_argument("--depth", type=int, default=3, help="RHN: recurrence depth L")
    add_corpus_flags(parser, seq_len=100)
    data_parallel.add_flag(parser)
    return parser


def add_corpus_flags(parser: argparse.ArgumentParser, seq_len: int, eval_windows: int = 256,
                     sampling: bool = True) -> None:  # fmt: skip
    """The flags of every script that trains on windows of the corpus (the character LMs, GPT, BERT): the window
    length, how often and on how many held-out windows to validate, and (with `sampling`) the text sample."""
    parser.add_argument("--seq-len", type=int, default=seq_len, help="characters per training window (the context)")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between validation scores")
    parser.add_argument("--eval-windows", type=int, default=eval_windows, help="held-out validation windows")
    if sampling:
        parser.add_argument("--sample-length", type=int, default=300, help="characters to generate at the end")
        parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
        parser.add_argument("--prompt", default="ROMEO:\n", help="text the samples start from")


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


def train_step(model: CharLM, optimizer, x: tz.Tensor, y: tz.Tensor, grad_clip: float) -> tz.Tensor:
    """One Adam step on a batch of windows; returns the loss in nats (a scalar tensor, still on the device)."""
    loss = loss_nats(model, x, y)
    optimizer.zero_grad()
    loss.backward()
    data_parallel.synchronize(optimizer)  # --distributed: clip the gradients averaged over the ranks
    optim.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss


def train(name: str, kind: str, hidden: int, corpus, args, device: str, several: bool = False) -> Run:
    """Train one model for --steps steps (resuming and saving per --resume/--save) and score it."""
    model = build_model(kind, len(corpus.vocab), hidden, args).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=args.steps, eta_min=args.lr / 10)
    files = copy.copy(args)  # a comparison keeps one checkpoint and log per model
    files.resume, files.save, files.log = (per_model(path, name, several)
                                           for path in (args.resume, args.save, args.log))  # fmt: skip
    training = TrainingRun(files, model, optimizer, total=args.steps, desc=name, scheduler=scheduler)
    optimizer = data_parallel.prepare(model, optimizer)  # --distributed: the step averages gradients over ranks
    data_rng = training.data_rng()  # every model of a comparison sees the same batches (per rank)
    val_x, val_y = fixed_windows(corpus.val, args.eval_windows, args.seq_len)
    print(f"{name}: hidden {hidden}, {model.num_parameters():,} parameters")
    train_bpc, start, cpu_start = None, time.perf_counter(), time.process_time()
    with training:
        for step in training.steps():
            x, y = (tz.tensor(a, device=device) for a in random_windows(corpus.train, args.batch_size,
                                                                         args.seq_len, data_rng))  # fmt: skip
            with training.trace(step):
                loss = train_step(model, optimizer, x, y, args.grad_clip)
            scheduler.step()
            bpc = loss.data.astype("float64") / math.log(2)  # on the device, like the moving average
            train_bpc = bpc if train_bpc is None else 0.98 * train_bpc + 0.02 * bpc
            if step % args.eval_every == 0 and step < args.steps:  # the last step is scored below
                val_bpc = bits_per_char(model, val_x, val_y, device=device)
                training.log(step, train_bpc=float(train_bpc), val_bpc=val_bpc)
    val_bpc = bits_per_char(model, val_x, val_y, device=device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if train_bpc is not None:
        training.log(args.steps, train_bpc=float(train_bpc), val_bpc=val_bpc)
    training.save()
    return Run(name, model, hidden, training.metrics_log, val_bpc, seconds, cpu_seconds, args.steps - training.start)


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
    plot_bpc({f"{run.name} (hidden {run.hidden}, {run.model.num_parameters() / 1e3:.0f}k params)": run.log
              for run in runs}, path)  # fmt: skip


def plot_bpc(logs: dict[str, MetricsLog], path: str, xlabel: str = "step") -> None:
    """Training bpc (moving average) and validation bpc of every labelled metrics log, in two panels."""
    from tinyzoo import plot

    plot.panels(
        {
            "training bpc (moving average)": {label: log.series("train_bpc") for label, log in logs.items()},
            "validation bpc": {label: log.series("val_bpc") for label, log in logs.items()},
        },
        path,
        xlabel=xlabel,
    )
    print(f"figure written to {path}")

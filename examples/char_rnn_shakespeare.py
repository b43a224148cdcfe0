"""RNN vs GRU vs LSTM as character language models at an equal step budget (see tinyzoo/models/char_rnn.py).

    python examples/char_rnn_shakespeare.py --device cpu [--hidden 128] [--match hidden|params]
                                            [--steps 2000] [--models rnn,gru,lstm] [--plot char_rnn.png]

The three models share everything but the recurrent core: the same embedding and readout sizes, the
same batches in the same order (random windows of the Tiny-Shakespeare-like corpus), the same Adam
schedule and the same number of steps. With --match hidden (the default) all three have the same
hidden size, so the gated cores have more parameters (GRU 3×, LSTM 4× the recurrent weights); with
--match params the GRU and RNN hidden sizes are raised until their parameter counts match the LSTM's.
Prints every model's validation bits per character and a text sample from each; the expectation from
the literature is LSTM ≤ GRU ≤ RNN. The flags of tinyzoo/train/tasks/char_lm.py apply (--seq-len, --lr, ...).
"""

from __future__ import annotations

import sys

from tinyzoo.train import check_device, data_parallel, run_main
from tinyzoo.train.tasks import char_lm


def parse_args(argv: list[str] | None):
    """The example's flags: the shared ones, the character-LM ones and which models to compare."""
    parser = char_lm.example_parser(__doc__.splitlines()[0], steps=2000, hidden=128)
    parser.add_argument("--models", default="rnn,gru,lstm", help="comma-separated cores to compare")
    parser.add_argument("--match", choices=("hidden", "params"), default="hidden",
                        help="equal hidden sizes, or hidden sizes giving the LSTM's parameter count")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train each core on the same batches and compare validation bpc."""
    args = parse_args(argv)
    device = data_parallel.setup(args, check_device(args.device))  # --distributed: only rank 0 prints and saves
    kinds = args.models.split(",")
    unknown = set(kinds) - set(char_lm.CORES)
    if unknown:
        raise SystemExit(f"--models: unknown {sorted(unknown)}; choose from {sorted(char_lm.CORES)}")
    corpus = char_lm.load_corpus()
    vocab = len(corpus.vocab)
    target = char_lm.build_model("lstm", vocab, args.hidden, args).num_parameters()
    runs = []
    for kind in kinds:
        hidden = args.hidden if args.match == "hidden" else char_lm.hidden_for_params(kind, vocab, target, args)
        runs.append(char_lm.train(kind, kind, hidden, corpus, args, device, several=len(kinds) > 1))
    char_lm.report(runs, corpus, args, device)
    best = min(runs, key=lambda r: r.val_bpc)
    order = " ≤ ".join(r.name for r in sorted(runs, key=lambda r: r.val_bpc))
    print(f"\nbest: {best.name} ({best.val_bpc:.3f} bpc); order by validation bpc: {order}")
    if args.plot:
        char_lm.plot_runs(runs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

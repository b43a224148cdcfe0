"""HyperLSTM (or an RHN) against the standard LSTM as character language models (tinyzoo/models/hyper_lstm.py).

    python examples/hyperlstm_shakespeare.py --device cpu [--model hyperlstm|rhn] [--hidden 128]
                                             [--lstm-hidden N] [--steps 1000] [--plot hyperlstm.png]

Both models share the embedding and the readout, see the same batches of the Tiny-Shakespeare-like
corpus in the same order and train for the same number of steps with the same Adam schedule. The
HyperLSTM (hidden --hidden, hyper-LSTM --hyper-size, embeddings --n-z) has more parameters than an LSTM
of the same width, so the LSTM's hidden size is chosen to give a matching parameter count unless
--lstm-hidden is set. `--model rhn` puts a Recurrent Highway Network (recurrence depth --depth) in the
HyperLSTM's place. Prints both models' validation bits per character and a sample of text from each;
--plot draws both learning curves. The flags of tinyzoo/train/tasks/char_lm.py apply (--seq-len, --lr, ...).
"""

from __future__ import annotations

import sys

from tinyzoo.train import check_device, data_parallel, run_main
from tinyzoo.train.tasks import char_lm


def parse_args(argv: list[str] | None):
    """The example's flags: the shared ones, the character-LM ones, the challenger and the LSTM's size."""
    parser = char_lm.example_parser(__doc__.splitlines()[0], steps=1000, hidden=128)
    parser.add_argument("--model", choices=("hyperlstm", "rhn"), default="hyperlstm", help="the challenger")
    parser.add_argument("--lstm-hidden", type=int, default=None,
                        help="the LSTM's hidden size (default: match the challenger's parameter count)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train the challenger and a parameter-matched LSTM on the same batches; compare validation bpc."""
    args = parse_args(argv)
    device = data_parallel.setup(args, check_device(args.device))  # --distributed: only rank 0 prints and saves
    corpus = char_lm.load_corpus()
    vocab = len(corpus.vocab)
    target = char_lm.build_model(args.model, vocab, args.hidden, args).num_parameters()
    lstm_hidden = args.lstm_hidden or char_lm.hidden_for_params("lstm", vocab, target, args)
    runs = [char_lm.train(args.model, args.model, args.hidden, corpus, args, device, several=True),
            char_lm.train("lstm", "lstm", lstm_hidden, corpus, args, device, several=True)]  # fmt: skip
    char_lm.report(runs, corpus, args, device)
    challenger, lstm = runs
    verdict = "≤" if challenger.val_bpc <= lstm.val_bpc else ">"
    print(f"\n{challenger.name} {challenger.val_bpc:.3f} {verdict} lstm {lstm.val_bpc:.3f} bpc "
          f"after {args.steps} steps each")  # fmt: skip
    if args.plot:
        char_lm.plot_runs(runs, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

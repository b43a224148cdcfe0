"""Character-level language model on the Tiny-Shakespeare-like corpus: RNN, GRU, LSTM, HyperLSTM or RHN.

    python examples/char_lm.py --device cpu [--model lstm] [--hidden 256] [--steps 1500] [--seq-len 100]
                               [--batch-size 32] [--lr 1e-2] [--plot char_lm.png] [--save lm.npz]

Trains on random windows of `tinyzoo.data.load_tiny_shakespeare()` (about 1.1 M characters with a
64-character vocabulary; it is *not* byte-identical to the classic tiny-shakespeare file, so its bits
per character are close to, but not directly comparable with, published numbers). The progress bar
shows the training loss in bits per character (a moving average); every --eval-every steps, and at the
end, the model is scored on a fixed set of held-out validation windows, each read from a zero state.
Prints the validation bpc and a sample of generated text.

The models live in tinyzoo/models/char_rnn.py, hyper_lstm.py and rhn.py; the training run, shared with
char_rnn_shakespeare.py and hyperlstm_shakespeare.py, in tinyzoo/train/tasks/char_lm.py.
"""

from __future__ import annotations

import sys

from tinyzoo.train import check_device, data_parallel, run_main
from tinyzoo.train.tasks import char_lm


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones, --model and the character-LM ones)."""
    parser = char_lm.example_parser(__doc__.splitlines()[0], steps=1500, hidden=256)
    parser.add_argument("--model", choices=char_lm.MODELS, default="lstm", help="the recurrent core")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train one character LM and report its validation bpc and a sample."""
    args = parse_args(argv)
    device = data_parallel.setup(args, check_device(args.device))  # --distributed: only rank 0 prints and saves
    corpus = char_lm.load_corpus()
    run = char_lm.train(args.model, args.model, args.hidden, corpus, args, device)
    char_lm.report([run], corpus, args, device)
    if args.plot:
        char_lm.plot_runs([run], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

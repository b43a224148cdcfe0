"""GCN on Cora: semi-supervised node classification (see tinyzoo/models/gcn.py).

    python examples/gcn_cora.py [--device cpu|gpu] [--seeds 10] [--epochs 200] [--plot gcn.png]
                                [--save run.npz --seeds 1]

Trains Kipf & Welling's two-layer GCN (16 hidden, dropout 0.5, Adam lr 0.01, L2 5e-4 on the first
layer, at most 200 epochs, early stopping on validation loss with patience 10) once per seed
s = seed .. seed+seeds-1, each on its own random split (20 labelled nodes per class, 500 validation,
1,000 test; split seed = model seed = s, the same splits as examples/gat_cora.py), and prints the test
accuracy of every seed, their mean ± std and the time of one training epoch. `--plot` draws a 2-D PCA
of the hidden node embeddings coloured by class. Where the recipe leaves a choice (biases, how to stop;
see tinyzoo/models/gcn.py) it was made on validation accuracy; the test nodes only give the result.
"""

from __future__ import annotations

import sys

from tinyzoo.models.gcn import GCN, PAPER_TRAINING
from tinyzoo.models.graph_common import TwoLayerGNN
from tinyzoo.train import MetricsLog, TrainingConfig, check_device, example_parser, run_main
from tinyzoo.train.tasks.cora import plot_run, report, run_seeds


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the GCN recipe's)."""
    parser = example_parser(__doc__.splitlines()[0], epochs=PAPER_TRAINING.epochs, lr=PAPER_TRAINING.lr)
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds (and splits), from --seed on")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--weight-decay", type=float, default=PAPER_TRAINING.weight_decay)
    parser.add_argument("--patience", type=int, default=PAPER_TRAINING.patience,
                        help="stop after this many epochs without a lower validation loss")  # fmt: skip
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if (args.save or args.resume) and args.seeds != 1:
        parser.error("--save/--resume checkpoint one run: add --seeds 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Train GCN on Cora over several seeds and report mean ± std test accuracy."""
    args = parse_args(argv)
    device = check_device(args.device)

    def build(in_features: int, num_classes: int) -> TwoLayerGNN:
        return GCN(in_features, num_classes, hidden=args.hidden, dropout=args.dropout)

    config = TrainingConfig(args.lr, args.weight_decay, args.epochs, args.patience)
    results, model, task = run_seeds(build, config, range(args.seed, args.seed + args.seeds), device,
                                     save=args.save, resume=args.resume, log=MetricsLog(args.log),
                                     trace=args.trace)  # fmt: skip
    print(report("GCN", results))
    if args.plot:
        title = f"GCN on Cora, seed {results[-1].seed}: test accuracy {results[-1].test_accuracy:.1%}"
        plot_run(args.plot, model, task, title)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""A deep belief net on binarised MNIST: RBMs trained by contrastive divergence, stacked greedily, judged by a
logistic regression on the top features (see tinyzoo/models/rbm.py).

    python examples/rbm_mnist.py --device cpu [--sizes 784 500 500] [--epochs 5] [--k 1] [--persistent]
                                 [--lr 0.05] [--plot rbm.png]

Each RBM learns from the layer below (no labels, no backprop); the progress bar shows the reconstruction
error of the layer being trained, which should fall epoch by epoch. A logistic regression (one Linear
layer and cross-entropy) is then fitted on the top layer's features and its test accuracy printed.
--plot writes <stem>_filters.png (first-layer weights), <stem>_gibbs.png (Gibbs chains of the first RBM)
and <stem>_recon.png (reconstruction error per epoch and layer). --save checkpoints after every layer.

CD-1 learns good features but a poor density model: its Gibbs chains, run long, drift away from digits
to a few blank or blotchy images. With --persistent (PCD) the chains stay on digits.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.data import DataLoader, TensorDataset, load_mnist
from tinyzoo.models.rbm import DBN, bernoulli, cd_optimizer, cd_step
from tinyzoo.train import (
    MetricsLog,
    ProgressBar,
    accuracy,
    check_device,
    example_parser,
    fit_classifier,
    load_training,
    predict,
    run_main,
    save_training,
    trace_step,
)


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the DBN's)."""
    parser = example_parser(__doc__.splitlines()[0], epochs=5, lr=0.05, batch_size=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[784, 500, 500], help="layer sizes, pixels first")
    parser.add_argument("--k", type=int, default=1, help="Gibbs steps per CD update (CD-k)")
    parser.add_argument("--persistent", action="store_true", help="persistent CD: keep the fantasy chains alive")
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--classifier-epochs", type=int, default=10, help="epochs of the logistic regression")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--monitor-size", type=int, default=2000, help="test images the reconstruction error uses")
    return parser.parse_args(argv)


def binarise(x: np.ndarray) -> np.ndarray:
    """Pixels above one half become 1, the rest 0 (float32)."""
    return (x > 0.5).astype(np.float32)


def train_layer(dbn: DBN, layer: int, inputs: np.ndarray, monitor: np.ndarray, args, device: str,
                log: MetricsLog) -> None:  # fmt: skip
    """Train RBM number `layer` by CD-k (or PCD-k) on `inputs`, the features of the layer below."""
    rbm = dbn.rbms[layer]
    optimizer = cd_optimizer(rbm, args.lr, args.momentum, args.weight_decay)
    loader = DataLoader(TensorDataset(inputs), batch_size=args.batch_size, shuffle=True, seed=args.seed + layer,
                        device=device)  # fmt: skip
    monitor_v = tz.tensor(monitor, device=device)
    with tz.no_grad():
        error = rbm.reconstruction_error(monitor_v).item()
    log.log(layer * args.epochs, **{f"recon_{layer + 1}": error})
    chain = bernoulli(tz.tensor(inputs[: args.batch_size], device=device)) if args.persistent else None
    with ProgressBar(args.epochs * len(loader), f"RBM {layer + 1} ({rbm.n_visible}→{rbm.n_hidden})") as bar:
        for epoch in range(1, args.epochs + 1):
            for batch, (v,) in enumerate(loader):
                tracing = args.trace and epoch == 1 and batch == 0  # profile the layer's first update
                with trace_step(tracing):
                    end = cd_step(rbm, optimizer, tz.tensor(v, device=device), args.k, chain)
                chain = end if args.persistent else None
                bar.update(1, epoch=epoch, recon=error)
            with tz.no_grad():
                error = rbm.reconstruction_error(monitor_v).item()
            log.log(layer * args.epochs + epoch, **{f"recon_{layer + 1}": error})
            bar.update(0, recon=error)


def main(argv: list[str] | None = None) -> int:
    """Greedily train the DBN, fit a logistic regression on its top features, report test accuracy."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    data = load_mnist()
    x_train, y_train = binarise(data.x_train[: args.train_size]), data.y_train[: args.train_size]
    x_test = binarise(data.x_test)
    dbn = DBN(args.sizes).to(device)
    layers_done = load_training(args.resume, dbn) if args.resume else 0
    log = MetricsLog(args.log)

    for layer in range(layers_done, len(dbn.rbms)):
        below = partial(dbn, depth=layer)  # the features the layer below hands up (the pixels for layer 0)
        inputs, monitor = predict(below, x_train, device), predict(below, x_test[: args.monitor_size], device)
        train_layer(dbn, layer, inputs, monitor, args, device, log)
        if args.save:
            save_training(args.save, dbn, step=layer + 1)
    for layer in range(len(dbn.rbms)):
        errors = log.series(f"recon_{layer + 1}")[1]
        if errors:
            print(f"RBM {layer + 1} reconstruction error (test): {errors[0]:.4f} before → {errors[-1]:.4f} after "
                  f"{args.epochs} epochs of {'PCD' if args.persistent else 'CD'}-{args.k}")  # fmt: skip

    top = dbn.sizes[-1]
    features_train, features_test = predict(dbn, x_train, device), predict(dbn, x_test, device)
    classifier = nn.Linear(top, 10).to(device)
    fit_classifier(classifier, features_train, y_train, args.classifier_epochs, device, lr=3e-3, seed=args.seed,
                   desc="logistic regression")  # fmt: skip
    test_accuracy = accuracy(classifier, features_test, data.y_test, device)
    print(f"test accuracy {test_accuracy:.2%} of a logistic regression on the top {top} DBN features "
          f"(layers {'-'.join(map(str, args.sizes))})")  # fmt: skip
    if args.plot:
        plot_run(dbn, log, x_test, args, device)
    return 0


def plot_run(dbn: DBN, log: MetricsLog, x_test: np.ndarray, args, device: str) -> None:
    """First-layer filters, Gibbs chains of the first RBM, and reconstruction error per epoch."""
    from tinyzoo import plot

    base = Path(args.plot)
    paths = [base.with_name(f"{base.stem}_{name}{base.suffix or '.png'}") for name in ("filters", "gibbs", "recon")]
    rbm = dbn.rbms[0]
    filters = rbm.W.numpy().T[:64].reshape(-1, 28, 28)  # the weights into each of 64 hidden units
    plot.image_grid(filters, paths[0], columns=8, title="first RBM: weights W_j of 64 hidden units (28×28 each)")

    checkpoints, columns = [0, 1, 10, 100, 1000], 8
    v = tz.tensor(x_test[:columns], device=device)
    rows, done = [], 0
    with tz.no_grad():
        for k in checkpoints:
            v = rbm.gibbs(v, k - done)
            done = k
            rows.append(rbm.visible_probs(rbm.hidden_probs(v)).numpy())  # mean-field picture of the chain's state
    labels = [f"step {k}" if i == 0 else "" for k in checkpoints for i in range(columns)]
    plot.image_grid(np.concatenate(rows).reshape(-1, 28, 28), paths[1], columns=columns, labels=labels,
                    title="Gibbs chains of the first RBM started at test digits")  # fmt: skip

    curves = {f"RBM {i + 1}": log.series(f"recon_{i + 1}") for i in range(len(dbn.rbms))}
    plot.learning_curves(curves, paths[2], title="reconstruction error on test inputs", xlabel="epoch (all layers)",
                         ylabel="mean squared reconstruction error", log_y=True)  # fmt: skip
    print("figures written to " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    sys.exit(run_main(main))

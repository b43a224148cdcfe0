"""The shared trainer of the image classifiers: MLP, SimpleCNN, ResNet-18 and ViT on MNIST (or CIFAR-10).

examples/mlp_mnist.py, cnn_mnist.py, resnet_mnist.py and vit_mnist.py each build a model and call `run`
here. This module holds everything they share:

- data: MNIST from `tinyzoo.data.load_mnist()` as images [N, 1, 28, 28] (optionally zero-padded to
  32×32), or CIFAR-10 read from a folder the user downloaded (`--data cifar10 --data-path DIR`),
  both standardised with the usual per-channel mean and standard deviation;
- the loop: cross entropy, Adam (its learning rate multiplied by --lr-decay after each epoch),
  mini-batches from a `DataLoader` shuffled by its own seeded generator, the test accuracy after
  every epoch, an optional wall-time budget (`--max-minutes`);
- the training utilities (`tinyzoo.train.TrainingRun`): a progress bar with the mean loss and accuracy
  of the last --log-every steps, a metrics log (`--log`), checkpoints (`--save`, `--resume`), a profile
  of the first step (`--trace`), and learning curves (`--plot`);
- `mpiexec -n W python examples/mlp_mnist.py --distributed`: data parallel over W MPI ranks, each taking
  --batch-size images a step (tinyzoo/train/data_parallel.py).

A checkpoint holds the model, Adam's moment estimates, the learning-rate schedule, tinyzoo's RNG
state (the dropout masks to come) and the DataLoader's state (epoch, batches taken, and its generator
at the epoch's start), so `--epochs 2 --save ck.npz` followed by `--epochs 5 --resume ck.npz` sees
the same batches and masks as one `--epochs 5` run, and logs bit-identical losses on the CPU — also
when the first run stopped part-way through an epoch (`--max-minutes`).

On a machine shared with other jobs, OPENBLAS_NUM_THREADS=1 is much faster: threads of a
multi-threaded BLAS then wait for each other (a convolution's weight-gradient product, [4, 16384] @
[16384, 36], took 1.9 s with two threads on a busy two-core machine and 6 ms with one).
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import numpy as np

import tinyzoo as tz
from tinyzoo import distributed, nn, optim
from tinyzoo.data import DataLoader, TensorDataset, load_cifar10, load_mnist
from tinyzoo.errors import DataError
from tinyzoo.nn import functional as F
from tinyzoo.train import MetricsLog, TrainingRun, check_device, data_parallel

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over the training pixels
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per channel, over the training images
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Images(NamedTuple):
    """A classification data set as standardised float32 images [N, C, H, W] and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return self.x_train.shape[1:]


def add_flags(parser: argparse.ArgumentParser, lr_decay: float = 1.0, test_size: int | None = None,
              max_minutes: float | None = None, precise_bn: int = 0) -> None:  # fmt: skip
    """The flags every classifier example takes, with per-example defaults (--lr and --batch-size: example_parser's)."""
    parser.add_argument("--data", choices=("mnist", "cifar10"), default="mnist")
    parser.add_argument(
        "--data-path",
        default=None,
        metavar="DIR",
        help="CIFAR-10: the folder of the python batches (cifar-10-batches-py), downloaded by hand",
    )
    parser.add_argument("--lr-decay", type=float, default=lr_decay, help="learning rate factor after each epoch")
    parser.add_argument("--train-size", type=int, default=None, help="train on the first N training images")
    parser.add_argument("--test-size", type=int, default=test_size, help="evaluate on the first N test images")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=max_minutes,
        help="stop training after this much wall time, then evaluate (0: no limit)",
    )
    parser.add_argument("--log-every", type=int, default=50, help="steps between metrics-log records")
    parser.add_argument(
        "--precise-bn",
        type=int,
        default=precise_bn,
        metavar="BATCHES",
        help="before each evaluation, re-estimate BatchNorm's statistics on this many training batches",
    )
    data_parallel.add_flag(parser)


def load_images(args: argparse.Namespace, pad_to: int | None = None) -> Images:
    """The data set the flags name, standardised; MNIST digits zero-padded to pad_to × pad_to if given."""
    if args.data == "cifar10":
        if args.data_path is None:
            raise DataError(
                "--data cifar10 needs --data-path DIR, the folder of the CIFAR-10 python batches "
                "(cifar-10-python.tar.gz from the CIFAR-10 page, extracted by hand)"
            )
        cifar = load_cifar10(args.data_path)
        mean = np.array(CIFAR10_MEAN, np.float32)[:, None, None]  # [3, 1, 1]
        std = np.array(CIFAR10_STD, np.float32)[:, None, None]

        def standardise(x: np.ndarray) -> np.ndarray:
            return (x.astype(np.float32) / 255 - mean) / std  # uint8 [N, 3, 32, 32] → float32

        train, test = slice(args.train_size), slice(args.test_size)
        return Images(standardise(cifar.x_train[train]), cifar.y_train[train],
                      standardise(cifar.x_test[test]), cifar.y_test[test], "CIFAR-10")  # fmt: skip
    mnist = load_mnist()
    margin = 0 if pad_to is None else (pad_to - 28) // 2

    def prepare(x: np.ndarray) -> np.ndarray:
        images = x.reshape(-1, 1, 28, 28)  # [N, 784] → [N, 1, 28, 28]
        images = np.pad(images, ((0, 0), (0, 0), (margin, margin), (margin, margin)))  # zero background
        return (images - MNIST_MEAN) / MNIST_STD

    name = "MNIST" if pad_to is None else f"MNIST padded to {pad_to}×{pad_to}"
    return Images(prepare(mnist.x_train[:args.train_size]), mnist.y_train[:args.train_size],
                  prepare(mnist.x_test[:args.test_size]), mnist.y_test[:args.test_size], name)  # fmt: skip


def prepare(args: argparse.Namespace, pad_to: int | None = None) -> tuple[str, Images]:
    """What every classifier example does first: check --device (and join the MPI job under --distributed), seed
    tinyzoo's RNG with --seed (the initial weights and dropout masks to come), and load the data set the flags
    name (see load_images)."""
    device = data_parallel.setup(args, check_device(args.device))  # --distributed: only rank 0 prints and saves
    tz.manual_seed(args.seed)
    return device, load_images(args, pad_to)


def precise_batch_norm(model: nn.Module, x: np.ndarray, device: str, batch_size: int, batches: int) -> None:
    """Precise BN (Wu & Johnson, 2021): BatchNorm's running statistics become the plain average over the
    first `batches` training batches under the current weights.

    The moving average (momentum 0.1) mixes statistics of the last few dozen steps' weights; early in
    training, when every step moves the weights a lot, it lags behind them and evaluation suffers
    (ResNet-18 after about 115 Adam steps on MNIST: 75 % test accuracy with the moving averages, 94.5 %
    with statistics re-estimated on 10 batches).
    """
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not norms or batches <= 0:
        return
    saved = [(m.momentum, m.num_batches_tracked.data) for m in norms]
    for m in norms:
        m.momentum = None  # a cumulative average: batch k enters with weight 1/k, so the first replaces the old
        m.num_batches_tracked.data = m.num_batches_tracked.data * 0
    model.eval()  # dropout stays off (and draws no random numbers); only the BatchNorm layers use batch statistics
    for m in norms:
        m.train()
    with tz.no_grad():
        for start in range(0, min(batches * batch_size, len(x)), batch_size):
            model(tz.tensor(x[start : start + batch_size], device=device))
    for m, (momentum, count) in zip(norms, saved):
        m.momentum, m.num_batches_tracked.data = momentum, count
    model.train()


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, device: str, batch_size: int) -> float:
    """Accuracy of argmax(model(x)) in evaluation mode (dropout off, BatchNorm's running statistics)."""
    model.eval()
    correct = 0
    with tz.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(tz.tensor(x[start : start + batch_size], device=device))  # [batch, classes]
            correct += int((logits.argmax(axis=1).numpy() == y[start : start + batch_size]).sum())
    model.train()
    return correct / len(x)


def measure_test_accuracy(model: nn.Module, images: Images, args: argparse.Namespace, device: str) -> float:
    """Test accuracy, after re-estimating BatchNorm's statistics when --precise-bn asks for it."""
    precise_batch_norm(model, images.x_train, device, args.batch_size, args.precise_bn)
    return evaluate(model, images.x_test, images.y_test, device, args.batch_size)


def train_step(model: nn.Module, optimizer: optim.Optimizer, x: tz.Tensor, y: object) -> tuple[tz.Tensor, object]:
    """One Adam step on the cross entropy of a batch; returns (loss, batch accuracy), both still on the device."""
    logits = model(x)  # [batch, classes]
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss, (logits.argmax(axis=1).data == y).mean()


def run(name: str, model: nn.Module, images: Images, args: argparse.Namespace, device: str) -> float:
    """Train `model` on `images` as the flags say; print, save, plot, and return the final test accuracy."""
    model.to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.ExponentialLR(optimizer, gamma=args.lr_decay)  # lr = lr₀ · decay^epoch
    loader = DataLoader(TensorDataset(images.x_train, images.y_train), args.batch_size, shuffle=True,
                        seed=args.seed, device=device, shard=data_parallel.shard())  # fmt: skip
    training = TrainingRun(args, model, optimizer, total=args.epochs * len(loader), desc=name,
                           log_every=args.log_every, scheduler=scheduler, loader=loader)  # fmt: skip
    optimizer = data_parallel.prepare(model, optimizer)  # --distributed: the step averages gradients over ranks
    step = training.start
    if args.resume:
        print(f"resumed {args.resume} at step {step} (epoch {loader.epoch}, batch {loader.state_dict()['position']})")
    print(f"{name}: {model.num_parameters():,} parameters; {images.name}, {len(images.x_train)} training and "
          f"{len(images.x_test)} test images; {len(loader)} steps per epoch on {device}")  # fmt: skip
    start = time.perf_counter()
    deadline = start + 60 * args.max_minutes if args.max_minutes and args.max_minutes > 0 else None
    test_accuracy, out_of_time = None, False
    with training:
        while loader.epoch < args.epochs and not out_of_time:
            epoch = loader.epoch
            for xb, yb in loader:
                step += 1
                with training.trace(step):
                    loss, accuracy = train_step(model, optimizer, tz.tensor(xb, device=device), yb)
                training.accumulate(loss=loss, acc=accuracy)
                training.bar.update(1)
                if step % args.log_every == 0:
                    training.log(step)
                # --distributed: every rank stops at the same step, when rank 0's clock says so
                if deadline is not None and distributed.broadcast_object(time.perf_counter() > deadline):
                    out_of_time = True
                    break
            if loader.epoch > epoch:  # the epoch ran to its end
                scheduler.step()
                test_accuracy = measure_test_accuracy(model, images, args, device)
                training.metrics_log.log(step, test_acc=test_accuracy)
                print(f"\nepoch {loader.epoch}: test accuracy {test_accuracy:.2%}", flush=True)
    seconds = time.perf_counter() - start

    training.save(step)
    if test_accuracy is None or out_of_time:  # stopped mid-epoch, or resumed a run that had finished
        test_accuracy = measure_test_accuracy(model, images, args, device)
        training.metrics_log.log(step, test_acc=test_accuracy)
    stopped = f" (stopped by --max-minutes {args.max_minutes:g})" if out_of_time else ""
    print(f"test accuracy {test_accuracy:.2%} on {len(images.x_test)} test images after {step} steps "
          f"({step / len(loader):.2f} epochs) in {seconds:.0f} s of training{stopped}")  # fmt: skip
    if args.plot:
        plot_curves(training.metrics_log, args.plot, name, args.log_every)
    return test_accuracy


def plot_curves(log: MetricsLog, path: str, name: str, log_every: int) -> None:
    """Two panels: the training loss, and the training (running) and test accuracy, against the step."""
    from tinyzoo import plot

    plot.panels({"training loss (cross entropy)": {f"{name}, train": log.series("loss")},
                 "accuracy": {f"{name}, train (mean of {log_every} steps)": log.series("acc"),
                              f"{name}, test": log.series("test_acc")}},
                path, xlabel="training step")  # fmt: skip
    print(f"figure written to {path}")

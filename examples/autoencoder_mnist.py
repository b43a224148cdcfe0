"""An autoencoder on MNIST: squeeze each digit into 64 numbers and rebuild it (see tinyzoo/models/autoencoder.py).

    python examples/autoencoder_mnist.py --device cpu [--arch dense|conv] [--loss bce|mse] [--epochs 5]
                                         [--code-size 64] [--plot ae_reconstructions.png]

Prints a progress bar with the running training loss and, at the end, the mean squared error per pixel
between the test images and their reconstructions. --plot draws test digits above their reconstructions.
"""

from __future__ import annotations

import sys

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.data import DataLoader, TensorDataset, load_mnist
from tinyzoo.models.autoencoder import build_autoencoder, reconstruct, reconstruction_loss
from tinyzoo.train import TrainingRun, check_device, example_parser, run_main


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the autoencoder's)."""
    parser = example_parser(__doc__.splitlines()[0], epochs=5, lr=1e-3, batch_size=128)
    parser.add_argument("--arch", choices=["dense", "conv"], default="dense", help="784-256-64-256-784 or conv")
    parser.add_argument("--loss", choices=["bce", "mse"], default="bce", help="reconstruction loss to train on")
    parser.add_argument("--code-size", type=int, default=64, help="numbers in the bottleneck code z")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    return parser.parse_args(argv)


def test_mse(model, x_test: np.ndarray, device: str, batch_size: int = 1000) -> float:
    """Mean over test images and pixels of (x̂ - x)²."""
    total = 0.0
    for start in range(0, len(x_test), batch_size):
        x = tz.tensor(x_test[start : start + batch_size], device=device)
        total += float(((reconstruct(model, x) - x) ** 2).sum().item())
    return total / x_test.size


def train_step(model, optimizer: optim.Optimizer, x: tz.Tensor, loss_kind: str) -> tz.Tensor:
    """One Adam step on the reconstruction loss of the batch x [batch, 784]; returns the loss (on the device)."""
    loss = reconstruction_loss(model(x), x, loss_kind)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def main(argv: list[str] | None = None) -> int:
    """Train the autoencoder on MNIST and report the test reconstruction MSE."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    data = load_mnist()
    x_train = data.x_train[: args.train_size]
    model = build_autoencoder(args.arch, args.code_size).to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(TensorDataset(x_train), batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=device)  # fmt: skip
    training = TrainingRun(args, model, optimizer, total=args.epochs * len(loader), desc=f"AE-{args.arch}",
                           loader=loader)  # fmt: skip
    step = training.start  # a checkpoint is written at the end of an epoch
    with training:
        for epoch in range(step // len(loader) + 1, args.epochs + 1):
            for (x,) in loader:
                step += 1
                with training.trace(step):
                    loss = train_step(model, optimizer, tz.tensor(x, device=device), args.loss)
                training.bar.update(1, epoch=epoch)
                if step % 50 == 0:
                    training.log(step, loss=loss.item())

    training.save()
    mse = test_mse(model, data.x_test, device)
    print(f"test MSE per pixel {mse:.5f} ({args.arch} autoencoder, {args.loss} loss, code {args.code_size}, "
          f"{args.epochs} epochs)")  # fmt: skip
    if args.plot:
        plot_reconstructions(model, data.x_test, device, args, mse)
    return 0


def plot_reconstructions(model, x_test: np.ndarray, device: str, args, mse: float, count: int = 8) -> None:
    """Rows of test digits, each followed by a row of their reconstructions."""
    from tinyzoo import plot

    x = x_test[: 2 * count]
    x_hat = reconstruct(model, tz.tensor(x, device=device)).numpy()
    rows = [x[:count], x_hat[:count], x[count:], x_hat[count:]]
    images = np.concatenate(rows).reshape(-1, 28, 28)
    labels = (["input"] * count + ["reconstruction"] * count) * 2
    title = f"{args.arch} autoencoder ({args.loss} loss, code {args.code_size}): test MSE {mse:.4f}"
    plot.image_grid(images, args.plot, columns=count, title=title, labels=labels)
    print(f"figure written to {args.plot}")


if __name__ == "__main__":
    sys.exit(run_main(main))

"""A DCGAN on MNIST: a generator learns to draw digits by fooling a discriminator (see tinyzoo/models/gan.py).

    python examples/gan_mnist.py --device cpu [--steps 2000] [--channels 32] [--z-dim 64] [--batch-size 64]
                                 [--plot gan.png] [--plot-every 500] [--classifier mnist_mlp.npz]

Prints a progress bar with both losses and D's mean output on real and generated images; stops with exit
code 1 if a loss stops being finite. At the end, a small MLP classifier trained on real MNIST (or loaded
from --classifier, where it is also cached) scores generated samples: the inception-like score
exp(E KL(p(y|x) ‖ p(y))) (at most 10), the mean confidence max_y p(y|x) and the entropy of the class
distribution (log 10 = 2.303 nats when all digits appear equally often), beside the same numbers for real
test digits. --plot writes <stem>_step<N>.png (64 samples of fixed noise every --plot-every steps),
<stem>_progress.png (the same 8 noise vectors over training), <stem>_samples.png and <stem>_losses.png.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.data import DataLoader, TensorDataset, load_mnist
from tinyzoo.models.gan import (
    GAN,
    classifier_score,
    discriminator_loss,
    from_gan_range,
    generator_loss,
    to_gan_range,
)
from tinyzoo.train import (
    MetricsLog,
    TrainingRun,
    accuracy,
    check_device,
    example_parser,
    fit_classifier,
    predict,
    run_main,
)


def parse_args(argv: list[str] | None):
    """The example's flags (the shared ones plus the GAN's)."""
    parser = example_parser(__doc__.splitlines()[0], steps=2000, lr=2e-4, batch_size=64)
    parser.add_argument("--z-dim", type=int, default=64, help="size of the noise vector z")
    parser.add_argument("--channels", type=int, default=32, help="c: feature maps of G's last and D's first layer")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam's β1 (DCGAN uses 0.5)")
    parser.add_argument("--plot-every", type=int, default=500, help="steps between sample grids (with --plot)")
    parser.add_argument("--samples", type=int, default=10_000, help="generated images the classifier scores")
    parser.add_argument("--classifier", default=None, metavar="PATH", help="cache of the scoring classifier (.npz)")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    return parser.parse_args(argv)


def endless(loader: DataLoader) -> Iterator[tuple]:
    """The loader's batches, epoch after epoch."""
    if len(loader) == 0:
        raise ValueError("there are fewer training images than one batch")
    while True:
        yield from loader


def figure_path(base: str, name: str) -> Path:
    """<stem>_<name>.png beside `base`."""
    base = Path(base)
    return base.with_name(f"{base.stem}_{name}{base.suffix or '.png'}")


def train_step(gan: GAN, g_optimizer: optim.Optimizer, d_optimizer: optim.Optimizer,
               real: tz.Tensor) -> dict[str, tz.Tensor]:  # fmt: skip
    """One Adam step of D, then one of G, on real images [batch, 1, 28, 28] in [-1, 1]; returns the metrics
    (scalar tensors, still on the device)."""
    fake = gan.generator(gan.noise(real.shape[0], real.device))  # G(z)  [batch, 1, 28, 28]

    real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake.detach())
    loss_d = discriminator_loss(real_logits, fake_logits)  # D's step: G(z) is a constant here
    d_optimizer.zero_grad()
    loss_d.backward()
    d_optimizer.step()

    loss_g = generator_loss(gan.discriminator(fake))  # G's step, through the updated D
    g_optimizer.zero_grad()
    loss_g.backward()
    g_optimizer.step()
    return {"loss_D": loss_d, "loss_G": loss_g, "D(x)": tz.sigmoid(real_logits).mean(),
            "D(G(z))": tz.sigmoid(fake_logits).mean()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Train the DCGAN, plot samples as it learns, and score the final samples with an MNIST classifier."""
    args = parse_args(argv)
    device = check_device(args.device)
    tz.manual_seed(args.seed)
    data = load_mnist()
    gan = GAN(args.z_dim, args.channels).to(device)
    betas = (args.beta1, 0.999)
    g_optimizer = optim.Adam(gan.generator.parameters(), lr=args.lr, betas=betas)
    d_optimizer = optim.Adam(gan.discriminator.parameters(), lr=args.lr, betas=betas)
    loader = DataLoader(TensorDataset(data.x_train[: args.train_size]), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, seed=args.seed, device=device)  # fmt: skip
    training = TrainingRun(args, gan, g_optimizer, total=args.steps, desc="DCGAN", d_optimizer=d_optimizer,
                           loader=loader)  # fmt: skip
    fixed_z = np.random.default_rng(args.seed).standard_normal((64, args.z_dim)).astype(np.float32)  # same z each grid
    snapshots, batches = [], endless(loader)
    metrics: dict[str, float] = {}

    with training:
        for step in training.steps():
            (x,) = next(batches)
            real = to_gan_range(tz.tensor(x, device=device)).reshape(-1, 1, 28, 28)  # [batch, 1, 28, 28] in [-1, 1]
            with training.trace(step):
                step_metrics = train_step(gan, g_optimizer, d_optimizer, real)
            if step % 10 == 0 or step == args.steps:  # read this step's metrics to the host
                metrics = {name: value.item() for name, value in step_metrics.items()}
                if not all(np.isfinite(v) for v in metrics.values()):
                    print(f"step {step}: a loss is no longer finite ({metrics}); stopping", file=sys.stderr)
                    return 1
                if step % 10 == 0:
                    training.log(step, **metrics)
            if args.plot and (step % args.plot_every == 0 or step == args.steps):
                snapshots.append((step, plot_samples(gan, fixed_z, args, step, device)))

    training.save()
    print(f"losses stayed finite for {args.steps} steps; last step: "
          + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))  # fmt: skip
    score_samples(gan, data, args, device)
    if args.plot:
        plot_run(gan, training.metrics_log, snapshots, fixed_z, args, device)
    return 0


def scoring_classifier(data, args, device: str) -> nn.Module:
    """An MLP 784-256-10 trained on real MNIST (or read from the --classifier cache)."""
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
    if args.classifier and Path(args.classifier).exists():
        model.load_state_dict(tz.load(args.classifier))
        return model
    fit_classifier(model, data.x_train, data.y_train, args.classifier_epochs, device, seed=args.seed,
                   desc="scoring classifier")  # fmt: skip
    if args.classifier:
        tz.save(dict(model.state_dict()), args.classifier)
    return model


def score_samples(gan: GAN, data, args, device: str) -> None:
    """Print the classifier-based scores of generated samples and, for reference, of real test digits."""
    classifier = scoring_classifier(data, args, device)
    print(f"scoring classifier: test accuracy {accuracy(classifier, data.x_test, data.y_test, device):.2%}")

    def class_probs(images: tz.Tensor) -> tz.Tensor:
        """p(y | x) for images [n, 784] with pixels in [0, 1]."""
        return tz.softmax(classifier(images), axis=-1)

    def sample_probs(z: tz.Tensor) -> tz.Tensor:
        return class_probs(from_gan_range(gan.sample(z)).reshape(z.shape[0], -1))

    z = np.random.default_rng([args.seed, 1]).standard_normal((args.samples, args.z_dim)).astype(np.float32)
    generated, real = predict(sample_probs, z, device), predict(class_probs, data.x_test, device)  # [n, 10] each
    for name, probs in (("generated", generated), ("real test", real)):
        s = classifier_score(tz.tensor(probs))
        print(f"{name:>9} digits: classifier score {s['score']:.2f} / 10, confidence {s['confidence']:.3f}, "
              f"class entropy {s['class_entropy']:.3f} nats (uniform {np.log(10):.3f}), "
              f"classes {np.bincount(probs.argmax(axis=1), minlength=10).tolist()}")  # fmt: skip


def plot_samples(gan: GAN, fixed_z: np.ndarray, args, step: int, device: str) -> np.ndarray:
    """Write the grid of samples of the fixed noise at this step; return the images [64, 28, 28] in [0, 1]."""
    from tinyzoo import plot

    images = from_gan_range(gan.sample(tz.tensor(fixed_z, device=device))).numpy()[:, 0]
    plot.image_grid(images, figure_path(args.plot, f"step{step:05d}"), columns=8, title=f"DCGAN samples, step {step}")
    return images


def plot_run(gan: GAN, log: MetricsLog, snapshots: list, fixed_z: np.ndarray, args, device: str) -> None:
    """Progress of 8 fixed noise vectors over training, the final samples, and the loss curves."""
    from tinyzoo import plot

    paths = [figure_path(args.plot, name) for name in ("samples", "losses", "progress")]
    final = from_gan_range(gan.sample(tz.tensor(fixed_z, device=device))).numpy()[:, 0]  # [64, 28, 28]
    plot.image_grid(final, paths[0], columns=8, title=f"DCGAN samples after {args.steps} steps")
    plot.panels(
        {
            "loss": {"discriminator L_D": log.series("loss_D"), "generator L_G": log.series("loss_G")},
            "mean D output": {"D(x), real": log.series("D(x)"), "D(G(z)), generated": log.series("D(G(z))")},
        },
        paths[1],
    )
    if snapshots:
        columns = 8
        rows = np.concatenate([images[:columns] for _, images in snapshots])
        labels = [f"step {step}" if i == 0 else "" for step, _ in snapshots for i in range(columns)]
        plot.image_grid(rows, paths[2], columns=columns, labels=labels, title="the same noise z over training")
    print("figures written to " + ", ".join(map(str, paths)) + f" and {figure_path(args.plot, 'step*')}")


if __name__ == "__main__":
    sys.exit(run_main(main))

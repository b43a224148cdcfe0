"""Autoencoders: learn to copy an image through a narrow code (Rumelhart, Hinton & Williams 1986;
Hinton & Salakhutdinov 2006).

An encoder f_θ squeezes an image x into a code z with far fewer numbers than pixels, and a decoder g_φ
rebuilds the image from the code alone:

    z = f_θ(x)                  x̂ = σ(g_φ(z))                 (x, x̂ ∈ [0, 1]^784,  z ∈ ℝ^64)

Nothing tells the network what z should mean; the bottleneck does: to rebuild 784 pixels from 64
numbers, the code has to keep what varies between digits (stroke, slant, thickness) and drop what
does not. Training minimises a reconstruction loss over the pixels i, either the binary cross-entropy
(each pixel an independent Bernoulli with mean x̂_i, the natural choice for pixels in [0, 1])

    L_BCE = -Σ_i [x_i log x̂_i + (1 - x_i) log(1 - x̂_i)]

or the squared error L_MSE = Σ_i (x̂_i - x_i)². The decoder emits logits g_φ(z), so the BCE is computed
from them directly (`binary_cross_entropy_with_logits`, stable for confident pixels) and σ is applied
only when an image is wanted.

Two variants share this interface (both take and return flat images [batch, 784]):

    dense:  784 → 256 → 64 → 256 → 784                       (Linear + ReLU)
    conv:   [1, 28, 28] →Conv s2→ [16, 14, 14] →Conv s2→ [32, 7, 7] →Linear→ 64
            64 →Linear→ [32, 7, 7] →ConvT s2→ [16, 14, 14] →ConvT s2→ [1, 28, 28]

The transposed convolutions (stride 2, kernel 3, padding 1, output_padding 1) exactly undo the
strided convolutions' halving of the image size.
"""

from __future__ import annotations

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.nn import functional as F
from tinyzoo.nn.conv import Conv2d, ConvTranspose2d

IMAGE_SIDE = 28
PIXELS = IMAGE_SIDE * IMAGE_SIDE


class Autoencoder(nn.Module):
    """x [batch, 784] → code [batch, code_size] → logits [batch, 784]; subclasses build `encoder`/`decoder`."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: tz.Tensor) -> tz.Tensor:
        """The code z = f(x): [batch, 784] → [batch, code_size]."""
        return self.encoder(x)

    def decode(self, z: tz.Tensor) -> tz.Tensor:
        """The reconstruction's logits g(z): [batch, code_size] → [batch, 784]."""
        return self.decoder(z)

    def forward(self, x: tz.Tensor) -> tz.Tensor:
        """Logits of the reconstruction of x [batch, 784] (apply σ for pixels)."""
        return self.decode(self.encode(x))


class DenseAutoencoder(Autoencoder):
    """784 → hidden → code → hidden → 784 with ReLU between the Linear layers."""

    def __init__(self, hidden: int = 256, code_size: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Linear(hidden, code_size))
        self.decoder = nn.Sequential(nn.Linear(code_size, hidden), nn.ReLU(), nn.Linear(hidden, PIXELS))


class ConvAutoencoder(Autoencoder):
    """Two stride-2 convolutions down to [32, 7, 7] and a Linear code; two transposed convolutions back up."""

    def __init__(self, channels: int = 16, code_size: int = 64) -> None:
        super().__init__()
        c1, c2, side = channels, 2 * channels, IMAGE_SIDE // 4
        self.encoder = nn.Sequential(
            nn.Unflatten(1, IMAGE_SIDE, IMAGE_SIDE),  # [batch, 1, 28, 28]
            Conv2d(1, c1, 3, stride=2, padding=1), nn.ReLU(),  # [batch, c1, 14, 14]
            Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),  # [batch, c2, 7, 7]
            nn.Flatten(),  # [batch, c2·49]
            nn.Linear(c2 * side * side, code_size),  # [batch, code]
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(code_size, c2 * side * side), nn.ReLU(),  # [batch, c2·49]
            nn.Unflatten(c2, side, side),  # [batch, c2, 7, 7]
            ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # [batch, c1, 14, 14]
            ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),  # [batch, 1, 28, 28]
            nn.Flatten(),  # [batch, 784]
        )  # fmt: skip


ARCHITECTURES = {"dense": DenseAutoencoder, "conv": ConvAutoencoder}


def build_autoencoder(arch: str, code_size: int = 64) -> Autoencoder:
    """A "dense" or "conv" autoencoder with a code of `code_size` numbers."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown autoencoder architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](code_size=code_size)


def reconstruction_loss(logits: tz.Tensor, x: tz.Tensor, kind: str = "bce") -> tz.Tensor:
    """Per-pixel mean BCE(σ(logits), x) ("bce") or squared error (σ(logits) - x)² ("mse")."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, x)
    if kind == "mse":
        return F.mse_loss(tz.sigmoid(logits), x)
    raise ValueError(f"unknown reconstruction loss {kind!r}; use 'bce' or 'mse'")


def reconstruct(model: Autoencoder, x: tz.Tensor) -> tz.Tensor:
    """The reconstructed pixels σ(g(f(x))) in [0, 1], without recording a graph."""
    with tz.no_grad():
        return tz.sigmoid(model(x))


def demo() -> tuple[Autoencoder, tz.Tensor]:
    """The dense autoencoder of examples/autoencoder_mnist.py and a batch of flattened MNIST-sized images
    (for `python -m tinyzoo explain autoencoder`)."""
    return build_autoencoder("dense"), tz.rand(4, 784)

"""Capsule Network: Dynamic Routing Between Capsules (Sabour, Frosst & Hinton, 2017).

A capsule is a group of neurons whose activity vector stands for one entity: its *length* is the
probability that the entity is present, its *direction* encodes the entity's pose (position, stroke
thickness, skew, ...). The network has three layers:

    x [B, 1, 28, 28]
      → Conv1: 256 maps, 9×9, stride 1, ReLU                       [B, 256, 20, 20]
      → PrimaryCaps: conv 32·8 maps, 9×9, stride 2, cut into
        32 maps of 8-D capsules on a 6×6 grid, squash               u [B, 1152, 8]
      → DigitCaps: 10 capsules of 16 D by routing-by-agreement      v [B, 10, 16]

The non-linearity of a capsule is the squash, which keeps the direction and maps the length into [0, 1):

    v = squash(s) = |s|² / (1 + |s|²) · s / |s|

Every primary capsule i predicts every digit capsule j through its own transformation matrix
W_ij [16, 8] (a pose-to-pose map learned per pair):

    û_j|i = W_ij u_i                        W [1152, 10, 16, 8]; û [B, 1152, 10, 16]

and dynamic routing decides how much each prediction counts (`tinyzoo.kernels.dynamic_routing`):

    b_ij = 0;  repeat r times:  c_i = softmax(b_i),  s_j = Σ_i c_ij û_j|i,  v_j = squash(s_j),
                                b_ij += û_j|i · v_j

Predictions that agree with the consensus v_j get routed more strongly to j. The gradient flows
through all iterations (the paper's code), not through the last one alone.

Loss. The length ‖v_k‖ of digit capsule k is the network's confidence that digit k is present. The
*margin loss* (squared hinges, summed over the classes, T_k = 1 when k is the label):

    L_margin = Σ_k T_k max(0, m⁺ - ‖v_k‖)² + λ (1 - T_k) max(0, ‖v_k‖ - m⁻)²,   m⁺ = 0.9, m⁻ = 0.1, λ = 0.5

A *decoder* (3 fully connected layers 512 → 1024 → 784, ReLU, ReLU, sigmoid) reconstructs the image
from the digit capsules with all but one masked to zero: the true class during training, the longest
capsule at test time. Its loss is the *sum* (over the 784 pixels) of squared errors, scaled down so it
does not dominate:

    L = L_margin + 0.0005 · Σ_pixels (x - x̂)²                     (both averaged over the batch)

Training inputs are shifted at random by up to 2 pixels in each direction (zero padding), the only
augmentation of the paper.

Sizes. `CapsNetConfig.paper()` is the paper's network (8.2M parameters, ~200M multiply-adds per image
in PrimaryCaps alone: a GPU job). The default `CapsNetConfig()` keeps the architecture and the
routing but is shrunk to train on two CPU cores:

    Conv1 64 maps instead of 256; PrimaryCaps 8 maps of 8-D capsules (288 capsules) instead of 32 (1152);
    decoder 256 → 512 → 784 instead of 512 → 1024 → 784.

Everything else (kernel sizes, strides, 16-D digit capsules, 3 routing iterations, the losses and
their constants, the shift augmentation) is the paper's. It has 1.28M parameters (the paper's: 8.2M)
and reaches 99.06 % MNIST test accuracy after 3 epochs (examples/capsnet_mnist.py; the paper reports
99.75 % for its network with shifts, trained far longer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, rng
from tinyzoo.backend import xp_of
from tinyzoo.kernels import dynamic_routing, squash
from tinyzoo.nn import functional as F
from tinyzoo.nn.conv import Conv2d

__all__ = [
    "CapsNet",
    "CapsNetConfig",
    "CapsNetOutput",
    "capsnet_loss",
    "margin_loss",
    "mask_capsules",
    "perturbed_reconstructions",
    "random_shift",
    "reconstruction_loss",
]


@dataclass(frozen=True)
class CapsNetConfig:
    """The sizes of a CapsNet; the defaults are the CPU-sized network (see the module docstring)."""

    image_size: int = 28
    in_channels: int = 1
    conv_channels: int = 64  # paper: 256
    conv_kernel: int = 9
    primary_maps: int = 8  # paper: 32 maps of capsules
    primary_dim: int = 8
    primary_kernel: int = 9
    primary_stride: int = 2
    num_classes: int = 10
    digit_dim: int = 16
    routing_iterations: int = 3
    decoder_hidden: tuple[int, int] = (256, 512)  # paper: (512, 1024)

    @classmethod
    def paper(cls) -> CapsNetConfig:
        """The network of the paper (Figure 1 and 2)."""
        return cls(conv_channels=256, primary_maps=32, decoder_hidden=(512, 1024))

    @property
    def primary_grid(self) -> int:
        """Side of the PrimaryCaps grid: 28 → 20 (Conv1) → 6 (PrimaryCaps) for MNIST."""
        conv1 = self.image_size - self.conv_kernel + 1
        return (conv1 - self.primary_kernel) // self.primary_stride + 1

    @property
    def num_primary(self) -> int:
        """How many primary capsules there are (1152 in the paper)."""
        return self.primary_maps * self.primary_grid**2


@dataclass
class CapsNetOutput:
    """One forward pass: the digit capsules, their lengths and the reconstructions."""

    digit_caps: tz.Tensor  # v [B, classes, digit_dim]
    lengths: tz.Tensor  # ‖v_k‖ [B, classes]
    reconstruction: tz.Tensor  # x̂ [B, C·H·W], in (0, 1)


class PrimaryCaps(nn.Module):
    """A convolution whose output channels are cut into `maps` groups of `dim`-D capsules, then squashed."""

    def __init__(self, in_channels: int, maps: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.maps, self.dim = maps, dim
        self.conv = Conv2d(in_channels, maps * dim, kernel, stride=stride)

    def forward(self, x: tz.Tensor) -> tz.Tensor:
        """[B, C, H, W] → u [B, maps·grid², dim]."""
        h = self.conv(x)  # [B, maps·dim, g, g]
        batch, _, g, _ = h.shape
        h = h.reshape(batch, self.maps, self.dim, g, g).permute(0, 1, 3, 4, 2)  # [B, maps, g, g, dim]
        return squash(h.reshape(batch, self.maps * g * g, self.dim))  # [B, in_caps, dim]


class DigitCaps(nn.Module):
    """û_j|i = W_ij u_i for every pair (i, j), then dynamic routing to the output capsules."""

    def __init__(self, in_caps: int, in_dim: int, out_caps: int, out_dim: int, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations
        # W ~ N(0, σ²) with σ² = out_caps / (in_caps · in_dim) (the paper does not give its initialisation).
        # With the first iteration's uniform couplings 1/out_caps, ‖s_j‖² ≈ out_dim / (out_caps · in_dim) · ‖u‖²
        # (≈ 0.2 ‖u‖²) whatever the number of primary capsules: the squash starts on a useful slope.
        std = np.sqrt(out_caps / (in_caps * in_dim))
        weight = rng.generator().standard_normal((in_caps, out_caps, out_dim, in_dim)) * std
        self.weight = nn.Parameter(weight.astype(np.float32))  # W [in_caps, out_caps, out_dim, in_dim]

    def predictions(self, u: tz.Tensor) -> tz.Tensor:
        """û [B, in_caps, out_caps, out_dim] from u [B, in_caps, in_dim], as one einsum (a batched GEMM)."""
        return tz.einsum("ijdk,bik->bijd", self.weight, u)

    def forward(self, u: tz.Tensor, *, impl: str | None = None) -> tz.Tensor:
        """u [B, in_caps, in_dim] → v [B, out_caps, out_dim]."""
        return dynamic_routing(self.predictions(u), self.iterations, impl=impl)


class CapsNet(nn.Module):
    """Conv1 → PrimaryCaps → DigitCaps (routing) plus the masked reconstruction decoder."""

    def __init__(self, config: CapsNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config if config is not None else CapsNetConfig()
        self.conv1 = Conv2d(c.in_channels, c.conv_channels, c.conv_kernel)
        self.primary = PrimaryCaps(c.conv_channels, c.primary_maps, c.primary_dim, c.primary_kernel,
                                   c.primary_stride)  # fmt: skip
        self.digits = DigitCaps(c.num_primary, c.primary_dim, c.num_classes, c.digit_dim, c.routing_iterations)
        hidden1, hidden2 = c.decoder_hidden
        self.decoder = nn.Sequential(
            nn.Linear(c.num_classes * c.digit_dim, hidden1), nn.ReLU(),
            nn.Linear(hidden1, hidden2), nn.ReLU(),
            nn.Linear(hidden2, c.in_channels * c.image_size**2), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, x: tz.Tensor, *, impl: str | None = None) -> tz.Tensor:
        """Images x [B, C, H, W] → digit capsules v [B, classes, digit_dim]."""
        h = self.conv1(x).relu()  # [B, conv_channels, 20, 20]
        u = self.primary(h)  # [B, num_primary, primary_dim]
        return self.digits(u, impl=impl)  # [B, classes, digit_dim]

    def decode(self, v: tz.Tensor, labels: np.ndarray) -> tz.Tensor:
        """Reconstruct images [B, C·H·W] from the capsules v [B, classes, dim] of the classes `labels` [B]."""
        return self.decoder(mask_capsules(v, labels).flatten(1))

    def forward(self, x: tz.Tensor, labels: np.ndarray | None = None, *, impl: str | None = None) -> CapsNetOutput:
        """Classify x and reconstruct it from the true class (`labels`) or, without labels, the longest capsule."""
        v = self.encode(x, impl=impl)
        lengths = tz.norm(v, axis=-1)  # [B, classes]
        chosen = labels if labels is not None else lengths.data.argmax(axis=1)
        return CapsNetOutput(v, lengths, self.decode(v, chosen))


def _one_hot(labels: np.ndarray, like: tz.Tensor) -> tz.Tensor:
    """One-hot rows [B, like.shape[1]] in like's dtype and on like's device (F.one_hot answers on the CPU)."""
    return F.one_hot(labels, like.shape[1]).astype(like.dtype).to(like.device)


def mask_capsules(v: tz.Tensor, labels: np.ndarray) -> tz.Tensor:
    """v [B, classes, dim] with every capsule but the one of `labels` [B] set to zero."""
    return v * _one_hot(labels, v).unsqueeze(-1)


def margin_loss(lengths: tz.Tensor, labels: np.ndarray, m_plus: float = 0.9, m_minus: float = 0.1,
                lam: float = 0.5) -> tz.Tensor:  # fmt: skip
    """Σ_k T_k max(0, m⁺ - ‖v_k‖)² + λ (1 - T_k) max(0, ‖v_k‖ - m⁻)², averaged over the batch."""
    present = _one_hot(labels, lengths)  # T_k [B, classes]
    too_short = (m_plus - lengths).relu() ** 2
    too_long = (lengths - m_minus).relu() ** 2
    return (present * too_short + lam * (1 - present) * too_long).sum(axis=1).mean()


def reconstruction_loss(reconstruction: tz.Tensor, images: tz.Tensor) -> tz.Tensor:
    """Σ over pixels of (x̂ - x)², averaged over the batch (the paper's sum of squared errors)."""
    return ((reconstruction - images.reshape(reconstruction.shape)) ** 2).sum(axis=1).mean()


def capsnet_loss(out: CapsNetOutput, images: tz.Tensor, labels: np.ndarray,
                 reconstruction_weight: float = 0.0005) -> tuple[tz.Tensor, tz.Tensor, tz.Tensor]:  # fmt: skip
    """(total, margin, reconstruction): L = L_margin + 0.0005 · L_reconstruction."""
    margin = margin_loss(out.lengths, labels)
    recon = reconstruction_loss(out.reconstruction, images)
    return margin + reconstruction_weight * recon, margin, recon


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image [B, C, H, W] by up to `max_shift` pixels each way (zero padding, then a random crop).

    Vectorised: one gather with per-image row and column indices into the padded batch. Works on
    NumPy and CuPy arrays (the offsets are drawn on the host).
    """
    xp = xp_of(images)
    batch, _, height, width = images.shape
    pad = max_shift
    padded = xp.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # [B, C, H+2p, W+2p]
    dy, dx = (xp.asarray(rng.integers(0, 2 * pad + 1, size=batch)) for _ in range(2))  # crop corners [B]
    rows = dy[:, None] + xp.arange(height)  # [B, H]
    cols = dx[:, None] + xp.arange(width)  # [B, W]
    sample = xp.arange(batch)[:, None, None]
    shifted = padded.transpose(0, 2, 3, 1)[sample, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return xp.ascontiguousarray(shifted.transpose(0, 3, 1, 2))


def perturbed_reconstructions(model: CapsNet, v: tz.Tensor, label: int, deltas: np.ndarray) -> np.ndarray:
    """The paper's Figure 4: decode one digit capsule v [classes, dim] with its class-`label` capsule's
    dimension d moved by each delta. Returns images [dim, len(deltas), C·H·W] (row d varies dimension d)."""
    dim = v.shape[-1]
    xp = xp_of(v.data)
    offsets = xp.zeros((dim, len(deltas), dim), dtype=v.dtype)  # offsets[d, k] = deltas[k] · e_d
    offsets[xp.arange(dim), :, xp.arange(dim)] = xp.asarray(deltas, dtype=v.dtype)
    caps = xp.repeat(v.data[None], dim * len(deltas), axis=0)  # [dim·K, classes, dim]
    caps[:, label] += offsets.reshape(-1, dim)
    with tz.no_grad():
        images = model.decode(tz.Tensor(caps), xp.full(dim * len(deltas), label))
    return images.numpy().reshape(dim, len(deltas), -1)


def demo() -> tuple[CapsNet, tz.Tensor]:
    """The CPU-sized CapsNet of examples/capsnet_mnist.py and a batch of MNIST-sized images
    (for `python -m tinyzoo explain capsnet`)."""
    return CapsNet(), tz.rand(4, 1, 28, 28)

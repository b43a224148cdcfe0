"""Generative adversarial networks, DCGAN-style (Goodfellow et al. 2014; Radford, Metz & Chintala 2016).

Two networks play a game. The generator G maps noise z ~ N(0, I) to an image G(z); the discriminator D
maps an image to a logit whose sigmoid D(x) is its belief that x came from the data rather than from G.
D is trained as an ordinary binary classifier, real images labelled 1 and generated ones 0:

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]

The original minimax game has G minimise E_z[log(1 - D(G(z)))], but early in training D rejects G's
samples confidently, where that loss is flat and G learns nothing. The non-saturating loss has G
maximise the log-probability that D is fooled instead, which has the same fixed point and strong
gradients exactly when G is doing badly:

    L_G = -E_z[log D(G(z))]

Both losses are binary cross-entropies on D's logits (`binary_cross_entropy_with_logits`, stable for
confident logits), and the two networks take alternating Adam steps (lr 2·10⁻⁴, β₁ = 0.5 as in DCGAN).

DCGAN's architectural rules, scaled down for MNIST on a CPU:

    G: z [64] →Linear→ [2c·7·7] →BN, ReLU→ [2c, 7, 7] →ConvT 4/2→ [c, 14, 14] →BN, ReLU→ ConvT 4/2 → [1, 28, 28] → tanh
    D: [1, 28, 28] →Conv 4/2→ [c, 14, 14] →LeakyReLU(0.2)→ Conv 4/2 → [2c, 7, 7] →BN, LeakyReLU(0.2)→ Linear → logit

strided (transposed) convolutions instead of pooling, batch norm in both networks (not on D's input
layer), ReLU in G and LeakyReLU in D, tanh output so images live in [-1, 1], and weights drawn from
N(0, 0.02²).

A GAN has no likelihood to report, so samples are judged by a classifier trained on real MNIST:
with p(y | x) its class probabilities on a generated x and p(y) = E_x p(y | x) their average,

    score = exp(E_x KL(p(y | x) ‖ p(y)))                  (the "inception score", here with an MNIST classifier)

is high (at most 10) when each sample is confidently one digit (low entropy of p(y | x)) and all digits
appear equally often (high entropy of p(y)); `classifier_score` also reports those two parts.
"""

from __future__ import annotations

import math

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.nn import functional as F
from tinyzoo.nn.conv import Conv2d, ConvTranspose2d

SIDE = 28  # MNIST images are 28×28; G starts at SIDE/4 = 7 and doubles twice


class Generator(nn.Module):
    """z [batch, z_dim] → images [batch, 1, 28, 28] in [-1, 1]."""

    def __init__(self, z_dim: int = 64, channels: int = 32) -> None:
        super().__init__()
        self.z_dim = z_dim
        c, s = channels, SIDE // 4
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * c * s * s, bias=False), nn.BatchNorm1d(2 * c * s * s), nn.ReLU(),  # [batch, 2c·49]
            nn.Unflatten(2 * c, s, s),  # [batch, 2c, 7, 7]
            ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False),  # [batch, c, 14, 14]
            nn.BatchNorm2d(c), nn.ReLU(),
            ConvTranspose2d(c, 1, 4, stride=2, padding=1), nn.Tanh(),  # [batch, 1, 28, 28]
        )  # fmt: skip

    def forward(self, z: tz.Tensor) -> tz.Tensor:
        """G(z): [batch, z_dim] → [batch, 1, 28, 28]."""
        return self.net(z)


class Discriminator(nn.Module):
    """Images [batch, 1, 28, 28] → logits [batch] of "this image is real"."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c, s = channels, SIDE // 4
        self.net = nn.Sequential(
            Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # [batch, c, 14, 14]
            Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),  # [batch, 2c, 7, 7]
            nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2),
            nn.Flatten(),  # [batch, 2c·49]
            nn.Linear(2 * c * s * s, 1),  # [batch, 1]
        )  # fmt: skip

    def forward(self, x: tz.Tensor) -> tz.Tensor:
        """The logit of D(x): [batch, 1, 28, 28] → [batch]."""
        return self.net(x)[:, 0]


class GAN(nn.Module):
    """The generator and discriminator together (one module, so one checkpoint holds both)."""

    def __init__(self, z_dim: int = 64, channels: int = 32) -> None:
        super().__init__()
        self.generator = Generator(z_dim, channels)
        self.discriminator = Discriminator(channels)
        dcgan_init_(self)

    def noise(self, n: int, device: str = "cpu") -> tz.Tensor:
        """z ~ N(0, I): [n, z_dim]."""
        return tz.randn(n, self.generator.z_dim, device=device)

    def sample(self, z: tz.Tensor) -> tz.Tensor:
        """Generated images G(z) in [-1, 1] without a graph, in eval mode (batch norm's running statistics)."""
        was_training = self.generator.training
        self.generator.eval()
        with tz.no_grad():
            images = self.generator(z)
        self.generator.train(was_training)
        return images


def dcgan_init_(model: nn.Module) -> None:
    """DCGAN's initialisation: conv/linear weights ~ N(0, 0.02²), batch-norm γ ~ N(1, 0.02²), biases 0."""
    norms = (nn.BatchNorm1d, nn.BatchNorm2d)
    for module in model.modules():
        if isinstance(module, (Conv2d, ConvTranspose2d, nn.Linear, *norms)):
            nn.init.normal_(module.weight, 1.0 if isinstance(module, norms) else 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def discriminator_loss(real_logits: tz.Tensor, fake_logits: tz.Tensor) -> tz.Tensor:
    """L_D = -log D(x) - log(1 - D(G(z))), each term averaged over its batch [batch]."""
    real = F.binary_cross_entropy_with_logits(real_logits, tz.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, tz.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: tz.Tensor) -> tz.Tensor:
    """The non-saturating L_G = -log D(G(z)), averaged over the batch [batch]."""
    return F.binary_cross_entropy_with_logits(fake_logits, tz.ones_like(fake_logits))


def to_gan_range(x: tz.Tensor) -> tz.Tensor:
    """Pixels in [0, 1] → [-1, 1], the range of G's tanh."""
    return 2 * x - 1


def from_gan_range(x: tz.Tensor) -> tz.Tensor:
    """Pixels in [-1, 1] → [0, 1]."""
    return (x + 1) / 2


def classifier_score(probs: tz.Tensor) -> dict[str, float]:
    """Judge samples by a classifier's probabilities p(y | x) [n, classes].

    score: exp(E_x KL(p(y|x) ‖ p(y))), in [1, classes]; confidence: E_x max_y p(y|x); class_entropy: H(p(y))
    in nats (log classes = all classes equally often); sample_entropy: E_x H(p(y|x)) (0 = every sample certain).
    """
    log_probs = tz.log(tz.clamp(probs, min=1e-12))  # [n, classes]
    marginal = probs.mean(axis=0)  # p(y)  [classes]
    log_marginal = tz.log(tz.clamp(marginal, min=1e-12))
    kl = (probs * (log_probs - log_marginal)).sum(axis=1).mean()
    return {
        "score": math.exp(kl.item()),
        "confidence": probs.max(axis=1).mean().item(),
        "class_entropy": -(marginal * log_marginal).sum().item(),
        "sample_entropy": -(probs * log_probs).sum(axis=1).mean().item(),
    }


def demo() -> tuple[nn.Module, tz.Tensor]:
    """D(G(z)), the path of the generator's training step, for the DCGAN of examples/gan_mnist.py and a batch
    of noise vectors (for `python -m tinyzoo explain gan`)."""
    gan = GAN()
    return nn.Sequential(gan.generator, gan.discriminator), gan.noise(4)

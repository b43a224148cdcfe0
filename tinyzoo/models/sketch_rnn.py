"""Sketch-RNN: A Neural Representation of Sketch Drawings (Ha & Eck, 2017).

A sequence-to-sequence variational autoencoder over pen strokes. A drawing is a list of points in the
*stroke-5* format: each row S_i = (Δx, Δy, p1, p2, p3) is the pen's offset from the previous point and a
one-hot pen state — p1: the pen touches the paper and draws to the next point, p2: the pen lifts after
this point, p3: the drawing has ended (every row after the end is (0, 0, 0, 0, 1)). Row S_0 is the start
token (0, 0, 1, 0, 0), and every sequence is padded to N_max rows after it (`tinyzoo.data.to_stroke5`).

Encoder. A bidirectional LSTM reads S_1 .. S_Nmax; its two final hidden states, concatenated into
h [2·H_enc], give the posterior q(z | S) = N(μ, diag σ²) through

    μ = W_μ h + b_μ        σ̂ = W_σ h + b_σ        σ = exp(σ̂ / 2)        z = μ + σ ⊙ ε,  ε ~ N(0, I)

(the reparameterisation trick: the noise is an input, so gradients flow through μ and σ̂).

Decoder. An LSTM whose initial state is [h_0; c_0] = tanh(W_z z + b_z) and whose input at step i is
x_i = [S_{i-1}; z] — the previous point (the true one in training: teacher forcing) with z concatenated
at *every* step. Its output y_i = W_y h_i + b_y [6M + 3] parameterises the next point:

    p(Δx, Δy) = Σ_j Π_j N(Δx, Δy | μ_x,j, μ_y,j, σ_x,j, σ_y,j, ρ_j)        q = softmax(q̂)  (pen states)

with Π = softmax(Π̂), σ = exp(σ̂), ρ = tanh(ρ̂), and the bivariate normal

    N(x, y) = exp(-Z / 2(1 - ρ²)) / (2π σ_x σ_y √(1 - ρ²)),
    Z = ((x - μ_x)/σ_x)² + ((y - μ_y)/σ_y)² - 2ρ (x - μ_x)(y - μ_y) / (σ_x σ_y).

Loss. With N_s the drawing's length (the rows before p3), the reconstruction loss L_R = L_s + L_p is

    L_s = -1/N_max Σ_{i ≤ N_s} log p(Δx_i, Δy_i)        (offsets: only inside the drawing)
    L_p = -1/N_max Σ_{i ≤ N_max} Σ_k p_k,i log q_k,i    (pen states: all N_max steps, end included)

both normalised by N_max, not N_s, as in the paper, and the KL term to the prior N(0, I) is

    L_KL = -1/(2 N_z) Σ (1 + σ̂ - μ² - exp σ̂).

Training minimises L_R + w_KL · η_step · max(L_KL, KL_min): the *floor* KL_min stops optimising the KL
once it is small (the latent code may keep that many nats), and the *annealing* weight
η_step = 1 - (1 - η_min) R^step starts near η_min and rises towards 1, so the model first learns to
reconstruct and only later pays for its code. Both are easy to forget; they are here.

Sampling with temperature τ: the mixture and pen logits are divided by τ and the variances σ² multiplied
by τ, so τ → 0 gives the most likely strokes and τ = 1 the model's distribution. Unconditional samples
decode z ~ N(0, I) from the prior; conditional ones (reconstructions) decode the z of an input drawing.

Numerics: log N is computed in log space, and log(1 - ρ²) = log sech²(ρ̂) = 2(log 2 - |ρ̂| - softplus(-2|ρ̂|))
so a saturated tanh never gives log 0. The paper's recurrent dropout and data augmentation are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.backend import xp_of
from tinyzoo.nn import functional as F

START_TOKEN = np.array([0, 0, 1, 0, 0], dtype=np.float32)
PAPER = {"enc_hidden": 256, "dec_hidden": 512, "z_dim": 128, "n_mixtures": 20}  # the paper's QuickDraw settings
LOG_2PI = math.log(2 * math.pi)


@dataclass
class Mixture:
    """The decoder's output distribution per step: every field [batch, steps, M], pen_logits [.., 3]."""

    log_pi: tz.Tensor  # log Π_j, log-softmax of the mixture logits
    mu_x: tz.Tensor
    mu_y: tz.Tensor
    log_sigma_x: tz.Tensor  # σ̂_x with σ_x = exp(σ̂_x)
    log_sigma_y: tz.Tensor
    rho_hat: tz.Tensor  # ρ = tanh(ρ̂)
    pen_logits: tz.Tensor  # q̂ [batch, steps, 3]


@dataclass
class SketchOutput:
    """One training forward pass: the decoder's distributions and the posterior's parameters."""

    mixture: Mixture
    mu: tz.Tensor  # [batch, z_dim]
    sigma_hat: tz.Tensor  # [batch, z_dim], log σ²


# =================================================================================================
# The output distribution
# =================================================================================================
def split_mixture(y: tz.Tensor, n_mixtures: int) -> Mixture:
    """Split the decoder output y [B, T, 6M + 3] into the mixture's parameters (Π as log-softmax)."""
    pi_hat, mu_x, mu_y, log_sx, log_sy, rho_hat, pen = tz.split(y, [n_mixtures] * 6 + [3], axis=-1)
    return Mixture(F.log_softmax(pi_hat, -1), mu_x, mu_y, log_sx, log_sy, rho_hat, pen)


def log_one_minus_tanh_squared(a: tz.Tensor) -> tz.Tensor:
    """log(1 - tanh²a) = 2·log sech a = 2(log 2 - |a| - softplus(-2|a|)), finite for every a."""
    abs_a = tz.abs(a)
    return 2 * (math.log(2) - abs_a - F.softplus(-2 * abs_a))


def bivariate_log_normal(x: tz.Tensor, y: tz.Tensor, mix: Mixture) -> tz.Tensor:
    """log N(x, y | μ, σ, ρ) for x, y [B, T, 1] against every component → [B, T, M]."""
    zx = (x - mix.mu_x) * (-mix.log_sigma_x).exp()  # (x - μ_x) / σ_x
    zy = (y - mix.mu_y) * (-mix.log_sigma_y).exp()
    rho = mix.rho_hat.tanh()
    log_one_minus_rho2 = log_one_minus_tanh_squared(mix.rho_hat)
    z = zx * zx + zy * zy - 2 * rho * zx * zy
    log_norm = -LOG_2PI - mix.log_sigma_x - mix.log_sigma_y - 0.5 * log_one_minus_rho2  # log 1/(2π σx σy √(1-ρ²))
    return log_norm - 0.5 * z * (-log_one_minus_rho2).exp()  # - Z / 2(1 - ρ²)


def offset_log_likelihood(mix: Mixture, target: tz.Tensor) -> tz.Tensor:
    """log Σ_j Π_j N(Δx_i, Δy_i | component j) for target stroke-5 [B, T, 5] → [B, T]."""
    log_n = bivariate_log_normal(target[..., 0:1], target[..., 1:2], mix)  # [B, T, M]
    return tz.logsumexp(mix.log_pi + log_n, axis=-1)


def offset_loss(mix: Mixture, target: tz.Tensor) -> tz.Tensor:
    """L_s = -1/N_max Σ_{i ≤ N_s} log p(Δx_i, Δy_i), averaged over the batch (rows with p3 masked out)."""
    mask = 1 - target[..., 4]  # [B, T] 1 inside the drawing
    batch, n_max = mask.shape
    return -(offset_log_likelihood(mix, target) * mask).sum() / (batch * n_max)


def pen_loss(mix: Mixture, target: tz.Tensor) -> tz.Tensor:
    """L_p = -1/N_max Σ_{i ≤ N_max} Σ_k p_k log q_k over all steps (the end token included), batch mean."""
    labels = target.data[..., 2:].argmax(axis=-1)  # [B, T] the pen state's index
    return F.cross_entropy(mix.pen_logits.reshape(-1, 3), labels.reshape(-1))


def kl_loss(mu: tz.Tensor, sigma_hat: tz.Tensor) -> tz.Tensor:
    """L_KL = -1/(2 N_z) Σ (1 + σ̂ - μ² - exp σ̂), averaged over the batch (KL to N(0, I) per latent unit)."""
    return -0.5 * (1 + sigma_hat - mu * mu - sigma_hat.exp()).mean()


def kl_annealing(step: int, eta_min: float = 0.01, decay: float = 0.99995) -> float:
    """η_step = 1 - (1 - η_min) R^step: the KL weight's schedule, from η_min at step 0 towards 1."""
    return 1 - (1 - eta_min) * decay**step


def sketch_loss(
    out: SketchOutput,
    target: tz.Tensor,
    step: int,
    w_kl: float = 0.5,
    kl_min: float = 0.2,
    eta_min: float = 0.01,
    decay: float = 0.99995,
) -> tuple[tz.Tensor, tz.Tensor, tz.Tensor]:
    """(total, L_R, L_KL) with total = L_R + w_KL · η_step · max(L_KL, KL_min); target is S_1..S_Nmax."""
    recon = offset_loss(out.mixture, target) + pen_loss(out.mixture, target)
    kl = kl_loss(out.mu, out.sigma_hat)
    total = recon + w_kl * kl_annealing(step, eta_min, decay) * tz.maximum(kl, kl_min)
    return total, recon, kl


# =================================================================================================
# The model
# =================================================================================================
class SketchRNN(nn.Module):
    """Bidirectional-LSTM encoder → z → LSTM decoder emitting a bivariate Gaussian mixture and pen states."""

    def __init__(self, enc_hidden: int = 64, dec_hidden: int = 128, z_dim: int = 32, n_mixtures: int = 10) -> None:
        super().__init__()
        self.z_dim, self.n_mixtures = z_dim, n_mixtures
        self.encoder = nn.LSTM(5, enc_hidden, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * enc_hidden, z_dim)
        self.to_sigma_hat = nn.Linear(2 * enc_hidden, z_dim)
        self.to_initial_state = nn.Linear(z_dim, 2 * dec_hidden)
        self.decoder = nn.LSTM(5 + z_dim, dec_hidden, batch_first=True)
        self.to_mixture = nn.Linear(dec_hidden, 6 * n_mixtures + 3)

    def encode(self, strokes: tz.Tensor) -> tuple[tz.Tensor, tz.Tensor]:
        """strokes [B, N_max + 1, 5] (start token first) → (μ, σ̂) each [B, z_dim].

        The forward direction's state is read at each drawing's last point (row N_s), so padding never
        reaches it; the reverse direction reads the end-token padding before the drawing, as an
        unpacked PyTorch LSTM would (its padding is the same constant row for every sequence).
        """
        x = strokes[:, 1:]  # [B, N_max, 5] S_1 .. S_Nmax
        outputs, (h_n, _) = self.encoder(x)  # outputs [B, N_max, 2H], h_n [2, B, H]
        hidden = h_n.shape[-1]
        xp = xp_of(x.data)
        lengths = (x.data[..., 4] == 0).sum(axis=1)  # N_s per drawing, on x's device   [B]
        last = xp.maximum(lengths, 1) - 1
        forward_last = outputs[xp.arange(x.shape[0]), last][:, :hidden]  # [B, H]
        h = tz.concat([forward_last, h_n[1]], axis=-1)  # [B, 2H]
        return self.to_mu(h), self.to_sigma_hat(h)

    @staticmethod
    def reparameterise(mu: tz.Tensor, sigma_hat: tz.Tensor, eps: tz.Tensor | None = None) -> tz.Tensor:
        """z = μ + exp(σ̂ / 2) ⊙ ε with ε ~ N(0, I) (drawn here unless given)."""
        if eps is None:
            eps = tz.randn(*mu.shape, dtype=mu.dtype, device=mu.device)
        return mu + (0.5 * sigma_hat).exp() * eps

    def initial_state(self, z: tz.Tensor) -> tuple[tz.Tensor, tz.Tensor]:
        """[h_0; c_0] = tanh(W_z z + b_z), each returned as [1, B, H] for the decoder LSTM."""
        h0, c0 = self.to_initial_state(z).tanh().chunk(2, axis=-1)  # 2 × [B, H]
        return h0.unsqueeze(0), c0.unsqueeze(0)

    def decode(self, inputs: tz.Tensor, z: tz.Tensor, state: tuple | None = None) -> tuple[Mixture, tuple]:
        """inputs [B, T, 5] (S_0 .. S_{T-1}), z [B, z_dim] → (the mixture for S_1 .. S_T, final LSTM state).

        With state None the decoder starts from tanh(W_z z + b_z); sampling passes the carried state.
        """
        state = self.initial_state(z) if state is None else state
        z_every_step = tz.broadcast_to(z.unsqueeze(1), (z.shape[0], inputs.shape[1], self.z_dim))  # [B, T, N_z]
        h, state = self.decoder(tz.concat([inputs, z_every_step], axis=-1), state)  # h [B, T, H]
        return split_mixture(self.to_mixture(h), self.n_mixtures), state

    def forward(self, strokes: tz.Tensor, eps: tz.Tensor | None = None) -> SketchOutput:
        """Teacher-forced pass over strokes [B, N_max + 1, 5]: encode, draw z, decode S_1 .. S_Nmax."""
        mu, sigma_hat = self.encode(strokes)
        z = self.reparameterise(mu, sigma_hat, eps)
        mixture, _ = self.decode(strokes[:, :-1], z)
        return SketchOutput(mixture, mu, sigma_hat)

    def sample(self, z: tz.Tensor, max_len: int, temperature: float, rng: np.random.Generator) -> list[np.ndarray]:
        """Decode each z [B, z_dim] point by point → B stroke-5 drawings [n ≤ max_len + 1, 5], ending in p3."""
        batch = z.shape[0]
        x = np.broadcast_to(START_TOKEN, (batch, 1, 5))
        state, rows = None, []
        with tz.no_grad():
            for _ in range(max_len):
                mix, state = self.decode(tz.tensor(x, dtype=z.dtype, device=z.device), z, state)
                x = sample_point(mix, temperature, rng)[:, None]  # [B, 1, 5]
                rows.append(x[:, 0])
        return [_until_end(seq) for seq in np.stack(rows, axis=1)]


# =================================================================================================
# Sampling, in NumPy
# =================================================================================================
def _categorical(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of logits [B, K], drawn from softmax(logits)."""
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    return (rng.random((len(logits), 1)) < cdf).argmax(axis=-1)


def sample_point(mix: Mixture, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One stroke-5 row per batch element from the last step of mix, at temperature τ → [B, 5].

    τ divides the mixture and pen logits and multiplies σ_x², σ_y² (so σ by √τ), as in the paper.
    """
    last = {name: getattr(mix, name).numpy()[:, -1].astype(np.float64) for name in (f.name for f in fields(mix))}
    batch, rows = len(last["mu_x"]), np.arange(len(last["mu_x"]))
    j = _categorical(last["log_pi"] / temperature, rng)  # [B] the chosen component
    sx = np.exp(last["log_sigma_x"][rows, j]) * math.sqrt(temperature)
    sy = np.exp(last["log_sigma_y"][rows, j]) * math.sqrt(temperature)
    rho = np.tanh(last["rho_hat"][rows, j])
    e1, e2 = rng.standard_normal((2, batch))
    point = np.zeros((batch, 5), np.float32)
    point[:, 0] = last["mu_x"][rows, j] + sx * e1
    point[:, 1] = last["mu_y"][rows, j] + sy * (rho * e1 + np.sqrt(1 - rho * rho) * e2)
    point[rows, 2 + _categorical(last["pen_logits"] / temperature, rng)] = 1
    return point


def _until_end(seq: np.ndarray) -> np.ndarray:
    """A sampled [max_len, 5] sequence cut after its first p3 row, or closed with an end row if none."""
    ends = np.flatnonzero(seq[:, 4] == 1)
    if len(ends):
        return seq[: ends[0] + 1]
    return np.concatenate([seq, np.array([[0, 0, 0, 0, 1]], np.float32)])


def stroke5_to_stroke3(seq: np.ndarray) -> np.ndarray:
    """Stroke-5 rows (no start token) up to the first p3 → stroke-3 (Δx, Δy, pen lifted) [n, 3]."""
    ends = np.flatnonzero(seq[:, 4] == 1)
    seq = seq[: ends[0]] if len(ends) else seq
    return np.column_stack([seq[:, :2], seq[:, 3]]).astype(np.float32)


# =================================================================================================
# How close a reconstruction is to its input
# =================================================================================================
def normalised_points(seq: np.ndarray) -> np.ndarray:
    """The absolute pen positions [n, 2] of stroke-5 rows (no start token) up to the first p3, centred and
    scaled so the larger side of the bounding box is 1 (so the distance ignores position and size)."""
    points = np.cumsum(stroke5_to_stroke3(seq)[:, :2], axis=0, dtype=np.float64)
    if len(points) == 0:
        return np.zeros((1, 2))
    points -= (points.max(axis=0) + points.min(axis=0)) / 2
    return points / max(float(np.ptp(points, axis=0).max()), 1e-9)


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance between point sets a [n, 2] and b [m, 2]: the mean distance from each
    point to the nearest point of the other set, averaged over both directions."""
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)  # [n, m]
    return float((d.min(axis=1).mean() + d.min(axis=0).mean()) / 2)


def demo() -> tuple[SketchRNN, tz.Tensor]:
    """A small Sketch-RNN and a batch of random stroke-5 drawings (for `python -m tinyzoo explain sketch_rnn`)."""
    from tinyzoo.data import to_stroke5

    rng = np.random.default_rng(0)
    drawings = []
    for length in (40, 60, 25, 50):
        seq = np.column_stack([rng.normal(size=(length, 2)), rng.random(length) < 0.1]).astype(np.float32)
        seq[-1, 2] = 1
        drawings.append(to_stroke5(seq, 60))
    return SketchRNN(), tz.tensor(np.stack(drawings))

"""Recurrent Highway Networks (Zilly, Srivastava, Koutník & Schmidhuber, 2017).

An LSTM or GRU takes one nonlinear step from h_{t-1} to h_t: its *transition depth* is 1. An RHN
makes the step between two time steps deep — L stacked highway layers ("micro-layers") — while the
highway gates keep gradients flowing through that depth just as the LSTM's cell keeps them flowing
through time.

With s_0^t = s_L^{t-1} (the previous step's output) and the input x_t fed only to the first
micro-layer (𝕀 is 1 for ℓ = 1, else 0), each micro-layer ℓ = 1 … L computes

    h_ℓ = tanh(W_H x_t 𝕀_{ℓ=1} + R_Hℓ s_{ℓ-1} + b_Hℓ)        candidate
    t_ℓ = σ(W_T x_t 𝕀_{ℓ=1} + R_Tℓ s_{ℓ-1} + b_Tℓ)          transform gate
    s_ℓ = h_ℓ ⊙ t_ℓ + s_{ℓ-1} ⊙ c_ℓ,    c_ℓ = 1 - t_ℓ       carry gate, coupled to t (as in the paper's experiments)

and the output of time step t is y_t = s_L^t. With t_ℓ = 0 a micro-layer passes its state through
untouched; with t_ℓ = 1 it is a plain tanh layer. Each micro-layer has its own recurrent weights
R_Hℓ, R_Tℓ; only the first also sees x_t. The transform-gate biases b_Tℓ start negative (-2 here), so
every micro-layer begins close to carrying its state through, as in highway networks.
"""

from __future__ import annotations

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.char_rnn import CellStack


class RHNCell(nn.Module):
    """One time step of an RHN of recurrence depth L: x [B, I], s_0 = s_L^{t-1} [B, H] → (s_L, s_L)."""

    def __init__(self, input_size: int, hidden_size: int, depth: int = 3, transform_bias: float = -2.0) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"RHNCell: depth must be at least 1, got {depth}")
        self.input_size, self.hidden_size, self.depth = input_size, hidden_size, depth
        self.input = nn.Linear(input_size, 2 * hidden_size, bias=False)  # [W_H; W_T], micro-layer 1 only
        self.recurrent = nn.ModuleList(nn.Linear(hidden_size, 2 * hidden_size) for _ in range(depth))  # R_ℓ, b_ℓ
        for layer in self.recurrent:
            layer.bias.data[hidden_size:] = transform_bias  # b_Tℓ

    def initial_state(self, x: tz.Tensor) -> tz.Tensor:
        """Zeros s [B, H] with x [B, I]'s batch size, dtype and device."""
        return tz.Tensor(tz.backend.xp_of(x.data).zeros((x.shape[0], self.hidden_size), dtype=x.dtype))

    def forward(self, x: tz.Tensor, s: tz.Tensor) -> tuple[tz.Tensor, tz.Tensor]:
        """x [B, I], s [B, H] → (y_t = s_L [B, H], the new state s_L)."""
        x_proj = self.input(x)  # [W_H x_t; W_T x_t]  [B, 2H]
        for layer, recurrent in enumerate(self.recurrent):
            pre = recurrent(s) + x_proj if layer == 0 else recurrent(s)  # [B, 2H]
            h_pre, t_pre = pre.chunk(2, axis=-1)  # [B, H] each
            h, t = h_pre.tanh(), t_pre.sigmoid()
            s = h * t + s * (1 - t)  # carry c = 1 - t
        return s, s

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, depth={self.depth}"


class RHN(CellStack):
    """Stacked RHN cells, batch first: x [B, T, I] → (y [B, T, H], per-layer states s_L [B, H])."""

    def __init__(self, input_size: int, hidden_size: int, depth: int = 3, num_layers: int = 1,
                 transform_bias: float = -2.0) -> None:  # fmt: skip
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        super().__init__([RHNCell(n, hidden_size, depth, transform_bias) for n in sizes])


def demo() -> tuple[nn.Module, np.ndarray]:
    """An RHN language model (depth 3) as in examples/hyperlstm_shakespeare.py --model rhn and a batch of
    character ids (for `python -m tinyzoo explain rhn`)."""
    from tinyzoo.models.char_rnn import CharLM

    ids = np.random.default_rng(0).integers(0, 64, (4, 100))  # [batch, T]
    return CharLM(64, 64, RHN(64, 128, depth=3), 128), ids

"""Pointer Networks (Vinyals, Fortunato & Jaitly, 2015).

Some outputs are not words from a fixed vocabulary but *positions in the input*: sort these numbers,
list the corners of this convex hull, visit these cities in order. A pointer network is a
sequence-to-sequence model whose attention weights are themselves the output distribution, so the
"vocabulary" is always exactly the n input positions, whatever n is.

Encoder. Every input element x_j (here one number, in general a point) is embedded, x̃_j = W_e x_j + b_e,
and an LSTM reads x̃_1 … x̃_n, leaving one state per position:

    e_1, …, e_n = LSTM(x̃_1, …, x̃_n)                                   e_j ∈ ℝ^H

Decoder. An LSTM cell starts from the encoder's final state. Its input at step t is the embedding of the
element it pointed at in step t-1 (a learned "go" vector g at t = 1):

    d_t = LSTMCell(x̃_{π(t-1)}, d_{t-1})                                d_0 = (h_n, c_n),  x̃_{π(0)} = g

Pointing. Additive (Bahdanau) attention scores every input position against the decoder state, and
the softmax over positions *is* the prediction:

    u^t_j = vᵀ tanh(W_1 e_j + W_2 d_t)                                  j = 1 … n
    p(π(t) = j | π(<t), x) = softmax_j(u^t_j)

Positions already chosen get u^t_j = -10⁹ (call it -∞: e^(-10⁹) underflows to exactly 0 in float32 and
float64, yet no Inf ever enters the arithmetic), so their probability is exactly 0 and every output is a
permutation (the paper's decoder could repeat itself; masking is the now-standard fix, applied here in
training as well as at inference). Training uses teacher forcing — the decoder is fed the *true*
previous element π*(t-1) and the mask holds the true choices so far — and minimises the cross entropy
-Σ_t log p(π*(t) | π*(<t), x). At inference the decoder is fed its own greedy choice
π(t) = argmax_j u^t_j.

The task is the paper's sorting problem: n numbers drawn uniformly from [0, 1), output their positions
in increasing order of value (see `sort_batch`). A prediction counts only if the whole permutation is
right (exact-sequence accuracy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.backend import to_host, xp_of
from tinyzoo.nn import functional as F
from tinyzoo.nn import init

MASKED = -1e9  # the logit of a position already pointed at: its softmax probability is exactly 0


def sort_batch(batch_size: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorting data: x [batch, n, 1] float32 uniform in [0, 1), pointers [batch, n] int64 = argsort of x."""
    values = rng.random((batch_size, n)).astype(np.float32)
    return values[..., None], np.argsort(values, axis=1, kind="stable")


class PointerNet(nn.Module):
    """Embedding + LSTM encoder, LSTM-cell decoder, additive attention used as the output distribution."""

    def __init__(self, input_size: int, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        self.embed = nn.Linear(input_size, embed_size)  # x̃_j = W_e x_j + b_e
        self.encoder = nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.decoder = nn.LSTMCell(embed_size, hidden_size)
        self.go = nn.Parameter(np.zeros(embed_size, dtype=np.float32))  # g, the first decoder input
        init.uniform_(self.go, -1.0, 1.0)
        self.w1 = nn.Linear(hidden_size, hidden_size, bias=False)  # W_1, applied to encoder states
        self.w2 = nn.Linear(hidden_size, hidden_size, bias=False)  # W_2, applied to the decoder state
        self.v = nn.Linear(hidden_size, 1, bias=False)  # vᵀ

    def forward(self, x: tz.Tensor, pointers: Any = None) -> tuple[tz.Tensor, Any]:
        """Point n times over x [batch, n, input_size].

        With `pointers` [batch, n] (the targets) the decoder is teacher-forced; without, it feeds back its
        own greedy choices. Returns the attention logits u [batch, n steps, n positions] (MASKED where
        already chosen) and the positions fed back [batch, n], an array on x's device.
        """
        batch, n, _ = x.shape
        xp = xp_of(x.data)
        embedded = self.embed(x)  # x̃ [B, n, E]
        encoded, (h, c) = self.encoder(embedded)  # e [B, n, H]; h, c [1, B, H]
        keys = self.w1(encoded)  # W_1 e_j [B, n, H], the same for every decoder step
        state = (h[0], c[0])  # d_0 [B, H] each
        step_input = tz.broadcast_to(self.go, (batch, self.go.shape[0]))  # g [B, E]
        rows = xp.arange(batch)
        if pointers is not None:  # the targets, on x's device (copied there once when they come from the host)
            pointers = pointers.data if isinstance(pointers, tz.Tensor) else xp.asarray(pointers)
        chosen = xp.zeros((batch, n), dtype=bool)  # positions already pointed at
        logits, fed_back = [], []
        for t in range(n):
            state = self.decoder(step_input, state)  # d_t
            u = self.attention(keys, state[0], chosen)  # u^t [B, n]
            choice = u.data.argmax(axis=1) if pointers is None else pointers[:, t]
            chosen = chosen | (xp.arange(n)[None, :] == choice[:, None])  # a new array: u^t keeps its mask
            step_input = embedded[rows, choice]  # x̃_{π(t)} [B, E]
            logits.append(u)
            fed_back.append(choice)
        return tz.stack(logits, axis=1), xp.stack(fed_back, axis=1)

    def attention(self, keys: tz.Tensor, query: tz.Tensor, chosen: Any) -> tz.Tensor:
        """u_j = vᵀ tanh(W_1 e_j + W_2 d) for keys W_1 e [B, n, H] and query d [B, H]; MASKED where chosen [B, n]."""
        scores = self.v(tz.tanh(keys + self.w2(query)[:, None, :]))[..., 0]  # [B, n]
        return tz.masked_fill(scores, chosen, MASKED)

    @tz.no_grad()
    def point(self, x: tz.Tensor) -> np.ndarray:
        """Greedy decoding: the predicted permutation [batch, n] of each input sequence."""
        return to_host(self.forward(x)[1])


def pointer_loss(logits: tz.Tensor, pointers: np.ndarray) -> tz.Tensor:
    """Mean over steps and sequences of -log p(π*(t) | π*(<t), x), for logits [B, n, n] and targets [B, n]."""
    return F.sequence_cross_entropy(logits, pointers)


def sequence_accuracy(predicted: np.ndarray, pointers: np.ndarray) -> float:
    """The fraction of sequences whose whole predicted permutation equals the target."""
    return float((predicted == pointers).all(axis=1).mean())


def demo() -> tuple[PointerNet, tz.Tensor]:
    """A small pointer network and a batch of numbers to sort (for `python -m tinyzoo explain pointer_net`)."""
    x, _ = sort_batch(4, 10, np.random.default_rng(0))
    return PointerNet(input_size=1, embed_size=32, hidden_size=64), tz.tensor(x)

"""GPT: a decoder-only Transformer language model (Radford et al. 2018, 2019), here at the level of characters.

A language model factorises the probability of a text c_1 … c_T into next-token predictions,
p(c) = Π_t p(c_{t+1} | c_≤t). GPT computes every one of them in a single pass with a stack of
Transformer blocks whose self-attention is *causal*: position t may only look at positions ≤ t.

    h⁰_t = E[c_t] + P[t]                                   token + learned position embedding   [B, T, d]
    hˡ   = Blockˡ(hˡ⁻¹),  l = 1 … L                         pre-norm, causal self-attention
    p(c_{t+1} | c_≤t) = softmax(LayerNorm(hᴸ_t) Eᵀ)         weight tying: the readout is E itself

Each pre-norm block (GPT-2's layout, `tinyzoo.nn.TransformerBlock(norm_first=True, causal=True)`) is

    h = h + Attn(LN(h))        with Attn's query t masked off every key s > t
    h = h + FFN(LN(h))         FFN(x) = W₂ gelu(W₁ x + b₁) + b₂,  W₁: d → 4d

and since every block leaves the residual stream un-normalised, one last LayerNorm comes before the
readout. Because of the causal mask, ∂logits_t / ∂h⁰_{t+k} = 0 for every k > 0: training on a window
of T characters gives T next-character losses at once without leaking the answers.

Weight tying (Press & Wolf 2017) reuses the token embedding matrix E [V, d] as the output layer:
logits = h Eᵀ. The model then has one [V, d] matrix instead of two; a character that is embedded
near another is also predicted in similar contexts.

Initialisation follows GPT-2: embeddings and every weight matrix ~ N(0, 0.02²), biases 0, and the two
matrices per block that write into the residual stream (attention output, FFN W₂) scaled by 1/√(2L)
so the stream's variance does not grow with depth. It matters at this size: with the layers' default
(PyTorch-style) initialisation the first blocks' outputs swamp the small token embedding, and the
model sits near the unigram loss for hundreds of steps before it starts using the characters it reads.
(tinyzoo's Embedding default, N(0, 1), would instead make the first tied logits ~√d too large.)

Text is generated one character at a time: feed the last `max_len` characters, take the logits of the
last position, divide by a temperature τ (τ < 1 sharpens, τ > 1 flattens), keep only the k most
likely characters (top-k sampling, which cuts off the long tail of unlikely ones), renormalise and draw.

`Embeddings` (token + position, and the tied readout) and `init_transformer_` are shared with
tinyzoo/models/bert.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.errors import ShapeError
from tinyzoo.nn import functional as F
from tinyzoo.nn import init


class Embeddings(nn.Module):
    """h⁰_t = E[c_t] + P[t] for ids [B, T]; `readout(h) = h Eᵀ` reuses E as the output layer (weight tying)."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int, std: float = 0.02) -> None:
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.token = nn.Embedding(vocab_size, d_model)  # E [V, d]
        self.position = nn.Embedding(max_len, d_model)  # P [max_len, d]
        init.normal_(self.token.weight, std=std)
        init.normal_(self.position.weight, std=std)

    def forward(self, ids: Any) -> tz.Tensor:
        """ids [B, T] (integers) → E[ids] + P[0..T-1]  [B, T, d]."""
        T = ids.shape[-1]
        if T > self.max_len:
            raise ShapeError(f"Embeddings: a sequence of {T} tokens is longer than max_len {self.max_len}")
        return self.token(ids) + self.position(np.arange(T))  # [B, T, d] + [T, d]

    def readout(self, h: tz.Tensor) -> tz.Tensor:
        """h [..., d] → logits h Eᵀ  [..., V], with the token embedding matrix itself."""
        return F.linear(h, self.token.weight)


def init_transformer_(
    model: nn.Module, blocks: Sequence[nn.TransformerBlock], std: float = 0.02, scale_residual: bool = True
) -> None:
    """GPT-2/BERT initialisation, in place: every linear map's weight ~ N(0, std²) and bias 0; with
    scale_residual (GPT-2), the two maps per block that write into the residual stream get std/√(2L)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            init.normal_(module.in_proj_weight, std=std)
    if scale_residual:
        for block in blocks:
            init.normal_(block.self_attn.out_proj.weight, std=std / math.sqrt(2 * len(blocks)))
            init.normal_(block.linear2.weight, std=std / math.sqrt(2 * len(blocks)))


class GPT(nn.Module):
    """A decoder-only Transformer LM: ids [B, T] → next-token logits [B, T, V] (T ≤ max_len)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        max_len: int = 128,
        d_ff: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = Embeddings(vocab_size, d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerBlock(d_model, num_heads, d_ff or 4 * d_model, dropout, norm_first=True, causal=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        init_transformer_(self, self.blocks)

    def forward(self, ids: Any) -> tz.Tensor:
        """ids [B, T] → logits [B, T, V]; logits[:, t] predicts the token after ids[:, t]."""
        return self.decode(self.embed(ids))

    def decode(self, h: tz.Tensor) -> tz.Tensor:
        """The network after the embedding: h⁰ [B, T, d] → logits [B, T, V] (lets tests differentiate w.r.t. h⁰)."""
        h = self.dropout(h)
        for block in self.blocks:
            h = block(h)  # [B, T, d]
        return self.embed.readout(self.norm(h))  # [B, T, V]


def lm_loss(model: GPT, x: Any, y: Any) -> tz.Tensor:
    """Mean next-token cross-entropy (nats) over every position of x, y [B, T]."""
    logits = model(x)  # [B, T, V]
    return F.sequence_cross_entropy(logits, y)


def sample_next(
    logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None, rng: np.random.Generator | None = None
) -> int:
    """Draw one id from softmax(logits / temperature), restricted to the top_k largest logits when given."""
    if temperature <= 0:
        raise ValueError(f"sample_next: temperature must be positive, got {temperature}")
    rng = np.random.default_rng() if rng is None else rng
    z = np.asarray(logits, dtype=np.float64) / temperature  # [V]
    if top_k is not None and top_k < len(z):
        kth_largest = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth_largest, z, -np.inf)
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def generate(
    model: GPT, prompt: Sequence[int], length: int, temperature: float = 1.0, top_k: int | None = None,
    rng: np.random.Generator | None = None, device: str = "cpu",
) -> list[int]:  # fmt: skip
    """`length` ids sampled one at a time after `prompt` (at least one id), each conditioned on the last max_len ids."""
    if len(prompt) == 0:
        raise ValueError("generate: the prompt must hold at least one id")
    rng = np.random.default_rng() if rng is None else rng
    was_training = model.training
    model.eval()
    ids = list(prompt)
    with tz.no_grad():
        for _ in range(length):
            context = np.asarray([ids[-model.max_len :]], dtype=np.int64)  # [1, ≤ max_len]
            logits = model(tz.tensor(context, device=device))  # [1, T, V]
            ids.append(sample_next(tz.backend.to_host(logits.data[0, -1]), temperature, top_k, rng))
    model.train(was_training)
    return ids[len(prompt) :]


def demo() -> tuple[GPT, np.ndarray]:
    """A character GPT as in examples/gpt_shakespeare.py and a batch of ids (for `python -m tinyzoo explain gpt`)."""
    ids = np.random.default_rng(0).integers(0, 64, (4, 64))  # [batch, T]
    return GPT(64, d_model=96, num_layers=2, num_heads=4, max_len=128), ids

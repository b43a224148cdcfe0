"""BERT: a bidirectional Transformer encoder pre-trained as a masked language model (Devlin et al. 2019).

A left-to-right model (tinyzoo/models/gpt.py) predicts each token from the ones before it. BERT sees the
whole sequence at once — its self-attention has no causal mask — so it cannot be trained to predict
the next token (it would simply read it). Instead some input tokens are hidden and the model must
reconstruct them from context on *both* sides: the masked-language-model (MLM) objective.

Masking, per sequence of T tokens (the "80/10/10 rule"):

    select round(0.15 T) positions at random (at least one); for each selected position
        with probability 0.8  replace the token by [MASK]
        with probability 0.1  replace it by a random token of the vocabulary
        with probability 0.1  leave it unchanged
    the loss is the cross-entropy at the selected positions only (all others get ignore_index)

Replacing only by [MASK] would teach the model that non-[MASK] tokens never need predicting, but
[MASK] never appears when the encoder is used later; the random and unchanged 10 % keep it honest
about every token. (A random replacement may draw the original token: 1/V of that 10 %.)

The network, for ids [B, T] and optional segment ids [B, T]:

    h⁰ = E[c_t] + P[t] (+ S[segment_t])                token, learned position (and segment) embeddings
    post-norm (original BERT):  h⁰ ← LayerNorm(h⁰),  hˡ = LN(h + Sublayer(h)) for each sublayer
    pre-norm:                   hˡ = h + Sublayer(LN(h)) for each sublayer,  hᴸ ← LayerNorm(hᴸ)
    MLM head:  logits_t = LayerNorm(gelu(W hᴸ_t + b)) Eᵀ + b_out        the decoder is tied to E

Post-norm normalises the residual stream after every sublayer, so the embeddings are normalised up
front; pre-norm leaves the stream un-normalised and needs one LayerNorm at the end — so either way
there is exactly one extra LayerNorm, before or after the blocks. Pre-norm trains more stably
without a long learning-rate warmup. Every weight starts at N(0, 0.02²) and every bias at 0, as in
BERT.

Here the tokens are the characters of Tiny Shakespeare plus one extra id, [MASK] = V.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.gpt import Embeddings, init_transformer_
from tinyzoo.nn import functional as F
from tinyzoo.nn import init

IGNORE_INDEX = -100  # the target of every position that is not selected: cross_entropy skips it


class BERT(nn.Module):
    """A Transformer encoder with an MLM head: ids [B, T] (+ segments [B, T]) → logits [B, T, vocab_size]."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        max_len: int = 128,
        d_ff: int | None = None,
        dropout: float = 0.1,
        norm_first: bool = False,
        num_segments: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.norm_first = vocab_size, norm_first
        self.embed = Embeddings(vocab_size, d_model, max_len)
        self.segment = nn.Embedding(num_segments, d_model) if num_segments else None
        self.norm = nn.LayerNorm(d_model)  # after the embeddings (post-norm) or after the last block (pre-norm)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerBlock(d_model, num_heads, d_ff or 4 * d_model, dropout, norm_first=norm_first)
            for _ in range(num_layers)
        )
        self.transform = nn.Linear(d_model, d_model)  # the MLM head: dense → gelu → LayerNorm → tied decoder
        self.head_norm = nn.LayerNorm(d_model)
        self.output_bias = nn.Parameter(np.zeros(vocab_size, np.float32))
        init_transformer_(self, self.blocks, scale_residual=False)  # BERT's: N(0, 0.02²) weights, zero biases
        if self.segment is not None:
            init.normal_(self.segment.weight, std=0.02)

    def encode(self, ids: Any, segments: Any = None, key_padding_mask: Any = None) -> tz.Tensor:
        """ids [B, T] (and segment ids [B, T]) → contextual vectors hᴸ [B, T, d]; padding mask True = pad."""
        h = self.embed(ids)  # [B, T, d]
        if self.segment is not None:
            h = h + self.segment(np.zeros(np.shape(ids), np.int64) if segments is None else segments)
        if not self.norm_first:
            h = self.norm(h)
        h = self.dropout(h)
        for block in self.blocks:
            h = block(h, key_padding_mask=key_padding_mask)  # [B, T, d], every position sees every other
        return self.norm(h) if self.norm_first else h

    def forward(self, ids: Any, segments: Any = None, key_padding_mask: Any = None) -> tz.Tensor:
        """ids [B, T] → MLM logits [B, T, vocab_size] at every position."""
        h = self.encode(ids, segments, key_padding_mask)  # [B, T, d]
        h = self.head_norm(self.transform(h).gelu())
        return self.embed.readout(h) + self.output_bias  # [B, T, V]


class MaskedBatch(NamedTuple):
    """An MLM batch: the corrupted inputs [B, T] and the targets [B, T] (IGNORE_INDEX where not selected)."""

    inputs: np.ndarray
    targets: np.ndarray


def mask_tokens(
    ids: np.ndarray, vocab_size: int, mask_id: int, rng: np.random.Generator, select: float = 0.15,
    to_mask: float = 0.8, to_random: float = 0.1,
) -> MaskedBatch:  # fmt: skip
    """The 80/10/10 rule on ids [B, T]: round(select·T) positions per row (≥ 1) become prediction targets;
    of those, a fraction to_mask is replaced by mask_id, to_random by a uniform id in [0, vocab_size), the
    rest kept."""
    B, T = ids.shape
    count = max(1, round(select * T))
    order = np.argsort(rng.random((B, T)), axis=1)  # a random permutation of the positions per row
    selected = np.zeros((B, T), dtype=bool)
    np.put_along_axis(selected, order[:, :count], True, axis=1)  # [B, T]
    roll = rng.random((B, T))
    masked = selected & (roll < to_mask)
    randomised = selected & (roll >= to_mask) & (roll < to_mask + to_random)
    inputs = ids.copy()
    inputs[masked] = mask_id
    inputs[randomised] = rng.integers(0, vocab_size, size=int(randomised.sum()))
    return MaskedBatch(inputs, np.where(selected, ids, IGNORE_INDEX))


def mlm_loss(model: BERT, batch: MaskedBatch, device: str = "cpu") -> tz.Tensor:
    """Mean cross-entropy over the selected positions only."""
    logits = model(tz.tensor(batch.inputs, device=device))  # [B, T, V]
    targets = tz.tensor(batch.targets, device=device)
    return F.sequence_cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


def mlm_correct(model: BERT, batch: MaskedBatch, device: str = "cpu") -> tuple[int, int]:
    """(correct argmax predictions, selected positions) on one batch, in eval mode and without tape."""
    was_training = model.training
    model.eval()
    with tz.no_grad():
        predicted = model(tz.tensor(batch.inputs, device=device)).argmax(axis=-1).numpy()  # [B, T]
    model.train(was_training)
    selected = batch.targets != IGNORE_INDEX
    return int((predicted[selected] == batch.targets[selected]).sum()), int(selected.sum())


def demo() -> tuple[BERT, np.ndarray]:
    """A character BERT as in examples/bert_shakespeare.py and a masked batch (for `python -m tinyzoo explain bert`)."""
    rng = np.random.default_rng(0)
    batch = mask_tokens(rng.integers(0, 64, (4, 64)), 64, 64, rng)
    return BERT(65, d_model=128, num_layers=2, num_heads=4, max_len=64, norm_first=True), batch.inputs

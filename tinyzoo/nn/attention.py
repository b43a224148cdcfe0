"""Attention: scaled dot-product attention, multi-head attention, and the Transformer block built from them.

Scaled dot-product attention (Vaswani et al. 2017) for queries q [..., L, d], keys k [..., S, d] and
values v [..., S, d_v]:

    scores  = q kᵀ / √d + bias                  [..., L, S]
    weights = softmax(scores) over S, masked     [..., L, S]
    out     = weights v                          [..., L, d_v]

Mask convention — read this once: every boolean mask here means **True = masked out** (this key may
not be attended to), as in torch.nn.MultiheadAttention's attn_mask and key_padding_mask. (It is the
opposite of torch.nn.functional.scaled_dot_product_attention, where True means "may attend".)
A masked position gets exactly zero weight. A query whose every key is masked gets all-zero weights
and therefore a zero output — where PyTorch returns NaN — so padded rows never poison a loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyzoo.autograd.tensor import Tensor, as_array
from tinyzoo.backend import xp_of
from tinyzoo.errors import DTypeError, ShapeError
from tinyzoo.nn import functional as F
from tinyzoo.nn import init
from tinyzoo.nn.layers import Dropout, LayerNorm, Linear
from tinyzoo.nn.module import Module, Parameter

__all__ = ["MultiheadAttention", "TransformerBlock", "scaled_dot_product_attention"]


def _mask_array(mask: Any, like: Tensor) -> Any:
    """A mask as an array on `like`'s device (masks are constants: never differentiated)."""
    array = mask.data if isinstance(mask, Tensor) else as_array(mask)
    return xp_of(like.data).asarray(array)


def _attention_mask(scores: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> tuple[Tensor, Any]:
    """Fold the three kinds of mask into (scores, boolean mask broadcastable to scores or None).

    attn_mask: boolean [L, S] (or anything broadcasting to [..., L, S]), True = masked out; or a float
    mask that is *added* to the scores, whose -inf entries count as masked (torch's additive masks).
    key_padding_mask: boolean [B, S], True = padding key; it is broadcast over heads and queries.
    is_causal: query i may attend to keys j ≤ i only (top-left aligned when L ≠ S).
    """
    xp = xp_of(scores.data)
    L, S = scores.shape[-2:]
    masked = None
    if attn_mask is not None:
        mask = _mask_array(attn_mask, scores)
        if mask.dtype.kind == "f":
            masked = xp.isneginf(mask)
            scores = scores + Tensor(xp.where(masked, 0, mask).astype(scores.dtype))
        elif mask.dtype.kind == "b":
            masked = mask
        else:
            raise DTypeError(f"attention: attn_mask must be boolean (True = masked out) or float, got {mask.dtype}")
    if key_padding_mask is not None:
        padding = _mask_array(key_padding_mask, scores)
        if padding.dtype.kind != "b" or padding.shape[-1] != S:
            raise ShapeError(
                f"attention: key_padding_mask must be boolean [batch, {S}], got {padding.dtype} {padding.shape}"
            )
        padding = padding.reshape(padding.shape[:-1] + (1,) * (scores.ndim - padding.ndim) + (S,))  # [B, 1, .., S]
        masked = padding if masked is None else masked | padding
    if is_causal:
        future = xp.triu(xp.ones((L, S), dtype=bool), k=1)  # [L, S] True above the diagonal
        masked = future if masked is None else masked | future
    return scores, masked


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Any = None,
    key_padding_mask: Any = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    training: bool = True,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ/√d + bias, masked) v: q [..., L, d], k [..., S, d], v [..., S, d_v] → (out, weights [..., L, S]).

    Boolean masks mean True = masked out (see the module docstring). `bias` [..., L, S] is added to the
    scores before masking (e.g. T5's relative position bias). Dropout, when training, acts on the
    weights; the weights returned are the ones applied to v.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"attention: q {q.shape}, k {k.shape}, v {v.shape} need q, k sharing d and k, v sharing S")
    scores = (q @ k.swapaxes(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))  # [..., L, S]
    if bias is not None:
        scores = scores + bias
    scores, masked = _attention_mask(scores, attn_mask, key_padding_mask, is_causal)
    if masked is None:
        weights = scores.softmax(-1)
    else:
        # The lowest finite number, not -inf: a fully masked row then softmaxes to uniform instead of NaN,
        # and the second masked_fill zeroes it (and writes exact zeros everywhere else that is masked).
        lowest = float(np.finfo(scores.dtype).min)
        weights = scores.masked_fill(masked, lowest).softmax(-1).masked_fill(masked, 0.0)
    weights = F.dropout(weights, dropout_p, training)
    return weights @ v, weights


class MultiheadAttention(Module):
    """Multi-head attention with torch's parameter layout, so weights copy over from torch.nn.MultiheadAttention.

        head_i = attention(q W_qᵢ, k W_kᵢ, v W_vᵢ),   out = concat(head_1..head_h) W_oᵀ + b_o

    Parameters: in_proj_weight [3E, E] (W_q; W_k; W_v stacked) and in_proj_bias [3E], or — when kdim or
    vdim differ from E — q_proj_weight [E, E], k_proj_weight [E, kdim], v_proj_weight [E, vdim]; and
    out_proj, a Linear(E, E). Initialised as torch: Xavier-uniform projections, zero biases.

    Unlike torch, batch_first defaults to True: inputs are [B, L, E] ([L, B, E] with batch_first=False,
    or unbatched [L, E]).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = True,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self.same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self.same_embed_dim:
            self.in_proj_weight = init.xavier_uniform_(Parameter(np.zeros((3 * embed_dim, embed_dim), np.float32)))
        else:
            for name, width in (("q", embed_dim), ("k", self.kdim), ("v", self.vdim)):
                weight = init.xavier_uniform_(Parameter(np.zeros((embed_dim, width), np.float32)))
                setattr(self, f"{name}_proj_weight", weight)
        self.register_parameter("in_proj_bias", Parameter(np.zeros(3 * embed_dim, np.float32)) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v = query W_qᵀ + b_q, key W_kᵀ + b_k, value W_vᵀ + b_v (one matmul for self-attention)."""
        biases = [None] * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        if not self.same_embed_dim:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        elif query is key is value:
            return tuple(F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, axis=-1))
        else:
            weights = self.in_proj_weight.chunk(3)
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _split_heads(self, x: Tensor) -> Tensor:
        """[B, L, E] → [B, heads, L, head_dim]."""
        B, L, _ = x.shape
        return x.reshape(B, L, self.num_heads, self.head_dim).swapaxes(1, 2)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        attn_mask: Any = None,
        need_weights: bool = True,
        is_causal: bool = False,
        attn_bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """query [B, L, E], key [B, S, kdim], value [B, S, vdim] → (out [B, L, E], weights [B, L, S] or None).

        key_padding_mask [B, S] and attn_mask [L, S] or [B·heads, L, S] are boolean with True = masked
        out (or float and added); is_causal masks the future itself. attn_bias [B or 1, heads, L, S] is
        added to the scores. The weights returned are averaged over the heads.
        """
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = (t.swapaxes(0, 1) for t in (query, key, value))
        if query.shape[-1] != self.embed_dim or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ShapeError(
                f"MultiheadAttention: query {query.shape}, key {key.shape}, value {value.shape} do not "
                f"end in embed_dim {self.embed_dim}, kdim {self.kdim}, vdim {self.vdim}"
            )
        B, L, _ = query.shape
        S = key.shape[1]
        q, k, v = (self._split_heads(t) for t in self._project(query, key, value))  # [B, heads, L or S, d]
        if attn_mask is not None:
            attn_mask = _mask_array(attn_mask, q)
            if attn_mask.ndim == 3:  # torch's [B·heads, L, S] layout
                attn_mask = attn_mask.reshape(B, self.num_heads, L, S)
        heads, weights = scaled_dot_product_attention(
            q, k, v, attn_mask, key_padding_mask, is_causal, self.dropout, self.training, attn_bias
        )  # [B, heads, L, d], [B, heads, L, S]
        out = self.out_proj(heads.swapaxes(1, 2).reshape(B, L, self.embed_dim))  # [B, L, E]
        weights = weights.mean(axis=1) if need_weights else None  # [B, L, S]
        if unbatched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out if self.batch_first else out.swapaxes(0, 1)), weights


class TransformerBlock(Module):
    """One Transformer layer: self-attention, optional cross-attention, and a position-wise feed-forward net.

    Pre-norm (norm_first=True, GPT-2/ViT):      x = x + Dropout(Sublayer(LayerNorm(x)))
    Post-norm (norm_first=False, original/BERT): x = LayerNorm(x + Dropout(Sublayer(x)))

    for Sublayer in [self-attention (causal when causal=True), cross-attention over `memory` (when
    cross_attention=True), FFN(h) = W₂ act(W₁ h + b₁) + b₂]. Inputs are batch-first [B, L, d_model].

    Submodules carry the names of torch.nn.TransformerEncoderLayer (self_attn, linear1, linear2, norm1,
    norm2, dropout1, dropout2) or, with cross-attention, TransformerDecoderLayer (multihead_attn and
    norm3/dropout3 too), so their state_dicts load directly. "gelu" is tinyzoo's tanh approximation.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        activation: str = "gelu",
        causal: bool = False,
        cross_attention: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if activation not in ("gelu", "relu"):
            raise ValueError(f"TransformerBlock: activation must be 'gelu' or 'relu', got {activation!r}")
        self.norm_first, self.activation, self.causal = norm_first, activation, causal
        self.cross_attention = cross_attention
        self.self_attn = MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.norm1, self.dropout1 = LayerNorm(d_model, eps=layer_norm_eps), Dropout(dropout)
        if cross_attention:
            self.multihead_attn = MultiheadAttention(d_model, num_heads, dropout=dropout)
            self.norm2, self.dropout2 = LayerNorm(d_model, eps=layer_norm_eps), Dropout(dropout)
        self.linear1, self.dropout, self.linear2 = Linear(d_model, d_ff), Dropout(dropout), Linear(d_ff, d_model)
        ff = "3" if cross_attention else "2"
        setattr(self, f"norm{ff}", LayerNorm(d_model, eps=layer_norm_eps))
        setattr(self, f"dropout{ff}", Dropout(dropout))

    def extra_repr(self) -> str:
        flags = ["norm_first" if self.norm_first else "post-norm", self.activation]
        return ", ".join(
            flags + (["causal"] if self.causal else []) + (["cross_attention"] if self.cross_attention else [])
        )

    def _sublayer(self, x: Tensor, norm: Module, dropout: Module, fn: Any) -> Tensor:
        """One residual sublayer, pre- or post-norm."""
        if self.norm_first:
            return x + dropout(fn(norm(x)))
        return norm(x + dropout(fn(x)))

    def _feed_forward(self, h: Tensor) -> Tensor:
        """W₂ act(W₁ h + b₁) + b₂, position by position."""
        hidden = self.linear1(h)
        hidden = hidden.gelu() if self.activation == "gelu" else hidden.relu()
        return self.linear2(self.dropout(hidden))

    def forward(
        self,
        x: Tensor,
        memory: Tensor | None = None,
        attn_mask: Any = None,
        key_padding_mask: Any = None,
        memory_key_padding_mask: Any = None,
        attn_bias: Tensor | None = None,
    ) -> Tensor:
        """x [B, L, d_model] (memory [B, S, d_model] with cross-attention) → [B, L, d_model].

        attn_mask and key_padding_mask apply to self-attention (True = masked out), attn_bias is added to
        its scores, and memory_key_padding_mask marks padded memory positions for cross-attention.
        """
        if self.cross_attention != (memory is not None):
            raise ValueError("TransformerBlock: pass memory exactly when the block was built with cross_attention=True")

        def self_attention(h: Tensor) -> Tensor:
            return self.self_attn(
                h, h, h, key_padding_mask, attn_mask, need_weights=False, is_causal=self.causal, attn_bias=attn_bias
            )[0]

        x = self._sublayer(x, self.norm1, self.dropout1, self_attention)
        if self.cross_attention:

            def cross_attention(h: Tensor) -> Tensor:
                return self.multihead_attn(h, memory, memory, memory_key_padding_mask, need_weights=False)[0]

            x = self._sublayer(x, self.norm2, self.dropout2, cross_attention)
            return self._sublayer(x, self.norm3, self.dropout3, self._feed_forward)
        return self._sublayer(x, self.norm2, self.dropout2, self._feed_forward)

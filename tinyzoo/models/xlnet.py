"""XLNet's permutation language modelling with two-stream self-attention (Yang et al. 2019).

An autoregressive model factorises p(x) left to right and never sees the right context; BERT sees both
sides but predicts masked tokens independently, from inputs corrupted by [MASK]. XLNet keeps the
autoregressive product but over a random *factorisation order* z, a permutation of the positions 1..T:

    max_θ  E_z [ Σ_t log p_θ(x_{z_t} | x_{z_<t}) ]

The tokens stay where they are (positions are unchanged); only the attention masks follow z. Averaged
over orders, every token learns to use context from both sides.

Why two streams. To predict x_{z_t} the network must know *where* it predicts (position z_t) but not
*what* is there (x_{z_t}, the answer); yet to serve as context for later tokens, the same position must
expose its content. So every layer m keeps two representations per position, with shared weights θ:

    content stream  h^m_{z_t} = Attention(Q = h^{m-1}_{z_t}, KV = h^{m-1}_{z_≤t}; θ)   sees its own token
    query stream    g^m_{z_t} = Attention(Q = g^{m-1}_{z_t}, KV = h^{m-1}_{z_<t}; θ)   sees its position only

starting from h^0_i = e(x_i) + PE(i) and g^0_i = w + PE(i) with one learned vector w. By induction
h^m_j depends on the tokens at or before j in the order, so g_{z_t} never depends on x_{z_t}; the top
query stream predicts:  p(x_{z_t} = v | x_{z_<t}) = softmax(W g^M_{z_t} + b)_v.

Partial prediction. Early in the order there is little context and the targets are hard, so only the
last ≈ T/K positions of each order are predicted (K = 6-7 in the paper); the others serve as context.

Implementation. Both streams run through the *same* `TransformerBlock` as one sequence of length 2T,
[h; g], with a [2T, 2T] mask (True = masked out):

                 keys: content h_j          keys: query g_j
    rows h_i     masked unless z(j) ≤ z(i)  all masked
    rows g_i     masked unless z(j) < z(i)  all masked

LayerNorm and the feed-forward net act position by position, so this is exactly the two equations
above with shared weights. (The query stream of the first token in the order sees nothing: its
attention output is zero.) Simplifications: absolute sinusoidal positions instead of Transformer-XL's
relative encodings, and no segment recurrence or memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.backend import xp_of
from tinyzoo.models.transformer import add_positions
from tinyzoo.nn import functional as F
from tinyzoo.nn import init


def sample_orders(batch_size: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """One random factorisation order per sequence: order[b, t] = the position predicted at step t.  [B, T]"""
    return np.argsort(rng.random((batch_size, length)), axis=1)


def order_ranks(order: Any) -> Any:
    """rank[b, i] = the step at which position i comes in the order (the inverse permutation).   [B, T]

    On the orders' device: host arrays give host arrays, GPU arrays (or tensors) GPU arrays."""
    order = _array(order)
    return xp_of(order).argsort(order, axis=1)


def two_stream_mask(order: Any) -> Any:
    """The boolean mask [B, 1, 2T, 2T] (True = masked out) of the concatenated streams [h; g]."""
    rank = order_ranks(order)  # [B, T]
    xp = xp_of(rank)
    B, T = rank.shape
    before = rank[:, None, :] < rank[:, :, None]  # [B, i, j]: j comes strictly before i in the order
    content = ~(before | xp.eye(T, dtype=bool))  # h_i sees z(j) ≤ z(i)
    query = ~before  # g_i sees z(j) < z(i) only
    no_query_keys = xp.ones((B, T, T), dtype=bool)  # nobody attends to the query stream
    mask = xp.concatenate([xp.concatenate([content, no_query_keys], axis=2),
                           xp.concatenate([query, no_query_keys], axis=2)], axis=1)  # [B, 2T, 2T]
    return mask[:, None]  # broadcast over the heads


def _array(values: Any) -> Any:
    """A tensor's array, or a host array for anything else (lists): ids and orders stay on their device."""
    return values.data if isinstance(values, tz.Tensor) else np.asarray(values)


def prediction_targets(order: np.ndarray, K: float) -> np.ndarray:
    """Partial prediction: True at the positions in the last ≈ T/K steps of each order.   [B, T] bool"""
    T = _array(order).shape[1]
    count = max(1, round(T / K))
    return order_ranks(order) >= T - count


class XLNet(nn.Module):
    """A small XLNet: token ids [B, T] and factorisation orders [B, T] → query-stream logits [B, T, V]."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 256,
        dropout: float = 0.0,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.query_init = init.normal_(nn.Parameter(np.zeros(d_model, np.float32)), std=1.0)  # w
        self.blocks = nn.ModuleList(
            [nn.TransformerBlock(d_model, num_heads, d_ff, dropout, norm_first) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)

    def streams(self, content: tz.Tensor, order: np.ndarray) -> tuple[tz.Tensor, tz.Tensor]:
        """Token embeddings [B, T, d] and orders [B, T] → (content stream h, query stream g), each [B, T, d]."""
        B, T, d = content.shape
        h = add_positions(content)  # h⁰_i = e(x_i) + PE(i)              [B, T, d]
        g = add_positions(tz.broadcast_to(self.query_init, (B, T, d)))  # g⁰_i = w + PE(i)   [B, T, d]
        x = tz.concat([h, g], axis=1)  # [B, 2T, d]
        mask = two_stream_mask(order)  # [B, 1, 2T, 2T]
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        x = self.norm(x)
        return x[:, :T], x[:, T:]

    def forward(self, tokens: np.ndarray, order: np.ndarray) -> tz.Tensor:
        """Logits [B, T, V] of p(x_i | the tokens before i in the order), from the query stream."""
        _, g = self.streams(self.embed(tokens), order)
        return self.head(g)


def xlnet_loss(logits: tz.Tensor, tokens: np.ndarray, targets: np.ndarray) -> tz.Tensor:
    """Mean cross-entropy over the predicted positions (targets [B, T] True) only."""
    tokens, ignored = _array(tokens), -100
    return F.sequence_cross_entropy(logits, xp_of(tokens).where(_array(targets), tokens, ignored), ignore_index=ignored)


# =================================================================================================
# The example's data: short sequences with a structure that context reveals
# =================================================================================================
TASKS = ("palindrome", "progression", "sorted")


def sequence_batch(task: str, batch_size: int, length: int, vocab: int, rng: np.random.Generator) -> np.ndarray:
    """Token ids [B, T] in 0..vocab-1 of one of three kinds of sequence.

    "palindrome": uniform tokens mirrored, x_i = x_{T-1-i}; a token is known exactly when its mirror
        image is visible, wherever that is: context from both sides is what XLNet learns to use.
    "progression": arithmetic progressions modulo vocab, x_i = (a + d·i) mod vocab with a, d uniform;
        with vocab prime, any two tokens determine the whole sequence.
    "sorted": `length` uniform tokens sorted in non-decreasing order; a token is bounded by its neighbours.
    """
    if task == "palindrome":
        half = rng.integers(0, vocab, size=(batch_size, (length + 1) // 2))
        return np.concatenate([half, half[:, : length // 2][:, ::-1]], axis=1)
    if task == "progression":
        a, d = rng.integers(0, vocab, size=(2, batch_size, 1))
        return (a + d * np.arange(length)) % vocab
    if task == "sorted":
        return np.sort(rng.integers(0, vocab, size=(batch_size, length)), axis=1)
    raise ValueError(f"sequence_batch: task must be one of {TASKS}, got {task!r}")


def palindrome_best_guess(order: np.ndarray, vocab: int) -> np.ndarray:
    """The chance that the best possible guess is right on palindromes, per position [B, T]: 1 where the
    mirror token comes earlier in the order (and is not the token itself, the middle of an odd length),
    1/vocab where it does not."""
    rank = order_ranks(order)  # [B, T]
    T = rank.shape[1]
    mirror = T - 1 - np.arange(T)
    known = (rank[:, mirror] < rank) & (mirror != np.arange(T))  # [B, T]
    return np.where(known, 1.0, 1.0 / vocab)


def demo() -> tuple[XLNet, tuple[np.ndarray, np.ndarray]]:
    """A small XLNet with a batch of progressions and orders (for `python -m tinyzoo explain xlnet`)."""
    rng = np.random.default_rng(0)
    return XLNet(10), (sequence_batch("palindrome", 4, 12, 10, rng), sample_orders(4, 12, rng))

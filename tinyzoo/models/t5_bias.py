"""T5's relative position bias (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", §2.1).

Instead of adding position vectors to the token embeddings, T5 tells attention how far apart a query
and a key are by adding one learned scalar to each attention score:

    scores_h(i, j) = q_iᵀ k_j / √d + b_h(bucket(j − i))

where h is the head, i the query position, j the key position, and b a table with one scalar per
(bucket, head). Because the bias depends on j − i only, it is the same for every pair of positions
the same distance apart: the model is translation-invariant by construction and has no maximum length.

Distances are grouped into `num_buckets` buckets. With n = i − j (how far back the key is):

- bidirectional (the encoder): half of the buckets are for keys before the query (n > 0) and half for
  keys after it (n < 0); each half then works with |n| and num_buckets/2 buckets;
- unidirectional (causal self-attention in the decoder): keys after the query are never seen, so all
  n ≤ 0 share bucket 0 and the whole table is spent on n ≥ 0;

and then, with B the buckets left (num_buckets/2 or num_buckets) and max_exact = B/2:

    bucket(n) = n                                                                  if n < max_exact
    bucket(n) = min(B − 1, max_exact + ⌊ log(n / max_exact) / log(max_distance / max_exact)
                                          · (B − max_exact) ⌋)                     otherwise

Small distances each get their own bucket; larger ones share log-spaced buckets, and every distance
beyond `max_distance` falls into the last bucket. This needs max_distance > max_exact: T5's code then
silently returns wrong (even negative) buckets, this one raises. T5 uses 32 buckets and max_distance
128, computes the bias once per stack and adds it in every layer, and drops the 1/√d scaling (which
only rescales the learned q, k); here the scores keep tinyzoo's 1/√d.

The bias [1, heads, L, S] is passed to `tinyzoo.nn.MultiheadAttention` as `attn_bias`.
"""

from __future__ import annotations

import math

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.nn import init


def relative_position_bucket(
    relative_position: np.ndarray, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """The bucket index (int64, same shape) of every relative position j − i (key minus query)."""
    n = -np.asarray(relative_position, dtype=np.int64)  # n = i − j: how far back the key is
    bucket = np.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        bucket += (n < 0) * num_buckets  # keys after the query use the upper half of the table
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)  # the future (masked anyway) shares bucket 0 with distance 0
    max_exact = num_buckets // 2
    if max_distance <= max_exact:
        raise ValueError(f"relative_position_bucket: max_distance {max_distance} must exceed max_exact {max_exact}")
    log_ratio = np.log(np.maximum(n, 1) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return bucket + np.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    """One learned scalar per (bucket, head): query and key positions → bias [1, heads, L, S]."""

    def __init__(
        self, num_heads: int, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
    ) -> None:
        super().__init__()
        self.num_heads, self.bidirectional = num_heads, bidirectional
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)  # T5's name for the table
        init.normal_(self.relative_attention_bias.weight, std=0.1)

    def extra_repr(self) -> str:
        direction = "bidirectional" if self.bidirectional else "unidirectional"
        return f"heads={self.num_heads}, {direction}, buckets={self.num_buckets}, max_distance={self.max_distance}"

    def forward(self, query_positions: int | np.ndarray, key_positions: int | np.ndarray) -> tz.Tensor:
        """Positions as arrays [L] and [S] (or ints L, S meaning 0..L-1 and 0..S-1) → bias [1, heads, L, S]."""
        i = np.arange(query_positions) if isinstance(query_positions, int) else np.asarray(query_positions)
        j = np.arange(key_positions) if isinstance(key_positions, int) else np.asarray(key_positions)
        relative = j[None, :] - i[:, None]  # j − i                                       [L, S]
        buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        bias = self.relative_attention_bias(buckets)  # [L, S, heads]
        return bias.permute(2, 0, 1).unsqueeze(0)  # [1, heads, L, S]

"""GATv2: How Attentive are Graph Attention Networks? (Brody, Alon & Yahav, ICLR 2022).

Static attention in GAT. GAT scores an edge j → i as

    e_GAT(i, j) = LeakyReLU(a_lᵀ W h_i + a_rᵀ W h_j).

LeakyReLU is strictly increasing, so for a fixed query i the neighbours are ranked by a_rᵀ W h_j alone:
the term of i only shifts every score of row i by the same amount. Hence one neighbour j* = argmax_j
a_rᵀ W h_j wins for *every* query that has it as a neighbour, and the whole ranking of the keys is the
same for every query. The paper calls this static attention; it cannot express "node i attends to the
neighbour most like i", e.g. a dictionary lookup where every query wants a different key, however
many heads are used (each head is static on its own).

Dynamic attention in GATv2. Apply the nonlinearity *before* the attention vector:

    e_GATv2(i, j) = aᵀ LeakyReLU(W_l h_i + W_r h_j)              a ∈ R^{F'}, W_l, W_r ∈ R^{F' × F}

Now the query and the neighbour are mixed inside the LeakyReLU: aᵀ LeakyReLU(W_l h_i + W_r h_j) is a
one-hidden-layer MLP of the pair, which with enough hidden units approximates any score function, so
different queries can rank their neighbours differently. The paper proves that GATv2 computes dynamic
attention where GAT cannot, with the same time complexity. (`share_weights=True` ties W_l = W_r = W,
the paper's variant with GAT's number of parameters.)

Sparse computation. The score no longer splits into per-node terms, so the layer gathers the two
projections at the edges and works on [E, heads, F'] tensors: O(E·heads·F') memory, still no N × N
matrix. The messages are the projected neighbours, h'_i = Σ_j α_ij W_r h_j.

Everything else (heads, dropout, the two-layer model and the training recipe) is GAT's, including
the reference code's extra dropouts (per-head input masks, dropout on the projected neighbours W_r h_j):
on the 10 seeded splits of examples/gat_cora.py they raised GATv2's mean validation accuracy from
82.5 % to 82.9 % (judged on validation accuracy, never on test accuracy).
"""

from __future__ import annotations

import tinyzoo as tz
from tinyzoo.models.gat import GAT, PAPER_TRAINING
from tinyzoo.models.graph_common import (
    EdgeAttention,
    Features,
    Graph,
    attention_vector,
    glorot_linear,
    project,
    random_graph_inputs,
)

__all__ = ["PAPER_TRAINING", "GATv2", "GATv2Layer"]


class GATv2Layer(EdgeAttention):
    """One multi-head GATv2 layer: x [N, in_features] → [N, heads·out_features] (or [N, out] averaged)."""

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 dropout: float = 0.6, negative_slope: float = 0.2, share_weights: bool = False) -> None:  # fmt: skip
        super().__init__(out_features, heads, concat, dropout)
        self.negative_slope, self.share_weights = negative_slope, share_weights
        self.linear_query = glorot_linear(in_features, heads * out_features)  # W_l, applied to the receiving node i
        if not share_weights:
            self.linear_neighbour = glorot_linear(in_features, heads * out_features)  # W_r, to the sender j
        self.attn = attention_vector(heads, out_features)  # a, one per head

    def edge_scores(self, x: Features, graph: Graph) -> tuple[tz.Tensor, tz.Tensor]:
        """e_ij = aᵀ LeakyReLU(W_l x_i + W_r x_j) for every edge [E, heads], and W_r x [N, heads, F]."""
        shape = (graph.num_nodes, self.heads, self.out_features)
        query = project(self.linear_query, x).reshape(shape)  # W_l x    [N, heads, F]
        neighbour = query if self.share_weights else project(self.linear_neighbour, x).reshape(shape)  # W_r x
        mixed = tz.index_select(query, 0, graph.dst) + tz.index_select(neighbour, 0, graph.src)  # [E, heads, F]
        hidden = tz.leaky_relu(mixed, self.negative_slope)  # the nonlinearity comes before a
        return (hidden * self.attn).sum(axis=-1), neighbour  # [E, heads], [N, heads, F]


class GATv2(GAT):
    """GAT's two-layer model with GATv2 layers (same defaults; `share_weights` ties W_l = W_r)."""

    layer_type = GATv2Layer


def demo() -> tuple[GATv2, tuple[tz.Tensor, Graph]]:
    """GATv2 in GAT's sizes on a random graph with Cora's feature and class counts
    (for `python -m tinyzoo explain gatv2`)."""
    x, graph = random_graph_inputs(in_features=1433)
    return GATv2(1433, 7), (x, graph)

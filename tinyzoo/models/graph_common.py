"""What the graph models of the zoo share (GCN, GAT, GATv2): graphs as edge index arrays, the attention
layer skeleton and the two-layer node classifier. (Training them on Cora: `tinyzoo.train.tasks.cora`.)

Graphs as index arrays
----------------------
A graph with N nodes and E directed edges is two int64 arrays, never an N×N matrix:

    src [E], dst [E]        edge k carries a message from node src[k] to node dst[k]

so the neighbourhood of node i is N(i) = {src[k] : dst[k] = i}. An undirected citation appears once in
each direction. The models add a self-loop (i → i) to every node so a node also hears itself, and keep
the edges sorted by `dst`: the kernels of `tinyzoo.kernels` then find each node's incoming edges as one
contiguous run (CSR order) without sorting again.

A layer "aggregates" by gathering per-node tensors at `src` (one row per edge), weighting every edge,
and adding the rows up at `dst`:

    out[i] = Σ_{k : dst[k] = i} w_k · h[src[k]]                 (`tinyzoo.kernels.edge_aggregate`)

GCN's weights are fixed by the degrees; GAT's are learned, a softmax over each node's incoming edges.

The input features can be sparse too (`SparseFeatures`): Cora's bag-of-words matrix is 98.7 % zeros,
and its product with the first layer's weights is the same edge sum over a bipartite word → paper graph.

Attention over edges
--------------------
GAT and GATv2 differ only in how they score an edge j → i; the rest is `EdgeAttention`:

    e_ij   = score(h_i, h_j)                                    [E, heads]   (the subclass)
    α_ij   = exp(e_ij) / Σ_{j' ∈ N(i)} exp(e_ij')               [E, heads]   (edge_softmax)
    h'_i   = Σ_{j ∈ N(i)} dropout(α_ij) · dropout(W h_j)        [N, heads, F] (edge_aggregate)

and the heads are concatenated (hidden layers) or averaged (the output layer). The two dropouts are
the GAT reference code's (`attn_head` in PetarV-/GAT utils/layers.py): one on the normalised
coefficients, one on the transformed features W h that they weigh. As in that code, every head also
draws its own dropout mask on the layer's input (`HeadDropout`): the K heads see K different
corruptions of the same features rather than one shared one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.backend import to_device, xp_of
from tinyzoo.kernels import edge_aggregate, edge_softmax
from tinyzoo.nn import init


# =================================================================================================
# Graphs
# =================================================================================================
class Graph(NamedTuple):
    """A graph as edge index arrays on one device: edge k goes src[k] → dst[k], sorted by dst."""

    src: Any  # int64 [E] (NumPy or CuPy)
    dst: Any  # int64 [E]
    num_nodes: int


def add_self_loops(edges: np.ndarray, num_nodes: int) -> np.ndarray:
    """edges [2, E] (rows src, dst) with any self-loops replaced by exactly one i → i per node: [2, E']."""
    edges = edges[:, edges[0] != edges[1]]
    nodes = np.arange(num_nodes, dtype=edges.dtype)
    return np.concatenate([edges, np.stack([nodes, nodes])], axis=1)


def make_graph(edges: np.ndarray, num_nodes: int, device: str = "cpu", self_loops: bool = True) -> Graph:
    """A Graph from edges [2, E] (rows src, dst), optionally with self-loops, sorted by (dst, src)."""
    edges = np.asarray(edges, dtype=np.int64)
    if self_loops:
        edges = add_self_loops(edges, num_nodes)
    edges = edges[:, np.lexsort((edges[0], edges[1]))]  # CSR order: by dst, then src
    return Graph(to_device(edges[0].copy(), device), to_device(edges[1].copy(), device), num_nodes)


def in_degrees(graph: Graph) -> Any:
    """|N(i)| for every node: the number of edges into it (self-loop included), int64 [N]."""
    return xp_of(graph.dst).bincount(graph.dst, minlength=graph.num_nodes)


class SparseFeatures(NamedTuple):
    """A mostly-zero feature matrix X [N, D] kept as its non-zero entries, sorted by row.

    Cora's bag of words is 1.3 % ones: multiplying the dense [2708, 1433] matrix and drawing dropout
    for all of it costs ~80x the work on the non-zeros. Viewed as a bipartite graph with an edge
    word d → node i for every X_id ≠ 0, X W is the same weighted sum over edges as a graph layer.
    """

    rows: Any  # int64 [nnz], the node i of every non-zero (sorted)
    cols: Any  # int64 [nnz], its feature (word) d
    values: tz.Tensor  # [nnz], X_id; or [nnz, heads], one (dropped-out) copy of X per head (HeadDropout)
    shape: tuple[int, int]  # (N, D)

    @classmethod
    def from_dense(cls, x: np.ndarray, device: str = "cpu") -> SparseFeatures:
        """The non-zeros of a dense [N, D] array, on `device`."""
        rows, cols = np.nonzero(x)  # row-major order: sorted by row
        return cls(to_device(rows, device), to_device(cols, device), tz.tensor(x[rows, cols], device=device), x.shape)

    def map_values(self, fn: Callable[[tz.Tensor], tz.Tensor]) -> SparseFeatures:
        """The same sparsity pattern with fn applied to the values (dropout on the non-zeros only)."""
        return self._replace(values=fn(self.values))

    def matmul(self, weight: tz.Tensor) -> tz.Tensor:
        """X Wᵀ for a Linear weight [out, D]: (X Wᵀ)_i = Σ_{d : X_id ≠ 0} X_id W[:, d], shape [N, out].

        With per-head values [nnz, heads], the rows of W are split into `heads` equal blocks (the heads
        of an attention layer) and block h multiplies copy h of X.
        """
        n, d = self.shape
        weights = self.values.reshape(len(self.values), -1).astype(weight.dtype)  # [nnz, heads]
        columns = tz.transpose(weight).reshape(d, weights.shape[1], -1)  # Wᵀ as D "nodes"    [D, heads, out/heads]
        return edge_aggregate(weights, columns, self.cols, self.rows, n).reshape(n, -1)


Features = tz.Tensor | SparseFeatures


def project(linear: nn.Linear, x: Features) -> tz.Tensor:
    """x Wᵀ through a bias-free Linear for node features x: [N, out].

    x is dense [N, D], sparse, or one copy per head (dense [N, heads, D] or sparse with [nnz, heads]
    values, from `HeadDropout`), where head h's block of W's rows multiplies copy h.
    """
    if isinstance(x, SparseFeatures):
        return x.matmul(linear.weight)
    if x.ndim == 2:
        return linear(x)
    n, heads, d = x.shape
    return tz.einsum("nhd,hfd->nhf", x, linear.weight.reshape(heads, -1, d)).reshape(n, -1)


class HeadDropout(nn.Module):
    """Dropout with an independent mask per head of the next layer: x [N, D] → [N, heads, D] while training.

    The GAT reference code builds every head separately and drops out each head's input on its own;
    with one head this is plain dropout (for sparse features: on the non-zeros only, as the GCN code).
    """

    def __init__(self, p: float, heads: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = nn.Dropout(p)

    def per_head(self, x: tz.Tensor) -> tz.Tensor:
        """x [M, D] (or [M]) repeated for every head, [M, heads, D] (or [M, heads]), then dropped out."""
        copies = tz.unsqueeze(x, 1)
        return self.dropout(tz.broadcast_to(copies, (copies.shape[0], self.heads, *copies.shape[2:])))

    def forward(self, x: Features) -> Features:
        """x, dropped out: one shared mask, or one per head (a copy of x per head) while training."""
        fn = self.per_head if self.heads > 1 and self.training else self.dropout
        return fn(x) if isinstance(x, tz.Tensor) else x.map_values(fn)

    def extra_repr(self) -> str:
        return f"p={self.dropout.p}, heads={self.heads}"


# =================================================================================================
# Layers
# =================================================================================================
def attention_vector(heads: int, features: int) -> nn.Parameter:
    """One attention vector a ∈ R^features per head, [heads, features], Glorot-initialised as a map R^F → R."""
    bound = math.sqrt(6.0 / (features + 1))
    return init.uniform_(nn.Parameter(np.zeros((heads, features), np.float32)), -bound, bound)


def glorot_linear(in_features: int, out_features: int) -> nn.Linear:
    """A bias-free Linear with Glorot (Xavier) uniform weights, the initialisation of the GCN and GAT papers."""
    linear = nn.Linear(in_features, out_features, bias=False)
    init.xavier_uniform_(linear.weight)
    return linear


class EdgeAttention(nn.Module):
    """Multi-head attention over a graph's edges; subclasses define `edge_scores` (GAT, GATv2)."""

    def __init__(self, out_features: int, heads: int, concat: bool, dropout: float) -> None:
        super().__init__()
        self.out_features, self.heads, self.concat = out_features, heads, concat
        self.attention_dropout = nn.Dropout(dropout)
        self.value_dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(np.zeros(heads * out_features if concat else out_features, np.float32))

    def edge_scores(self, x: Features, graph: Graph) -> tuple[tz.Tensor, tz.Tensor]:
        """The unnormalised score e of every edge [E, heads] and the node values W h [N, heads, F] it weighs."""
        raise NotImplementedError(f"{type(self).__name__} must define edge_scores")

    def attend(self, x: Features, graph: Graph) -> tuple[tz.Tensor, tz.Tensor]:
        """(new node features, attention α [E, heads]) for node features x [N, in_features]."""
        scores, values = self.edge_scores(x, graph)  # [E, heads], [N, heads, F]
        alpha = edge_softmax(scores, graph.dst, graph.num_nodes)  # [E, heads], Σ over each node's edges = 1
        dropped = self.attention_dropout(alpha)  # a node sees a random subset of its neighbours each step
        values = self.value_dropout(values)  # and a random subset of their transformed features
        out = edge_aggregate(dropped, values, graph.src, graph.dst, graph.num_nodes)  # [N, heads, F]
        if self.concat:
            out = out.reshape(graph.num_nodes, self.heads * self.out_features)  # [N, heads·F]
        else:
            out = out.mean(axis=1)  # [N, F]
        return out + self.bias, alpha

    def forward(self, x: Features, graph: Graph) -> tz.Tensor:
        """New node features: [N, heads·F] when concatenating heads, else [N, F]."""
        return self.attend(x, graph)[0]

    def extra_repr(self) -> str:
        return f"heads={self.heads}, out_features={self.out_features}, concat={self.concat}"


class TwoLayerGNN(nn.Module):
    """The two-layer node classifier of GCN and GAT: dropout → layer₁ → activation → dropout → layer₂.

    `heads` = (heads of layer₁, heads of layer₂): how many independent dropout masks each layer's
    input gets (`HeadDropout`; GCN has one "head" per layer).
    """

    def __init__(self, first: nn.Module, second: nn.Module, activation: nn.Module, dropout: float,
                 heads: tuple[int, int] = (1, 1)) -> None:  # fmt: skip
        super().__init__()
        self.input_dropout = HeadDropout(dropout, heads[0])
        self.first, self.activation = first, activation
        self.hidden_dropout = HeadDropout(dropout, heads[1])
        self.second = second

    def embed(self, x: Features, graph: Graph) -> tz.Tensor:
        """The hidden node representations, x [N, in_features] → [N, hidden]."""
        return self.activation(self.first(self.input_dropout(x), graph))

    def forward(self, x: Features, graph: Graph) -> tz.Tensor:
        """Class logits for every node, [N, num_classes]."""
        return self.second(self.hidden_dropout(self.embed(x, graph)), graph)

    def decayed(self, name: str) -> bool:
        """Whether the paper's L2 penalty applies to this parameter: to all of them unless a model says otherwise.

        (The GAT code means to skip biases, but its filter compares full variable names such as
        "conv1d/bias:0" with "bias", so it decays every parameter; so does torch's Adam(weight_decay).)
        """
        return True

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """Optimizer groups: the L2-decayed parameters and the rest."""
        named = list(self.named_parameters())
        groups = [
            {"params": [p for n, p in named if self.decayed(n)], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not self.decayed(n)], "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]


def random_graph_inputs(in_features: int, num_nodes: int = 100, num_edges: int = 400,
                        seed: int = 0) -> tuple[tz.Tensor, Graph]:  # fmt: skip
    """Node features [N, in_features] and a random graph (self-loops added): a sample input for the demos."""
    rng = np.random.default_rng(seed)
    x = (rng.random((num_nodes, in_features)) < 0.013).astype(np.float32)  # Cora-like: 1.3 % of the words present
    return tz.tensor(x), make_graph(rng.integers(0, num_nodes, (2, num_edges)), num_nodes)

"""Edge softmax and edge aggregation: the two hot loops of graph attention, without an N×N matrix.

A graph attention layer (GAT, Veličković et al. 2018) scores every edge j → i, normalises the
scores over the incoming edges of each node i, and sums the neighbours' features with those weights:

    alpha = edge_softmax(scores, dst, num_nodes)                 # [E, heads]
    out   = edge_aggregate(alpha, h, src, dst, num_nodes)        # [num_nodes, heads, F]

Both are tinyzoo ops with three implementations (see `tinyzoo.kernels._dispatch`):

- reference: tinyzoo ops (index_add / index_select), the readable definition. Its gradient comes
  from the tape, so it is twice differentiable; it runs on NumPy and CuPy alike.
- numba: `@njit(parallel=True, cache=True)` kernels on NumPy arrays.
- cuda: numba.cuda kernels on CuPy arrays. numba.cuda was chosen over a CuPy RawKernel because the
  same Python kernel source also runs under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), so the
  GPU indexing logic is tested on machines without a GPU; a RawKernel's CUDA C could not be.

The numba and cuda ops have hand-written backward kernels on raw arrays and are recorded with
`once_differentiable=True`: asking for a second derivative through them raises GraphError. For
second derivatives (rare for GAT) use `impl="reference"` or TINYZOO_KERNELS=reference.

Determinism. The kernels never add into one location from several threads: each is parallel over
the nodes that own the sums (destination nodes for the softmax and aggregation, source nodes for
the gradient of h), and each node walks its edges sequentially in a CSR order made with a stable
argsort. So the result is bit-identical from run to run, whatever the number of threads (see
`_dispatch.cpu_kernel` on the one fastmath flag, which is fixed at compile time).

Sorted or not. Edges may come in any order. When `dst` is already sorted (CSR order, e.g. sorted
once at load time) the argsort is skipped and each node's edges lie next to each other in memory,
so sorted input is faster (see bench/bench_kernels.py). The backward for h additionally groups the
edges by `src` (one more stable argsort, only when h needs a gradient). The groupings of the last
few index arrays are kept (`segments`), so a model that reuses one graph sorts it only once.

Bad input (indices out of range or negative, wrong dtype, rank or length) raises ShapeError,
DTypeError or IndexRangeError naming the op and the shapes before any kernel runs, so a kernel
never reads out of bounds. float32 and float64 run the kernels; other float dtypes use the reference.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.ops import as_tensor, exp, index_add, index_select, unsqueeze
from tinyzoo.autograd.tensor import Tensor, record_op
from tinyzoo.backend import xp_of
from tinyzoo.errors import DeviceError, DTypeError, ShapeError
from tinyzoo.kernels import _dispatch

__all__ = ["edge_aggregate", "edge_softmax"]

# Module globals the kernels name; `_dispatch` binds them to numba.prange / numba.cuda on first compile.
prange = range
cuda: Any = None

CUDA_THREADS = 128  # threads per block of the GPU kernels


# =================================================================================================
# Input checks and the CSR grouping of edges
# =================================================================================================
def _count(op: str, name: str, value: Any) -> int:
    """A non-negative Python int (num_nodes)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise DTypeError(f"{op}: {name} must be an integer, got {type(value).__name__}") from None
    if value < 0:
        raise ShapeError(f"{op}: {name} must be >= 0, got {value}")
    return value


def _float_tensor(op: str, name: str, x: Any, ndim: int, layout: str) -> Tensor:
    """x as a float Tensor of rank `ndim` (else ShapeError / DTypeError naming op and shape)."""
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: {name} must be floating point, got dtype {x.dtype} (shape {x.shape})")
    if x.ndim != ndim:
        raise ShapeError(f"{op}: {name} must be {layout} ({ndim}-D), got shape {x.shape}")
    return x


def _index(op: str, name: str, index: Any, like: Tensor, label: str, bound: int, what: str) -> Any:
    """A checked int64 index array [E] on `like`'s device, every entry in [0, bound)."""
    data = index.data if isinstance(index, Tensor) else index
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
        if data.size == 0:
            data = data.astype(np.int64)
    if data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: {name} must hold integers, got dtype {data.dtype} (shape {data.shape})")
    if data.ndim != 1:
        raise ShapeError(f"{op}: {name} must be 1-D [E], got shape {data.shape}")
    if data.shape[0] != like.shape[0]:
        raise ShapeError(
            f"{op}: {name} has {data.shape[0]} entries but {label} has shape {like.shape} (E={like.shape[0]} edges)"
        )
    if backend.device_of(data) != like.device:
        raise DeviceError(f"{op}: {name} is on {backend.device_of(data)} but the values are on {like.device}")
    backend.check_index_range(data, 0, bound, f"{op}: {name} values {{span}} but must lie in [0, {bound}) ({what})")
    return xp_of(data).ascontiguousarray(data, dtype=np.int64)


class Segments(NamedTuple):
    """Edges grouped by one endpoint, CSR style: node n's edges are perm[indptr[n]:indptr[n + 1]]."""

    indptr: Any  # int64 [num_nodes + 1]
    perm: Any  # int64 [E], edge ids; within a node, in their original order (a stable sort)


# A GAT model calls the kernels with the same graph at every step: the last few groupings are kept,
# so a fixed graph is argsorted once. On the host a hit needs equal contents (an O(E) compare, far
# cheaper than the sort), so mutating an index array in place can never return a stale grouping.
# On a GPU comparing contents would wait for the device at every call, so a hit there is the same
# array object (a Graph's edge arrays); an index array changed in place must be passed as a new one.
_SEGMENT_CACHE: list[tuple[Any, int, Segments]] = []
SEGMENT_CACHE_SIZE = 4


def _same_index(saved: Any, index: Any) -> bool:
    """Whether a cached index array stands for `index`: equal contents on the host, the same array on a GPU."""
    if not isinstance(index, np.ndarray):
        return saved is index
    return type(saved) is np.ndarray and saved.shape == index.shape and bool((saved == index).all())


def segments(index: Any, num_nodes: int) -> Segments:
    """Group edge ids by `index` (dst or src): a stable argsort, skipped when a host `index` is already sorted."""
    for saved, saved_nodes, seg in _SEGMENT_CACHE:
        if saved_nodes == num_nodes and _same_index(saved, index):
            return seg
    xp = xp_of(index)
    indptr = xp.zeros(num_nodes + 1, dtype=np.int64)
    indptr[1:] = xp.cumsum(xp.bincount(index, minlength=num_nodes))
    if xp is not np:
        perm = xp.argsort(index)  # CuPy's sort is always stable; checking for sorted input would wait for it
    elif index.size < 2 or bool((index[1:] >= index[:-1]).all()):
        perm = np.arange(index.size, dtype=np.int64)
    else:
        perm = np.argsort(index, kind="stable")
    seg = Segments(indptr, xp.ascontiguousarray(perm, dtype=np.int64))
    _SEGMENT_CACHE.insert(0, (index.copy() if xp is np else index, num_nodes, seg))
    del _SEGMENT_CACHE[SEGMENT_CACHE_SIZE:]
    return seg


def _contiguous(array: Any) -> Any:
    return xp_of(array).ascontiguousarray(array)


# =================================================================================================
# edge_softmax
# =================================================================================================
def edge_softmax(scores: Any, dst: Any, num_nodes: int, *, impl: str | None = None) -> Tensor:
    """Softmax of edge scores [E, heads] over the incoming edges of each destination node."""
    op = "edge_softmax"
    scores = _float_tensor(op, "scores", scores, 2, "[E, heads]")
    num_nodes = _count(op, "num_nodes", num_nodes)
    dst = _index(op, "dst", dst, scores, "scores", num_nodes, f"num_nodes={num_nodes}")
    which = _dispatch.choose(op, scores.data, impl)
    if which == "reference":
        return _edge_softmax_reference(scores, dst, num_nodes)
    seg = segments(dst, num_nodes)
    forward, backward_kernel = (
        (_softmax_forward_numba, _softmax_backward_numba) if which == "numba" else
        (_softmax_forward_cuda, _softmax_backward_cuda)
    )  # fmt: skip
    alpha = forward(_contiguous(scores.data), seg)

    def backward(grad: Tensor, out: Tensor) -> tuple:
        return (Tensor(backward_kernel(out.data, _contiguous(grad.data), seg)),)

    return record_op(op, alpha, (scores,), backward, once_differentiable=True)


def _segment_max(values: Any, index: Any, num_nodes: int) -> Any:
    """out[n] = max of values[k] over the k with index[k] == n (-inf for nodes without edges)."""
    xp = xp_of(values)
    out = xp.full((num_nodes,) + values.shape[1:], -np.inf, dtype=values.dtype)
    backend.scatter_max(out, index, values)
    return out


def _edge_softmax_reference(scores: Tensor, dst: Any, num_nodes: int) -> Tensor:
    """The definition: alpha_k = exp(e_k - m) / Σ_{k' into the same node} exp(e_k' - m), with tinyzoo ops."""
    xp = xp_of(scores.data)
    # Subtracting each node's max keeps exp from overflowing. Softmax does not change under a shift,
    # so the max is a constant here (no gradient flows through it).
    peak = _segment_max(scores.data, dst, num_nodes)
    shifted = exp(scores - Tensor(peak[dst]))
    totals = index_add(Tensor(xp.zeros((num_nodes, scores.shape[1]), dtype=scores.dtype)), 0, dst, shifted)
    return shifted / index_select(totals, 0, dst)


# ----- numba (CPU) ------------------------------------------------------------------------------
def _softmax_forward_cpu(scores, indptr, perm, alpha):
    """alpha = per-node softmax of scores; parallel over destination nodes."""
    heads = scores.shape[1]
    for n in prange(indptr.shape[0] - 1):
        start, stop = indptr[n], indptr[n + 1]
        if start == stop:  # no incoming edges: nothing to normalise
            continue
        for h in range(heads):
            peak = scores[perm[start], h]  # (of the scores' dtype, so float32 input gets float32 exp)
            for k in range(start + 1, stop):
                peak = max(peak, scores[perm[k], h])
            total = 0.0
            for k in range(start, stop):
                value = np.exp(scores[perm[k], h] - peak)
                alpha[perm[k], h] = value
                total += value
            for k in range(start, stop):
                alpha[perm[k], h] = alpha[perm[k], h] / total


def _softmax_backward_cpu(alpha, grad, indptr, perm, out):
    """out = alpha * (grad - Σ_{node's edges} alpha * grad); parallel over destination nodes."""
    heads = alpha.shape[1]
    for n in prange(indptr.shape[0] - 1):
        start, stop = indptr[n], indptr[n + 1]
        for h in range(heads):
            dot = 0.0
            for k in range(start, stop):
                dot += alpha[perm[k], h] * grad[perm[k], h]
            for k in range(start, stop):
                out[perm[k], h] = alpha[perm[k], h] * (grad[perm[k], h] - dot)


def _softmax_forward_numba(scores: np.ndarray, seg: Segments) -> np.ndarray:
    alpha = np.empty_like(scores)
    _dispatch.run_cpu(_softmax_forward_cpu, scores.size, scores, seg.indptr, seg.perm, alpha)
    return alpha


def _softmax_backward_numba(alpha: np.ndarray, grad: np.ndarray, seg: Segments) -> np.ndarray:
    out = np.empty_like(alpha)
    grad = grad.astype(alpha.dtype, copy=False)
    _dispatch.run_cpu(_softmax_backward_cpu, alpha.size, alpha, grad, seg.indptr, seg.perm, out)
    return out


# ----- cuda -------------------------------------------------------------------------------------
# One thread per (node, head): neighbouring threads read neighbouring heads of one edge (coalesced),
# and each thread walks its node's edges in order, so there are no atomics and no varying sums.
def _softmax_forward_gpu(scores, indptr, perm, alpha):
    heads = scores.shape[1]
    item = cuda.grid(1)
    if item >= (indptr.shape[0] - 1) * heads:
        return
    n, h = item // heads, item % heads
    start, stop = indptr[n], indptr[n + 1]
    if start == stop:
        return
    peak = scores[perm[start], h]
    for k in range(start + 1, stop):
        peak = max(peak, scores[perm[k], h])
    total = 0.0
    for k in range(start, stop):
        value = math.exp(scores[perm[k], h] - peak)
        alpha[perm[k], h] = value
        total += value
    for k in range(start, stop):
        alpha[perm[k], h] = alpha[perm[k], h] / total


def _softmax_backward_gpu(alpha, grad, indptr, perm, out):
    heads = alpha.shape[1]
    item = cuda.grid(1)
    if item >= (indptr.shape[0] - 1) * heads:
        return
    n, h = item // heads, item % heads
    start, stop = indptr[n], indptr[n + 1]
    dot = 0.0
    for k in range(start, stop):
        dot += alpha[perm[k], h] * grad[perm[k], h]
    for k in range(start, stop):
        out[perm[k], h] = alpha[perm[k], h] * (grad[perm[k], h] - dot)


def _blocks(items: int) -> int:
    return (items + CUDA_THREADS - 1) // CUDA_THREADS


def _softmax_forward_cuda(scores: Any, seg: Segments) -> Any:
    alpha = xp_of(scores).zeros_like(scores)
    items = (seg.indptr.shape[0] - 1) * scores.shape[1]
    _dispatch.launch(_softmax_forward_gpu, _blocks(items), CUDA_THREADS, scores, seg.indptr, seg.perm, alpha)
    return alpha


def _softmax_backward_cuda(alpha: Any, grad: Any, seg: Segments) -> Any:
    out = xp_of(alpha).zeros_like(alpha)
    items = (seg.indptr.shape[0] - 1) * alpha.shape[1]
    grad = grad.astype(alpha.dtype, copy=False)
    _dispatch.launch(_softmax_backward_gpu, _blocks(items), CUDA_THREADS, alpha, grad, seg.indptr, seg.perm, out)
    return out


# =================================================================================================
# edge_aggregate
# =================================================================================================
def edge_aggregate(alpha: Any, h: Any, src: Any, dst: Any, num_nodes: int, *, impl: str | None = None) -> Tensor:
    """out[i] = Σ over edges k = (src[k] → i) of alpha[k, :, None] * h[src[k]]: [num_nodes, heads, F]."""
    op = "edge_aggregate"
    alpha = _float_tensor(op, "alpha", alpha, 2, "[E, heads]")
    h = _float_tensor(op, "h", h, 3, "[num_src_nodes, heads, F]")
    if h.shape[1] != alpha.shape[1]:
        raise ShapeError(f"{op}: alpha {alpha.shape} has {alpha.shape[1]} heads but h {h.shape} has {h.shape[1]}")
    if h.dtype != alpha.dtype:
        raise DTypeError(f"{op}: alpha ({alpha.dtype}) and h ({h.dtype}) must have the same dtype")
    if h.device != alpha.device:
        raise DeviceError(f"{op}: alpha is on {alpha.device} but h is on {h.device}")
    num_nodes = _count(op, "num_nodes", num_nodes)
    src = _index(op, "src", src, alpha, "alpha", h.shape[0], f"h has shape {h.shape}")
    dst = _index(op, "dst", dst, alpha, "alpha", num_nodes, f"num_nodes={num_nodes}")
    which = _dispatch.choose(op, alpha.data, impl)
    if which == "reference":
        return _edge_aggregate_reference(alpha, h, src, dst, num_nodes)
    kernels = _AGGREGATE_NUMBA if which == "numba" else _AGGREGATE_CUDA
    by_dst = segments(dst, num_nodes)
    alpha_data, h_data = _contiguous(alpha.data), _contiguous(h.data)
    out = kernels["forward"](alpha_data, h_data, src, by_dst, num_nodes)

    def backward(grad: Tensor, _: Tensor) -> tuple:
        grad_data = _contiguous(grad.data).astype(alpha.dtype, copy=False)
        grad_alpha = grad_h = None
        if alpha.requires_grad:
            grad_alpha = Tensor(kernels["alpha"](grad_data, h_data, src, dst))
        if h.requires_grad:
            by_src = segments(src, h.shape[0])
            grad_h = Tensor(kernels["h"](grad_data, alpha_data, dst, by_src))
        return grad_alpha, grad_h

    return record_op(op, out, (alpha, h), backward, once_differentiable=True)


def _edge_aggregate_reference(alpha: Tensor, h: Tensor, src: Any, dst: Any, num_nodes: int) -> Tensor:
    """The definition: gather h at src, weight by alpha, add up at dst (tinyzoo ops)."""
    messages = unsqueeze(alpha, -1) * index_select(h, 0, src)  # [E, heads, F]
    zeros = Tensor(xp_of(h.data).zeros((num_nodes,) + h.shape[1:], dtype=h.dtype))
    return index_add(zeros, 0, dst, messages)


# ----- numba (CPU) ------------------------------------------------------------------------------
def _aggregate_forward_cpu(alpha, h, src, indptr, perm, out):
    """out[n] = Σ_{edges k into n} alpha[k] h[src[k]]; parallel over destination nodes (out zeroed)."""
    heads, features = h.shape[1], h.shape[2]
    for n in prange(indptr.shape[0] - 1):
        for k in range(indptr[n], indptr[n + 1]):
            edge = perm[k]
            j = src[edge]
            for hd in range(heads):
                weight = alpha[edge, hd]
                for f in range(features):  # contiguous: LLVM vectorises this loop
                    out[n, hd, f] += weight * h[j, hd, f]


def _aggregate_grad_alpha_cpu(grad, h, src, dst, out):
    """out[k] = <grad[dst[k]], h[src[k]]> per head; every edge independent, parallel over edges."""
    heads, features = h.shape[1], h.shape[2]
    for k in prange(src.shape[0]):
        i, j = dst[k], src[k]
        for hd in range(heads):
            dot = 0.0
            for f in range(features):
                dot += grad[i, hd, f] * h[j, hd, f]
            out[k, hd] = dot


def _aggregate_grad_h_cpu(grad, alpha, dst, indptr, perm, out):
    """out[j] = Σ_{edges k out of j} alpha[k] grad[dst[k]]; parallel over source nodes (out zeroed)."""
    heads, features = grad.shape[1], grad.shape[2]
    for j in prange(indptr.shape[0] - 1):
        for k in range(indptr[j], indptr[j + 1]):
            edge = perm[k]
            i = dst[edge]
            for hd in range(heads):
                weight = alpha[edge, hd]
                for f in range(features):
                    out[j, hd, f] += weight * grad[i, hd, f]


def _aggregate_forward_numba(alpha: Any, h: Any, src: Any, seg: Segments, num_nodes: int) -> np.ndarray:
    out = np.zeros((num_nodes,) + h.shape[1:], dtype=h.dtype)
    _dispatch.run_cpu(_aggregate_forward_cpu, alpha.size * h.shape[2], alpha, h, src, seg.indptr, seg.perm, out)
    return out


def _aggregate_grad_alpha_numba(grad: Any, h: Any, src: Any, dst: Any) -> np.ndarray:
    out = np.empty((src.shape[0], h.shape[1]), dtype=h.dtype)
    _dispatch.run_cpu(_aggregate_grad_alpha_cpu, out.size * h.shape[2], grad, h, src, dst, out)
    return out


def _aggregate_grad_h_numba(grad: Any, alpha: Any, dst: Any, seg: Segments) -> np.ndarray:
    out = np.zeros((seg.indptr.shape[0] - 1,) + grad.shape[1:], dtype=grad.dtype)
    _dispatch.run_cpu(_aggregate_grad_h_cpu, alpha.size * grad.shape[2], grad, alpha, dst, seg.indptr, seg.perm, out)
    return out


_AGGREGATE_NUMBA = {
    "forward": _aggregate_forward_numba,
    "alpha": _aggregate_grad_alpha_numba,
    "h": _aggregate_grad_h_numba,
}


# ----- cuda -------------------------------------------------------------------------------------
# One thread per output element (node, head, feature), looping over the node's edges in order:
# neighbouring threads touch neighbouring features (coalesced) and no two threads write one place.
def _aggregate_forward_gpu(alpha, h, src, indptr, perm, out):
    heads, features = h.shape[1], h.shape[2]
    item = cuda.grid(1)
    if item >= (indptr.shape[0] - 1) * heads * features:
        return
    n, rest = item // (heads * features), item % (heads * features)
    hd, f = rest // features, rest % features
    total = 0.0
    for k in range(indptr[n], indptr[n + 1]):
        edge = perm[k]
        total += alpha[edge, hd] * h[src[edge], hd, f]
    out[n, hd, f] = total


def _aggregate_grad_alpha_gpu(grad, h, src, dst, out):
    heads, features = h.shape[1], h.shape[2]
    item = cuda.grid(1)
    if item >= src.shape[0] * heads:
        return
    k, hd = item // heads, item % heads
    i, j = dst[k], src[k]
    dot = 0.0
    for f in range(features):
        dot += grad[i, hd, f] * h[j, hd, f]
    out[k, hd] = dot


def _aggregate_grad_h_gpu(grad, alpha, dst, indptr, perm, out):
    heads, features = grad.shape[1], grad.shape[2]
    item = cuda.grid(1)
    if item >= (indptr.shape[0] - 1) * heads * features:
        return
    j, rest = item // (heads * features), item % (heads * features)
    hd, f = rest // features, rest % features
    total = 0.0
    for k in range(indptr[j], indptr[j + 1]):
        edge = perm[k]
        total += alpha[edge, hd] * grad[dst[edge], hd, f]
    out[j, hd, f] = total


def _aggregate_forward_cuda(alpha: Any, h: Any, src: Any, seg: Segments, num_nodes: int) -> Any:
    out = xp_of(h).zeros((num_nodes,) + h.shape[1:], dtype=h.dtype)
    _dispatch.launch(_aggregate_forward_gpu, _blocks(out.size), CUDA_THREADS, alpha, h, src, seg.indptr, seg.perm, out)
    return out


def _aggregate_grad_alpha_cuda(grad: Any, h: Any, src: Any, dst: Any) -> Any:
    out = xp_of(h).zeros((src.shape[0], h.shape[1]), dtype=h.dtype)
    _dispatch.launch(_aggregate_grad_alpha_gpu, _blocks(out.size), CUDA_THREADS, grad, h, src, dst, out)
    return out


def _aggregate_grad_h_cuda(grad: Any, alpha: Any, dst: Any, seg: Segments) -> Any:
    out = xp_of(grad).zeros((seg.indptr.shape[0] - 1,) + grad.shape[1:], dtype=grad.dtype)
    args = (grad, alpha, dst, seg.indptr, seg.perm, out)
    _dispatch.launch(_aggregate_grad_h_gpu, _blocks(out.size), CUDA_THREADS, *args)
    return out


_AGGREGATE_CUDA = {
    "forward": _aggregate_forward_cuda,
    "alpha": _aggregate_grad_alpha_cuda,
    "h": _aggregate_grad_h_cuda,
}

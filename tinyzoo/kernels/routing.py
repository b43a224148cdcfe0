"""Dynamic routing between capsules (routing-by-agreement, Sabour, Frosst & Hinton 2017).

    v = dynamic_routing(u_hat, iterations=3)   # u_hat [B, in_caps, out_caps, out_dim] -> v [B, out_caps, out_dim]

    b = 0                                      # routing logits [B, in_caps, out_caps]
    repeat `iterations` times:
        c   = softmax(b, over out_caps)        # coupling coefficients
        s_j = Σ_i c_ij û_j|i
        v_j = squash(s_j)
        b_ij += û_j|i · v_j                    # (skipped after the last iteration)

Gradient choice. The gradient flows through every iteration, the agreement updates of b included,
as in the paper's TensorFlow code (Sarasra/models, research/capsules: no stop_gradient in
`_update_routing`). Many PyTorch ports instead detach û in the agreement (treating c as a
constant); that gives a different, cheaper gradient and is not what this op computes. The
reference and the kernels compute the same (full) gradient.

Three implementations behind one function (see `tinyzoo.kernels._dispatch`):

- reference: the loop above with tinyzoo ops; the tape gives its gradient (twice differentiable).
- numba: one fused kernel, parallel over the batch. Each sample's û slab ([in_caps, out_caps,
  out_dim], 720 KiB in float32 for 1152×10×16) stays in cache through all iterations, while the
  reference streams the whole [B, ...] tensor through memory several times per iteration and
  allocates temporaries of that size. The backward kernel replays the iterations in reverse from
  the coupling coefficients and s saved by the forward (R × [B, in, out] and R × [B, out, dim]).
- cuda: one thread block per sample with the same phases, separated by syncthreads; every sum is
  owned by one thread and runs in a fixed order (no atomics).

Both kernels are deterministic: samples are independent, and within a sample every reduction runs
in an order fixed at compile time (sequential, or vectorised over the capsule dimension, see
`_dispatch.cpu_kernel`), so outputs are bit-identical from run to run and for any thread count.
They are recorded with `once_differentiable=True` (their backward works on raw arrays); for second
derivatives use impl="reference".

`squash(s) = |s|²/(1+|s|²) · s/|s|` is computed in the exact form s·|s|/(1+|s|²), which is 0 at
s = 0 with a finite (zero) gradient there: no eps is added, so no bias for small vectors.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from tinyzoo.autograd.ops import as_tensor, norm, softmax, unsqueeze
from tinyzoo.autograd.ops import sum as tz_sum
from tinyzoo.autograd.tensor import Tensor, record_op
from tinyzoo.backend import xp_of
from tinyzoo.errors import DTypeError, ShapeError
from tinyzoo.kernels import _dispatch

__all__ = ["dynamic_routing", "squash"]

# Module globals the kernels name; `_dispatch` binds them to numba.prange / numba.cuda on first compile.
prange = range
cuda: Any = None

CUDA_THREADS = 128  # threads per block (one block per sample)


def squash(s: Any, axis: int = -1) -> Tensor:
    """Capsule non-linearity |s|²/(1+|s|²) · s/|s| along `axis`; 0 (with zero gradient) at s = 0."""
    s = as_tensor(s)
    squared = tz_sum(s * s, axis, keepdims=True)
    # s·|s|/(1+|s|²) is the same function without the 0/0 of s/|s|; tinyzoo's norm has a zero
    # (sub)gradient at the zero vector, so the gradient stays finite there.
    return s * (norm(s, axis=axis, keepdims=True) / (squared + 1))


def dynamic_routing(u_hat: Any, iterations: int = 3, *, impl: str | None = None) -> Tensor:
    """Routing-by-agreement: u_hat [B, in_caps, out_caps, out_dim] -> v [B, out_caps, out_dim]."""
    op = "dynamic_routing"
    u_hat = as_tensor(u_hat)
    if u_hat.dtype.kind != "f":
        raise DTypeError(f"{op}: u_hat must be floating point, got dtype {u_hat.dtype} (shape {u_hat.shape})")
    if u_hat.ndim != 4:
        raise ShapeError(f"{op}: u_hat must be [batch, in_caps, out_caps, out_dim] (4-D), got shape {u_hat.shape}")
    if u_hat.shape[2] == 0:
        raise ShapeError(f"{op}: u_hat {u_hat.shape} has no output capsules to route to")
    try:
        iterations = operator.index(iterations)
    except TypeError:
        raise DTypeError(f"{op}: iterations must be an integer, got {type(iterations).__name__}") from None
    if iterations < 1:
        raise ValueError(f"{op}: iterations must be >= 1, got {iterations}")
    which = _dispatch.choose(op, u_hat.data, impl)
    if which == "reference":
        return _routing_reference(u_hat, iterations)
    forward, backward_kernel = (
        (_routing_forward_numba, _routing_backward_numba) if which == "numba" else
        (_routing_forward_cuda, _routing_backward_cuda)
    )  # fmt: skip
    u = xp_of(u_hat.data).ascontiguousarray(u_hat.data)
    v, coupling, s = forward(u, iterations)

    def backward(grad: Tensor, _: Tensor) -> tuple:
        grad_data = xp_of(grad.data).ascontiguousarray(grad.data, dtype=u.dtype)
        return (Tensor(backward_kernel(u, grad_data, coupling, s)),)

    return record_op(op, v, (u_hat,), backward, once_differentiable=True)


def _routing_reference(u_hat: Tensor, iterations: int) -> Tensor:
    """The definition, with tinyzoo ops (gradient through every iteration)."""
    batch, n_in, n_out, _ = u_hat.shape
    logits = Tensor(xp_of(u_hat.data).zeros((batch, n_in, n_out), dtype=u_hat.dtype))
    for t in range(iterations):
        coupling = softmax(logits, axis=2)  # [B, in, out]
        s = tz_sum(unsqueeze(coupling, -1) * u_hat, axis=1)  # [B, out, dim]
        v = squash(s)
        if t < iterations - 1:
            logits = logits + tz_sum(u_hat * unsqueeze(v, 1), axis=-1)
    return v


# =================================================================================================
# numba (CPU): one fused kernel per direction, parallel over the batch
# =================================================================================================
def _routing_forward_cpu(u, iterations, coupling, s, v):
    """Fill coupling [R, B, in, out], s [R, B, out, dim] (for the backward) and v [B, out, dim]."""
    batch, n_in, n_out, dim = u.shape
    for b in prange(batch):
        logits = np.zeros((n_in, n_out), dtype=u.dtype)
        for t in range(iterations):
            c, st = coupling[t, b], s[t, b]
            for i in range(n_in):  # c = softmax of the logits over the output capsules
                peak = logits[i, 0]
                for j in range(1, n_out):
                    peak = max(peak, logits[i, j])
                total = 0.0
                for j in range(n_out):
                    c[i, j] = math.exp(logits[i, j] - peak)
                    total += c[i, j]
                for j in range(n_out):
                    c[i, j] = c[i, j] / total
            st[:, :] = 0.0
            for i in range(n_in):  # s_j = Σ_i c_ij û_j|i, reading û[b] once, in memory order
                for j in range(n_out):
                    for d in range(dim):
                        st[j, d] += c[i, j] * u[b, i, j, d]
            for j in range(n_out):  # v_j = squash(s_j) = s_j |s_j| / (1 + |s_j|²)
                squared = 0.0
                for d in range(dim):
                    squared += st[j, d] * st[j, d]
                scale = math.sqrt(squared) / (1.0 + squared)
                for d in range(dim):
                    v[b, j, d] = scale * st[j, d]
            if t < iterations - 1:  # agreement: b_ij += û_j|i · v_j
                for i in range(n_in):
                    for j in range(n_out):
                        dot = 0.0
                        for d in range(dim):
                            dot += u[b, i, j, d] * v[b, j, d]
                        logits[i, j] += dot


def _routing_backward_cpu(u, grad, coupling, s, grad_u):
    """grad_u [B, in, out, dim] (zeroed) from grad [B, out, dim], replaying the iterations in reverse."""
    iterations = coupling.shape[0]
    batch, n_in, n_out, dim = u.shape
    for b in prange(batch):
        grad_logits = np.zeros((n_in, n_out), dtype=u.dtype)  # d/d b_{t+1}
        v = np.empty((n_out, dim), dtype=u.dtype)
        grad_v = np.empty((n_out, dim), dtype=u.dtype)
        grad_s = np.empty((n_out, dim), dtype=u.dtype)
        grad_c = np.empty(n_out, dtype=u.dtype)
        for t in range(iterations - 1, -1, -1):
            c, st = coupling[t, b], s[t, b]
            for j in range(n_out):  # v_t, recomputed from s_t
                squared = 0.0
                for d in range(dim):
                    squared += st[j, d] * st[j, d]
                scale = math.sqrt(squared) / (1.0 + squared)
                for d in range(dim):
                    v[j, d] = scale * st[j, d]
            if t == iterations - 1:
                grad_v[:, :] = grad[b]
            else:  # through b_{t+1} = b_t + <û, v_t>
                grad_v[:, :] = 0.0
                for i in range(n_in):
                    for j in range(n_out):
                        g = grad_logits[i, j]
                        for d in range(dim):
                            grad_v[j, d] += g * u[b, i, j, d]
                            grad_u[b, i, j, d] += g * v[j, d]
            for j in range(n_out):  # through v = squash(s): φ g + (φ'(r)/r)(s·g) s, φ(r) = r/(1+r²)
                squared = 0.0
                dot = 0.0
                for d in range(dim):
                    squared += st[j, d] * st[j, d]
                    dot += st[j, d] * grad_v[j, d]
                r = math.sqrt(squared)
                coef = (1.0 - squared) / ((1.0 + squared) ** 2 * r) * dot if r > 0.0 else 0.0
                for d in range(dim):
                    grad_s[j, d] = r / (1.0 + squared) * grad_v[j, d] + coef * st[j, d]
            for i in range(n_in):  # through s = Σ_i c û, and c = softmax(b_t)
                weighted = 0.0
                for j in range(n_out):
                    acc = 0.0
                    for d in range(dim):
                        grad_u[b, i, j, d] += c[i, j] * grad_s[j, d]
                        acc += u[b, i, j, d] * grad_s[j, d]
                    grad_c[j] = acc
                    weighted += c[i, j] * acc
                if t > 0:  # b_0 = 0 is a constant: no need for its gradient
                    for j in range(n_out):
                        grad_logits[i, j] += c[i, j] * (grad_c[j] - weighted)


def _routing_forward_numba(u: np.ndarray, iterations: int) -> tuple:
    batch, n_in, n_out, dim = u.shape
    coupling = np.empty((iterations, batch, n_in, n_out), dtype=u.dtype)
    s = np.empty((iterations, batch, n_out, dim), dtype=u.dtype)
    v = np.empty((batch, n_out, dim), dtype=u.dtype)
    _dispatch.run_cpu(_routing_forward_cpu, u.size * iterations, u, iterations, coupling, s, v)
    return v, coupling, s


def _routing_backward_numba(u: np.ndarray, grad: np.ndarray, coupling: np.ndarray, s: np.ndarray) -> np.ndarray:
    grad_u = np.zeros_like(u)
    _dispatch.run_cpu(_routing_backward_cpu, u.size * coupling.shape[0], u, grad, coupling, s, grad_u)
    return grad_u


# =================================================================================================
# cuda: one block per sample; phases split by syncthreads, every sum owned by one thread
# =================================================================================================
def _routing_forward_gpu(u, iterations, logits, coupling, s, v):
    """logits [B, in, out] must be zeroed; fills coupling, s (saved for the backward) and v."""
    _, n_in, n_out, dim = u.shape
    b = cuda.blockIdx.x
    first, step = cuda.threadIdx.x, cuda.blockDim.x
    for t in range(iterations):
        for i in range(first, n_in, step):  # softmax over the output capsules: a thread per input capsule
            peak = logits[b, i, 0]
            for j in range(1, n_out):
                peak = max(peak, logits[b, i, j])
            total = 0.0
            for j in range(n_out):
                value = math.exp(logits[b, i, j] - peak)
                coupling[t, b, i, j] = value
                total += value
            for j in range(n_out):
                coupling[t, b, i, j] = coupling[t, b, i, j] / total
        cuda.syncthreads()
        for jd in range(first, n_out * dim, step):  # s: a thread per (j, d), summing over i in order
            j, d = jd // dim, jd % dim
            total = 0.0
            for i in range(n_in):
                total += coupling[t, b, i, j] * u[b, i, j, d]
            s[t, b, j, d] = total
        cuda.syncthreads()
        for jd in range(first, n_out * dim, step):  # v = squash(s)
            j, d = jd // dim, jd % dim
            squared = 0.0
            for e in range(dim):
                squared += s[t, b, j, e] * s[t, b, j, e]
            v[b, j, d] = math.sqrt(squared) / (1.0 + squared) * s[t, b, j, d]
        cuda.syncthreads()
        if t < iterations - 1:
            for ij in range(first, n_in * n_out, step):  # agreement: a thread per (i, j)
                i, j = ij // n_out, ij % n_out
                dot = 0.0
                for d in range(dim):
                    dot += u[b, i, j, d] * v[b, j, d]
                logits[b, i, j] += dot
            cuda.syncthreads()


def _routing_backward_gpu(u, grad, coupling, s, grad_logits, grad_v, grad_s, grad_c, grad_u):
    """grad_u (zeroed) from grad; grad_logits (zeroed), grad_v, grad_s, grad_c are scratch of the block."""
    iterations = coupling.shape[0]
    _, n_in, n_out, dim = u.shape
    b = cuda.blockIdx.x
    first, step = cuda.threadIdx.x, cuda.blockDim.x
    for t in range(iterations - 1, -1, -1):
        for jd in range(first, n_out * dim, step):  # grad of v_t; thread (j, d) owns grad_u[b, :, j, d]
            j, d = jd // dim, jd % dim
            if t == iterations - 1:
                grad_v[b, j, d] = grad[b, j, d]
            else:  # through b_{t+1} = b_t + <û, v_t>
                squared = 0.0
                for e in range(dim):
                    squared += s[t, b, j, e] * s[t, b, j, e]
                v_jd = math.sqrt(squared) / (1.0 + squared) * s[t, b, j, d]
                total = 0.0
                for i in range(n_in):
                    g = grad_logits[b, i, j]
                    total += g * u[b, i, j, d]
                    grad_u[b, i, j, d] += g * v_jd
                grad_v[b, j, d] = total
        cuda.syncthreads()
        for jd in range(first, n_out * dim, step):  # through squash
            j, d = jd // dim, jd % dim
            squared = 0.0
            dot = 0.0
            for e in range(dim):
                squared += s[t, b, j, e] * s[t, b, j, e]
                dot += s[t, b, j, e] * grad_v[b, j, e]
            r = math.sqrt(squared)
            coef = (1.0 - squared) / ((1.0 + squared) ** 2 * r) * dot if r > 0.0 else 0.0
            grad_s[b, j, d] = r / (1.0 + squared) * grad_v[b, j, d] + coef * s[t, b, j, d]
        cuda.syncthreads()
        for jd in range(first, n_out * dim, step):  # through s = Σ_i c û: grad of û
            j, d = jd // dim, jd % dim
            for i in range(n_in):
                grad_u[b, i, j, d] += coupling[t, b, i, j] * grad_s[b, j, d]
        if t > 0:  # through c = softmax(b_t): a thread per input capsule (b_0 = 0 is a constant)
            for i in range(first, n_in, step):
                weighted = 0.0
                for j in range(n_out):
                    acc = 0.0
                    for d in range(dim):
                        acc += u[b, i, j, d] * grad_s[b, j, d]
                    grad_c[b, i, j] = acc
                    weighted += coupling[t, b, i, j] * acc
                for j in range(n_out):
                    grad_logits[b, i, j] += coupling[t, b, i, j] * (grad_c[b, i, j] - weighted)
        cuda.syncthreads()


def _routing_forward_cuda(u: Any, iterations: int) -> tuple:
    xp = xp_of(u)
    batch, n_in, n_out, dim = u.shape
    logits = xp.zeros((batch, n_in, n_out), dtype=u.dtype)
    coupling = xp.zeros((iterations, batch, n_in, n_out), dtype=u.dtype)
    s = xp.zeros((iterations, batch, n_out, dim), dtype=u.dtype)
    v = xp.zeros((batch, n_out, dim), dtype=u.dtype)
    _dispatch.launch(_routing_forward_gpu, batch, CUDA_THREADS, u, iterations, logits, coupling, s, v)
    return v, coupling, s


def _routing_backward_cuda(u: Any, grad: Any, coupling: Any, s: Any) -> Any:
    xp = xp_of(u)
    batch, n_in, n_out, dim = u.shape
    grad_logits = xp.zeros((batch, n_in, n_out), dtype=u.dtype)
    grad_c = xp.zeros((batch, n_in, n_out), dtype=u.dtype)
    grad_v = xp.zeros((batch, n_out, dim), dtype=u.dtype)
    grad_s = xp.zeros((batch, n_out, dim), dtype=u.dtype)
    grad_u = xp.zeros_like(u)
    _dispatch.launch(
        _routing_backward_gpu, batch, CUDA_THREADS, u, grad, coupling, s, grad_logits, grad_v, grad_s, grad_c, grad_u
    )
    return grad_u

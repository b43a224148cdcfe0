"""Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_.

The clipped gradient replaces `p.grad` (a new Tensor) instead of being written into the old array:
the tape may hand one gradient array to several leaves (the two inputs of an add), and scaling that
shared array in place once per leaf would clip it twice.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.tensor import Tensor


def _with_grads(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """The parameters (one Tensor or an iterable) that currently have a gradient."""
    params = [params] if isinstance(params, Tensor) else list(params)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    params: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so their joint `norm_type`-norm is at most max_norm; returns the norm before.

    The norm of the gradients, seen as one long vector, is ‖(‖g₁‖, ‖g₂‖, ...)‖; every gradient is
    multiplied by min(max_norm / (norm + 1e-6), 1), as torch does. Everything stays on the device: the
    norm comes back as a 0-d Tensor (read it with .item() when you log it), so a GPU step never waits
    for the host here — except with error_if_nonfinite=True, which must look at the value.
    """
    params = _with_grads(params)
    if not params:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = backend.xp_of(params[0].grad.data)
    norms = xp.stack([xp.linalg.norm(p.grad.data.ravel(), ord=norm_type) for p in params])
    total_norm = xp.linalg.norm(norms, ord=norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total_norm)):
        raise RuntimeError(
            f"clip_grad_norm_: the total {norm_type}-norm of the gradients of {len(params)} parameter(s) is "
            f"{float(total_norm)}, so they cannot be clipped; pass error_if_nonfinite=False to scale them anyway"
        )
    coef = xp.minimum(max_norm / (total_norm + 1e-6), 1.0)  # NaN stays NaN, as in torch
    for p in params:
        p.grad = Tensor(p.grad.data * coef.astype(p.grad.dtype))
    return Tensor(total_norm)


def clip_grad_value_(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient element into [-clip_value, clip_value]."""
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for p in _with_grads(params):
        p.grad = Tensor(backend.xp_of(p.grad.data).clip(p.grad.data, -clip_value, clip_value))

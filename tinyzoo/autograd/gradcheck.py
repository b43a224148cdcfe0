"""Gradient checking: compare autograd against central finite differences, in float64.

    gradcheck(lambda x, w: (x @ w).tanh().sum(), [x, w])

For every input that requires a gradient and every element i of it, the numeric derivative is
(f(x + eps e_i) - f(x - eps e_i)) / 2 eps for a random projection of the output (so non-scalar
outputs are checked too); the analytic one comes from one backward pass. A mismatch raises
GradcheckError naming the input, the element, both values and the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.engine import grad as autograd_grad
from tinyzoo.autograd.tensor import Tensor, enable_grad, no_grad
from tinyzoo.errors import DTypeError, TinyzooError


class GradcheckError(TinyzooError, AssertionError):
    """Analytic and numeric gradients disagree."""


def _projected(fn: Callable[..., Tensor], inputs: Sequence[Tensor], weights: np.ndarray | None) -> Tensor:
    """<fn(*inputs), weights>: a scalar whose gradient checks every output element at once."""
    out = fn(*inputs)
    if weights is None:
        return out.sum()
    return (out * Tensor(backend.to_device(weights, out.device))).sum()


def _projection_weights(fn: Callable[..., Tensor], inputs: Sequence[Tensor], seed: int) -> np.ndarray | None:
    """Random weights that project fn's output to a scalar (None when the output is one already)."""
    with no_grad():
        sample = fn(*inputs)
    return None if sample.size == 1 else np.random.default_rng(seed).standard_normal(sample.shape)


def _check_inputs(inputs: Sequence[Tensor]) -> list[Tensor]:
    checked = []
    for position, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {position} is a {type(t).__name__}; pass tinyzoo Tensors")
        if t.requires_grad and t.dtype != np.float64:
            raise DTypeError(
                f"gradcheck: input {position} is {t.dtype}; finite differences need float64 (use x.double())"
            )
        checked.append(t)
    return checked


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Check fn's gradients for every input with requires_grad against central differences; True or raise."""
    inputs = _check_inputs(inputs)
    weights = _projection_weights(fn, inputs, seed)
    targets = [t for t in inputs if t.requires_grad]
    projected = _projected(fn, inputs, weights)
    if projected.requires_grad:
        analytic = autograd_grad(projected, targets, allow_unused=True)
    else:  # the output does not depend on any input (an empty or constant result): every gradient is 0
        analytic = (None,) * len(targets)
    for position, (t, grad) in enumerate(zip(targets, analytic)):
        numeric = _numeric_grad(fn, inputs, t, weights, eps)
        got = np.zeros(t.shape) if grad is None else backend.to_host(grad._data)
        _compare(position, t.shape, got, numeric, atol, rtol)
    return True


def _numeric_grad(
    fn: Callable[..., Tensor], inputs: Sequence[Tensor], target: Tensor, weights: np.ndarray | None, eps: float
) -> np.ndarray:
    """Central differences of the projected output with respect to every element of `target`."""
    array = target._data  # nudged in place, element by element (any memory layout)
    numeric = np.zeros(target.shape)
    with no_grad():
        for index in np.ndindex(target.shape):
            saved = array[index].item()
            array[index] = saved + eps
            upper = _projected(fn, inputs, weights).item()
            array[index] = saved - eps
            lower = _projected(fn, inputs, weights).item()
            array[index] = saved
            numeric[index] = (upper - lower) / (2 * eps)
    return numeric


def _compare(position: int, shape: tuple, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> None:
    bad = ~np.isclose(analytic, numeric, atol=atol, rtol=rtol)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GradcheckError(
            f"gradcheck: input {position} (shape {shape}) element {index}: analytic {analytic[index]:.8g} "
            f"vs numeric {numeric[index]:.8g} (atol={atol}, rtol={rtol}); {int(bad.sum())} of {bad.size} "
            "elements disagree"
        )


def gradgradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Check second derivatives: gradcheck of the (projected) first gradient, itself built with create_graph."""
    inputs = _check_inputs(inputs)
    weights = _projection_weights(fn, inputs, seed)
    targets = [i for i, t in enumerate(inputs) if t.requires_grad]

    def first_gradient(*args: Tensor) -> Tensor:
        with enable_grad():  # the finite-difference passes run under no_grad; this one needs the tape
            grads = autograd_grad(_projected(fn, args, weights), [args[i] for i in targets], create_graph=True)
            return sum((g * g).sum() for g in grads)

    return gradcheck(first_gradient, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)

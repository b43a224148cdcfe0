"""tinyzoo — a small, readable deep-learning engine and a zoo of models built on it.

    import tinyzoo as tz
    x = tz.randn(4, 3, requires_grad=True)
    loss = (x @ x.T).tanh().sum()
    loss.backward()          # x.grad now holds d loss / d x

Heavy or optional parts (tinyzoo.nn, tinyzoo.optim, tinyzoo.data, CuPy, Numba, matplotlib) are
imported only when first used, so `import tinyzoo` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from tinyzoo import autograd, backend
from tinyzoo.autograd import (
    Tensor,
    arange,
    detect_anomaly,
    enable_grad,
    eye,
    full,
    grad,
    gradcheck,
    gradgradcheck,
    is_grad_enabled,
    no_grad,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from tinyzoo.autograd.ops import *  # noqa: F403  (every op as tinyzoo.<op>)
from tinyzoo.backend import gpu_available
from tinyzoo.errors import (
    AnomalyError,
    CheckpointError,
    DataError,
    DeviceError,
    DTypeError,
    GraphError,
    IndexRangeError,
    ShapeError,
    TinyzooError,
)
from tinyzoo.rng import manual_seed

__version__ = "0.1.0"

_LAZY_MODULES = {"nn", "optim", "data", "models", "kernels", "train", "plot", "testing", "study", "distributed"}
_LAZY_FUNCTIONS = {"save": "tinyzoo.checkpoint", "load": "tinyzoo.checkpoint"}


def __getattr__(name: str) -> Any:
    """Import submodules (tinyzoo.nn, ...) and checkpoint functions on first use."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f"tinyzoo.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'tinyzoo' has no attribute {name!r}")


__all__ = [
    "AnomalyError",
    "CheckpointError",
    "DTypeError",
    "DataError",
    "DeviceError",
    "GraphError",
    "IndexRangeError",
    "ShapeError",
    "Tensor",
    "TinyzooError",
    "arange",
    "autograd",
    "backend",
    "detect_anomaly",
    "enable_grad",
    "eye",
    "full",
    "gpu_available",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "manual_seed",
    "no_grad",
    "ones",
    "ones_like",
    "rand",
    "randint",
    "randn",
    "tensor",
    "zeros",
    "zeros_like",
]

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

from tinyzoo import autograd, backend, dtypes
from tinyzoo.autograd import (
    Tensor,
    arange,
    detect_anomaly,
    empty,
    empty_like,
    enable_grad,
    eye,
    from_numpy,
    full,
    full_like,
    grad,
    gradcheck,
    gradgradcheck,
    is_grad_enabled,
    linspace,
    multinomial,
    no_grad,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from tinyzoo.autograd.ops import *  # noqa: F403  (every op as tinyzoo.<op>)
from tinyzoo.autograd.tensor import Device as device  # noqa: N813  (torch.device)
from tinyzoo.backend import gpu_available
from tinyzoo.dtypes import float16, float32, float64, int8, int16, int32, int64, uint8
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
from tinyzoo.rng import Generator, manual_seed

# PyTorch's short dtype names (they would shadow builtins inside tinyzoo's own modules, so they live here only)
float, double, half, long, int, short, bool = (dtypes.TORCH_NAMES[name] for name in
                                               ("float", "double", "half", "long", "int", "short", "bool"))  # fmt: skip

__version__ = "0.1.0"

_LAZY_MODULES = {"nn", "optim", "data", "models", "kernels", "train", "plot", "testing", "study", "cuda", "distributed"}
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
    "Generator",
    "GraphError",
    "IndexRangeError",
    "ShapeError",
    "Tensor",
    "TinyzooError",
    "arange",
    "autograd",
    "backend",
    "bool",
    "detect_anomaly",
    "device",
    "double",
    "dtypes",
    "empty",
    "empty_like",
    "enable_grad",
    "eye",
    "float",
    "float16",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "full_like",
    "gpu_available",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "half",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "is_grad_enabled",
    "linspace",
    "long",
    "manual_seed",
    "multinomial",
    "no_grad",
    "normal",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "short",
    "tensor",
    "uint8",
    "zeros",
    "zeros_like",
]

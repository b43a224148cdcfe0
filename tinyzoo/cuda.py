"""`tinyzoo.cuda`, as torch.cuda: whether a CUDA GPU is usable (through CuPy) and how many there are."""

from __future__ import annotations

from tinyzoo import backend


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return backend.gpu_available()


def device_count() -> int:
    """The number of CUDA devices CuPy sees (0 without CuPy or a GPU)."""
    return backend.array_module("cuda").cuda.runtime.getDeviceCount() if is_available() else 0

"""The array backend: the one place that knows about NumPy (CPU) and CuPy (GPU).

Every other module asks this one for the array module of an array (`xp_of`, Chainer's
`get_array_module`) or of a device (`array_module`), and moves arrays only through `to_device` /
`to_host`, so a host round-trip is always visible (and counted, see `host_transfers`).

CuPy is imported the first time a GPU is asked for, never at `import tinyzoo`.
"""

from __future__ import annotations

import ctypes
import math
import platform
import sys
import types
from typing import Any

import numpy as np

from tinyzoo.errors import DeviceError

_cupy: types.ModuleType | None = None
_host_transfers = 0

GPU_INSTALL_HINT = "install it with: pip install 'tinyzoo[gpu]' (cupy-cuda12x; cupy-cuda13x works too)"


def _import_cupy() -> types.ModuleType:
    """Import CuPy on first use, with a clear error when it is not installed."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:
            raise DeviceError(f"a GPU was requested but CuPy is not installed; {GPU_INSTALL_HINT}") from exc
        _cupy = cupy
    return _cupy


def cupy_if_loaded() -> types.ModuleType | None:
    """CuPy when something has already imported it, else None (never imports it)."""
    return _cupy


def normalize_device(device: Any) -> str:
    """Turn "cpu", "gpu", "cuda", "cuda:N" (or a tinyzoo Tensor's device) into "cpu" or "cuda:N"."""
    if device is None:
        return "cpu"
    name = str(device).strip().lower()
    if name == "cpu":
        return "cpu"
    if name in ("gpu", "cuda"):
        return "cuda:0"
    if name.startswith("cuda:") and name[5:].isdigit():
        return name
    raise DeviceError(f"unknown device {device!r}: use 'cpu', 'gpu', 'cuda' or 'cuda:N'")


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = _import_cupy()
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _require_gpu(index: int) -> types.ModuleType:
    """CuPy, after checking that CUDA device `index` exists; raise DeviceError saying what is missing."""
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise DeviceError(f"CuPy is installed but no CUDA driver/GPU is usable ({exc}); run with --device cpu") from exc
    if index >= count:
        raise DeviceError(f"cuda:{index} was requested but this machine has {count} CUDA device(s)")
    return cupy


def array_module(device: str) -> types.ModuleType:
    """NumPy for "cpu", CuPy for a CUDA device (checked to exist)."""
    device = normalize_device(device)
    if device == "cpu":
        return np
    return _require_gpu(int(device[5:]))


def xp_of(array: Any) -> types.ModuleType:
    """The array module (numpy or cupy) an array belongs to, like Chainer's get_array_module."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array: Any) -> str:
    """"cpu" for NumPy arrays, "cuda:N" for CuPy arrays."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return f"cuda:{array.device.id}"
    return "cpu"


def to_host(array: Any) -> np.ndarray:
    """Copy an array to host memory as a NumPy array; every device-to-host copy is counted."""
    global _host_transfers
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        _host_transfers += 1
        return _cupy.asnumpy(array)
    return np.asarray(array)


def host_transfers() -> int:
    """How many device-to-host copies `to_host` has made so far (for tests of GPU hot loops)."""
    return _host_transfers


def to_device(array: Any, device: str) -> Any:
    """The array on `device`: a NumPy array for "cpu", a CuPy array on the given CUDA device."""
    device = normalize_device(device)
    if device == "cpu":
        return to_host(array)
    cupy = _require_gpu(int(device[5:]))
    with cupy.cuda.Device(int(device[5:])):
        return cupy.asarray(array)


def scatter_add(target: Any, index: Any, values: Any) -> None:
    """target[index] += values, adding repeated indices once each (np.add.at / cupyx.scatter_add)."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


# mallopt(3) parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(largest_array: int = 32 << 20, keep: int = 1 << 30) -> bool:
    """Make glibc's malloc keep freed host memory for the next training step (process-wide, opt-in).

    A training step allocates its activations and gradients, and backward() frees them all at the end.
    By default glibc hands that memory back to the OS once more than a few MB lie free at the top of the
    heap, so the next step gets it again as fresh pages, each zeroed by the kernel on first touch: a
    small GPT step here took ~24,000 page faults and 39 ms of system time beside 60 ms of arithmetic
    (bench/bench_alloc.py). This serves
    arrays up to `largest_array` bytes from the heap and keeps up to `keep` bytes of it when freed, so the
    resident size stays at the step's peak instead (the trade every caching allocator makes).
    It changes malloc for the whole process, so tinyzoo never calls it on import; the examples'
    `run_main` does. Returns whether it took effect (False off Linux with glibc).
    """
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(_M_MMAP_THRESHOLD, largest_array)) and bool(mallopt(_M_TRIM_THRESHOLD, keep))


def erf(array: Any) -> Any:
    """The error function, elementwise (math.erf on the host, cupyx.scipy.special.erf on a GPU)."""
    if isinstance(array, (np.ndarray, np.generic)):
        return np.asarray(np.frompyfunc(math.erf, 1, 1)(array), dtype=array.dtype)
    from cupyx.scipy.special import erf as cupy_erf

    return cupy_erf(array)

"""The array backend: the one place that knows about NumPy (CPU) and CuPy (GPU).

Every other module asks this one for the array module of an array (`xp_of`, Chainer's
`get_array_module`) or of a device (`array_module`), and moves arrays only through `to_device` /
`to_host`, so a host round-trip is always visible (and counted, see `host_transfers`).

CuPy is imported the first time a GPU is asked for, never at `import tinyzoo`. Tests can put a stand-in
in its place with `use_device_module` (tinyzoo.testing.strict_device): the code then takes exactly the
GPU path, on an array type that refuses every implicit host round-trip.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import platform
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyzoo.errors import DeviceError, IndexRangeError

_cupy: types.ModuleType | None = None
_cupyx: types.ModuleType | None = None  # CuPy's companion with scatter_add / scatter_max
_host_transfers = 0

GPU_INSTALL_HINT = "install it with: pip install 'tinyzoo[gpu]' (cupy-cuda12x), or 'tinyzoo[gpu-cuda13]' (cupy-cuda13x)"


def _import_cupy() -> types.ModuleType:
    """Import CuPy on first use, with a clear error when it is not installed."""
    global _cupy, _cupyx
    if _cupy is None:
        try:
            import cupy
            import cupyx
        except ImportError as exc:
            raise DeviceError(f"a GPU was requested but CuPy is not installed; {GPU_INSTALL_HINT}") from exc
        _cupy, _cupyx = cupy, cupyx
    return _cupy


@contextlib.contextmanager
def use_device_module(module: types.ModuleType, companion: types.ModuleType) -> Iterator[None]:
    """Use `module` (and `companion`) in CuPy's (and cupyx's) place inside the block, then restore them.

    For tests: with tinyzoo.testing.strict_device's stand-in, "cuda:0" runs every op down the CuPy
    branches on an array that raises at any implicit copy to the host.
    """
    global _cupy, _cupyx, _pending_checks
    saved = _cupy, _cupyx, _pending_checks
    _cupy, _cupyx, _pending_checks = module, companion, {}
    try:
        yield
    finally:
        _cupy, _cupyx, _pending_checks = saved


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
    """Copy an array to host memory as a NumPy array; every device-to-host copy is counted.

    A copy from the device waits for the device anyway, so it also reports the index checks made there
    since the last one (see `check_index_range`).
    """
    global _host_transfers
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        _host_transfers += 1
        host = _cupy.asnumpy(array)
        raise_index_errors()
        return host
    return np.asarray(array)


# ----- index checks that never wait for the device -------------------------------------------------
_pending_checks: dict[str, Any] = {}  # device -> 0-d int32 on it: 0, or the code of the first failed check
_check_messages = ["an index op on the device got an index out of range"]  # code - 1 -> message; code 1: generic
_check_codes: dict[str, int] = {}
_MAX_CHECK_SITES = 10_000  # past this many distinct messages, new sites share the generic one


def check_index_range(index: Any, low: int, high: int, message: str) -> None:
    """Raise IndexRangeError unless every entry of the integer array `index` lies in [low, high).

    `message` is the error's text with a `{span}` field. On the host the check is immediate and span
    reads "span [min, max]". Reading a device array's min and max would stall the GPU at every gather,
    so there the check is made on the device, into one flag per device, and reported at the next copy
    to the host (`to_host`, `raise_index_errors`), as CUDA reports a device-side assert: the error then
    names the op that ran with the bad index, while the GPU went on meanwhile (CuPy wraps such an index
    around instead of failing; the results since are not to be trusted).
    """
    if index.size == 0:
        return
    if isinstance(index, np.ndarray):
        if int(index.min()) < low or int(index.max()) >= high:
            raise IndexRangeError(message.format(span=f"span [{int(index.min())}, {int(index.max())}]"))
        return
    xp, device = xp_of(index), device_of(index)
    message = message.format(span=f"do not all lie in [{low}, {high})")
    code = _check_codes.get(message)
    if code is None:
        if len(_check_messages) >= _MAX_CHECK_SITES:
            code = 1
        else:
            _check_messages.append(message)
            code = _check_codes[message] = len(_check_messages)
    bad = ((index < low) | (index >= high)).any()  # a 0-d device bool: nothing comes back to the host
    flag = _pending_checks.get(device)
    if flag is None:
        flag = xp.zeros((), dtype=np.int32)
    _pending_checks[device] = xp.where((flag == 0) & bad, np.int32(code), flag)


def raise_index_errors() -> None:
    """Raise the IndexRangeError of the first device-side index check that failed since the last call.

    `to_host` calls it; call it yourself to check before a host copy (it waits for the device).
    """
    while _pending_checks:
        _, flag = _pending_checks.popitem()
        code = int(_cupy.asnumpy(flag))  # the flag's own read is not counted: it rides on the caller's wait
        if code:
            _pending_checks.clear()
            raise IndexRangeError(_check_messages[code - 1] + " (found on the device at the next copy to the host)")


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
        _cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def scatter_max(target: Any, index: Any, values: Any) -> None:
    """target[index] = max(target[index], values), over repeated indices too (np.maximum.at / cupyx.scatter_max)."""
    if _cupy is not None and isinstance(target, _cupy.ndarray):
        _cupyx.scatter_max(target, index, values)
    else:
        np.maximum.at(target, index, values)


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

"""Picking a kernel implementation, and compiling kernels lazily.

Every kernel in tinyzoo.kernels has three implementations behind one public function:

- "reference": tinyzoo ops (so NumPy or CuPy underneath). The readable definition; its gradient
  comes from the tape, so it is also twice differentiable.
- "numba":     a Numba `@njit(parallel=True, cache=True)` kernel for NumPy arrays on the CPU.
- "cuda":      a numba.cuda kernel launched on CuPy arrays (through `__cuda_array_interface__`).

`choose(op, array, impl)` picks one: an explicit `impl=` wins, then the environment variable
TINYZOO_KERNELS ("reference" forces the tinyzoo-ops path; "auto", the default, picks by device),
then the device of the array. Only "auto" falls back: when Numba is missing (or numba.cuda sees no
GPU), or the array is neither float32 nor float64, it uses the reference, with one warning per
process for a missing backend. A request by name ("numba" or "cuda", by `impl=` or the environment)
that cannot be met raises a DeviceError or DTypeError instead of running something else.

Numba is never imported at `import tinyzoo` or `import tinyzoo.kernels`: the kernels are written
as plain module-level Python functions and compiled by `cpu_kernel` / `cuda_kernel` on first use.
Those functions name `prange` and `cuda` as module globals; compiling binds them to numba.prange
and numba.cuda in the kernel's module first (a plain-Python fallback `prange = range` keeps the
modules importable and lets the kernels run uncompiled, e.g. under NUMBA_DISABLE_JIT).
"""

from __future__ import annotations

import os
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.errors import DeviceError, DTypeError

IMPLS = ("reference", "numba", "cuda")
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # what the compiled kernels are written for
ENV_VAR = "TINYZOO_KERNELS"

_numba: types.ModuleType | None = None
_numba_failed = False
_cuda: types.ModuleType | None = None
_cuda_failed = False
_warned: set[str] = set()
_compiled: dict[tuple[str, Callable], Any] = {}


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def numba_module() -> types.ModuleType | None:
    """numba, imported on first use; None (after one warning) when it cannot be imported."""
    global _numba, _numba_failed
    if _numba is None and not _numba_failed:
        try:
            import numba
        except ImportError as exc:
            _numba_failed = True
            _warn_once(
                "numba",
                f"tinyzoo.kernels: Numba is not available ({exc}); using the slower reference kernels "
                "(pip install numba)",
            )
        else:
            _numba = numba
    return _numba


def cuda_module() -> types.ModuleType | None:
    """numba.cuda when it imports and sees a GPU (or runs its simulator); else None, after one warning."""
    global _cuda, _cuda_failed
    if _cuda is None and not _cuda_failed:
        reason = None
        try:
            from numba import cuda
        except ImportError as exc:
            reason = str(exc)
        else:
            if cuda.is_available():
                _cuda = cuda
            else:
                reason = "numba.cuda sees no usable CUDA GPU/driver"
        if reason is not None:
            _cuda_failed = True
            _warn_once("cuda", f"tinyzoo.kernels: GPU kernels unavailable ({reason}); using the reference kernels")
    return _cuda


def choose(op: str, array: Any, impl: str | None = None) -> str:
    """The implementation to run `op` on `array` with: "reference", "numba" or "cuda"."""
    wanted = impl if impl is not None else os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if wanted not in (*IMPLS, "auto"):
        source = "impl=" if impl is not None else f"{ENV_VAR}="
        raise ValueError(f"{op}: unknown kernel implementation {source}{wanted!r}; use one of auto, {', '.join(IMPLS)}")
    on_gpu = backend.device_of(array) != "cpu"
    if wanted == "reference":
        return "reference"
    if wanted == "auto":
        if array.dtype not in KERNEL_DTYPES:
            return "reference"
        if on_gpu:
            return "cuda" if cuda_module() is not None else "reference"
        return "numba" if numba_module() is not None else "reference"
    source = f"impl={wanted!r}" if impl is not None else f"{ENV_VAR}={wanted}"
    if wanted == "numba" and on_gpu:
        raise DeviceError(f"{op}: the numba kernel runs on the CPU but the input is on {backend.device_of(array)}")
    if wanted == "cuda" and not on_gpu:
        raise DeviceError(f"{op}: the cuda kernel needs CuPy arrays but the input is on the CPU")
    if array.dtype not in KERNEL_DTYPES:
        raise DTypeError(f"{op}: {source} runs on float32 or float64, got {array.dtype}; use impl='reference'")
    if (numba_module() if wanted == "numba" else cuda_module()) is None:
        missing = "Numba is not installed (pip install numba)" if wanted == "numba" else "numba.cuda is unavailable"
        raise DeviceError(f"{op}: {source} was asked for but {missing}; use impl='reference' or leave impl unset")
    return wanted


def cpu_kernel(fn: Callable) -> Any:
    """`fn` compiled with numba.njit(parallel=True, cache=True) (once per process; Numba caches to disk)."""
    key = ("cpu", fn)
    if key not in _compiled:
        numba = numba_module()
        if numba is None:
            raise DeviceError(f"{fn.__name__}: Numba is not installed (pip install numba)")
        fn.__globals__["prange"] = numba.prange  # the loops written `for i in prange(n)` become parallel
        # fastmath "reassoc" lets LLVM vectorise the short inner reductions (dot products over a
        # capsule's or a head's features): 2-3x faster routing. Which order the vector lanes add in is
        # fixed when the kernel is compiled, never at run time, so results stay bit-identical from run
        # to run and for any thread count; they may differ in the last bits from the reference and
        # between CPUs of different vector widths. "contract" allows fused multiply-adds. No other
        # fastmath flags: inf/nan and signed zeros keep their IEEE meaning.
        # Numba's on-disk cache is keyed by the kernel's source, not by these flags: after changing
        # them, delete tinyzoo/kernels/__pycache__/*.nbi and *.nbc.
        flags = {"reassoc", "contract"}
        _compiled[key] = numba.njit(parallel=True, cache=True, nogil=True, fastmath=flags)(fn)
    return _compiled[key]


# Below this many inner-loop steps a kernel runs on the calling thread alone: starting a parallel
# region costs tens of microseconds on an idle machine, and far more (8-20 ms seen) when other
# processes hold the cores and OpenMP's workers spin-wait (OMP_WAIT_POLICY=passive avoids that).
PARALLEL_MIN_WORK = 50_000


def run_cpu(fn: Callable, work: int, *args: Any) -> None:
    """Call the compiled `fn(*args)`, on all of Numba's threads when `work` is large enough, else on one."""
    kernel = cpu_kernel(fn)
    if work >= PARALLEL_MIN_WORK:
        kernel(*args)
        return
    threads = _numba.get_num_threads()
    _numba.set_num_threads(1)  # thread-local in Numba; the kernel's result does not depend on it
    try:
        kernel(*args)
    finally:
        _numba.set_num_threads(threads)


def cuda_kernel(fn: Callable) -> Any:
    """`fn` as a numba.cuda kernel (compiled by Numba on the first launch for each argument type)."""
    key = ("cuda", fn)
    if key not in _compiled:
        cuda = cuda_module()
        if cuda is None:
            raise DeviceError(f"{fn.__name__}: numba.cuda is unavailable (no GPU, or Numba not installed)")
        fn.__globals__["cuda"] = cuda  # the kernel body calls cuda.grid, cuda.syncthreads, ...
        _compiled[key] = cuda.jit(fn)
    return _compiled[key]


def launch(kernel_fn: Callable, blocks: int, threads: int, *args: Any) -> None:
    """Launch a numba.cuda kernel on CuPy's current stream (NumPy arrays: the simulator's default stream)."""
    kernel = cuda_kernel(kernel_fn)
    cupy = backend.cupy_if_loaded()
    if blocks == 0:
        return
    stream_ptr = 0
    if cupy is not None and any(isinstance(a, cupy.ndarray) for a in args):
        stream_ptr = cupy.cuda.get_current_stream().ptr
    if stream_ptr:
        # Numba launches on the legacy default stream unless told; when CuPy works on another stream,
        # launch there, so the kernel is ordered with the CuPy ops before and after it.
        kernel[blocks, threads, _cuda.external_stream(stream_ptr)](*args)
    else:
        kernel[blocks, threads](*args)


def reset() -> None:
    """Forget the imported modules, the warnings given and the compiled kernels (for tests)."""
    global _numba, _numba_failed, _cuda, _cuda_failed
    _numba, _numba_failed, _cuda, _cuda_failed = None, False, None, False
    _warned.clear()
    _compiled.clear()

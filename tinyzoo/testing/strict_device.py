"""A strict stand-in for a GPU, so that GPU readiness can be tested on a machine without one.

    from tinyzoo.testing.strict_device import strict_device

    with strict_device() as device:             # device == "cuda:0"
        model.to(device)
        loss = step(model, batch)               # any implicit copy to the host raises here
        value = loss.item()                     # explicit and counted: backend.host_transfers() grows by 1

`strict_device()` puts a stand-in module in CuPy's place (`backend.use_device_module`), so "cuda:0" takes
exactly the code path a CuPy array takes: `xp_of` returns the stand-in, `Tensor.device` is "cuda:0",
kernels dispatch as they would for CuPy (to numba.cuda when it sees a GPU, else to the reference).

Its array, `StrictArray`, wraps a NumPy array and computes like one, but, like CuPy, it is not a NumPy
array and will not silently become one. Everything that would copy it to the host on a GPU raises
`HostSyncError` naming the file and line that did it:

- conversion: `np.asarray(a)` / `__array__`, `float(a)`, `int(a)`, `bool(a)`, `a.item()`, `a.tolist()`,
  `str(a)`, `f"{a:.3f}"`, iteration, `x in a`, pickling, `a.get()`;
- a NumPy function or ufunc applied to it (`np.exp(a)`, `np.add.at(a, ...)`): a stray `np.` call;
- a host NumPy array as an operand (`a + np_array`), which CuPy refuses too;
- ops whose result size depends on the data, which CuPy can only compute after reading it back:
  boolean-mask indexing `a[mask]`, `nonzero`, `argwhere`, `unique`, one-argument `where`, `bincount`
  without `minlength`.

The only way to the host is the explicit one, `tinyzoo.backend.to_host` (the stand-in's `asnumpy`), which
`backend.host_transfers()` counts. Stricter than CuPy on purpose in two places: NumPy functions are refused
even where CuPy would dispatch them through `__array_function__`, and iteration is refused (CuPy iterates
row by row on the device, one launch per row). `repr(a)` does not raise (pytest's failure reports use it)
and shows no values.
"""

from __future__ import annotations

import contextlib
import copy as copy_module
import operator
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.errors import TinyzooError

__all__ = ["HostSyncError", "StrictArray", "copies_to_host", "strict_cupy", "strict_cupyx", "strict_device"]


class HostSyncError(TinyzooError, TypeError):
    """Device data was about to be copied to the host implicitly (a silent GPU synchronisation)."""


_THIS_FILE = __file__


def _caller() -> str:
    """file:line of the innermost frame outside this module and NumPy (the line that asked for the copy),
    and of the line that called it when that is the Tensor's own conversion (Tensor.__bool__ and the like)."""
    lines = []
    frame = sys._getframe(1)
    while frame is not None and len(lines) < 2:
        name = frame.f_code.co_filename
        if name != _THIS_FILE and "/numpy/" not in name.replace("\\", "/"):
            lines.append(f"{name}:{frame.f_lineno}")
            if not name.replace("\\", "/").endswith("/tinyzoo/autograd/tensor.py"):
                break
        frame = frame.f_back
    return ", called from ".join(lines) or "<unknown>"


def _refuse(what: str, fix: str = "use tinyzoo.backend.to_host(array) if the copy is meant") -> HostSyncError:
    return HostSyncError(f"{what} would copy device data to the host (a GPU sync), at {_caller()}; {fix}")


# ----- moving values across the boundary of the stand-in ---------------------------------------------
def _unwrap(value: Any, where: str, host_ok: bool = False) -> Any:
    """The NumPy array inside a StrictArray (recursing into lists, tuples and dicts); host arrays refused."""
    if isinstance(value, StrictArray):
        return value._array
    if isinstance(value, np.ndarray):
        if host_ok:
            return value.copy()  # a host-to-device copy: the device array never aliases host memory
        raise HostSyncError(
            f"{where}: a host NumPy array {value.shape} was passed beside device arrays, at {_caller()}; CuPy "
            "refuses it: move it with tinyzoo.backend.to_device(array, device) first"
        )
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where, host_ok) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, where, host_ok) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    """NumPy results as device values: arrays and NumPy scalars become StrictArrays (CuPy reductions give 0-d
    arrays, never scalars), generators become device generators; anything else passes through."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, np.generic):
        return StrictArray(np.asarray(value))
    if isinstance(value, np.random.Generator):
        return _DeviceGenerator(value)
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list) and any(isinstance(v, np.ndarray) for v in value):
        return [_wrap(v) for v in value]
    return value


def _device_function(name: str, fn: Callable, host_ok: bool = False) -> Callable:
    """`fn` (a NumPy function) taking and returning device arrays."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return _wrap(fn(*_unwrap(args, name, host_ok), **_unwrap(kwargs, name, host_ok)))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{name} on device arrays (NumPy's, behind the strict stand-in)."
    return call


# ----- the array ------------------------------------------------------------------------------------
class _Device:
    """What `array.device` is on CuPy: an object with the device number."""

    id = 0


_REFUSED_METHODS = {
    "item": ".item()",
    "tolist": ".tolist()",
    "tobytes": ".tobytes()",
    "tofile": ".tofile()",
    "dump": ".dump()",
    "dumps": ".dumps()",
    "get": ".get() (CuPy's own copy to the host, which bypasses the counted backend.to_host)",
}


class StrictArray:
    """A device array for tests: NumPy arithmetic inside, CuPy's refusal of implicit host copies outside."""

    __slots__ = ("_array",)
    __hash__ = None  # like NumPy and CuPy arrays

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    # ----- what CuPy arrays answer without touching the data
    shape = property(lambda self: self._array.shape, doc="The shape.")
    dtype = property(lambda self: self._array.dtype, doc="The dtype.")
    ndim = property(lambda self: self._array.ndim, doc="Number of axes.")
    size = property(lambda self: self._array.size, doc="Number of elements.")
    nbytes = property(lambda self: self._array.nbytes, doc="Bytes held.")
    itemsize = property(lambda self: self._array.itemsize, doc="Bytes per element.")
    strides = property(lambda self: self._array.strides, doc="Strides in bytes.")
    flags = property(lambda self: self._array.flags, doc="Contiguity flags.")
    device = property(lambda self: _Device(), doc="The device (CuPy's `array.device`), number 0.")

    def __len__(self) -> int:
        return len(self._array)

    def __repr__(self) -> str:
        return f"StrictArray(shape={self.shape}, dtype={self.dtype})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # hasattr(a, "__cuda_array_interface__") and the like must answer False
            raise AttributeError(name)
        if name in _REFUSED_METHODS:
            raise _refuse(_REFUSED_METHODS[name])
        if name in ("ctypes", "data"):
            raise _refuse(f"host access to the array's memory (.{name})")
        attribute = getattr(self._array, name)
        return _device_function(f"ndarray.{name}", attribute) if callable(attribute) else _wrap(attribute)

    # ----- implicit conversions, each a silent device-to-host copy on CuPy
    def __float__(self) -> float:
        raise _refuse("float(device array)")

    def __int__(self) -> int:
        raise _refuse("int(device array)")

    def __complex__(self) -> complex:
        raise _refuse("complex(device array)")

    def __index__(self) -> int:
        raise _refuse("using a device array as a Python integer (range, slicing, list index)")

    def __bool__(self) -> bool:
        raise _refuse("bool(device array) (an if/while/and/or on device data)")

    def __iter__(self) -> Iterator:
        raise _refuse("iterating over a device array", "index it, or move it once with backend.to_host")

    def __contains__(self, item: Any) -> bool:
        raise _refuse("`in` on a device array")

    def __str__(self) -> str:
        raise _refuse("str(device array) (printing or formatting its values)")

    def __format__(self, spec: str) -> str:
        raise _refuse("formatting a device array (an f-string)")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise _refuse("np.asarray/np.array of a device array (__array__)")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise _refuse("pickling a device array")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        suffix = "" if method == "__call__" else f".{method}"
        raise _refuse(f"NumPy's np.{ufunc.__name__}{suffix} on a device array", "use xp = tinyzoo.backend.xp_of(array)")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise _refuse(f"NumPy's np.{func.__name__} on a device array", "use xp = tinyzoo.backend.xp_of(array)")

    # ----- copies stay on the device
    def __copy__(self) -> StrictArray:
        return StrictArray(self._array.copy())

    def __deepcopy__(self, memo: dict) -> StrictArray:
        return StrictArray(copy_module.deepcopy(self._array, memo))

    # ----- indexing
    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._array[_index(key, self.shape)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._array[_index(key, self.shape, setting=True)] = _unwrap(value, "setitem", host_ok=True)

    def argsort(self, axis: int = -1, **kwargs: Any) -> StrictArray:
        """Stable, as CuPy's."""
        return _argsort(self, axis)

    def take(self, indices: Any, axis: int | None = None) -> StrictArray:
        """Out-of-range indices wrap, as in CuPy."""
        return _take(self, indices, axis)


def _index(key: Any, shape: tuple, setting: bool = False) -> Any:
    """An index expression on the NumPy array inside, with CuPy's semantics: boolean masks are refused when
    reading (their result's size is known only after reading the mask back), and integer-array indices
    out of range wrap around instead of raising (CuPy does not check them; tinyzoo's ops check on the device)."""
    parts = _unwrap(key if isinstance(key, tuple) else (key,), "indexing", host_ok=True)
    positional = not any(p is None or p is Ellipsis for p in parts)  # then part i indexes axis i
    wrapped = []
    for axis, part in enumerate(parts):
        if isinstance(part, np.ndarray) and part.dtype == bool:
            if not setting:
                raise _refuse("indexing with a boolean mask (CuPy reads the mask back to size the result)",
                              "use xp.where(mask, a, b) or integer indices")
        elif isinstance(part, np.ndarray) and part.dtype.kind in "iu" and positional and shape[axis]:
            part = part % shape[axis]
        wrapped.append(part)
    return tuple(wrapped) if isinstance(key, tuple) else wrapped[0]


def _take(a: Any, indices: Any, axis: int | None = None, **kwargs: Any) -> Any:
    """xp.take, wrapping out-of-range indices as CuPy does."""
    a, indices = _unwrap((a, indices), "take", host_ok=True)
    size = a.size if axis is None else a.shape[axis]
    return _wrap(np.take(a, np.asarray(indices) % max(size, 1), axis=axis, **kwargs))


def _take_along_axis(a: Any, indices: Any, axis: int) -> Any:
    """xp.take_along_axis, wrapping out-of-range indices as CuPy does."""
    a, indices = _unwrap((a, indices), "take_along_axis")
    return _wrap(np.take_along_axis(a, indices % max(a.shape[axis], 1), axis=axis))


def _argsort(a: Any, axis: int = -1, **kwargs: Any) -> Any:
    """xp.argsort; CuPy's sort is stable, NumPy's default is not."""
    return _wrap(np.argsort(_unwrap(a, "argsort"), axis=axis, kind="stable"))


def _binary(op: Callable, reflected: bool = False) -> Callable:
    def method(self: StrictArray, other: Any) -> Any:
        if not isinstance(other, (StrictArray, np.ndarray, np.generic, int, float, bool, complex)):
            return NotImplemented  # a tinyzoo Tensor answers with its reflected operator
        other = _unwrap(other, op.__name__)
        return _wrap(op(other, self._array) if reflected else op(self._array, other))

    return method


def _inplace(op: Callable) -> Callable:
    def method(self: StrictArray, other: Any) -> StrictArray:
        op(self._array, _unwrap(other, op.__name__))
        return self

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _op = getattr(operator, _name if _name not in ("and", "or") else f"{_name}_")
    setattr(StrictArray, f"__{_name}__", _binary(_op))
    setattr(StrictArray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(StrictArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(StrictArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._array)))(getattr(operator, _name)))


# ----- the module in CuPy's place -------------------------------------------------------------------
# NumPy functions whose result's size depends on the data: CuPy reads the data back to size it.
_DATA_SIZED = {"nonzero", "argwhere", "flatnonzero", "unique", "extract", "compress", "trim_zeros"}
_HOST_INPUT_OK = {"asarray", "array", "asanyarray"}  # cupy.asarray(host array): the explicit host-to-device copy


class _DeviceNamespace(types.ModuleType):
    """A NumPy namespace (numpy, numpy.linalg, numpy.lib.stride_tricks, ...) that works on device arrays."""

    def __init__(self, name: str, numpy_namespace: Any) -> None:
        super().__init__(name)
        self._numpy = numpy_namespace

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        attribute = getattr(self._numpy, name)
        if name in _DATA_SIZED:
            return _refused_function(name)
        special = {"where": _where, "bincount": _bincount, "take": _take, "take_along_axis": _take_along_axis,
                   "argsort": _argsort}
        if name in special:
            return special[name]
        if isinstance(attribute, types.ModuleType):
            wrapped = _DeviceNamespace(f"{self.__name__}.{name}", attribute)
        elif isinstance(attribute, np.ufunc):
            wrapped = _DeviceUfunc(attribute)
        elif isinstance(attribute, type) or not callable(attribute):
            wrapped = attribute  # dtypes (xp.float32 is np.float32 in CuPy too), constants
        else:
            wrapped = _device_function(name, attribute, host_ok=name in _HOST_INPUT_OK)
        setattr(self, name, wrapped)  # look each name up once
        return wrapped


def _refused_function(name: str) -> Callable:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise _refuse(f"xp.{name} (its result's size depends on the data)")

    return refused


def _where(condition: Any, *choices: Any) -> Any:
    """xp.where(c, a, b) on the device; the one-argument form (nonzero) is refused."""
    if not choices:
        raise _refuse("xp.where(condition) with one argument (it is nonzero)", "pass both branches")
    return _wrap(np.where(*_unwrap((condition, *choices), "where")))


def _bincount(x: Any, weights: Any = None, minlength: int | None = None) -> Any:
    """xp.bincount; without minlength CuPy reads max(x) back to size the result, so that is refused."""
    if minlength is None:
        raise _refuse("xp.bincount without minlength (CuPy reads max(x) back)", "pass minlength=")
    return _wrap(np.bincount(*_unwrap((x, weights), "bincount"), minlength=minlength))


class _DeviceUfunc:
    """A NumPy ufunc on device arrays, with its methods (`at`, `reduce`, `outer`, ...)."""

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _device_function(self.__name__, self._ufunc)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._ufunc, name)
        return _device_function(f"{self.__name__}.{name}", attribute) if callable(attribute) else attribute


class _DeviceGenerator:
    """A seeded generator drawing device arrays; only the draws CuPy's Generator has."""

    _DRAWS = ("random", "standard_normal", "integers", "uniform", "standard_exponential")

    def __init__(self, generator: np.random.Generator) -> None:
        self._generator = generator

    def __getattr__(self, name: str) -> Any:
        if name not in self._DRAWS:
            raise AttributeError(f"the device generator has no {name!r} (CuPy's Generator draws {self._DRAWS})")
        return _device_function(f"Generator.{name}", getattr(self._generator, name))


_COPY_PLUMBING = ("/tinyzoo/backend.py", "/tinyzoo/autograd/tensor.py")  # to_host, Tensor.item/.numpy/.tolist


def _asnumpy(array: Any) -> np.ndarray:
    """The explicit copy to the host (called by backend.to_host, which counts it); its caller is logged."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.replace("\\", "/").endswith(_COPY_PLUMBING):
        frame = frame.f_back
    copies_to_host.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
    return array._array.copy() if isinstance(array, StrictArray) else np.asarray(array)


copies_to_host: list[str] = []  # file:line that asked for each explicit copy to the host (cleared by strict_device)


def _scatter(ufunc: np.ufunc) -> Callable:
    def scatter(target: StrictArray, index: Any, values: Any) -> None:
        ufunc.at(target._array, _unwrap(index, ufunc.__name__, host_ok=True), _unwrap(values, ufunc.__name__))

    return scatter


def _cuda_namespace() -> types.SimpleNamespace:
    """The parts of cupy.cuda tinyzoo uses: one device, a current stream with no pointer."""
    return types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda index=0: contextlib.nullcontext(),
        get_current_stream=lambda: types.SimpleNamespace(ptr=0),
    )


def _make_modules() -> tuple[types.ModuleType, types.ModuleType]:
    cupy = _DeviceNamespace("strict_cupy", np)
    cupy.ndarray = StrictArray
    cupy.asnumpy = _asnumpy
    cupy.cuda = _cuda_namespace()
    cupyx = types.ModuleType("strict_cupyx")
    cupyx.scatter_add = _scatter(np.add)
    cupyx.scatter_max = _scatter(np.maximum)
    return cupy, cupyx


strict_cupy, strict_cupyx = _make_modules()


@contextlib.contextmanager
def strict_device() -> Iterator[str]:
    """Run the block with the strict stand-in as the GPU; yields its device name, "cuda:0"."""
    copies_to_host.clear()
    with backend.use_device_module(strict_cupy, strict_cupyx):
        yield "cuda:0"

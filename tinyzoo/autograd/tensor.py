"""The Tensor and the tape.

A `Tensor` wraps an array (`._data`, NumPy or CuPy). When an op runs with grad mode on and one of its
inputs requires a gradient, `record_op` attaches a `Node` to the output: the op's name, edges to its
inputs (their nodes, or the tensors themselves for leaves and constants) and a `backward(grad, out)`
function that maps the output's gradient to one gradient per input. The nodes form the tape;
`Tensor.backward()` (in `engine.py`) walks it in reverse. A node keeps only what its rule reads.

Backward functions are written with tinyzoo ops themselves, so the backward pass can be recorded
too (`create_graph=True`) and second derivatives come for free.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import traceback
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyzoo import backend, dtypes
from tinyzoo.errors import AnomalyError, DTypeError, GraphError, IndexRangeError

BackwardFn = Callable[["Tensor", "Tensor"], tuple]


class _Mode:
    """Global switches of the tape: grad recording, anomaly detection, and op observers (tracing)."""

    __slots__ = ("anomaly", "grad_enabled", "last_inplace", "observers")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        self.observers: list = []
        self.last_inplace = 0  # sequence number of the latest in-place change anywhere (0: none yet)


MODE = _Mode()


_SEQUENCE = itertools.count()  # numbers the nodes in the order their ops ran


def next_sequence() -> int:
    """A fresh number of the tape's clock (nodes and in-place changes are ordered by these)."""
    return next(_SEQUENCE)


class Node:
    """One recorded op: its name, the edges to its inputs, how to send a gradient back, and when it ran.

    The tape is a graph of nodes, not of tensors (as PyTorch's): an input made by an op is reached through
    that op's Node, so an intermediate tensor the user dropped is freed at once unless a backward rule
    keeps it. A rule keeps what it reads by capturing it (`mul`'s rule captures both operands, `add`'s
    nothing), and the op's output only if the rule reads it: by convention a rule that does not names its
    second parameter `_`, and then the node keeps no reference to the output's array.

    `inputs` holds, per input, its Node when an op made it, else the tensor itself (a leaf or a constant).
    `sequence` grows with every op recorded; the backward pass visits nodes from the highest down.
    """

    __slots__ = ("__weakref__", "_hooks", "backward", "created_at", "dtype", "inputs", "name",
                 "once_differentiable", "saved_output", "sequence", "shape")  # fmt: skip
    requires_grad = True  # an edge to an op's output always carries a gradient (a tensor edge may not)

    def __init__(self, name: str, inputs: tuple, backward: BackwardFn, once_differentiable: bool, out: Tensor) -> None:
        self.name = name
        if len(inputs) == 2:  # (unrolled for the common one and two inputs: a loop costs more than the rest)
            a, b = inputs
            self.inputs = (a if a._node is None else a._node, b if b._node is None else b._node)
        elif len(inputs) == 1:
            self.inputs = (inputs[0] if inputs[0]._node is None else inputs[0]._node,)
        else:
            self.inputs = tuple([t if t._node is None else t._node for t in inputs])
        self.backward = backward
        self.once_differentiable = once_differentiable
        try:  # does the rule read the output? (all do but those naming their second parameter `_`)
            self.saved_output = None if backward.__code__.co_varnames[1] == "_" else out._data
        except (AttributeError, IndexError):  # not a plain function (a callable object, functools.partial)
            self.saved_output = out._data
        self.shape = out._data.shape
        self.dtype = out._data.dtype
        self.sequence = next(_SEQUENCE)
        self.created_at = _user_frame() if MODE.anomaly else None
        self._hooks: list | None = None

    @property
    def freed(self) -> bool:
        """True once a backward pass without retain_graph has released this node's inputs."""
        return self.inputs is None

    def output_for_backward(self) -> Tensor:
        """The output as a rule that reads it sees it: a tensor on this node around the saved array."""
        out = wrap(self.saved_output)
        out._node, out.requires_grad = self, True
        return out


PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding tinyzoo's own code


def is_library_file(filename: str) -> bool:
    """True for a file inside the installed tinyzoo package (not a user's script in a folder named tinyzoo)."""
    return os.path.abspath(filename).startswith(PACKAGE_DIR + os.sep)


def _user_frame() -> str:
    """file:line of the innermost stack frame outside tinyzoo (where the user's code made a tensor)."""
    for frame in reversed(traceback.extract_stack()):
        if not is_library_file(frame.filename):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class Device(str):
    """A device name, "cpu" or "cuda:N", that is also a string ("cpu" == tz.device("cpu")).

    Like torch.device it has `.type` ("cpu" or "cuda") and `.index` (None on the CPU).
    """

    __slots__ = ()

    def __new__(cls, name: Any = "cpu") -> Device:
        return super().__new__(cls, backend.normalize_device(name))

    @property
    def type(self) -> str:
        """"cpu" or "cuda"."""
        return self.partition(":")[0]

    @property
    def index(self) -> int | None:
        """The GPU's number, or None on the CPU."""
        return int(self[5:]) if self.startswith("cuda:") else None


class Size(int):
    """The number of elements (NumPy's `x.size`) that, called, gives the shape (PyTorch's `x.size()`)."""

    shape: tuple[int, ...]

    def __new__(cls, shape: tuple[int, ...]) -> Size:
        out = super().__new__(cls, math.prod(shape))
        out.shape = shape
        return out

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the length of axis `dim`."""
        return self.shape if dim is None else self.shape[dim]


class Tensor:
    """An n-dimensional array that remembers how it was computed, so gradients can flow back.

    `_version` is the tape's sequence number at the tensor's last in-place change (0: never changed);
    a node whose input changed after the op ran (`_version > node.sequence`) refuses to run backward.
    """

    __slots__ = ("__weakref__", "_data", "_hooks", "_node", "_version", "grad", "name", "requires_grad")
    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__, not NumPy's broadcasting

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        plain = type(data) is np.ndarray and data.dtype.kind in "biuf"  # (the common case, checked cheaply)
        self._data = data if plain else as_array(data)
        self._version = 0
        self.grad: Tensor | None = None
        self._node: Node | None = None
        self._hooks: list | None = None
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----- what a tensor is --------------------------------------------------------------------
    @property
    def data(self) -> Any:
        """The array (NumPy or CuPy). Assigning to it changes the tensor in place, outside the tape."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        if isinstance(value, Tensor):  # `p.data -= lr * p.grad`: NumPy handed the subtraction to Tensor
            if value.requires_grad:
                raise GraphError(
                    f"tensor.data = ...: the new value (shape {value.shape}) requires grad; assign an array, "
                    "or compute it under no_grad() / with .detach()"
                )
            value = value._data
        if isinstance(value, (np.generic, int, float, bool)):  # a number: a 0-d array of the tensor's dtype
            value = backend.to_device(np.asarray(value, dtype=self._data.dtype), backend.device_of(self._data))
        if not is_array(value):
            raise DTypeError(f"tensor.data = ...: assign a NumPy or CuPy array, got {type(value).__name__}")
        self._data = as_array(value)  # (another device is fine: `p.data = p.data.cuda()` moves a parameter)
        self.bump_version()

    def bump_version(self) -> None:
        """Record that the tensor's values changed in place (backward through older ops will refuse).

        The array's memory is stamped too, so views and detached tensors sharing it are caught as well.
        """
        self._version = stamp = next(_SEQUENCE)
        MODE.last_inplace = stamp
        root = _memory_owner(self._data)
        key = id(root)
        try:
            _ARRAY_VERSIONS[key] = (weakref.ref(root, lambda _: _ARRAY_VERSIONS.pop(key, None)), stamp)
        except TypeError:  # an array type without weak references: the tensor's own version still holds
            pass

    def changed_since(self, sequence: int) -> bool:
        """True when this tensor, or memory it shares, was changed in place after op number `sequence`."""
        if self._version > sequence:
            return True
        root = _memory_owner(self._data)
        entry = _ARRAY_VERSIONS.get(id(root))
        return entry is not None and entry[0]() is root and entry[1] > sequence

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The array's dtype."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self._data.ndim

    @property
    def size(self) -> Size:
        """Number of elements (an int, as NumPy's); called, the shape (`x.size()`, `x.size(0)`, as PyTorch's)."""
        return Size(self._data.shape)

    def numel(self) -> int:
        """Number of elements."""
        return self._data.size

    nelement = numel

    def dim(self) -> int:
        """Number of axes (PyTorch's name for ndim)."""
        return self._data.ndim

    @property
    def device(self) -> Device:
        """"cpu" or "cuda:N" (a string with `.type` and `.index`, like torch.device)."""
        return Device(backend.device_of(self._data))

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (not by an op under grad mode)."""
        return self._node is None

    @property
    def grad_fn(self) -> str | None:
        """Name of the op that made this tensor, or None for a leaf."""
        return None if self._node is None else self._node.name

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        extra = f", grad_fn={self.grad_fn}" if self._node is not None else ""
        extra += ", requires_grad=True" if self.requires_grad and self._node is None else ""
        dev = "" if self.device == "cpu" else f", device='{self.device}'"
        body = np.array2string(backend.to_host(self._data), precision=4, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    __hash__ = object.__hash__  # == is elementwise, so hashing stays by identity

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise ValueError(f"truth value of a tensor with shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu":
            raise DTypeError(f"only integer tensors can be used as an index, got dtype {self.dtype}")
        return int(self.item())

    # ----- leaving the tape ----------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark this leaf as a parameter to differentiate (floating point only)."""
        if flag and self._data.dtype.kind not in "fc":
            raise DTypeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype} with shape "
                f"{self.shape}; convert first, e.g. x.astype('float32')"
            )
        if flag and self._data.dtype.kind == "c":
            raise DTypeError("complex tensors are not supported by tinyzoo's autograd")
        self.requires_grad = flag
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the tape."""
        return Tensor(self._data)

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array: on the CPU the tensor's own array (changing one changes the other,
        as in PyTorch), from a GPU a host copy."""
        return self._data if isinstance(self._data, np.ndarray) else backend.to_host(self._data)

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}; reduce it first")
        return backend.to_host(self._data).reshape(()).item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return backend.to_host(self._data).tolist()

    def zero_grad_(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call hook(grad) when this tensor's gradient is computed; a returned tensor replaces the grad.

        Returns a function that removes the hook. A tensor made by an op keeps its hooks on that op's
        Node (the tape holds nodes, not tensors), so they fire even after the tensor itself is gone.
        """
        owner = self if self._node is None else self._node
        if owner._hooks is None:
            owner._hooks = []
        owner._hooks.append(hook)
        return lambda: owner._hooks.remove(hook)

    def backward(self, gradient: Any = None, retain_graph: bool = False, create_graph: bool = False,
                 *, grad: Any = None) -> None:  # fmt: skip
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`; `gradient` (PyTorch's name; `grad=` also
        works) is required unless self is a scalar."""
        from tinyzoo.autograd.engine import backward

        backward(self, gradient if grad is None else grad, retain_graph=retain_graph, create_graph=create_graph)


_ARRAY_VERSIONS: dict[int, tuple[weakref.ref, int]] = {}  # id(memory owner) -> (its weakref, last change)


def _memory_owner(array: Any) -> Any:
    """The array that owns the memory `array` views (itself when it owns its memory)."""
    while isinstance(getattr(array, "base", None), type(array)):
        array = array.base
    return array


def _is_cupy(data: Any) -> bool:
    cupy = backend.cupy_if_loaded()
    return cupy is not None and isinstance(data, cupy.ndarray)


def is_array(data: Any) -> bool:
    """Whether `data` is a NumPy or CuPy array."""
    return isinstance(data, np.ndarray) or _is_cupy(data)


def as_array(data: Any, dtype: Any = None, device: str | None = None) -> Any:
    """The one conversion of data to an array, with PyTorch's dtype rules and tinyzoo's checks.

    Arrays and NumPy scalars keep their dtype; Python floats (and lists of them) become float32, Python
    ints int64, bools bool. Strings, objects and complex numbers are refused with a DTypeError.
    """
    if isinstance(data, Tensor):
        data = data._data
    if is_array(data):
        array = data if dtype is None else data.astype(dtypes.as_dtype(dtype), copy=False)
    else:
        try:
            array = np.asarray(data, dtype=None if dtype is None else dtypes.as_dtype(dtype))
        except (ValueError, TypeError) as exc:
            raise DTypeError(f"cannot make a tensor from {type(data).__name__}: {exc}") from None
        if dtype is None and array.dtype == np.float64 and not isinstance(data, np.generic):
            array = array.astype(dtypes.DEFAULT_FLOAT)
    if array.dtype.kind not in "biuf":
        raise DTypeError(
            f"tinyzoo tensors hold real numbers or booleans; got dtype {array.dtype} from {type(data).__name__}"
        )
    if device is not None:
        array = backend.to_device(array, device)
    return array


class IndexedGrad:
    """A gradient that is zero except at `index`, where it holds `data` (the backward of x[index]).

    The engine adds it into one gradient buffer in place instead of materialising zeros(shape) per
    slice, so a loop over x[t] for t = 1..T costs O(T) memory traffic, not O(T²). Only produced when
    the backward pass is not itself recorded (create_graph=False).
    """

    __slots__ = ("_data", "advanced", "dtype", "index", "shape")

    @property
    def data(self) -> Any:
        """The values to add at `index`."""
        return self._data

    def __init__(self, data: Any, shape: tuple[int, ...], index: Any, advanced: bool) -> None:
        self._data, self.shape, self.index, self.dtype, self.advanced = data, shape, index, data.dtype, advanced

    def add_into(self, buffer: Any) -> None:
        """buffer[index] += data (repeated integer indices add up)."""
        if self.advanced:
            backend.scatter_add(buffer, self.index, self._data)
        else:
            buffer[self.index] += self._data


def wrap(array: Any) -> Tensor:
    """A constant Tensor around an array known to be valid (an op's result, a cached constant).

    Skips `Tensor.__init__`'s conversion and checks, which cost more than a tiny op's arithmetic.
    """
    out = Tensor.__new__(Tensor)
    out._data = array
    out.grad = out._hooks = out.name = out._node = None
    out.requires_grad = False
    out._version = 0
    return out


def record_op(
    name: str,
    out_data: Any,
    inputs: tuple[Tensor, ...],
    backward: BackwardFn,
    once_differentiable: bool = False,
) -> Tensor:
    """Wrap an op's output array in a Tensor and, when grad mode is on, put the op on the tape.

    `backward(grad, out)` must return one gradient Tensor (or None) per input, of the input's shape (or
    one that broadcasts to it, which the engine sums back). Ops whose backward works on raw arrays
    (custom kernels) pass `once_differentiable=True`; asking for a second derivative through them then
    raises instead of silently returning zero.
    """
    if type(out_data) is not np.ndarray and isinstance(out_data, np.generic):  # (NumPy reductions to 0-d
        out_data = np.asarray(out_data)  # return scalars: keep arrays throughout)
    out = wrap(out_data)
    if MODE.grad_enabled:
        for tensor in inputs:  # a plain loop: any(generator) costs more than the rest of this function
            if tensor.requires_grad:
                out.requires_grad = True
                out._node = Node(name, inputs, backward, once_differentiable, out)
                break
    if MODE.anomaly:
        check_finite(name, out_data, "forward", out._node)
    for observer in MODE.observers:
        observer.on_forward(name, inputs, out)
    return out


def check_finite(op: str, array: Any, phase: str, node: Node | None) -> None:
    """Raise AnomalyError when `array` holds a NaN or Inf (used by detect_anomaly)."""
    if array.dtype.kind == "f" and not bool(backend.xp_of(array).isfinite(array).all()):
        where = node.created_at if node is not None and node.created_at else _user_frame()
        kind = "NaN" if bool(backend.xp_of(array).isnan(array).any()) else "Inf"
        raise AnomalyError(f"{phase} of '{op}' produced {kind} (shape {array.shape}); op called at {where}")


# ----- grad mode ---------------------------------------------------------------------------------
class _GradMode(contextlib.ContextDecorator):
    """Context manager and decorator that switches gradient recording on or off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._saved: list[bool] = []

    def __enter__(self) -> None:
        self._saved.append(MODE.grad_enabled)
        MODE.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        MODE.grad_enabled = self._saved.pop()


def no_grad() -> _GradMode:
    """Run ops without recording them (inference, optimizer updates). Also usable as a decorator."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Record ops even inside `no_grad` (also usable as a decorator)."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """Whether ops are being recorded right now."""
    return MODE.grad_enabled


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise at the first op whose forward or backward yields NaN/Inf, naming it and where it was called."""
    saved = MODE.anomaly
    MODE.anomaly = True
    try:
        yield
    finally:
        MODE.anomaly = saved


def tensor_index(index: Any) -> Any:
    """Replace Tensors inside an index expression by their arrays."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return as_array(index) if index and not isinstance(index[0], slice) else index
    return index


def index_error(op: str, shape: tuple, exc: Exception) -> IndexRangeError:
    """An IndexRangeError naming the op and the shape indexed."""
    return IndexRangeError(f"{op}: index out of range for a tensor of shape {shape}: {exc}")


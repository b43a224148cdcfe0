"""The Tensor and the tape.

A `Tensor` wraps an array (`.data`, NumPy or CuPy). When an op runs with grad mode on and one of its
inputs requires a gradient, `record_op` attaches a `Node` to the output: the op's name, its input
tensors and a `backward(grad, out)` function that maps the output's gradient to one gradient per
input. The nodes form the tape; `Tensor.backward()` (in `engine.py`) walks it in reverse.

Backward functions are written with tinyzoo ops themselves, so the backward pass can be recorded
too (`create_graph=True`) and second derivatives come for free.
"""

from __future__ import annotations

import contextlib
import itertools
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.errors import AnomalyError, DTypeError, IndexRangeError

BackwardFn = Callable[["Tensor", "Tensor"], tuple]


class _Mode:
    """Global switches of the tape: grad recording, anomaly detection, and op observers (tracing)."""

    __slots__ = ("anomaly", "grad_enabled", "observers")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.anomaly = False
        self.observers: list = []


MODE = _Mode()


_SEQUENCE = itertools.count()  # numbers the nodes in the order their ops ran


class Node:
    """One recorded op: its name, its inputs, how to send a gradient back to them, and when it ran.

    `sequence` grows with every op recorded; the backward pass visits nodes from the highest down.
    """

    __slots__ = ("backward", "created_at", "inputs", "name", "once_differentiable", "sequence")

    def __init__(self, name: str, inputs: tuple, backward: BackwardFn, once_differentiable: bool) -> None:
        self.name = name
        self.inputs = inputs
        self.backward = backward
        self.once_differentiable = once_differentiable
        self.sequence = next(_SEQUENCE)
        self.created_at = _user_frame() if MODE.anomaly else None

    @property
    def freed(self) -> bool:
        """True once a backward pass without retain_graph has released this node's inputs."""
        return self.inputs is None

    def free(self) -> None:
        """Drop the references to the inputs and the backward closure (the graph's memory)."""
        self.inputs = None
        self.backward = None


def _user_frame() -> str:
    """file:line of the innermost stack frame outside tinyzoo (where the user's code made a tensor)."""
    for frame in reversed(traceback.extract_stack()):
        if "/tinyzoo/" not in frame.filename.replace("\\", "/"):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class Tensor:
    """An n-dimensional array that remembers how it was computed, so gradients can flow back."""

    __slots__ = ("__weakref__", "_hooks", "_node", "data", "grad", "name", "requires_grad")
    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__, not NumPy's broadcasting

    def __init__(self, data: Any, requires_grad: bool = False, name: str | None = None) -> None:
        self.data = data if isinstance(data, np.ndarray) or _is_cupy(data) else as_array(data)
        self.grad: Tensor | None = None
        self._node: Node | None = None
        self._hooks: list | None = None
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ----- what a tensor is --------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        """The array's dtype."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.data.size

    @property
    def device(self) -> str:
        """"cpu" or "cuda:N"."""
        return backend.device_of(self.data)

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
        body = np.array2string(backend.to_host(self.data), precision=4, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    __hash__ = object.__hash__  # == is elementwise, so hashing stays by identity

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"truth value of a tensor with shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.data)

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
        if flag and self.data.dtype.kind not in "fc":
            raise DTypeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype} with shape "
                f"{self.shape}; convert first, e.g. x.astype('float32')"
            )
        if flag and self.data.dtype.kind == "c":
            raise DTypeError("complex tensors are not supported by tinyzoo's autograd")
        self.requires_grad = flag
        return self

    def detach(self) -> Tensor:
        """The same data, cut from the tape."""
        return Tensor(self.data)

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (copies from the GPU when needed)."""
        return backend.to_host(self.data).copy()

    def item(self) -> float | int | bool:
        """The single value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}; reduce it first")
        return backend.to_host(self.data).reshape(()).item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return backend.to_host(self.data).tolist()

    def zero_grad_(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call hook(grad) when this tensor's gradient is computed; a returned tensor replaces the grad.

        Returns a function that removes the hook.
        """
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    def backward(self, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (grad is required unless self is a scalar)."""
        from tinyzoo.autograd.engine import backward

        backward(self, grad, retain_graph=retain_graph, create_graph=create_graph)


def _is_cupy(data: Any) -> bool:
    cupy = backend.cupy_if_loaded()
    return cupy is not None and isinstance(data, cupy.ndarray)


def as_array(data: Any, dtype: Any = None, device: str | None = None) -> Any:
    """Convert Python scalars, lists and arrays to an array; Python floats become float32 like torch."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or _is_cupy(data):
        array = data if dtype is None else data.astype(dtype, copy=False)
    else:
        array = np.asarray(data, dtype=dtype)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
    if array.dtype.kind in "OUSVcmM":
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

    __slots__ = ("advanced", "data", "dtype", "index", "shape")

    def __init__(self, data: Any, shape: tuple[int, ...], index: Any, advanced: bool) -> None:
        self.data, self.shape, self.index, self.dtype, self.advanced = data, shape, index, data.dtype, advanced

    def add_into(self, buffer: Any) -> None:
        """buffer[index] += data (repeated integer indices add up)."""
        if self.advanced:
            backend.scatter_add(buffer, self.index, self.data)
        else:
            buffer[self.index] += self.data


def wrap(array: Any) -> Tensor:
    """A constant Tensor around an array known to be valid (an op's result, a cached constant).

    Skips `Tensor.__init__`'s conversion and checks, which cost more than a tiny op's arithmetic.
    """
    out = Tensor.__new__(Tensor)
    out.data = array
    out.grad = out._hooks = out.name = out._node = None
    out.requires_grad = False
    return out


def record_op(
    name: str,
    out_data: Any,
    inputs: tuple[Tensor, ...],
    backward: BackwardFn,
    once_differentiable: bool = False,
) -> Tensor:
    """Wrap an op's output array in a Tensor and, when grad mode is on, put the op on the tape.

    `backward(grad, out)` must return one gradient Tensor (or None) per input, each of the input's
    shape. Ops whose backward works on raw arrays (custom kernels) pass `once_differentiable=True`;
    asking for a second derivative through them then raises instead of silently returning zero.
    """
    if isinstance(out_data, np.generic):  # NumPy reductions to 0-d return scalars; keep arrays throughout
        out_data = np.asarray(out_data)
    out = wrap(out_data)
    if MODE.grad_enabled:
        for tensor in inputs:  # a plain loop: any(generator) costs more than the rest of this function
            if tensor.requires_grad:
                out.requires_grad = True
                out._node = Node(name, inputs, backward, once_differentiable)
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
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return as_array(index) if index and not isinstance(index[0], slice) else index
    return index


def index_error(op: str, shape: tuple, exc: Exception) -> IndexRangeError:
    """An IndexRangeError naming the op and the shape indexed."""
    return IndexRangeError(f"{op}: index out of range for a tensor of shape {shape}: {exc}")


"""Module and Parameter: how layers hold their weights and find each other.

A `Module` is any object whose attributes may be Parameters (learned tensors), buffers (state that
is saved but not learned, like BatchNorm's running mean) and other Modules. Assigning an attribute
registers it, exactly as in PyTorch, so `parameters()`, `state_dict()` and `to(device)` can walk the
tree without each layer writing that code again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.tensor import Tensor
from tinyzoo.errors import ShapeError


class Parameter(Tensor):
    """A tensor a Module learns: requires_grad is on, and assigning it to a Module registers it."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model: override `forward`, call the module like a function."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "training", True)

    # ----- registration ----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting {name!r}")
        if isinstance(value, (Parameter, Module)):
            for registry in (self._parameters, self._buffers, self._modules):
                registry.pop(name, None)
            self.__dict__.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Tensor | None) -> None:
        """Keep `value` as saved state that is not learned (e.g. running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = value

    def register_parameter(self, name: str, value: Parameter | None) -> None:
        """Register a parameter under `name` (None keeps the slot empty, like a missing bias)."""
        self.__dict__.pop(name, None)
        self._parameters[name] = value

    # ----- running ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every Module subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        for hook in self._forward_hooks:
            replaced = hook(self, args, out)
            out = out if replaced is None else replaced
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> Callable[[], None]:
        """Call hook(module, inputs, output) after every forward; returns a function that removes it."""
        self._forward_hooks.append(hook)
        return lambda: self._forward_hooks.remove(hook)

    # ----- walking the tree -----------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and every descendant."""
        stack = [(prefix, self)]
        seen: set[int] = set()
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack[0:0] = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]

    def modules(self) -> Iterator[Module]:
        """This module and every descendant."""
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator[Module]:
        """The direct sub-modules."""
        return (m for m in self._modules.values() if m is not None)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) for every parameter in the tree, each once."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter in the tree (shared ones once)."""
        return (p for _, p in self.named_parameters())

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) for every buffer in the tree."""
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{prefix}.{name}" if prefix else name), b

    def num_parameters(self) -> int:
        """Total number of learned scalars."""
        return sum(p.size for p in self.parameters())

    # ----- modes ------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout on, batch statistics) for this module and its descendants."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off, running statistics)."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient."""
        for p in self.parameters():
            p.grad = None

    # ----- moving and saving ------------------------------------------------------------------
    def _apply(self, fn: Callable[[Any], Any], floats_only: bool = False) -> Module:
        """Replace every parameter's and buffer's array by fn(array), in place (same Parameter objects)."""
        for module in self.modules():
            for store in (module._parameters, module._buffers):
                for t in store.values():
                    if t is not None and (not floats_only or t.dtype.kind == "f"):
                        t.data = fn(t.data)
                        t.grad = None
        return self

    def to(self, device_or_dtype: Any) -> Module:
        """Move every parameter and buffer to a device ("cpu", "gpu", "cuda:N") or cast floats to a dtype."""
        if isinstance(device_or_dtype, str) and device_or_dtype.split(":")[0].lower() in ("cpu", "gpu", "cuda"):
            return self._apply(lambda a: backend.to_device(a, device_or_dtype))
        dtype = np.dtype(device_or_dtype)
        return self._apply(lambda a: a.astype(dtype), floats_only=True)

    def half(self) -> Module:
        """Cast floating-point parameters and buffers to float16."""
        return self.to(np.float16)

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64."""
        return self.to(np.float64)

    def state_dict(self) -> OrderedDict[str, Any]:
        """Every parameter and buffer array by dotted name (the arrays themselves, not copies)."""
        state: OrderedDict[str, Any] = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data
        for name, b in self.named_buffers():
            state[name] = b.data
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers; strict mode lists every mismatch in one error."""
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong_shape = [
            f"{k}: checkpoint {tuple(np.shape(v))} vs model {own[k].shape}"
            for k, v in state.items()
            if k in own and tuple(np.shape(v)) != own[k].shape
        ]
        if wrong_shape or (strict and (missing or unexpected)):
            problems = []
            if missing:
                problems.append(f"missing keys {missing}")
            if unexpected:
                problems.append(f"unexpected keys {unexpected}")
            if wrong_shape:
                problems.append("shape mismatches: " + "; ".join(wrong_shape))
            raise ShapeError(f"load_state_dict into {type(self).__name__}: " + ", ".join(problems))
        for name, value in state.items():
            if name in own:
                target = own[name]
                value = value.data if isinstance(value, Tensor) else value
                target.data = backend.to_device(value, target.device).astype(target.dtype, copy=True)

    # ----- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """One line of settings shown in the repr (layers override it)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        if self._modules:
            lines.append(f")  # {self.num_parameters():,} parameters")
            return "\n".join(lines)
        shapes = ", ".join(f"{k}{list(p.shape)}" for k, p in self._parameters.items() if p is not None)
        suffix = f"  # {shapes}" if shapes else ""
        return lines[0] + ")" + suffix


class Sequential(Module):
    """Modules applied one after another."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        """Feed x through every module in order."""
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        """Add a module at the end."""
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleDict(Module):
    """A dict of modules whose parameters are registered."""

    def __init__(self, modules: dict[str, Module] | None = None) -> None:
        super().__init__()
        for name, m in (modules or {}).items():
            setattr(self, name, m)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        setattr(self, key, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> Iterable[str]:
        """Names of the modules."""
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        """(name, module) pairs."""
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        """The modules."""
        return self._modules.values()

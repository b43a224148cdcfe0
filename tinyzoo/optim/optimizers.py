"""Optimizers with PyTorch's update rules, so training recipes port unchanged.

Every optimizer keeps `param_groups` (a list of dicts: "params" plus that group's hyper-parameters)
and `state` (per parameter: step counts and buffers such as momentum). `step()` updates each
`param.data` in place with array ops of the parameter's own array module (NumPy or CuPy): nothing
is recorded on the tape, nothing is copied to the host, and `.grad` is only read, never written.

`state_dict()` names parameters by their position across the groups, as torch does, and holds only
arrays, Python scalars, lists and string-keyed dicts, so `tinyzoo.save` can write it without pickle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.tensor import Tensor, enable_grad


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad, step and (de)serialisation."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}  # Tensor hashes by identity, so this keys by object
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params must be an iterable of Tensors or of param-group dicts, got one Tensor; "
                "wrap it in a list"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{self._name}: params must be an ordered collection (list, generator), not a set")
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ----- parameter groups -----------------------------------------------------------------------
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters; hyper-parameters it does not set come from the defaults."""
        position = len(self.param_groups)
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{self._name}: parameter group {position} must be a dict with a 'params' entry")
        params = group["params"]
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{self._name}: parameter group {position} must list its params in order, not in a set")
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{self._name}: parameter group {position} has no parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for index, p in enumerate(params):
            where = f"{self._name}: parameter {index} of group {position}"
            if not isinstance(p, Tensor):
                raise TypeError(f"{where} is a {type(p).__name__}, not a tinyzoo Tensor")
            if not p.requires_grad:
                raise ValueError(f"{where} (shape {p.shape}) does not require grad; create it with requires_grad=True")
            if not p.is_leaf:
                raise ValueError(f"{where} (shape {p.shape}) is not a leaf tensor (it was computed by '{p.grad_fn}')")
            if id(p) in seen:
                raise ValueError(f"{where} (shape {p.shape}) appears more than once among the optimizer's params")
            seen.add(id(p))
        full = {**self.defaults, **group, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise when a group's hyper-parameters are out of range (each optimizer adds its own checks)."""
        self._check_at_least(group, "lr")

    def _check_at_least(self, group: dict[str, Any], key: str, low: float = 0.0) -> None:
        """Raise TypeError/ValueError unless group[key] is a real number >= low."""
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self._name}: {key} must be a real number, got {value!r}")
        if not value >= low:  # also catches NaN
            raise ValueError(f"{self._name}: invalid {key}={value!r} (must be >= {low})")

    # ----- the update -------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (or replace it by zeros with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:  # a fresh array: the tape may share one gradient array between several leaves
                    p.grad = Tensor(backend.xp_of(p.grad.data).zeros_like(p.grad.data))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns closure() when a closure is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad.data, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Apply one step to p.data in place (each optimizer implements its rule here)."""
        raise NotImplementedError

    # ----- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot {"state": {"<position>": {...}}, "param_groups": [...]} (arrays are copied)."""
        positions: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = [positions.setdefault(id(p), len(positions)) for p in group["params"]]
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if self.state.get(p):
                    state[str(positions[id(p)])] = {
                        key: value.copy() if _is_array(value) else value for key, value in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by `state_dict()` (arrays move to each param's device)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self._name}.load_state_dict: the saved state has {len(saved_groups)} parameter group(s) "
                f"but this optimizer has {len(self.param_groups)}"
            )
        by_position: dict[int, Tensor] = {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{self._name}.load_state_dict: saved group {index} has {len(saved['params'])} parameter(s) "
                    f"but this optimizer's group {index} has {len(group['params'])}"
                )
            by_position.update(zip((int(i) for i in saved["params"]), group["params"]))
        state: dict[Tensor, dict[str, Any]] = {}
        for key, saved_state in state_dict["state"].items():
            if int(key) not in by_position:
                raise ValueError(f"{self._name}.load_state_dict: state for parameter {key}, which no group lists")
            p = by_position[int(key)]
            state[p] = {name: self._restore(name, value, p, key) for name, value in saved_state.items()}
        self.state = state
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({key: value for key, value in saved.items() if key != "params"})

    def _restore(self, name: str, value: Any, p: Tensor, key: str) -> Any:
        """A saved state entry made ready for p: arrays copied to p's device and dtype, scalars as Python numbers."""
        if isinstance(value, np.generic):
            return value.item()
        if not _is_array(value):
            return value
        if value.shape != p.shape:
            raise ValueError(
                f"{self._name}.load_state_dict: saved '{name}' of parameter {key} has shape {value.shape} "
                f"but the parameter has shape {p.shape}"
            )
        return backend.to_device(value, p.device).astype(p.dtype, copy=True)


def _is_array(value: Any) -> bool:
    """True for NumPy and CuPy arrays."""
    return isinstance(value, np.ndarray) or backend.xp_of(value) is not np


def _buffer(state: dict[str, Any], key: str, like: Any, fill: float = 0.0) -> Any:
    """state[key], created on first use as an array shaped like `like` and filled with `fill`."""
    if key not in state:
        state[key] = backend.xp_of(like).full_like(like, fill)
    return state[key]


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum (PyTorch's rule).

    g = ∇ + λ θ                                     (weight_decay λ)
    b = g  at the first step,  b ← μ b + (1 − τ) g  after   (momentum μ, dampening τ)
    g = g + μ b  if nesterov  else  b                (only when μ ≠ 0)
    θ ← θ − lr g
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key in ("momentum", "dampening", "weight_decay"):
            self._check_at_least(group, key)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{self._name}: nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        momentum = group["momentum"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        if momentum != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                state["momentum_buffer"] *= momentum
                state["momentum_buffer"] += (1 - group["dampening"]) * grad
            buf = state["momentum_buffer"]
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad


class Adam(Optimizer):
    r"""Adam (Kingma & Ba) with L2 weight decay folded into the gradient, and optional AMSGrad.

    g = ∇ + λ θ
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
    v̂ = max(v̂, v) with amsgrad, else v
    θ ← θ − lr / (1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad}
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        self._check_at_least(group, "eps")
        self._check_at_least(group, "weight_decay")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
                raise ValueError(f"{self._name}: invalid betas[{index}]={beta!r} (must be in [0, 1))")

    def _decay(self, p: Tensor, grad: Any, group: dict[str, Any]) -> Any:
        """Adam's L2 weight decay: add λ θ to the gradient."""
        return grad + group["weight_decay"] * p.data if group["weight_decay"] != 0 else grad

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = backend.xp_of(p.data)
        beta1, beta2 = group["betas"]
        grad = self._decay(p, grad, group)
        state["step"] = state.get("step", 0) + 1
        exp_avg = _buffer(state, "exp_avg", p.data)
        exp_avg_sq = _buffer(state, "exp_avg_sq", p.data)
        exp_avg *= beta1
        exp_avg += (1 - beta1) * grad
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * (grad * grad)
        if group["amsgrad"]:
            max_exp_avg_sq = _buffer(state, "max_exp_avg_sq", p.data)
            xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            exp_avg_sq = max_exp_avg_sq
        step_size = group["lr"] / (1 - beta1 ** state["step"])
        denom = xp.sqrt(exp_avg_sq) / math.sqrt(1 - beta2 ** state["step"]) + group["eps"]
        p.data -= step_size * (exp_avg / denom)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks θ, not the gradient.

    θ ← θ (1 − lr λ)
    then Adam's update with g = ∇ (no L2 term)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _decay(self, p: Tensor, grad: Any, group: dict[str, Any]) -> Any:
        """Decoupled weight decay: shrink θ in place and leave the gradient alone."""
        if group["weight_decay"] != 0:
            p.data *= 1 - group["lr"] * group["weight_decay"]
        return grad


class RMSprop(Optimizer):
    r"""RMSprop (Hinton), optionally centered and with momentum (PyTorch's rule).

    g = ∇ + λ θ
    s ← α s + (1 − α) g²
    centered:  ḡ ← α ḡ + (1 − α) g,   d = √(s − ḡ²) + ε;   otherwise  d = √s + ε
    momentum μ > 0:  b ← μ b + g / d,  θ ← θ − lr b;    otherwise  θ ← θ − lr g / d
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key in ("alpha", "eps", "weight_decay", "momentum"):
            self._check_at_least(group, key)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = backend.xp_of(p.data)
        alpha = group["alpha"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        state["step"] = state.get("step", 0) + 1
        square_avg = _buffer(state, "square_avg", p.data)
        square_avg *= alpha
        square_avg += (1 - alpha) * (grad * grad)
        if group["centered"]:
            grad_avg = _buffer(state, "grad_avg", p.data)
            grad_avg *= alpha
            grad_avg += (1 - alpha) * grad
            avg = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            avg = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buf = _buffer(state, "momentum_buffer", p.data)
            buf *= group["momentum"]
            buf += grad / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * (grad / avg)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al.): per-coordinate steps shrink with the sum of squared gradients.

    g = ∇ + λ θ
    lr_t = lr / (1 + (t − 1) η)                     (lr_decay η, step t = 1, 2, ...)
    s ← s + g²                                      (s starts at initial_accumulator_value)
    θ ← θ − lr_t g / (√s + ε)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        for key in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check_at_least(group, key)

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        xp = backend.xp_of(p.data)
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        state["step"] = state.get("step", 0) + 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state_sum = _buffer(state, "sum", p.data, group["initial_accumulator_value"])
        state_sum += grad * grad
        p.data -= clr * (grad / (xp.sqrt(state_sum) + group["eps"]))

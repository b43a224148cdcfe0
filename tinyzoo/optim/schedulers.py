"""Learning-rate schedulers, as torch.optim.lr_scheduler.

Call `scheduler.step()` once per epoch (or per batch, as the recipe says) after `optimizer.step()`.
The schedules here are closed forms: the lr after t calls of `step()` is `base_lr * f(t)` (base_lr
being each group's lr when the scheduler was made), so a resumed run gets exactly the same values.
They are not chainable: two of them on one optimizer overwrite each other; use `WarmupCosine` for
warmup followed by cosine decay.
"""

from __future__ import annotations

import math
from typing import Any

from tinyzoo.optim.optimizers import Optimizer


class _Scheduler:
    """What every scheduler shares: the optimizer, the last lrs it set, and (de)serialisation."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a tinyzoo Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lr of each parameter group as last set (or found) by this scheduler."""
        return list(self._last_lr)

    def _set_lrs(self, lrs: list[float]) -> None:
        """Write one lr per parameter group into the optimizer."""
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer: counters, base lrs and settings (Python scalars and lists)."""
        return _copy_lists({key: value for key, value in vars(self).items() if key != "optimizer"})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()` and put its last lrs back into the optimizer's groups."""
        lrs = state_dict["_last_lr"]
        if len(lrs) != len(self.optimizer.param_groups):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the saved state has {len(lrs)} lr(s) but the "
                f"optimizer has {len(self.optimizer.param_groups)} parameter group(s)"
            )
        self.__dict__.update(_copy_lists(state_dict))
        self._set_lrs(lrs)


def _copy_lists(mapping: dict[str, Any]) -> dict[str, Any]:
    """A copy of mapping whose list values are copied too (so later steps do not change a saved state)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in mapping.items()}


class LRScheduler(_Scheduler):
    """Base of the closed-form schedules: lr = base_lr · factor(t) after t calls of `step()`."""

    def __init__(self, optimizer: Optimizer) -> None:
        super().__init__(optimizer)
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()

    def step(self) -> None:
        """Advance one step and set every group's lr to the schedule's value there."""
        self.last_epoch += 1
        self._set_lrs([self._lr(base_lr, self.last_epoch) for base_lr in self.base_lrs])

    def _lr(self, base_lr: float, t: int) -> float:
        """The lr of a group whose base lr is base_lr, after t steps."""
        raise NotImplementedError


def _positive(owner: str, name: str, value: float) -> None:
    """Raise ValueError unless value > 0."""
    if not value > 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")


class StepLR(LRScheduler):
    """lr = base_lr · γ^⌊t / step_size⌋: multiply by gamma every step_size steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        _positive("StepLR", "step_size", step_size)
        _positive("StepLR", "gamma", gamma)
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def _lr(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base_lr · γ^t: multiply by gamma every step."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        _positive("ExponentialLR", "gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer)

    def _lr(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma**t


class CosineAnnealingLR(LRScheduler):
    """lr = η_min + (base_lr − η_min) · (1 + cos(π t / T_max)) / 2 (SGDR without restarts)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        _positive("CosineAnnealingLR", "T_max", T_max)
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def _lr(self, base_lr: float, t: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class LinearWarmup(LRScheduler):
    """lr = base_lr · (s + (1 − s) · min(t, warmup_steps) / warmup_steps): linear ramp from s·base_lr, then flat."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int, start_factor: float = 0.0) -> None:
        _positive("LinearWarmup", "warmup_steps", warmup_steps)
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"LinearWarmup: start_factor must be in [0, 1], got {start_factor!r}")
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor
        super().__init__(optimizer)

    def _lr(self, base_lr: float, t: int) -> float:
        progress = min(t, self.warmup_steps) / self.warmup_steps
        return base_lr * (self.start_factor + (1 - self.start_factor) * progress)


class WarmupCosine(LRScheduler):
    """Linear warmup from 0 to base_lr over warmup_steps, then cosine decay to min_lr at total_steps.

    t < w:        lr = base_lr · t / w
    w ≤ t ≤ T:    lr = min_lr + (base_lr − min_lr) · (1 + cos(π (t − w) / (T − w))) / 2
    t > T:        lr = min_lr
    """

    def __init__(self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> None:
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"WarmupCosine: need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps!r}, "
                f"total_steps={total_steps!r}"
            )
        if not min_lr >= 0:
            raise ValueError(f"WarmupCosine: min_lr must be >= 0, got {min_lr!r}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr = min_lr
        super().__init__(optimizer)

    def _lr(self, base_lr: float, t: int) -> float:
        if t < self.warmup_steps:
            return base_lr * t / self.warmup_steps
        progress = min(t - self.warmup_steps, self.total_steps - self.warmup_steps)
        cosine = (1 + math.cos(math.pi * progress / (self.total_steps - self.warmup_steps))) / 2
        return self.min_lr + (base_lr - self.min_lr) * cosine


class ReduceLROnPlateau(_Scheduler):
    """Multiply the lr by `factor` once a metric has stopped improving for more than `patience` steps.

    Improvement ("rel" mode): metric < best · (1 − threshold) when minimising, > best · (1 + threshold)
    when maximising; "abs" mode compares with best ∓ threshold. After a reduction the scheduler waits
    `cooldown` steps before counting bad steps again; the lr never goes below min_lr, and changes
    smaller than eps are skipped. Call `step(metric)` once per evaluation.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if patience < 0 or cooldown < 0:
            raise ValueError(f"ReduceLROnPlateau: patience and cooldown must be >= 0, got {patience}, {cooldown}")
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"ReduceLROnPlateau: got {len(min_lrs)} min_lr values for {groups} parameter group(s)")
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lrs = min_lrs
        self.eps = eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _is_better(self, value: float) -> bool:
        """Whether value improves on the best seen so far by more than the threshold."""
        relative = self.threshold_mode == "rel"
        if self.mode == "min":
            return value < (self.best * (1 - self.threshold) if relative else self.best - self.threshold)
        return value > (self.best * (1 + self.threshold) if relative else self.best + self.threshold)

    def step(self, metric: float) -> None:
        """Record one value of the watched metric and reduce the lr when it has plateaued."""
        value = float(metric)
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce(self) -> None:
        """Multiply every group's lr by factor, clamped at its min_lr."""
        for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
            new_lr = max(group["lr"] * self.factor, min_lr)
            if group["lr"] - new_lr > self.eps:
                group["lr"] = new_lr

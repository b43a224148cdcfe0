"""Saving and resuming a whole training run: model, optimizer, scheduler, RNG and step, in one checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyzoo import checkpoint, rng


def save_training(path: str | Path, model: Any, optimizer: Any = None, step: int = 0, **extra: Any) -> None:
    """Write model/optimizer/scheduler/loader state, the RNG state and the step atomically to `path`."""
    state = {
        "model": dict(model.state_dict()),
        "rng": rng.get_state(),
        "step": int(step),
        "extra": {k: v.state_dict() if hasattr(v, "state_dict") else v for k, v in extra.items()},
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    checkpoint.save(state, path)


def load_training(path: str | Path, model: Any, optimizer: Any = None, **extra: Any) -> int:
    """Restore what save_training wrote (objects passed as `extra` load their own state); returns the step."""
    state = checkpoint.load(path)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    for name, target in extra.items():
        target.load_state_dict(state["extra"][name])
    rng.set_state(state["rng"])
    return int(state["step"])

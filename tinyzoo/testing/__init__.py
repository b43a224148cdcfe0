"""Helpers for tests: hypothesis strategies for the ops (`strategies`, needs the `test` extra), a strict
stand-in GPU that refuses every implicit copy to the host (`strict_device`, NumPy only) and a short
training run that records its losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def training_losses(loss: Callable[[int], Any], optimizer: Any, steps: int) -> list[float]:
    """Take `steps` optimizer steps on loss(step) for step = 0, 1, ...; the loss of each step (before its update)."""
    losses = []
    for step in range(steps):
        value = loss(step)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item())
    return losses

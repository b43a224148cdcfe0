"""Random number generators, one per backend, all seeded by `manual_seed` so runs are reproducible.

Every random draw in tinyzoo (initialisers, dropout, data shuffling, sampling) goes through
`generator(device)`, never through NumPy's global state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyzoo import backend

_DEFAULT_SEED = 0
_seed = _DEFAULT_SEED
_cpu = np.random.default_rng(_DEFAULT_SEED)
_gpu: dict[tuple[str, Any], Any] = {}  # (device, array module): CuPy, or a test's stand-in for it


def manual_seed(seed: int) -> None:
    """Seed the CPU generator and every GPU generator, so a run repeats exactly."""
    global _cpu, _seed
    _seed = int(seed)
    _cpu = np.random.default_rng(_seed)
    _gpu.clear()


def generator(device: str = "cpu") -> Any:
    """The generator for `device`: numpy.random.Generator on CPU, a CuPy generator on a GPU."""
    device = backend.normalize_device(device)
    if device == "cpu":
        return _cpu
    cupy = backend.array_module(device)
    if (device, cupy) not in _gpu:
        with cupy.cuda.Device(int(device[5:])):
            _gpu[device, cupy] = cupy.random.default_rng(_seed)
    return _gpu[device, cupy]


def get_state() -> dict:
    """The CPU generator's state as a JSON-friendly dict (for checkpoints)."""
    return {"seed": _seed, "cpu": _cpu.bit_generator.state}


def set_state(state: dict) -> None:
    """Restore a state from `get_state()`; GPU generators restart from the saved seed."""
    global _seed
    _seed = int(state["seed"])
    _cpu.bit_generator.state = state["cpu"]
    _gpu.clear()

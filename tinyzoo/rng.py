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


class Generator:
    """A random stream of its own, as torch.Generator: `Generator().manual_seed(3)`, then pass it as
    `generator=` to any random function (randn, rand, randint, randperm, multinomial, dropout, ...)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = backend.normalize_device(device)
        self.manual_seed(_DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from `seed`; returns the generator, as PyTorch's does."""
        self._seed = int(seed)
        xp = np if self.device == "cpu" else backend.array_module(self.device)
        self.bit_stream = xp.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        """The seed the stream last started from."""
        return self._seed

    def get_state(self) -> dict:
        """The stream's state (CPU), for checkpoints."""
        return {"seed": self._seed, "state": self.bit_stream.bit_generator.state}

    def set_state(self, state: dict) -> Generator:
        """Restore a state from get_state()."""
        self._seed = int(state["seed"])
        self.bit_stream.bit_generator.state = state["state"]
        return self

    def __getattr__(self, name: str) -> Any:
        """The stream's own draws (random, integers, choice, normal, ...), so the zoo's samplers, which take a
        NumPy-style `rng`, take a tinyzoo Generator too."""
        if name.startswith("_") or name == "bit_stream":
            raise AttributeError(name)
        return getattr(self.bit_stream, name)


def generator(device: str = "cpu", chosen: Generator | None = None) -> Any:
    """The generator to draw from: `chosen`'s stream when given (a `Generator`), else tinyzoo's global
    one for `device` (numpy.random.Generator on CPU, a CuPy generator on a GPU)."""
    if chosen is not None:
        if not isinstance(chosen, Generator):
            raise TypeError(f"generator= takes a tinyzoo.Generator, got {type(chosen).__name__}")
        return chosen.bit_stream
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

"""The peers tinyzoo is timed against, found at run time: each is skipped with a note when not installed.

Also the device context every case builds its tensors through, so `--device gpu` moves tinyzoo onto
CuPy and torch onto CUDA without the cases knowing (CPU-only peers are then skipped with a note).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinyzoo as tz

OPTIONAL = ("torch", "autograd", "mygrad")  # installable with `pip install -e .[bench]`
CPU_ONLY = ("numpy", "autograd", "mygrad")  # peers that never run on a GPU


def installed(name: str) -> bool:
    """True when the peer's package can be imported (numpy and tinyzoo always can)."""
    return name in ("numpy", "tinyzoo") or importlib.util.find_spec(name) is not None


def missing_notes() -> list[str]:
    """One line for every optional peer that is not installed."""
    return [f"peer {name!r} is not installed (pip install -e .[bench]): its columns are skipped" for name in OPTIONAL
            if not installed(name)]  # fmt: skip


@dataclass
class Device:
    """Where the tensors live: tinyzoo on NumPy/CuPy, torch on CPU/CUDA, and how to wait for the device."""

    name: str = "cpu"  # "cpu" or "gpu"

    @property
    def gpu(self) -> bool:
        """True for --device gpu."""
        return self.name == "gpu"

    def allows(self, peer: str) -> bool:
        """Whether `peer` is installed and can run on this device."""
        return installed(peer.split()[0]) and not (self.gpu and peer.split()[0] in CPU_ONLY)

    def tz(self, array: Any, requires_grad: bool = False) -> tz.Tensor:
        """A tinyzoo tensor holding a copy of `array` on this device."""
        return tz.tensor(array, requires_grad=requires_grad, device="cuda" if self.gpu else "cpu")

    def tz_module(self, module: tz.nn.Module) -> tz.nn.Module:
        """A tinyzoo module moved to this device."""
        return module.to("cuda") if self.gpu else module

    def torch(self, array: Any, requires_grad: bool = False) -> Any:
        """A torch tensor holding a copy of the NumPy `array` on this device."""
        import torch

        out = torch.tensor(np.asarray(array), device="cuda" if self.gpu else "cpu")
        return out.requires_grad_(requires_grad)

    def torch_module(self, module: Any) -> Any:
        """A torch module moved to this device."""
        return module.cuda() if self.gpu else module

    def synced(self, peer: str, step: Callable[[], float]) -> Callable[[], float]:
        """`step` followed by a device synchronisation (on the GPU), so timings cover the whole step."""
        if not self.gpu:
            return step
        if peer.startswith("torch"):
            import torch

            def torch_step() -> float:
                loss = step()
                torch.cuda.synchronize()
                return loss

            return torch_step
        import cupy

        def cupy_step() -> float:
            loss = step()
            cupy.cuda.Device().synchronize()
            return loss

        return cupy_step

    def check(self) -> list[str]:
        """Raise when the GPU was asked for and is missing; otherwise notes about skipped peers."""
        if not self.gpu:
            return []
        if not tz.gpu_available():
            raise SystemExit("--device gpu: CuPy with a CUDA device is not available to tinyzoo")
        notes = ["--device gpu: hand NumPy, HIPS autograd and mygrad are CPU-only and are skipped"]
        if installed("torch"):
            import torch

            if not torch.cuda.is_available():
                notes.append("--device gpu: torch has no CUDA here, so its columns are skipped")
        return notes

    def torch_ok(self) -> bool:
        """torch is installed and, on the GPU, has CUDA."""
        if not installed("torch"):
            return False
        if not self.gpu:
            return True
        import torch

        return torch.cuda.is_available()


def to_numpy(value: Any) -> float:
    """A Python float from a 0-d NumPy/CuPy/torch/autograd/mygrad value."""
    if hasattr(value, "item"):
        return float(value.item())
    return float(value)

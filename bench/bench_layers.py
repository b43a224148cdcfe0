"""Forward + backward time of the ops every model's training step runs, tinyzoo vs PyTorch, float32 on CPU.

    python bench/bench_layers.py                 # every case, tinyzoo and (when installed) torch
    python bench/bench_layers.py --filter cross  # only the cases whose name contains "cross"

Each case calls one function by the name it has in both `tinyzoo.nn.functional` and
`torch.nn.functional`, with the same keyword arguments, then backpropagates out.sum(). The table shows
the median milliseconds per step. Other benches add their cases by appending to CASES.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo.nn import functional as F


@dataclass
class Case:
    """One timed call: functional.<function>(**inputs, **constants), then backward of its sum."""

    name: str
    function: str
    inputs: dict[str, tuple[int, ...]]  # float32 standard-normal arguments that get gradients, by keyword
    constants: dict[str, Any] = field(default_factory=dict)  # other arguments; arrays become tensors


CASES: list[Case] = [
    Case("linear 256×784→256", "linear", {"input": (256, 784), "weight": (256, 784), "bias": (256,)}),
    Case("linear 32×128×512→2048", "linear", {"input": (32, 128, 512), "weight": (2048, 512), "bias": (2048,)}),
    Case(
        "layer_norm 4096×512",
        "layer_norm",
        {"input": (4096, 512), "weight": (512,), "bias": (512,)},
        {"normalized_shape": (512,)},
    ),
    Case(
        "batch_norm 64×32×16×16 train",
        "batch_norm",
        {"input": (64, 32, 16, 16), "weight": (32,), "bias": (32,)},
        {"running_mean": np.zeros(32, np.float32), "running_var": np.ones(32, np.float32), "training": True},
    ),
    Case(
        "group_norm 64×32×16×16 /8",
        "group_norm",
        {"input": (64, 32, 16, 16), "weight": (32,), "bias": (32,)},
        {"num_groups": 8},
    ),
    Case(
        "cross_entropy 256×10",
        "cross_entropy",
        {"input": (256, 10)},
        {"target": np.random.default_rng(0).integers(0, 10, 256)},
    ),
    Case(
        "cross_entropy 4096×8192",
        "cross_entropy",
        {"input": (4096, 8192)},
        {"target": np.random.default_rng(0).integers(0, 8192, 4096)},
    ),
    Case(
        "cross_entropy 4096×8192 smoothed",
        "cross_entropy",
        {"input": (4096, 8192)},
        {"target": np.random.default_rng(0).integers(0, 8192, 4096), "label_smoothing": 0.1},
    ),
    Case(
        "embedding 64×256 of 8192×512",
        "embedding",
        {"weight": (8192, 512)},
        {"input": np.random.default_rng(0).integers(0, 8192, (64, 256))},
    ),
    Case("dropout 256×4096", "dropout", {"input": (256, 4096)}, {"p": 0.1}),
    Case("mse_loss 256×4096", "mse_loss", {"input": (256, 4096), "target": (256, 4096)}),
    Case("bce_with_logits 256×4096", "binary_cross_entropy_with_logits", {"input": (256, 4096), "target": (256, 4096)}),
]


def make_step(case: Case, functional: ModuleType, tensor: Any) -> Any:
    """Build the case's arguments with `tensor` (tz.tensor or torch.tensor) and return one training step."""
    rng = np.random.default_rng(0)
    inputs = {k: tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True) for k, s in case.inputs.items()}
    constants = {k: tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.constants.items()}
    fn = getattr(functional, case.function)

    def step() -> None:
        for t in inputs.values():
            t.grad = None
        fn(**inputs, **constants).sum().backward()

    return step


def median_ms(step: Any, repeat: int) -> float:
    """Median wall time of `step` over `repeat` runs, after two warm-up runs."""
    for _ in range(2):
        step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per case (default 10)")
    parser.add_argument("--filter", default="", help="only cases whose name contains this text")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    args = parser.parse_args()
    try:
        torch = None if args.no_torch else __import__("torch")
    except ImportError:
        torch = None
    print(f"{'case':<36} {'tinyzoo ms':>11} {'torch ms':>9} {'ratio':>6}")
    for case in CASES:
        if args.filter not in case.name:
            continue
        ours = median_ms(make_step(case, F, tz.tensor), args.repeat)
        line = f"{case.name:<36} {ours:>11.2f}"
        if torch is not None:
            theirs = median_ms(make_step(case, torch.nn.functional, torch.tensor), args.repeat)
            line += f" {theirs:>9.2f} {ours / theirs:>6.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""Footprint of tinyzoo against PyTorch CPU for embedding a trained network: disk, import time, memory, latency.

    python bench/footprint.py

Prints one table: installed size of the package and its required dependencies, wheel size, cold
`import` time (median of 5 fresh interpreters), peak RSS of a fresh process doing MLP (784-256-10) and
CNN (conv 32@3×3 → pool → fc) inference at batch 1 and 64, and the batch-1 MLP and CNN latency (for
tinyzoo also through `nn.InferencePlan`, its allocation-free path). Each memory figure
comes from its own subprocess so one measurement cannot inflate another.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

INFERENCE = """
import time, resource, numpy as np
{imports}
{lib}.manual_seed(0)
models = {{
    "mlp": nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)),
    "cnn": nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 14 * 14, 10)),
}}
model = models["{model}"].eval()
x = {wrap}(np.random.default_rng(0).random(({batch}, 1, 28, 28), dtype=np.float32))
{setup}
with {lib}.no_grad():
    for _ in range(3):
        {call}
    runs = []
    for _ in range(200 if {batch} == 1 else 20):
        start = time.perf_counter(); {call}; runs.append(time.perf_counter() - start)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, sorted(runs)[len(runs) // 2] * 1e6)
"""
TINYZOO = {"imports": "import tinyzoo as tz\nfrom tinyzoo import nn", "lib": "tz", "wrap": "tz.tensor"}
FRAMEWORKS = {  # the same script for all: only the imports, the array wrapper and the timed call differ
    "tinyzoo": {**TINYZOO, "setup": "", "call": "model(x)"},
    "torch": {"imports": "import torch\nfrom torch import nn", "lib": "torch", "wrap": "torch.from_numpy",
              "setup": "", "call": "model(x)"},
    # tinyzoo's allocation-free path: buffers planned once, output written into `out`
    "tinyzoo InferencePlan": {**TINYZOO, "setup": "plan = nn.InferencePlan(model, x.shape[1:], x.shape[0]); "
                              "out = np.empty_like(plan.output)", "call": "plan(x, out=out)"},
}


def installed_mib(distribution: str, seen: set[str] | None = None) -> float:
    """Installed size of a distribution and, recursively, of its required (non-extra) dependencies."""
    seen = set() if seen is None else seen
    key = distribution.lower().replace("_", "-")
    if key in seen:
        return 0.0
    seen.add(key)
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return 0.0
    files = [Path(dist.locate_file(f)) for f in dist.files or []]
    size = sum(f.stat().st_size for f in files if f.is_file())
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0].split("[")[0].strip()
        for stop in "<>=!~ (":
            name = name.split(stop)[0]
        size += installed_mib(name, seen) * 2**20
    return size / 2**20


def import_seconds(module: str, runs: int = 5) -> float:
    """Median wall time of `import module` in fresh interpreters."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
             for _ in range(runs)]  # fmt: skip
    return statistics.median(times)


def wheel_kib() -> float:
    """Size of tinyzoo's wheel, built here without dependencies."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", folder, str(REPO)],
                       check=True, capture_output=True)  # fmt: skip
        return sum(p.stat().st_size for p in Path(folder).glob("*.whl")) / 1024


def inference(framework: str, model: str, batch: int) -> tuple[float, float]:
    """(peak RSS MiB, median latency µs) of a fresh process running inference."""
    code = INFERENCE.format(model=model, batch=batch, **FRAMEWORKS[framework])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    """Measure and print the table (and the raw numbers as JSON)."""
    frameworks = ["tinyzoo"]
    try:
        metadata.distribution("torch")
        frameworks.append("torch")
    except metadata.PackageNotFoundError:
        print("torch not installed: only tinyzoo is measured")
    rows: dict[str, dict[str, float]] = {}
    for name in frameworks:
        row = {"installed MiB (with required deps)": installed_mib(name), "import s": import_seconds(name)}
        for model in ("mlp", "cnn"):
            for batch in (1, 64):
                rss, latency = inference(name, model, batch)
                row[f"{model} b{batch} peak RSS MiB"] = rss
                if batch == 1:
                    row[f"{model} b1 latency µs"] = latency
        rows[name] = row
    rows["tinyzoo"]["wheel KiB"] = wheel_kib()
    for model in ("mlp", "cnn"):
        rows["tinyzoo"][f"{model} b1 latency, InferencePlan µs"] = inference("tinyzoo InferencePlan", model, 1)[1]
    keys = list(dict.fromkeys(k for row in rows.values() for k in row))
    print(f"{'':38}" + "".join(f"{n:>14}" for n in rows) + ("   ratio" if len(rows) == 2 else ""))
    for key in keys:
        values = [rows[n].get(key) for n in rows]
        cells = "".join(f"{v:14.3f}" if v is not None else f"{'—':>14}" for v in values)
        ratio = f"{values[0] / values[1]:8.3f}" if len(values) == 2 and None not in values else ""
        print(f"{key:38}{cells}{ratio}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

"""tinyzoo.kernels: the Numba (and, with a GPU, CUDA) kernels against the reference, forward + backward.

    python bench/bench_kernels.py [--repeats 10] [--skip-compile]

Case 1, graph attention on a Cora-sized graph (2,708 nodes, 10,556 directed edges + 2,708 self-loops
= 13,264, 8 heads, F = 8, float32): edge_softmax then edge_aggregate, forward and backward, with the
edges in random order and sorted by destination (CSR order), against the reference (tinyzoo ops) and
a dense masked N×N softmax written directly in NumPy (hand-written backward, BLAS matmuls).

Case 2, dynamic routing (batch 128, 1,152 → 10 capsules, dim 16, 3 iterations, float32), forward
and backward, against the reference (tinyzoo ops).

Numba's OpenMP threading layer spin-waits by default; on a machine whose cores are busy with other
processes every parallel region then stalls for a scheduler time slice (8-20 ms seen on 2 shared
cores, 30x the kernel itself). This script therefore sets OMP_WAIT_POLICY=passive unless it is
already set (pass OMP_WAIT_POLICY=active to see the default), and reports 1 thread and all threads.

Compile time is reported apart from the steady state: a fresh process with an empty Numba cache
(NUMBA_CACHE_DIR in a temporary folder) times its first call, which compiles; a second process on
the same cache times its first call again, which only loads the cached machine code (cache=True).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # read when Numba first loads its OpenMP layer

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Timing, measure

import tinyzoo as tz
from tinyzoo.kernels import dynamic_routing, edge_aggregate, edge_softmax

SEGMENT_CACHE = importlib.import_module("tinyzoo.kernels.edge_softmax")._SEGMENT_CACHE
REPO = Path(__file__).resolve().parents[1]


# ----- case 1: graph attention ---------------------------------------------------------------------
def cora_like_graph(seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """src, dst (random order) of a Cora-sized undirected graph with skewed degrees, plus self-loops."""
    rng = np.random.default_rng(seed)
    n, undirected = 2708, 5278
    weight = 1.0 / np.arange(1, n + 1) ** 0.8  # heavy-tailed degrees, like a citation graph
    weight /= weight.sum()
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < undirected:
        a, b = rng.choice(n, 2, p=weight), rng.integers(0, n)
        if a[0] != b:
            pairs.add((min(a[0], b), max(a[0], b)))
    edges = np.array(sorted(pairs))
    src = np.concatenate([edges[:, 0], edges[:, 1], np.arange(n)])
    dst = np.concatenate([edges[:, 1], edges[:, 0], np.arange(n)])
    order = rng.permutation(len(src))
    return src[order], dst[order], n


def gat_step(
    scores: np.ndarray, h: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int, impl: str | None, regroup: bool = False
):
    """Forward and backward of edge_softmax + edge_aggregate; returns a closure for the timer.

    regroup=True forgets the cached CSR grouping before every call, as if each call brought a new graph.
    """
    draws = np.random.default_rng(1).standard_normal((n, *h.shape[1:])).astype(h.dtype)
    weights = tz.tensor(draws, device=tz.backend.device_of(h))

    def step() -> None:
        if regroup:
            SEGMENT_CACHE.clear()
        e, x = tz.tensor(scores, requires_grad=True), tz.tensor(h, requires_grad=True)
        out = edge_aggregate(edge_softmax(e, dst, n, impl=impl), x, src, dst, n, impl=impl)
        (out * weights).sum().backward()

    return step


def dense_step(scores: np.ndarray, h: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int):
    """The dense alternative in NumPy: scores in a masked [heads, N, N] matrix, softmax, matmul, backward."""
    heads = scores.shape[1]
    g_out = np.random.default_rng(1).standard_normal((heads, n, h.shape[2])).astype(h.dtype)
    h_heads = np.ascontiguousarray(h.transpose(1, 0, 2))  # [heads, N, F]

    def step() -> None:
        dense = np.full((heads, n, n), -np.inf, dtype=scores.dtype)
        dense[:, dst, src] = scores.T
        peak = dense.max(axis=-1, keepdims=True)
        peak[~np.isfinite(peak)] = 0
        alpha = np.exp(dense - peak)
        alpha /= np.maximum(alpha.sum(axis=-1, keepdims=True), np.finfo(alpha.dtype).tiny)
        _ = alpha @ h_heads  # the forward output [heads, N, F]
        grad_alpha = g_out @ h_heads.transpose(0, 2, 1)
        _ = alpha.transpose(0, 2, 1) @ g_out  # gradient of h
        grad_dense = alpha * (grad_alpha - (alpha * grad_alpha).sum(axis=-1, keepdims=True))
        _ = grad_dense[:, dst, src].T  # gradient of the edge scores

    return step


def check_agreement(scores: np.ndarray, h: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int) -> float:
    """Largest difference between the numba and reference outputs (must be tiny before timing)."""
    outs = [
        edge_aggregate(edge_softmax(tz.tensor(scores), dst, n, impl=i), tz.tensor(h), src, dst, n, impl=i).numpy()
        for i in ("numba", "reference")
    ]
    return float(np.abs(outs[0] - outs[1]).max())


# ----- case 2: routing ------------------------------------------------------------------------------
def routing_step(u: np.ndarray, impl: str | None):
    draws = np.random.default_rng(1).standard_normal((u.shape[0], u.shape[2], u.shape[3])).astype(u.dtype)
    weights = tz.tensor(draws, device=tz.backend.device_of(u))

    def step() -> None:
        x = tz.tensor(u, requires_grad=True)
        (dynamic_routing(x, 3, impl=impl) * weights).sum().backward()

    return step


# ----- compile time -------------------------------------------------------------------------------
FIRST_CALL = """
    import time
    start = time.perf_counter()
    import numba
    imported = time.perf_counter() - start
    import numpy as np
    import tinyzoo as tz
    from tinyzoo.kernels import dynamic_routing, edge_aggregate, edge_softmax
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 50, 300), rng.integers(0, 50, 300)
    e = tz.tensor(rng.standard_normal((300, 8)).astype(np.float32), requires_grad=True)
    h = tz.tensor(rng.standard_normal((50, 8, 8)).astype(np.float32), requires_grad=True)
    start = time.perf_counter()
    edge_aggregate(edge_softmax(e, dst, 50, impl="numba"), h, src, dst, 50, impl="numba").sum().backward()
    graph = time.perf_counter() - start
    u = tz.tensor(rng.standard_normal((2, 8, 10, 16)).astype(np.float32), requires_grad=True)
    start = time.perf_counter()
    dynamic_routing(u, 3, impl="numba").sum().backward()
    print(imported * 1e3, graph * 1e3, (time.perf_counter() - start) * 1e3)
"""


def first_calls(cache_dir: str) -> list[float]:
    """ms to import numba, then of the first graph and routing calls, in a new process caching in `cache_dir`."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(REPO)}
    env.pop("TINYZOO_KERNELS", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FIRST_CALL)], env=env, capture_output=True, text=True, check=True
    )
    return [float(x) for x in done.stdout.split()]


def row(case: str, impl: str, timing: Timing, baseline: Timing | None) -> str:
    speedup = f"{baseline.median_ms / timing.median_ms:7.1f}x" if baseline else "       —"
    return f"| {case:<34} | {impl:<40} | {timing.median_ms:10.2f} | {speedup} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-compile", action="store_true", help="do not time compilation in subprocesses")
    args = parser.parse_args()

    import numba

    threads = numba.get_num_threads()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"numba {numba.__version__}, {threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"numpy {np.__version__}, load average {load}"
    )
    if not args.skip_compile:
        with tempfile.TemporaryDirectory() as cache:
            cold = first_calls(cache)
            warm = first_calls(cache)
        print("\nFirst call in a new process (forward + backward, tiny float32 inputs), ms:")
        print("| step                                 | empty cache (compiles) | second process (cache=True) |")
        print("|--------------------------------------|-----------------------:|----------------------------:|")
        steps = ["import numba", "edge softmax + aggregate (5 kernels)", "dynamic routing (2 kernels)"]
        for name, a, b in zip(steps, cold, warm):
            print(f"| {name:<36} | {a:22.0f} | {b:27.0f} |")

    rng = np.random.default_rng(0)
    src, dst, n = cora_like_graph()
    heads, features = 8, 8
    scores = rng.standard_normal((len(dst), heads)).astype(np.float32)
    h = rng.standard_normal((n, heads, features)).astype(np.float32)
    order = np.argsort(dst, kind="stable")
    sorted_args = (scores[order], h, src[order], dst[order], n)
    print(f"\nGraph: {n} nodes, {len(dst)} edges, {heads} heads, F={features}, float32; "
          f"max |numba - reference| = {check_agreement(scores, h, src, dst, n):.2e}")  # fmt: skip
    r = args.repeats
    graph_case = "GAT edge softmax + aggregate fw+bw"
    reference = measure(gat_step(scores, h, src, dst, n, "reference"), warmup=1, repeats=r)
    results = [("reference (tinyzoo ops)", reference)]
    u = rng.standard_normal((128, 1152, 10, 16)).astype(np.float32)
    routing_case = "routing 128×1152→10×16, 3 it fw+bw"
    routing_reference = measure(routing_step(u, "reference"), warmup=1, repeats=max(3, r // 3))
    routing_results = [("reference (tinyzoo ops)", routing_reference)]
    for count in sorted({threads, 1}, reverse=True):
        numba.set_num_threads(count)
        label = f"numba, {count} thread{'s' if count > 1 else ''}"
        gat = [
            (f"{label}, dst sorted (CSR order)", gat_step(*sorted_args, "numba")),
            (f"{label}, unsorted dst", gat_step(scores, h, src, dst, n, "numba")),
            (f"{label}, unsorted, new graph", gat_step(scores, h, src, dst, n, "numba", regroup=True)),
        ]
        results += [(name, measure(step, warmup=2, repeats=5 * r)) for name, step in gat]
        routing_results.append((label, measure(routing_step(u, "numba"), warmup=1, repeats=r)))
    numba.set_num_threads(threads)
    dense = measure(dense_step(scores, h, src, dst, n), warmup=1, repeats=3)
    results.append(("dense masked N×N softmax, NumPy", dense))
    if tz.gpu_available():
        import cupy

        def synced(step):
            return lambda: (step(), cupy.cuda.Device().synchronize())

        gpu = tz.backend.to_device
        g_args = (gpu(scores, "cuda"), gpu(h, "cuda"), gpu(src, "cuda"), gpu(dst, "cuda"), n)
        results.append(("cuda (numba.cuda on CuPy)", measure(synced(gat_step(*g_args, None)), warmup=2, repeats=5 * r)))
        routing_results.append(("cuda", measure(synced(routing_step(gpu(u, "cuda"), None)), warmup=1, repeats=r)))

    print("\nSteady state (median of repeats), speed-up over the reference:")
    print(f"| {'case':<34} | {'implementation':<40} | {'median ms':>10} | speed-up |")
    print(f"|{'-' * 36}|{'-' * 42}|{'-' * 11}:|{'-' * 9}:|")
    for impl, timing in results:
        print(row(graph_case, impl, timing, reference))
    for impl, timing in routing_results:
        print(row(routing_case, impl, timing, routing_reference))


if __name__ == "__main__":
    main()

"""tinyzoo against its peers: every case, every installed peer, at fixed thread counts; table, JSON and plot.

    python -m bench [--threads 1 2] [--quick] [--plot docs/figures/bench_scaling.png] [--device cpu|gpu]
    python bench/run.py --cases mlp gat          # only some cases (keys as in bench/cases.py)
    python -m bench --cases none --no-scaling --no-memory   # only the data-parallel case (10)

Within each repeat the peers of a case take turns (interleaved), so load from other processes on a
shared machine hits all of them alike. Each step is timed by wall clock and by process CPU time
(time.process_time: steadier under load, but summed over threads). BLAS, torch and Numba are pinned to
the thread count of the row. Before timing, every peer's first step must give the same loss (relative
1e-4), or the run stops with exit code 2 naming the case and the peers.

Memory: by default the run calls `tinyzoo.backend.keep_freed_memory()` first, as every example does, so
glibc keeps the memory a step frees for the next one; it is one process, so every peer runs under the
same setting. `--malloc default` leaves glibc's defaults, where each step's large arrays come back as
fresh pages from the kernel (the results file then ends in -default-malloc).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo import backend

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from cases import CASES, Built, build_gat, build_mlp  # noqa: E402
from peers import Device, installed, missing_notes  # noqa: E402
from timing import Timing, set_threads  # noqa: E402

REPO = BENCH.parent
TOLERANCE = 1e-4
MLP_BATCHES = (32, 64, 128, 256)
GAT_EDGE_SCALES = (0.5, 1.0, 2.0, 4.0)
TARGETS = [  # (case, peer, most tinyzoo/peer may be, wording)
    ("mlp", "numpy (hand)", 1.3, "MLP step ≤ 1.3× hand NumPy"),
    ("per_op", "torch", 2.0, "per-op overhead ≤ 2× PyTorch eager"),
    ("per_op", "autograd", 0.5, "per-op overhead ≤ 0.5× HIPS autograd"),
    ("per_op", "mygrad", 0.5, "per-op overhead ≤ 0.5× mygrad"),
    ("cnn", "torch", 1.2, "CNN ≤ 1.2× PyTorch CPU"),
    ("resnet", "torch", 1.2, "ResNet-18 step ≤ 1.2× PyTorch CPU"),
    ("lstm", "torch nn.LSTM", 3.0, "LSTM ≤ 3× PyTorch CPU (nn.LSTM)"),
    ("lstm", "torch LSTMCell loop", 3.0, "LSTM ≤ 3× PyTorch CPU (LSTMCell loop)"),
    ("gat", "torch dense", 1.0, "GAT layer no slower than dense torch"),
    ("gat", "torch_geometric GATConv", 1.0, "GAT layer no slower than PyG GATConv"),
]


class MismatchError(Exception):
    """Peers disagree on the loss of a case."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line settings."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--quick", action="store_true", help="each case once at a tiny size (smoke test)")
    parser.add_argument("--repeats", type=int, default=15, help="most timed rounds per case and thread count")
    parser.add_argument("--budget", type=float, default=8.0, help="seconds of timing per case and thread count")
    parser.add_argument("--cases", nargs="+", help="only these case keys (default: all)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="gpu: CuPy for tinyzoo, torch CUDA")
    parser.add_argument("--plot", type=Path, help="draw ratios and scaling to this image file")
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results", help="where the JSON goes")
    parser.add_argument("--no-scaling", action="store_true", help="skip the MLP/GAT scaling runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory cases (RNN, ResNet)")
    parser.add_argument("--no-data-parallel", action="store_true", help="skip the 1- vs 2-rank data-parallel case")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: backend.keep_freed_memory(), as the examples run; default: glibc's")  # fmt: skip
    return parser.parse_args(argv)


def pin_threads(count: int) -> None:
    """BLAS, torch and (when loaded) Numba to `count` threads."""
    set_threads(count)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))


def check_agreement(case: str, losses: dict[str, float]) -> None:
    """Raise MismatchError unless every peer's loss is within TOLERANCE (relative) of tinyzoo's."""
    reference = losses["tinyzoo"]
    bad = {peer: loss for peer, loss in losses.items()
           if not abs(loss - reference) <= TOLERANCE * max(abs(reference), abs(loss), 1e-12)}  # fmt: skip
    if bad:
        raise MismatchError(f"case {case!r}: losses disagree beyond {TOLERANCE} relative: "
                            f"tinyzoo {reference!r} vs {bad}")


def interleaved(built: Built, repeats: int, budget: float, warmup: int) -> dict[str, dict[str, Any]]:
    """Time every step in turns: median and IQR of wall ms, median CPU ms, for each peer."""
    for _ in range(warmup):
        for step in built.steps.values():
            step()
    wall: dict[str, list[float]] = {peer: [] for peer in built.steps}
    cpu: dict[str, list[float]] = {peer: [] for peer in built.steps}
    start = time.perf_counter()
    while not wall["tinyzoo"] or (len(wall["tinyzoo"]) < repeats and time.perf_counter() - start < budget) \
            or len(wall["tinyzoo"]) < min(3, repeats):  # fmt: skip
        for peer, step in built.steps.items():
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            wall[peer].append(1e3 * (time.perf_counter() - w0))
            cpu[peer].append(1e3 * (time.process_time() - c0))
    return {peer: {**summary(wall[peer]).__dict__, "cpu_ms": statistics.median(cpu[peer])} for peer in built.steps}


def summary(samples: list[float]) -> Timing:
    """Median and quartiles of `samples` (ms)."""
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return Timing(statistics.median(samples), q[0], q[2], len(samples))


def run_case(key: str, title: str, built: Built, threads: list[int], args: argparse.Namespace) -> list[dict]:
    """Check agreement, then time the case at every thread count; one row per peer and thread count."""
    if not built.steps:
        return []
    losses = {peer: step() for peer, step in built.steps.items()}  # first step: same initial weights for all
    check_agreement(key, losses)
    rows = []
    for count in threads:
        pin_threads(count)
        stats = interleaved(built, 1 if args.quick else args.repeats, args.budget, 0 if args.quick else 2)
        ours = stats["tinyzoo"]
        for peer, s in stats.items():
            rows.append({"case": key, "title": title, "peer": peer, "threads": count, "loss": losses[peer], **s,
                         "ratio_wall": ours["median_ms"] / s["median_ms"], "ratio_cpu": ours["cpu_ms"] / s["cpu_ms"]
                         if s["cpu_ms"] > 0 else float("nan")})  # fmt: skip
    return rows


def memory_case(quick: bool) -> tuple[list[dict], list[str]]:
    """Peak RSS growth, tinyzoo and torch, each in a fresh single-threaded process: (9) a 1,000-step RNN
    backward, and (3b) three ResNet-18 steps at batch 32 (freed memory kept, as the examples run)."""
    workers = {"rnn": f"rnn_memory_worker({{peer!r}}, {20 if quick else 1000})",
               "resnet18": f"resnet_memory_worker({{peer!r}}, {2 if quick else 32})"}  # fmt: skip
    rows, notes = [], []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for model, call in workers.items():
        found = []
        for peer in ("tinyzoo", "torch"):
            if not installed(peer):
                notes.append(f"memory: {peer} not installed, skipped")
                continue
            code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import cases; cases.{call.format(peer=peer)}"
            done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"memory case: the {peer} {model} worker failed:\n{done.stderr}")
            found.append({"model": model, **json.loads(done.stdout.strip().splitlines()[-1])})
        if len(found) == 2:
            check_agreement(f"memory ({model})", {r["peer"]: r["loss"] for r in found})
        rows += found
    return rows, notes


DATA_PARALLEL = {"mlp": (128, 100), "cnn": (64, 30)}  # model: (per-rank batch, timed steps)


def data_parallel_case(quick: bool) -> tuple[dict[str, Any], list[str]]:
    """(10) samples/s of the MLP and CNN steps on 1 process and on 2 MPI ranks, tinyzoo against torch DDP (gloo).

    Every measurement is a fresh launch of bench/bench_distributed.py (2 ranks under mpiexec); the peers and
    rank counts take turns within each round, and the median over the rounds is kept.
    """
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None or importlib.util.find_spec("mpi4py") is None:
        return {}, ['data parallel: needs mpi4py and mpiexec, skipped; pip install "tinyzoo[mpi]"']
    peers = ["tinyzoo"] + (["torch"] if installed("torch") else [])
    notes = [] if installed("torch") else ["data parallel: torch not installed, its DDP peer skipped"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1"}  # fmt: skip
    runs: dict[str, list[dict]] = {}
    models = {"cnn": DATA_PARALLEL["cnn"]} if quick else DATA_PARALLEL
    for _ in range(1 if quick else 5):
        for model, (per_rank, steps) in models.items():
            for ranks in (1, 2):
                for peer in peers[:1] if quick else peers:  # --quick: tinyzoo's CNN only, a smoke test
                    command = [sys.executable, str(BENCH / "bench_distributed.py"), peer, model,
                               str(8 if quick else per_rank), str(2 if quick else steps)]  # fmt: skip
                    if ranks > 1:
                        command = [mpiexec, "-n", str(ranks), *command]
                    for attempt in range(3):  # torch's gloo sometimes aborts at start or exit ("terminate called")
                        env["MASTER_PORT"] = str(_free_port())
                        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
                        if done.returncode == 0:
                            break
                        notes.append(f"data parallel: {peer} {model} on {ranks} rank(s), try {attempt + 1} failed: "
                                     f"{done.stderr.strip().splitlines()[-1:]}")  # fmt: skip
                    else:
                        raise SystemExit(f"data parallel: {' '.join(command)} failed 3 times:\n{done.stderr}")
                    runs.setdefault(f"{peer}/{model}/{ranks}", []).append(json.loads(done.stdout.splitlines()[-1]))
    result: dict[str, Any] = {}
    for key, measured in runs.items():
        peer, model, ranks = key.split("/")
        best = sorted(measured, key=lambda m: m["samples_per_s"])[len(measured) // 2]  # the median round
        entry = result.setdefault(model, {}).setdefault(peer, {"samples_per_s": {}})
        entry["samples_per_s"][ranks] = statistics.median(m["samples_per_s"] for m in measured)
        entry.setdefault("cpu_ms_per_step", {})[ranks] = statistics.median(m["cpu_ms_per_step"] for m in measured)
        entry["rounds"] = entry.get("rounds", {}) | {ranks: [m["samples_per_s"] for m in measured]}
        if "all_reduce_ms" in best:
            entry["all_reduce_ms"], entry["all_reduce_model_ms"] = best["all_reduce_ms"], best["all_reduce_model_ms"]
            entry["parameters"] = best["parameters"]
    for peers_of_model in result.values():
        for entry in peers_of_model.values():
            entry["speedup"] = entry["samples_per_s"]["2"] / entry["samples_per_s"]["1"]
            entry["efficiency"] = entry["speedup"] / 2
    return result, notes


def _free_port() -> int:
    """A TCP port nothing listens on now (for torch.distributed's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_data_parallel(result: dict[str, Any]) -> list[dict]:
    """The data-parallel table and its two targets (CNN ≥ 1.7× at 2 ranks; tinyzoo's efficiency ≥ torch's)."""
    if not result:
        return []
    print("\n(10) data parallel, 1 BLAS thread per rank, weak scaling (per-rank batch MLP 128, CNN 64):")
    for model, peers in result.items():
        for peer, e in peers.items():
            rate = e["samples_per_s"]
            cpu = e["cpu_ms_per_step"]
            print(f"    {model:<4} {peer:<8} samples/s 1 process {rate['1']:8.0f}, 2 ranks {rate['2']:8.0f}: "
                  f"{e['speedup']:.2f}× (efficiency {e['efficiency']:.0%}); CPU ms per step and rank "
                  f"{cpu['1']:.1f} → {cpu['2']:.1f}")  # fmt: skip
    for peer, e in result.get("cnn", {}).items():
        sizes = ", ".join(f"{int(b) // 1024} KiB {ms:.3f}" for b, ms in e["all_reduce_ms"].items())
        print(f"    all-reduce of float32 buffers on 2 ranks, {peer}: {sizes} ms; CNN gradients "
              f"({e['parameters']:,} floats) {e['all_reduce_model_ms']:.3f} ms")  # fmt: skip
    verdicts = []
    cnn = result.get("cnn", {})
    if "tinyzoo" in cnn:
        verdicts.append({"target": "CNN ≥ 1.7× samples/s at 2 ranks", "value": cnn["tinyzoo"]["speedup"],
                         "holds": cnn["tinyzoo"]["speedup"] >= 1.7})  # fmt: skip
    for model, peers in result.items():
        if "torch" in peers:
            ours, theirs = peers["tinyzoo"]["efficiency"], peers["torch"]["efficiency"]
            verdicts.append({"target": f"{model}: 2-rank efficiency ≥ torch DDP's ({theirs:.0%})", "value": ours,
                             "holds": ours >= theirs})  # fmt: skip
    for v in verdicts:
        print(f"    {v['target']:<48} {v['value']:6.2f} {'holds' if v['holds'] else 'MISSED'}")
    return verdicts


def scaling(quick: bool, device: Device, threads: int) -> dict[str, Any]:
    """MLP over batch sizes and GAT over edge counts: median ms per peer and the log-log slope."""
    pin_threads(threads)
    out: dict[str, Any] = {"threads": threads}
    series = {"mlp": [(b, lambda b=b: build_mlp(quick, device, batch=b)) for b in MLP_BATCHES],
              "gat": [(s, lambda s=s: build_gat(quick, device, edge_scale=s, dense_peer=False))
                      for s in GAT_EDGE_SCALES]}  # fmt: skip
    for name, sizes in series.items():
        times: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        xs = []
        for size, build in sizes:
            built = build()
            if not built.steps:
                continue
            if name == "mlp":  # the MLP peers that scale on BLAS; the Python-bound ones add little here
                built.steps = {k: v for k, v in built.steps.items() if k in ("tinyzoo", "numpy (hand)", "torch")}
            for step in built.steps.values():
                step()
            stats = interleaved(built, 1 if quick else 9, 8.0, 0 if quick else 2)
            xs.append(size if name == "mlp" else _edges(built))
            for peer, s in stats.items():
                times.setdefault(peer, []).append(s["median_ms"])
                cpu.setdefault(peer, []).append(s["cpu_ms"])
        out[name] = {"x": xs, "x_label": "batch" if name == "mlp" else "edges (incl. self-loops)", "ms": times,
                     "cpu_ms": cpu, "slope": log_log_slopes(xs, times),
                     "slope_cpu": log_log_slopes(xs, cpu)}  # fmt: skip
    return out


def log_log_slopes(xs: list[float], series: dict[str, list[float]]) -> dict[str, float]:
    """Least-squares slope of log(time) on log(size) for every peer (1: time grows linearly with size)."""
    return {peer: float(np.polyfit(np.log(xs), np.log(t), 1)[0]) for peer, t in series.items() if len(t) > 1}


def _edges(built: Built) -> int:
    note = next(n for n in built.notes if n.startswith("GAT:"))
    return int(note.split(" nodes, ")[1].split(" edges")[0])


def print_table(rows: list[dict], memory: list[dict], scale: dict[str, Any] | None) -> None:
    """The results as a plain-text table with ratios tinyzoo ÷ peer (> 1: tinyzoo slower)."""
    print(f"\n{'case':<48} {'peer':<23} {'thr':>3} {'wall ms':>10} {'IQR':>19} {'cpu ms':>10} "
          f"{'tz÷peer wall':>12} {'tz÷peer cpu':>11}")  # fmt: skip
    last = None
    for r in rows:
        title = r["title"] if r["title"] != last else ""
        last = r["title"]
        iqr = f"{r['q1_ms']:.2f}–{r['q3_ms']:.2f}"
        print(f"{title:<48} {r['peer']:<23} {r['threads']:>3} {r['median_ms']:>10.3f} {iqr:>19} {r['cpu_ms']:>10.3f} "
              f"{r['ratio_wall']:>12.2f} {r['ratio_cpu']:>11.2f}")  # fmt: skip
    if memory:
        print("\nPeak RSS growth, fresh process per peer, 1 thread: (9) 1,000-step tanh RNN (hidden 128, batch 16) "
              "backward; (3b) ResNet-18 CIFAR stem, 3 steps at batch 32 (2 with --quick)")
        for m in memory:
            print(f"    {m['model']:<8} {m['peer']:<8} peak RSS {m['peak_mb']:8.1f} MB, after setup "
                  f"{m['before_mb']:7.1f} MB, growth {m['peak_mb'] - m['before_mb']:7.1f} MB")  # fmt: skip
        growth = {(m["model"], m["peer"]): m["peak_mb"] - m["before_mb"] for m in memory}
        if ("resnet18", "torch") in growth:
            ratio = growth["resnet18", "tinyzoo"] / growth["resnet18", "torch"]
            print(f"    ResNet-18 peak RSS growth tinyzoo ÷ torch: {ratio:.2f} (target ≤ 1.2: "
                  f"{'holds' if ratio <= 1.2 else 'MISSED'})")  # fmt: skip
    if scale:
        print(f"\nScaling ({scale['threads']} thread(s)), slope of log(ms) on log(size) (1 = linear):")
        for name in ("mlp", "gat"):
            if name in scale:
                s = scale[name]
                for peer, slope in s["slope"].items():
                    ms = ", ".join(f"{t:.2f}" for t in s["ms"][peer])
                    cpu = ", ".join(f"{t:.2f}" for t in s["cpu_ms"][peer])
                    print(f"    {name:<4} {peer:<14} slope wall {slope:5.2f}, cpu {s['slope_cpu'][peer]:5.2f}   "
                          f"{s['x_label']} {s['x']}: wall ms [{ms}], cpu ms [{cpu}]")  # fmt: skip


def check_targets(rows: list[dict]) -> list[dict]:
    """Each target, at each thread count: the ratio and whether it holds (wall and CPU clocks)."""
    verdicts = []
    for case, peer, limit, text in TARGETS:
        for r in rows:
            if r["case"] == case and r["peer"] == peer:
                verdicts.append({"target": text, "threads": r["threads"], "limit": limit, "ratio_wall": r["ratio_wall"],
                                 "ratio_cpu": r["ratio_cpu"], "holds_wall": r["ratio_wall"] <= limit,
                                 "holds_cpu": r["ratio_cpu"] <= limit})  # fmt: skip
    print("\nTargets (ratio tinyzoo ÷ peer; wall / CPU clock):")
    for v in verdicts:
        mark = lambda ok: "holds" if ok else "MISSED"  # noqa: E731
        print(f"    {v['target']:<42} thr {v['threads']}: {v['ratio_wall']:6.2f} {mark(v['holds_wall']):<6} / "
              f"{v['ratio_cpu']:6.2f} {mark(v['holds_cpu'])}")  # fmt: skip
    return verdicts


def plot(path: Path, rows: list[dict], scale: dict[str, Any] | None) -> None:
    """Left: tinyzoo ÷ peer per case and thread count; right: the scaling runs on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 7))
    labels = sorted({(r["case"], r["peer"]) for r in rows if r["peer"] != "tinyzoo"},
                    key=lambda k: [r["case"] for r in rows].index(k[0]))  # fmt: skip
    threads = sorted({r["threads"] for r in rows})
    for i, count in enumerate(threads):
        ratios = [next((r["ratio_cpu"] for r in rows if (r["case"], r["peer"]) == k and r["threads"] == count), np.nan)
                  for k in labels]  # fmt: skip
        left.barh(np.arange(len(labels)) + i * 0.8 / len(threads), ratios, 0.8 / len(threads), label=f"{count} thr")
    left.axvline(1, color="k", lw=0.8)
    left.set_xscale("log")
    left.set_yticks(np.arange(len(labels)) + 0.4 - 0.4 / len(threads), [f"{c}: vs {p}" for c, p in labels], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("tinyzoo ÷ peer, median process CPU time (< 1: tinyzoo faster; steadier than wall under load)")
    left.legend()
    left.set_title("Ratios to tinyzoo")
    if scale:
        for name, marker in (("mlp", "o"), ("gat", "s")):
            if name not in scale:
                continue
            s = scale[name]
            x = np.asarray(s["x"], float)
            for peer, ms in s["cpu_ms"].items():
                label = f"{name} {peer} (slope {s['slope_cpu'].get(peer, 0):.2f})"
                right.loglog(x / x[0], ms, marker=marker, label=label)
        right.set_xlabel("size ÷ smallest size (MLP: batch 32…256; GAT: edges ×0.5…4)")
        right.set_ylabel("median process CPU ms per step")
        right.set_title(f"Scaling, {scale['threads']} thread(s)")
        right.legend(fontsize=8)
        right.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nplot written to {path}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; 0 on success, 2 when peers disagree."""
    args = parse_args(argv)
    device = Device(args.device)
    notes = missing_notes() + device.check()
    kept = args.malloc == "keep" and backend.keep_freed_memory()
    load = os.getloadavg()
    print(f"tinyzoo bench: {platform.node()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}; device {args.device}; threads {args.threads}; malloc: "
          f"{'freed memory kept' if kept else 'defaults'}{'; QUICK: tiny sizes, 1 run' * args.quick}")
    print("Peers are interleaved within every repeat so machine load hits all alike; wall and process-CPU time both "
          "reported (CPU time sums all threads).")  # fmt: skip
    for note in notes:
        print(f"  note: {note}")
    rows: list[dict] = []
    cases = [c for c in CASES if not args.cases or c.key in args.cases]
    try:
        for case in cases:
            built = case.build(args.quick, device)
            for note in built.notes:
                print(f"  note: {note}")
            notes += built.notes
            rows += run_case(case.key, case.title, built, args.threads, args)
            done = [r for r in rows if r["case"] == case.key]
            if done:
                print(f"  done {case.title}: " + ", ".join(f"{r['peer']}@{r['threads']}={r['median_ms']:.2f}ms"
                                                            for r in done), flush=True)  # fmt: skip
        memory, more = ([], []) if args.no_memory or device.gpu else memory_case(args.quick)
    except MismatchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2
    notes += more
    scale = None if args.no_scaling else scaling(args.quick, device, min(args.threads))
    data_parallel, more = ({}, []) if args.no_data_parallel or device.gpu else data_parallel_case(args.quick)
    notes += more
    print_table(rows, memory, scale)
    verdicts = check_targets(rows)
    data_parallel_verdicts = print_data_parallel(data_parallel)
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.node(),
              "cpus": os.cpu_count(), "load_average": load, "load_average_end": os.getloadavg(), "argv": sys.argv[1:],
              "device": args.device, "quick": args.quick, "malloc_kept": kept, "numpy": np.__version__, "notes": notes,
              "rows": rows, "memory": memory, "scaling": scale, "targets": verdicts,
              "data_parallel": data_parallel, "data_parallel_targets": data_parallel_verdicts,
              "versions": {p: _version(p) for p in ("torch", "autograd", "mygrad", "numba")}}  # fmt: skip
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = (f"{datetime.date.today().isoformat()}-{platform.node()}{'-quick' if args.quick else ''}"
            f"{'-default-malloc' if args.malloc == 'default' else ''}")  # fmt: skip
    out = args.results_dir / f"{stem}.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"\nresults written to {out}")
    if args.plot:
        plot(args.plot, rows, scale)
    return 0


def _version(name: str) -> str | None:
    if not installed(name):
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())

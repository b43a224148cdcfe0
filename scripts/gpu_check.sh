#!/usr/bin/env bash
# The GPU pass (issues 14 and 23): everything the CPU cannot prove, in one command that fits an 8-minute
# window on a bare machine with an NVIDIA GPU, CuPy (cupy-cuda13x or -12x), numba + numba-cuda, PyTorch CUDA
# and PyTorch Geometric already installed, and no network. Nothing is installed from a package index.
#
#   scripts/gpu_check.sh [OUT]             # OUT: the results folder (default $OUT, else gpu_results)
#   scripts/gpu_check.sh --dry-run [OUT]   # the same steps on the CPU with tiny budgets (tests/test_gpu_check.py)
#
# The steps run most valuable first, each under its own time limit; every step writes its full output to
# OUT/<step>.txt while it runs and one summary line to OUT/summary.txt when it ends, so a window cut short
# still returns everything finished so far. The limits add up to at most 480 s (printed at the start); the
# CuPy kernel cache starts empty on a bare machine, so the first GPU steps include CuPy's kernel compiles.
#
# Data: Cora ships with the package; MNIST (the CapsNet step) must travel with the repo copy: put the
# tinyzoo cache folder's mnist.npz (~/.cache/tinyzoo) in .gpu_data/ beside this repo. The dry run makes a
# tiny random stand-in MNIST instead, so it needs no data at all.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
    shift
fi
OUT=${1:-${OUT:-gpu_results}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/summary.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # every step runs this checkout, installed or not
export OMP_WAIT_POLICY=passive PYTHONUNBUFFERED=1

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    export TINYZOO_DATA="$OUT/data"
    python - <<'EOF' || exit 1
import os
import numpy as np
rng = np.random.default_rng(0)
os.makedirs(os.environ["TINYZOO_DATA"], exist_ok=True)
pixels = lambda n: rng.integers(0, 256, (n, 784), dtype=np.uint8)
labels = lambda n: rng.integers(0, 10, n)
np.savez(os.path.join(os.environ["TINYZOO_DATA"], "mnist.npz"), x_train=pixels(64), y_train=labels(64),
         x_test=pixels(32), y_test=labels(32))
EOF
else
    DEVICE=gpu
    [ -d .gpu_data ] && export TINYZOO_DATA="$PWD/.gpu_data"
fi

# name | limit on the GPU (s) | limit in the dry run (s) | command: GPU run ;; dry run
# nccl (issue 20): the NCCL data-parallel equivalence test on 2 MPI ranks, one GPU each; it needs mpi4py, an MPI
# (pip install "tinyzoo[mpi]") and 2 GPUs, and skips saying why otherwise (always in the dry run).
STEPS=(
    "install|20|60|python -m pip install --no-deps --no-index --no-build-isolation -e .;;python -m pip install --dry-run --no-deps --no-index --no-build-isolation -e ."
    "info|10|30|nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python -m tinyzoo info;;python -m tinyzoo info"
    "gpu_tests|75|60|python -m pytest -q -m gpu -p no:cacheprovider -rs tests --ignore=tests/test_distributed.py;;python -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_kernels.py"
    "nccl|60|60|python -m pytest -q -rs -m gpu tests/test_distributed.py -p no:cacheprovider;;python -m pytest -q -rs -m gpu tests/test_distributed.py -p no:cacheprovider"
    "ponder|100|60|python examples/ponder_parity.py --device gpu;;python examples/ponder_parity.py --device cpu --steps 20 --test-size 100"
    "gat|30|60|python examples/gat_cora.py --device gpu --model gat --seeds 1;;python examples/gat_cora.py --device cpu --model gat --seeds 1 --epochs 2"
    "capsnet|70|90|python examples/capsnet_mnist.py --device gpu --paper --epochs 1 --train-size 6400 --test-size 1000;;python examples/capsnet_mnist.py --device cpu --paper --epochs 1 --train-size 16 --test-size 8 --batch-size 8"
    "bench|115|120|python -m bench --device gpu --threads 16 --no-memory --no-scaling --budget 2 --repeats 9 --results-dir $OUT;;python -m bench --device cpu --quick --threads 1 --no-memory --no-scaling --cases gat --results-dir $OUT"
)

WINDOW=480  # seconds of GPU time the pass must fit in
GPU_TOTAL=0
DRY_TOTAL=0
for entry in "${STEPS[@]}"; do
    IFS='|' read -r _ gpu_limit dry_limit _ <<<"$entry"
    GPU_TOTAL=$((GPU_TOTAL + gpu_limit))
    DRY_TOTAL=$((DRY_TOTAL + dry_limit))
done
MODE=$([ "$DRY_RUN" = 1 ] && echo "dry run on the CPU" || echo "GPU pass")
echo "gpu_check ($MODE): ${#STEPS[@]} steps; the GPU pass's time limits add up to $GPU_TOTAL s of a $WINDOW s" \
    "window (the dry run's: $DRY_TOTAL s); results in $OUT" | tee -a "$OUT/summary.txt"
if [ "$GPU_TOTAL" -gt "$WINDOW" ]; then  # checked in the dry run too, so the suite catches a step made longer
    echo "gpu_check: the GPU step limits add up to $GPU_TOTAL s, more than the $WINDOW s window" | tee -a "$OUT/summary.txt"
    exit 1
fi

# Checks of a step's output beyond its exit status: the targets the GPU pass exists to confirm.
check() {  # check NAME FILE: print "ok"/"FAILED: why" for the step's own target
    case $1 in
        ponder)
            python - "$2" "$DRY_RUN" <<'EOF'
import re, sys
text, dry = open(sys.argv[1]).read(), sys.argv[2] == "1"
found = re.search(r"test accuracy ([\d.]+)%", text)
if not found:
    print("FAILED: no test accuracy printed")
elif dry or float(found.group(1)) >= 99.0:
    print(f"ok: test accuracy {found.group(1)} %" + (" (dry run: no target)" if dry else " >= 99 %"))
else:
    print(f"FAILED: test accuracy {found.group(1)} % < 99 %")
EOF
            ;;
        *) echo "ok" ;;
    esac
}

FAILED=0
for entry in "${STEPS[@]}"; do
    IFS='|' read -r name gpu_limit dry_limit commands <<<"$entry"
    if [ "$DRY_RUN" = 1 ]; then limit=$dry_limit; command=${commands#*;;}; else limit=$gpu_limit; command=${commands%%;;*}; fi
    echo "=== $name (limit $limit s): $command" | tee -a "$OUT/summary.txt"
    start=$SECONDS
    timeout --kill-after=5 "$limit" bash -c "$command" >"$OUT/$name.txt" 2>&1
    rc=$?
    verdict=$(if [ $rc = 0 ]; then check "$name" "$OUT/$name.txt"; elif [ $rc = 124 ] || [ $rc = 137 ]; then
        echo "FAILED: over its $limit s limit"; else echo "FAILED: exit $rc"; fi)
    case $verdict in FAILED*) FAILED=$((FAILED + 1)) ;; esac
    tail -n 3 "$OUT/$name.txt" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
    echo "--- $name: $verdict, $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
done
echo "gpu_check ($MODE): $FAILED of ${#STEPS[@]} steps failed, $SECONDS s in all; results in $OUT" | tee -a "$OUT/summary.txt"
[ "$FAILED" = 0 ]

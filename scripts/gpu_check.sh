#!/usr/bin/env bash
# The GPU pass (issue 14), as one script for a machine with an NVIDIA GPU, CuPy (cupy-cuda12x or -13x),
# Numba and PyTorch CUDA already installed, and no network:
#
#   OUT=gpu_results scripts/gpu_check.sh
#
# It installs tinyzoo without dependencies, runs the test suite with the GPU tests selected, runs the
# main examples on the GPU for fixed budgets, and runs the benchmarks with PyTorch CUDA as the peer.
# Everything it prints is also written under $OUT. The ResNet-18 CPU-vs-GPU step ratio comes from comparing the
# "steps/s" of the resnet step here with the same command run with --device cpu on the CPU machine. Data: the machine cannot fetch MNIST, so copy your
# tinyzoo cache folder (~/.cache/tinyzoo, at least mnist.npz) to .gpu_data/ beside this repo first and
# carry it along; Cora and the digits ship with the package.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
[ -d .gpu_data ] && export TINYZOO_DATA="$PWD/.gpu_data"
export OMP_WAIT_POLICY=passive

step() {  # step NAME TIMEOUT_S COMMAND...: run one step, keep its output, never stop the script
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    tail -n 4 "$OUT/$name.txt" | tee -a "$OUT/summary.txt"
    echo "--- $name: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

step install 120 python -m pip install --no-deps -e .
step info 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv && python -m tinyzoo info"
step tests 420 python -m pytest -q -x -m "not slow and not data" -p no:cacheprovider
# NCCL data parallelism (issue 20): 2 ranks, one GPU each (needs mpi4py + mpich, and 2 GPUs; skips otherwise)
step nccl 180 python -m pytest -q -rs -m gpu tests/test_distributed.py -p no:cacheprovider
step ponder 300 python examples/ponder_parity.py --device gpu
step gat 240 python examples/gat_cora.py --device gpu --model gat --seeds 3
step capsnet 420 python examples/capsnet_mnist.py --device gpu --paper --epochs 1
step resnet 300 python examples/resnet_mnist.py --device gpu --max-minutes 4
step bench 420 python -m bench --device gpu --threads 16 --no-memory --plot "$OUT/bench_gpu.png"
echo "results in $OUT/summary.txt"

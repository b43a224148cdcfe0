"""tinyzoo.distributed: bucket planning and sharded sampling in-process; equivalence, resume and fault on 2 MPI ranks.

The 2-rank tests start `mpiexec -n 2 python tests/distributed_worker.py ...` in a subprocess and skip, saying
why, when mpi4py or mpiexec is missing (`pip install "tinyzoo[mpi]"` brings both; the `test` extra too).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import distributed
from tinyzoo.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import distributed_worker as worker  # noqa: E402  (the runs themselves, shared with the MPI worker)


def _mpiexec() -> str | None:
    """The mpiexec beside this Python (the mpich wheel puts it there), else one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason=f"needs mpi4py and mpiexec for 2-rank runs; {distributed.MPI_INSTALL_HINT}",
)


def run_ranks(scenario: str, out: Path, ranks: int = 2, timeout: float = 60, args: tuple[str, ...] = ()
              ) -> subprocess.CompletedProcess:  # fmt: skip
    """Run tests/distributed_worker.py SCENARIO on `ranks` MPI processes (one BLAS thread each)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}  # fmt: skip
    command = [MPIEXEC, "-n", str(ranks), sys.executable, str(ROOT / "tests" / "distributed_worker.py"), scenario,
               str(out), *args]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


# ----- one process -----------------------------------------------------------------------------------
def test_bucket_plan_groups_by_device_and_dtype_and_respects_the_size() -> None:
    f32, f64 = np.float32, np.float64
    arrays = [((10,), f32, "cpu"), ((3, 4), f64, "cpu"), ((20,), f32, "cpu"), ((100,), f32, "cpu"),
              ((5,), f32, "cuda:0"), ((2,), f32, "cpu")]  # fmt: skip
    plan = distributed.plan_buckets(arrays, bucket_bytes=30 * 4)  # 30 float32s per bucket
    layout = [(b.device, b.dtype, [s.index for s in b.slots], b.size) for b in plan]
    assert layout == [("cpu", np.dtype(f32), [0, 2], 30),  # 10 + 20 fill the first bucket exactly
                      ("cpu", np.dtype(f32), [3], 100),  # larger than a bucket: a bucket of its own
                      ("cpu", np.dtype(f32), [5], 2),
                      ("cpu", np.dtype(f64), [1], 12),
                      ("cuda:0", np.dtype(f32), [4], 5)]  # fmt: skip
    assert [(s.start, s.stop) for s in plan[0].slots] == [(0, 10), (10, 30)]
    assert len(distributed.plan_buckets(arrays)) == 3  # the default 25 MiB: one bucket per (device, dtype)
    with pytest.raises(ValueError, match="bucket_bytes"):
        distributed.plan_buckets(arrays, bucket_bytes=0)


def test_one_process_needs_no_mpi_and_every_collective_is_a_no_op() -> None:
    code = ("import sys; from tinyzoo import distributed as d; w = d.init(); "
            "print(w, d.is_main(), d.all_reduce_gradients([]), 'mpi4py' in sys.modules)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, check=True)  # fmt: skip
    assert result.stdout.split() == ["World(rank=0,", "size=1,", "local_rank=0)", "True", "0", "False"]


def test_ranks_get_distinct_reproducible_seeds_and_rank_0_keeps_the_seed() -> None:
    seeds = [distributed.rank_stream_seed(7, r) for r in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert seeds == [distributed.rank_stream_seed(7, r) for r in range(4)]
    assert distributed.rank_stream_seed(8, 1) != seeds[1]


def _epoch(loaders: list[DataLoader]) -> list[list[list[int]]]:
    """One epoch of every loader: per rank, the index batches."""
    return [[batch[0].tolist() for batch in loader] for loader in loaders]


def test_shards_are_disjoint_equal_and_cover_the_epoch_with_the_one_process_batches() -> None:
    data = TensorDataset(np.arange(24))
    loaders = [DataLoader(data, 3, shuffle=True, seed=4, shard=(r, 2)) for r in range(2)]
    single = DataLoader(data, 6, shuffle=True, seed=4)
    for _ in range(2):  # two epochs: each reshuffled, identically on every rank
        ranks, one = _epoch(loaders), _epoch([single])[0]
        seen = sorted(i for rank in ranks for batch in rank for i in batch)
        assert seen == list(range(24))  # every example exactly once
        assert [len(rank) for rank in ranks] == [4, 4]
        assert [sorted(a + b) for a, b in zip(*ranks)] == [sorted(batch) for batch in one]  # step k = block k
    assert _epoch(loaders) != ranks  # the next epoch has another order


def test_uneven_shards_are_padded_to_equal_length() -> None:
    loaders = [DataLoader(TensorDataset(np.arange(7)), 2, shuffle=True, seed=0, shard=(r, 3)) for r in range(3)]
    ranks = _epoch(loaders)
    assert [sum(map(len, rank)) for rank in ranks] == [3, 3, 3] and [len(rank) for rank in ranks] == [2, 2, 2]
    seen = [i for rank in ranks for batch in rank for i in batch]
    assert set(seen) == set(range(7)) and len(seen) == 9  # two examples twice, to make the shards equal


def test_sharded_loader_resumes_mid_epoch_on_the_same_order() -> None:
    data = TensorDataset(np.arange(40))
    straight = [DataLoader(data, 4, shuffle=True, seed=3, shard=(r, 2)) for r in range(2)]
    expected = [[b[0].tolist() for b in _take(loader, 8)] for loader in straight]
    first = [DataLoader(data, 4, shuffle=True, seed=3, shard=(r, 2)) for r in range(2)]
    head = [[b[0].tolist() for b in _take(loader, 3)] for loader in first]  # 3 of the 5 steps of epoch 0
    states = [loader.state_dict() for loader in first]
    assert states[0] == states[1] and states[0]["samples"] == 24
    resumed = [DataLoader(data, 4, shuffle=True, seed=99, shard=(r, 2)) for r in range(2)]
    for loader, state in zip(resumed, states):
        loader.load_state_dict(state)
    tail = [[b[0].tolist() for b in _take(loader, 5)] for loader in resumed]  # 2 more of epoch 0, 3 of epoch 1
    assert [h + t for h, t in zip(head, tail)] == expected
    # the same checkpoint in one process with the same global batch: the same global batches
    single = DataLoader(data, 8, shuffle=True, seed=0)
    single.load_state_dict(states[0])
    assert [sorted(b[0].tolist()) for b in _take(single, 5)] == [sorted(a + b) for a, b in zip(*tail)]
    # another global batch: batch 4 goes on at sample 24 exactly; batch 16 at its last boundary before it, 16
    small, large = DataLoader(data, 4, shuffle=True, seed=0), DataLoader(data, 16, shuffle=True, seed=0)
    for loader in (small, large):
        loader.load_state_dict(states[0])
    assert sorted(i for b in _take(small, 2) for i in b[0].tolist()) == sorted(tail[0][0] + tail[1][0])
    assert large.state_dict()["position"] == 1 and set(tail[0][0] + tail[1][0]) < set(_take(large, 1)[0][0].tolist())


def _take(loader: DataLoader, n: int) -> list[tuple]:
    """The next n batches of a loader, across epochs."""
    batches: list[tuple] = []
    while len(batches) < n:
        for batch in loader:
            batches.append(batch)
            if len(batches) == n:
                break
    return batches


def test_shard_is_checked() -> None:
    with pytest.raises(ValueError, match="shard"):
        DataLoader(TensorDataset(np.arange(4)), 2, shard=(2, 2))


# ----- two ranks ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, np.ndarray]]:
    """Every equivalence case trained once on 2 ranks (one mpiexec start for all of them)."""
    if MPIEXEC is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip(f"needs mpi4py and mpiexec; {distributed.MPI_INSTALL_HINT}")
    return _two_rank_arrays("equivalence", tmp_path_factory.mktemp("equivalence"))


def _two_rank_arrays(scenario: str, out: Path) -> list[dict[str, np.ndarray]]:
    """Run an equivalence scenario on 2 ranks and load what each rank wrote."""
    result = run_ranks(scenario, out)
    assert result.returncode == 0, result.stderr
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def _case(arrays: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    return {k.split("/", 1)[1]: v for k, v in arrays.items()
            if k.startswith(case + "/") and "/averaged/" not in k and not k.endswith("/host_transfers")}


@needs_mpi
@pytest.mark.parametrize(("model", "opt"), [c for c in worker.CASES if c[0] != "bn"])
def test_two_ranks_with_half_batches_equal_one_process_with_the_whole_batch(two_rank_run, model, opt) -> None:
    reference = {k: np.array(v) for k, v in worker.train(model, opt).state_dict().items()}
    tz.manual_seed(0)
    initial = worker.MODELS[model]().double().state_dict()
    for rank in (0, 1):
        trained = _case(two_rank_run[rank], f"{model}-{opt}")
        assert trained.keys() == reference.keys()
        for name, value in reference.items():
            np.testing.assert_allclose(trained[name], value, rtol=0, atol=1e-10, err_msg=f"rank {rank} {name}")
            assert np.abs(value - initial[name]).max() > 1e-3  # the steps did move every parameter


@needs_mpi
def test_clipping_the_synchronized_gradients_equals_clipping_the_whole_batch_gradient(two_rank_run) -> None:
    reference = worker.train(*worker.CLIPPED, clip=worker.CLIP).state_dict()
    unclipped = worker.train(*worker.CLIPPED).state_dict()
    for rank in (0, 1):
        trained = _case(two_rank_run[rank], "-".join(worker.CLIPPED) + "-clip")
        for name, value in reference.items():
            np.testing.assert_allclose(trained[name], value, rtol=0, atol=1e-10, err_msg=f"rank {rank} {name}")
    assert max(np.abs(reference[k] - unclipped[k]).max() for k in reference) > 1e-3  # the clipping was active


@needs_mpi
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_batchnorm_on_two_ranks_equals_accumulating_per_rank_micro_batches(two_rank_run, opt) -> None:
    per_rank = worker.train_accumulated("bn", opt, ranks=2)
    for rank in (0, 1):
        trained = _case(two_rank_run[rank], f"bn-{opt}")
        for name, value in per_rank[rank].items():
            np.testing.assert_allclose(trained[name], value, rtol=0, atol=1e-10, err_msg=f"rank {rank} {name}")
    running = [_case(two_rank_run[rank], f"bn-{opt}")["1.running_mean"] for rank in (0, 1)]
    assert np.abs(running[0] - running[1]).max() > 1e-3  # the statistics are per rank, as in DDP
    averaged = two_rank_run[0][f"bn-{opt}/averaged/1.running_mean"]
    np.testing.assert_allclose(averaged, (running[0] + running[1]) / 2, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(averaged, two_rank_run[1][f"bn-{opt}/averaged/1.running_mean"])


@needs_mpi
def test_a_rank_0_checkpoint_resumes_on_two_ranks_and_on_one(tmp_path: Path) -> None:
    from tinyzoo import optim
    from tinyzoo.train import load_training

    result = run_ranks("resume", tmp_path)
    assert result.returncode == 0, result.stderr
    straight = [dict(np.load(tmp_path / f"straight{r}.npz")) for r in range(2)]
    for r in range(2):
        resumed = np.load(tmp_path / f"resumed{r}.npz")
        for name, value in straight[0].items():
            np.testing.assert_array_equal(resumed[name], value, err_msg=f"2-rank resume, rank {r}, {name}")
    # world size 1: the same checkpoint, the whole batch, the same 4 steps
    net = worker.mlp().double()
    optimizer = optim.Adam(net.parameters(), lr=0.01)
    loader = DataLoader(worker.data("mlp"), worker.GLOBAL_BATCH, shuffle=True, seed=1)
    assert load_training(tmp_path / "checkpoint.npz", net, optimizer, loader=loader) == 2
    for xb, yb in _take(loader, 4):
        worker.step(net, optimizer, xb, yb)
    for name, value in net.state_dict().items():
        np.testing.assert_allclose(value, straight[0][name], rtol=0, atol=1e-10, err_msg=f"1-rank resume, {name}")


@needs_mpi
def test_a_rank_that_raises_ends_the_job_with_an_error_naming_it(tmp_path: Path) -> None:
    result = run_ranks("fault", tmp_path, timeout=60)  # a hang would raise TimeoutExpired here
    assert result.returncode != 0
    assert "rank 1 fails on purpose" in result.stderr and "rank 1 of 2" in result.stderr
    assert not list(tmp_path.glob("finished*"))  # rank 0 did not run its 1000 steps alone


@needs_mpi
def test_char_lm_example_on_two_ranks_prints_and_saves_once_and_resumes_in_one_process(
        tmp_path: Path, load_example, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from test_char_models import TINY_ARGS, tiny_corpus

    checkpoint = tmp_path / "lm.npz"
    result = run_ranks("char_lm", tmp_path, args=(*TINY_ARGS, "--distributed", "--save", str(checkpoint)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("val bpc") == 1 and "data parallel over 2 MPI rank(s)" in result.stdout
    assert "per-rank batch 4, global batch 8" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["lm.npz"]  # rank 0 alone wrote it
    monkeypatch.setattr("tinyzoo.data.load_tiny_shakespeare", lambda *a, **k: tiny_corpus())
    example = load_example("char_lm")  # the 2-rank checkpoint goes on in one process
    assert example.main([*TINY_ARGS[2:], "--steps", "6", "--resume", str(checkpoint)]) == 0


def test_distributed_flag_without_mpi4py_says_what_to_install() -> None:
    code = ("import sys, argparse; sys.modules['mpi4py'] = None\n"
            "from tinyzoo.train import data_parallel, run_main\n"
            "sys.exit(run_main(lambda argv: data_parallel.setup(argparse.Namespace(distributed=True), 'cpu')))")
    env = {k: v for k, v in os.environ.items() if k not in distributed.LAUNCHER_VARIABLES}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2
    assert 'pip install "tinyzoo[mpi]"' in done.stderr and "mpi4py" in done.stderr


@needs_mpi
def test_a_rank_that_dies_ends_the_job(tmp_path: Path) -> None:
    result = run_ranks("die", tmp_path, timeout=60)  # mpiexec notices the killed rank and ends the other
    assert result.returncode != 0
    assert not list(tmp_path.glob("finished*"))


def _gpu_count() -> int:
    """CUDA devices CuPy sees (0 without CuPy)."""
    if not tz.backend.gpu_available():
        return 0
    return tz.backend.array_module("cuda:0").cuda.runtime.getDeviceCount()


@pytest.mark.gpu
@needs_mpi
def test_nccl_two_ranks_equal_one_process_and_copy_nothing_to_the_host(tmp_path: Path) -> None:
    if importlib.util.find_spec("cupy") is None or _gpu_count() < 2:
        pytest.skip("NCCL on 2 ranks needs CuPy and 2 GPUs (NCCL refuses two ranks on one GPU)")
    gpu_run = _two_rank_arrays("equivalence-gpu", tmp_path)
    for model, opt in worker.CASES:
        case = f"{model}-{opt}"
        references = (worker.train_accumulated(model, opt, ranks=2) if model == "bn"
                      else [worker.train(model, opt).state_dict()] * 2)  # fmt: skip
        for rank in (0, 1):
            assert int(gpu_run[rank][f"{case}/host_transfers"]) == 0
            trained = _case(gpu_run[rank], case)
            for name, value in references[rank].items():
                np.testing.assert_allclose(trained[name], np.asarray(value), rtol=0, atol=1e-10,
                                           err_msg=f"NCCL rank {rank} {case} {name}")  # fmt: skip

"""Synchronous data parallelism across processes: MPI (mpi4py) for host arrays, NCCL for GPU arrays.

The design of ChainerMN and Horovod. `mpiexec -n W python train.py` starts W copies of one script, the
*ranks*. Each holds the whole model and trains on its own 1/W of every global batch; after backward the
ranks average their gradients, so every rank takes the same optimizer step and the copies never drift:

    g = (1/W) Σ_r g_r,    g_r = ∇ (1/b) Σ_{i in rank r's batch} loss_i

With per-rank batch b the step equals one process's step on the global batch B = b·W (the mean of the
per-rank means is the mean over B), up to the order of floating-point sums; tests/test_distributed.py
checks this to 1e-10 in float64. Global batch = per-rank batch × world size; the learning rate stays
the user's choice (the linear scaling rule, lr ∝ B, is a common one, not applied here).

    dist = distributed.init()                   # rank and world size from MPI; 1 process without mpiexec
    distributed.broadcast_parameters(model)     # every rank starts from rank 0's weights
    loader = DataLoader(data, b, shuffle=True, seed=0, shard=dist.shard)   # disjoint shards
    optimizer = distributed.DistributedOptimizer(optim.Adam(model.parameters()))
    for x, y in loader:
        loss = ...; optimizer.zero_grad(); loss.backward()
        optimizer.step()                        # all_reduce_gradients, then Adam
        if distributed.is_main(): print(...)    # logs, plots and checkpoints on rank 0 only

How gradients travel: they are packed into a few flat buckets (one per `bucket_bytes` of one dtype and
device), and each bucket is summed across the ranks by ONE collective, then divided by W. Many small
collectives would pay the network's latency once per parameter tensor; one per bucket pays it a few
times a step. The transport follows the array module: `MPI_Allreduce` on NumPy buffers, `ncclAllReduce`
(CuPy's `cupy.cuda.nccl`) on CuPy buffers, the NCCL communicator's unique id sent from rank 0 over MPI;
GPU gradients never visit the host.

BatchNorm: each rank normalises with its own batch's statistics and keeps its own running statistics,
as in PyTorch's DistributedDataParallel (so a BatchNorm model on W ranks equals one process accumulating
the gradients of W micro-batches, not one process on the whole batch). `average_buffers(model)` makes
the running statistics the mean over the ranks, e.g. before evaluating or saving.

RNG: `seed_rank(seed)` seeds rank r's generators from (seed, r), rank 0 with the seed itself, so dropout
masks differ across ranks and a run with the same seed and world size repeats exactly.

Failures: `init` installs an exception hook that prints the error with the rank and calls
`MPI_Abort`, so a rank that raises ends the whole job (non-zero exit) instead of leaving the others
waiting forever in a collective; a rank killed outright is caught by mpiexec itself.

Needs `pip install "tinyzoo[mpi]"` (mpi4py and the `mpich` wheel, which brings `mpiexec`). Without
mpiexec nothing here imports MPI and the world is one process.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from tinyzoo import backend, rng
from tinyzoo.autograd.tensor import Tensor, enable_grad
from tinyzoo.errors import DistributedError

MPI_INSTALL_HINT = 'install it with: pip install "tinyzoo[mpi]" (mpi4py and the mpich wheel, which brings mpiexec)'
DEFAULT_BUCKET_BYTES = 25 << 20  # PyTorch DDP's default bucket size
# Environment variables one of which every common MPI launcher sets (MPICH/Hydra, Open MPI, PMIx, Slurm's srun)
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class World(NamedTuple):
    """Where this process stands: its rank, the number of ranks, and its rank among those on its host."""

    rank: int
    size: int
    local_rank: int

    @property
    def shard(self) -> tuple[int, int] | None:
        """(rank, size) for `DataLoader(shard=...)`, or None in a single process."""
        return (self.rank, self.size) if self.size > 1 else None


class _State:
    """The process-wide communication state (like torch.distributed's default process group)."""

    def __init__(self) -> None:
        self.comm: Any = None  # mpi4py's COMM_WORLD, None in a single process
        self.world = World(0, 1, 0)
        self.nccl: dict[int, Any] = {}  # CUDA device id -> cupy.cuda.nccl.NcclCommunicator
        self.abort_hook_installed = False


_state = _State()


# ----- joining the job -------------------------------------------------------------------------------
def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, mpirun, srun) started this process."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


def _import_mpi() -> Any:
    """mpi4py's MPI module, or a DistributedError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"distributed training needs mpi4py and an MPI library; {MPI_INSTALL_HINT}") from exc
    return MPI


def init(enabled: bool | None = None, abort_on_error: bool = True) -> World:
    """Join the MPI job (rank, world size, local rank); a single process when not launched by mpiexec.

    enabled=None joins MPI only under an MPI launcher (a plain `python script.py` never imports mpi4py);
    True requires mpi4py (a DistributedError says what to install); False stays one process.
    abort_on_error installs an exception hook that ends every rank when one raises (see module docstring).
    """
    if enabled is None:
        enabled = launched_by_mpi()
    if not enabled or _state.comm is not None:
        return _state.world
    mpi = _import_mpi()
    comm = mpi.COMM_WORLD
    local = comm.Split_type(mpi.COMM_TYPE_SHARED)
    _state.comm, _state.world = comm, World(comm.Get_rank(), comm.Get_size(), local.Get_rank())
    local.Free()
    if abort_on_error and comm.Get_size() > 1 and not _state.abort_hook_installed:
        sys.excepthook, _state.abort_hook_installed = _abort_on_uncaught, True
    return _state.world


def is_initialized() -> bool:
    """True once `init` has joined an MPI job."""
    return _state.comm is not None


def world() -> World:
    """This process's rank, world size and local rank (World(0, 1, 0) before `init` or without MPI)."""
    return _state.world


def rank() -> int:
    """This process's rank, 0 in a single process."""
    return _state.world.rank


def world_size() -> int:
    """The number of ranks, 1 in a single process."""
    return _state.world.size


def is_main() -> bool:
    """True on rank 0, the one that logs, shows progress, plots and writes checkpoints."""
    return _state.world.rank == 0


def local_device(device: str) -> str:
    """This rank's device, made CuPy's current one: cuda:N becomes cuda:<N + local rank>, one GPU per rank per host."""
    name = backend.normalize_device(device)
    if name != "cpu" and world_size() > 1:
        name = f"cuda:{int(name[5:]) + _state.world.local_rank}"
    if name != "cpu":
        backend.array_module(name).cuda.Device(int(name[5:])).use()
    return name


def barrier() -> None:
    """Wait until every rank gets here."""
    if _state.world.size > 1:
        _state.comm.Barrier()


def abort(code: int = 1, message: str = "") -> None:
    """End every rank of the job now with exit status `code` (MPI_Abort); plain sys.exit in one process."""
    if message:  # on sys.__stderr__: a rank other than 0 may have silenced sys.stderr
        sys.__stderr__.write(f"tinyzoo.distributed: rank {rank()} of {world_size()}: {message}\n")
        sys.__stderr__.flush()
    if _state.world.size > 1:
        _state.comm.Abort(code)
    sys.exit(code)


def _abort_on_uncaught(kind: type, error: BaseException, tb: Any) -> None:
    """sys.excepthook under MPI: print the traceback and the rank, then abort the whole job.

    Without it the failing rank's interpreter would run MPI_Finalize at exit and wait there, while the
    other ranks wait in their next all-reduce for it: a silent hang instead of an error (ChainerMN's
    global_except_hook handles the same case).
    """
    try:
        traceback.print_exception(kind, error, tb, file=sys.__stderr__)
    finally:
        abort(1, f"uncaught {kind.__name__}: {error}; aborting all {world_size()} ranks (MPI_Abort)")


def seed_rank(seed: int) -> int:
    """Seed tinyzoo's generators with this rank's seed (rank 0: `seed` itself) and return it.

    Call it after the model is built (weights come from the shared seed, or from `broadcast_parameters`),
    so dropout and other draws differ across ranks yet repeat from run to run.
    """
    rank_seed = rank_stream_seed(seed, rank())
    rng.manual_seed(rank_seed)
    return rank_seed


def rank_stream_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s random stream: `seed` on rank 0, a SeedSequence child of (seed, rank) elsewhere."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**63, rank]).generate_state(1, np.uint64)[0] >> 1)


# ----- buckets -------------------------------------------------------------------------------------
class Slot(NamedTuple):
    """Where array number `index` lies in its bucket's flat buffer: elements [start, stop)."""

    index: int
    start: int
    stop: int


class Bucket(NamedTuple):
    """Arrays of one device and dtype packed into one flat buffer of `size` elements, one collective each."""

    device: str
    dtype: np.dtype
    slots: tuple[Slot, ...]
    size: int


def plan_buckets(arrays: Iterable[tuple[tuple[int, ...], Any, str]], bucket_bytes: int = DEFAULT_BUCKET_BYTES,
                 ) -> list[Bucket]:  # fmt: skip
    """Group arrays, given as (shape, dtype, device), into buckets of at most `bucket_bytes` each.

    Arrays keep their order within each (device, dtype) group; a bucket is closed when the next array
    would take it past bucket_bytes, and an array larger than that gets a bucket of its own. The plan
    depends only on the shapes, so every rank computes the same one.
    """
    if bucket_bytes < 1:
        raise ValueError(f"plan_buckets: bucket_bytes must be positive, got {bucket_bytes}")
    groups: dict[tuple[str, np.dtype], list[list[tuple[int, int]]]] = {}
    for index, (shape, dtype, device) in enumerate(arrays):
        dtype, size = np.dtype(dtype), int(np.prod(shape, dtype=np.int64))
        buckets = groups.setdefault((device, dtype), [[]])
        used = sum(n for _, n in buckets[-1])
        if buckets[-1] and (used + size) * dtype.itemsize > bucket_bytes:
            buckets.append([])
        buckets[-1].append((index, size))
    plan = []
    for (device, dtype), buckets in groups.items():
        for members in buckets:
            ends = np.cumsum([0] + [n for _, n in members])
            slots = tuple(Slot(i, int(start), int(stop)) for (i, _), start, stop in zip(members, ends, ends[1:]))
            plan.append(Bucket(device, dtype, slots, int(ends[-1])))
    return plan


# ----- collectives ---------------------------------------------------------------------------------
def _nccl_communicator(device_id: int) -> Any:
    """The NCCL communicator of this rank's GPU, made on first use with a unique id sent from rank 0 over MPI."""
    if device_id not in _state.nccl:
        cupy = backend.array_module(f"cuda:{device_id}")
        from cupy.cuda import nccl

        unique_id = nccl.get_unique_id() if is_main() else None
        unique_id = _state.comm.bcast(unique_id, root=0)
        with cupy.cuda.Device(device_id):
            _state.nccl[device_id] = nccl.NcclCommunicator(world_size(), unique_id, rank())
    return _state.nccl[device_id]


def _nccl_dtype(dtype: np.dtype) -> int:
    """NCCL's code for a dtype, or a DistributedError naming the dtypes NCCL can reduce."""
    from cupy.cuda import nccl

    codes = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
             "int32": nccl.NCCL_INT32, "int64": nccl.NCCL_INT64, "uint8": nccl.NCCL_UINT8, "int8": nccl.NCCL_INT8}
    if dtype.name not in codes:
        raise DistributedError(f"NCCL collective on a {dtype} array: NCCL takes {sorted(codes)}; cast it first")
    return codes[dtype.name]


def all_reduce_sum(flat: Any) -> None:
    """Sum a contiguous array over the ranks, in place: MPI_Allreduce (NumPy) or ncclAllReduce (CuPy, no host copy)."""
    if world_size() == 1:
        return
    if backend.xp_of(flat) is np:
        from mpi4py import MPI

        _state.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        return
    from cupy.cuda import nccl

    cupy = backend.xp_of(flat)
    with cupy.cuda.Device(flat.device.id):  # the array's GPU, whichever is current, and its current stream
        stream = cupy.cuda.get_current_stream().ptr
        pointer = flat.data.ptr  # in place: NCCL allows send buffer == receive buffer
        _nccl_communicator(flat.device.id).allReduce(pointer, pointer, flat.size, _nccl_dtype(flat.dtype),
                                                     nccl.NCCL_SUM, stream)  # fmt: skip


def _broadcast(flat: Any, root: int) -> None:
    """Overwrite a flat buffer on every rank with root's: MPI_Bcast for NumPy, ncclBcast for CuPy."""
    if backend.xp_of(flat) is np:
        _state.comm.Bcast(flat, root=root)
        return
    cupy = backend.xp_of(flat)
    with cupy.cuda.Device(flat.device.id):
        stream = cupy.cuda.get_current_stream().ptr
        _nccl_communicator(flat.device.id).bcast(flat.data.ptr, flat.size, _nccl_dtype(flat.dtype), root, stream)


def _empty(device: str, shape: Any, dtype: Any) -> Any:
    """An uninitialised array allocated on `device` (no host copy for a GPU)."""
    xp = backend.array_module(device)
    if xp is np:
        return np.empty(shape, dtype)
    with xp.cuda.Device(int(device[5:])):
        return xp.empty(shape, dtype)


def _as_tensors(model_or_params: Any) -> list[Tensor]:
    """The parameters of a Module (anything with .parameters()) or the tensors of an iterable."""
    params = model_or_params.parameters() if hasattr(model_or_params, "parameters") else model_or_params
    return [p for p in params if p.requires_grad]


def all_reduce_gradients(model_or_params: Any, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> int:
    """Replace every parameter's .grad by its mean over the ranks, one collective per bucket; returns the count.

    A parameter without a gradient on this rank counts as a zero gradient, so the mean is the one of the
    global batch; it is left without one only when no rank has a gradient for it (each bucket carries one
    "has a gradient" count per parameter for that). The new gradients are views of fresh flat buffers.
    """
    if world_size() == 1:
        return 0
    params = _as_tensors(model_or_params)
    plan = plan_buckets(((p.shape, p.dtype, p.device) for p in params), bucket_bytes)
    for bucket in plan:
        flat = _empty(bucket.device, bucket.size + len(bucket.slots), bucket.dtype)
        values, counts = flat[:bucket.size], flat[bucket.size:]  # the gradients, then one count per parameter
        counts.fill(1)
        missing = []
        for k, slot in enumerate(bucket.slots):
            grad = params[slot.index].grad
            if grad is None:
                values[slot.start:slot.stop] = 0
                counts[k] = 0
                missing.append(k)
            else:
                values[slot.start:slot.stop] = grad.data.reshape(-1)
        all_reduce_sum(flat)
        values /= world_size()
        seen = backend.to_host(counts[missing]) > 0 if missing else []  # read back only when a grad was missing
        has_grad = dict(zip(missing, seen))
        for k, slot in enumerate(bucket.slots):
            p = params[slot.index]
            p.grad = Tensor(values[slot.start:slot.stop].reshape(p.shape)) if has_grad.get(k, True) else None
    return len(plan)


def _broadcast_arrays(arrays: list[Any], root: int = 0, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
    """Overwrite each array, in place, with root's; the arrays must have the same shapes on every rank."""
    plan = plan_buckets(((a.shape, a.dtype, backend.device_of(a)) for a in arrays), bucket_bytes)
    for bucket in plan:
        flat = _empty(bucket.device, bucket.size, bucket.dtype)
        for slot in bucket.slots:
            flat[slot.start:slot.stop] = arrays[slot.index].reshape(-1)
        _broadcast(flat, root)
        for slot in bucket.slots:
            arrays[slot.index][...] = flat[slot.start:slot.stop].reshape(arrays[slot.index].shape)


def _signature(named: list[tuple[str, Any]]) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of each array, to check that every rank holds the same model."""
    return [(name, tuple(a.shape), str(a.dtype)) for name, a in named]


def _check_same_on_every_rank(what: str, signature: list, root: int) -> None:
    """Raise DistributedError (on the ranks that differ) when `signature` differs from root's."""
    theirs = _state.comm.bcast(signature, root=root)
    if theirs != signature:
        first = next((mine, other) for mine, other in zip(signature + [None], theirs + [None]) if mine != other)
        raise DistributedError(f"{what}: rank {rank()} holds {len(signature)} arrays, rank {root} {len(theirs)}; "
                               f"first difference: here {first[0]}, rank {root} {first[1]}. Build the same "
                               f"model on every rank")  # fmt: skip


def broadcast_parameters(model: Any, root: int = 0) -> None:
    """Copy rank `root`'s parameters and buffers (BatchNorm statistics) into every rank's model, in place."""
    if world_size() == 1:
        return
    named = [(n, t.data) for n, t in list(model.named_parameters()) + list(model.named_buffers())]
    _check_same_on_every_rank("broadcast_parameters", _signature(named), root)
    _broadcast_arrays([a for _, a in named], root)


def average_buffers(model: Any) -> None:
    """Make every floating-point buffer (BatchNorm's running statistics) its mean over the ranks, in place."""
    if world_size() == 1:
        return
    buffers = [t for _, t in model.named_buffers() if t.dtype.kind == "f"]
    for bucket in plan_buckets((t.shape, t.dtype, t.device) for t in buffers):
        flat = _empty(bucket.device, bucket.size, bucket.dtype)
        for slot in bucket.slots:
            flat[slot.start:slot.stop] = buffers[slot.index].data.reshape(-1)
        all_reduce_sum(flat)
        flat /= world_size()
        for slot in bucket.slots:
            buffers[slot.index].data[...] = flat[slot.start:slot.stop].reshape(buffers[slot.index].shape)


def _split_arrays(tree: Any, arrays: list[Any]) -> Any:
    """`tree` with every array replaced by {"__array__": (position, shape, dtype, on_gpu)}; arrays appended."""
    if isinstance(tree, dict):
        return {k: _split_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_split_arrays(v, arrays) for v in tree)
    if isinstance(tree, np.ndarray) or backend.xp_of(tree) is not np:
        arrays.append(tree)
        return {"__array__": (len(arrays) - 1, tuple(tree.shape), str(tree.dtype), backend.xp_of(tree) is not np)}
    return tree


def _join_arrays(tree: Any, arrays: list[Any]) -> Any:
    """Undo `_split_arrays`: put arrays[position] back where each placeholder stands."""
    if isinstance(tree, dict):
        if set(tree) == {"__array__"}:
            return arrays[tree["__array__"][0]]
        return {k: _join_arrays(v, arrays) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_join_arrays(v, arrays) for v in tree)
    return tree


def broadcast_optimizer_state(optimizer: Any, root: int = 0) -> None:
    """Give every rank rank `root`'s optimizer state (moments, step counts, learning rates), e.g. after a resume.

    The structure goes as a small pickled tree over MPI; the arrays travel in buckets on their device
    (NCCL for GPU state), each rank's GPU arrays on its own GPU.
    """
    if world_size() == 1:
        return
    arrays: list[Any] = []
    skeleton = _split_arrays(optimizer.state_dict(), arrays) if rank() == root else None
    skeleton = _state.comm.bcast(skeleton, root=root)
    if rank() != root:
        own_device = next(p.device for group in optimizer.param_groups for p in group["params"])
        arrays = []
        for placeholder in _placeholders(skeleton):
            _, shape, dtype, on_gpu = placeholder
            arrays.append(_empty(own_device if on_gpu else "cpu", shape, dtype))
    _broadcast_arrays(arrays, root)
    if rank() != root:
        optimizer.load_state_dict(_join_arrays(skeleton, arrays))


def _placeholders(tree: Any) -> list[tuple]:
    """The array placeholders of a `_split_arrays` tree, in position order."""
    found: list[tuple] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"__array__"}:
                found.append(node["__array__"])
            else:
                for v in node.values():
                    walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    walk(tree)
    return sorted(found, key=lambda placeholder: placeholder[0])


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank `root`'s copy of a small picklable object (a step count, a scheduler's state dict), on every rank."""
    return obj if world_size() == 1 else _state.comm.bcast(obj, root=root)


class DistributedOptimizer:
    """An optimizer whose step() first averages the gradients over the ranks (ChainerMN's multi-node optimizer).

    Everything else (param_groups, state, zero_grad, state_dict, load_state_dict) is the wrapped optimizer's.
    Wrap after building learning-rate schedulers, which take the plain optimizer. To clip the averaged
    gradients, call `synchronize()` after backward, clip, then `step()` (which then reduces nothing again),
    as with Horovod's DistributedOptimizer.
    """

    def __init__(self, optimizer: Any, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        self.optimizer, self.bucket_bytes = optimizer, bucket_bytes
        self._synchronized = False

    def synchronize(self) -> None:
        """Average the gradients of every parameter group over the ranks now (step() will not do it again)."""
        all_reduce_gradients([p for group in self.optimizer.param_groups for p in group["params"]], self.bucket_bytes)
        self._synchronized = True

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run the closure if given (forward and backward), average the gradients over the ranks, then step."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        if not self._synchronized or closure is not None:
            self.synchronize()
        self.optimizer.step()
        self._synchronized = False
        return loss

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

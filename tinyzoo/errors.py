"""The errors tinyzoo raises. Each one names the op, the shapes/devices/dtypes involved and what to do."""


class TinyzooError(Exception):
    """Base class of every error tinyzoo raises on purpose."""


class ShapeError(TinyzooError, ValueError):
    """Shapes that do not fit together (matmul mismatch, non-broadcastable operands, wrong rank)."""


class DTypeError(TinyzooError, TypeError):
    """A dtype an op cannot take (an integer tensor asked for gradients, complex or object data)."""


class DeviceError(TinyzooError, RuntimeError):
    """A device that is missing (no CuPy, no CUDA GPU) or tensors on different devices in one op."""


class IndexRangeError(TinyzooError, IndexError):
    """An index outside the axis it indexes."""


class GraphError(TinyzooError, RuntimeError):
    """Misuse of the autograd tape: backward twice through a freed graph, backward on a non-scalar."""


class AnomalyError(TinyzooError, FloatingPointError):
    """A NaN or Inf produced while `detect_anomaly()` is on."""


class DataError(TinyzooError, OSError):
    """A data set that cannot be found, fetched or read."""


class CheckpointError(TinyzooError, ValueError):
    """A checkpoint file that is truncated, foreign or from an incompatible format version."""


class DistributedError(TinyzooError, RuntimeError):
    """MPI or NCCL missing for a distributed run, or ranks that disagree (e.g. different models)."""

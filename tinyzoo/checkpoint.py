"""Checkpoints without pickle: `save(obj, path)` / `load(path)` for nested dicts, lists and tuples of arrays.

A checkpoint is a zip (a `.npz`) holding `__header__.json` — the format name, its version and the tree of
the saved object with every array replaced by the name of its member — and one `.npy` file per array,
written and read with `allow_pickle=False`. Leaves may be NumPy or CuPy arrays (saved from host memory),
NumPy scalars, any object whose `.data` is an array (a tinyzoo Tensor: its array is saved), and Python
int, float, bool, str and None. `load` gives back the tree with NumPy arrays.

`save` writes a temp file beside `path`, flushes and fsyncs it, renames it over `path` and fsyncs the folder,
so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo.backend import to_host, xp_of
from tinyzoo.errors import CheckpointError

FORMAT = "tinyzoo-checkpoint"
VERSION = 1
HEADER = "__header__.json"


def _is_array(obj: Any) -> bool:
    """True for NumPy and CuPy arrays."""
    return isinstance(obj, np.ndarray) or xp_of(obj) is not np


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    """The JSON tree of `obj`, its arrays moved into `arrays` under fresh member names."""
    if isinstance(obj, np.generic):  # before float: np.float64 is a float
        return {"scalar": _add_array(np.asarray(obj), arrays, where)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise CheckpointError(f"cannot save {where}: dict keys must be str, got {[type(k) for k in obj]}")
        return {"dict": {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if not _is_array(obj) and _is_array(getattr(obj, "data", None)):
        obj = obj.data  # a Tensor: save its array
    if _is_array(obj):
        return {"array": _add_array(to_host(obj), arrays, where)}
    raise CheckpointError(f"cannot save {where}: {type(obj).__name__} is not an array, tensor, dict, list, "
                          f"tuple, int, float, bool, str or None")


def _add_array(array: np.ndarray, arrays: dict[str, np.ndarray], where: str) -> str:
    """Store one array under the next member name and return that name."""
    if array.dtype.hasobject:
        raise CheckpointError(f"cannot save {where}: object arrays would need pickle")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return name


def _decode(node: Any, members: dict[str, np.ndarray]) -> Any:
    """The object a JSON tree node stands for, its arrays taken from `members`."""
    if not isinstance(node, dict):
        return node
    (kind, value), = node.items()
    if kind == "dict":
        return {k: _decode(v, members) for k, v in value.items()}
    if kind in ("list", "tuple"):
        items = [_decode(v, members) for v in value]
        return items if kind == "list" else tuple(items)
    return members[value] if kind == "array" else members[value][()]


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk, so a rename in it survives a crash (POSIX only)."""
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save a tree of arrays, tensors and plain values to `path`, atomically, without pickle."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    header = {"format": FORMAT, "version": VERSION, "tree": _encode(obj, arrays, "obj")}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "xb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
                zf.writestr(HEADER, json.dumps(header))
                for name, array in arrays.items():
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _read_header(zf: zipfile.ZipFile, path: Path) -> dict:
    """The checked header of an open checkpoint."""
    try:
        header = json.loads(zf.read(HEADER))
    except KeyError as exc:
        raise CheckpointError(f"{path} is a zip but not a tinyzoo checkpoint: it has no {HEADER}") from exc
    except ValueError as exc:
        raise CheckpointError(f"{path}: {HEADER} is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise CheckpointError(f"{path} is not a tinyzoo checkpoint: format {found!r}, expected {FORMAT!r}")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} is checkpoint format version {version!r}; this tinyzoo reads versions "
                              f"up to {VERSION}: upgrade tinyzoo to load it")
    return header


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One stored array, after checking that the size its header declares is the size stored.

    A tampered or corrupt header could otherwise declare terabytes and make NumPy try to allocate them.
    """
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise CheckpointError(f"{path}: member {info.filename} has an unknown .npy format version {version}")
        shape, _, dtype = read_header[version](f)
        declared = math.prod(shape) * dtype.itemsize
        stored = info.file_size - f.tell()
        if declared != stored or dtype.hasobject:
            raise CheckpointError(
                f"{path}: member {info.filename} declares an array of shape {shape} and dtype {dtype} "
                f"({declared:,} bytes) but stores {stored:,} bytes; the file is corrupt or was tampered with"
            )
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def load(path: str | os.PathLike) -> Any:
    """The tree saved by `save`, with NumPy arrays; CheckpointError for a truncated or foreign file."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            header = _read_header(zf, path)
            members = {}
            for info in zf.infolist():
                if info.filename != HEADER:
                    members[info.filename.removesuffix(".npy")] = _read_member(zf, info, path)
        return _decode(header["tree"], members)
    except (CheckpointError, FileNotFoundError):
        raise
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path} is truncated or not a checkpoint (not a readable zip: {exc})") from exc
    except (ValueError, EOFError, KeyError, OSError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc

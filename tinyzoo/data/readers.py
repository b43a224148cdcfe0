"""Readers for data files the user supplies: CIFAR-10 python batches, QuickDraw sketch-rnn `.npz`, IDX files.

None of these data sets can be fetched from the package index, so each reader takes the path of a copy the
user downloaded. Pickled content is read only through `sources.restricted_load` (NumPy arrays and plain
containers, nothing that can run code), including the object arrays inside QuickDraw `.npz` files, which
`np.load(allow_pickle=True)` would unpickle unchecked.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np

from tinyzoo.data import sources
from tinyzoo.data.datasets import stroke_scale
from tinyzoo.errors import DataError

# --------------------------------------------------------------------------------------------------- IDX
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_HINT = ("pass the path of an IDX file such as train-images-idx3-ubyte or train-images-idx3-ubyte.gz "
             "(the MNIST / Fashion-MNIST format), downloaded by hand")


def _read_bytes(path: Path, hint: str) -> bytes:
    """The bytes of a file, gunzipped when it starts with the gzip magic; DataError if missing or broken."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except FileNotFoundError as exc:
        raise DataError(f"no file at {path}: {hint}") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"could not read {path} ({exc}): a truncated or corrupt gzip file? {hint}") from exc


def load_idx(path: str | Path) -> np.ndarray:
    """The array in an IDX file (raw or gzip): magic 0x0000, a dtype code, the rank, big-endian dims, data."""
    path = Path(path)
    raw = _read_bytes(path, _IDX_HINT)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file: expected two zero bytes, a dtype code "
                        f"(0x08 0x09 0x0b 0x0c 0x0d 0x0e) and a rank, got {raw[:4].hex(' ')}; {_IDX_HINT}")
    rank, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * rank
    if len(raw) < header:
        raise DataError(f"{path} is truncated: its header needs {header} bytes for {rank} dims, the file has "
                        f"{len(raw)}; {_IDX_HINT}")
    dims = struct.unpack(f">{rank}I", raw[4:header])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} has {len(raw)} bytes but its header promises {expected} ({dims} of "
                        f"{dtype}): the file is truncated or is not IDX; {_IDX_HINT}")
    data = np.frombuffer(raw, dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_HINT = ("expected the CIFAR-10 python batches data_batch_1 .. data_batch_5 and test_batch; "
               "download cifar-10-python.tar.gz from the CIFAR-10 page (Krizhevsky 2009) by hand, extract "
               "it, and pass the cifar-10-batches-py folder")


class CIFAR10(NamedTuple):
    """CIFAR-10: 32x32 colour images as uint8 [N, 3, 32, 32] (channels first), labels int64 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    description: str


def _entry(batch: dict, key: str):
    """batch[key], whether the pickle stored the key as bytes (Python 2) or as text."""
    return batch[key.encode()] if key.encode() in batch else batch.get(key)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images [N, 3, 32, 32] uint8 and labels [N] int64 of one CIFAR-10 python batch file."""
    if not path.is_file():
        raise DataError(f"no file at {path}: {_CIFAR_HINT}")
    with open(path, "rb") as f:
        batch = sources.restricted_load(f, str(path), sources.ARRAY_GLOBALS | sources.CONTAINER_GLOBALS,
                                        encoding="bytes")
    data = _entry(batch, "data") if isinstance(batch, dict) else None
    labels = np.asarray(_entry(batch, "labels") if isinstance(batch, dict) else None)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072 and labels.shape == (len(data),)
            and np.isin(labels, np.arange(10)).all()):
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict with b'data' uint8 [N, 3072] and "
                        f"b'labels' (N ints 0..9); {_CIFAR_HINT}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def load_cifar10(path: str | Path) -> CIFAR10:
    """CIFAR-10 from the python batches in folder `path` (or its cifar-10-batches-py subfolder)."""
    folder = Path(path)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    train = [_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _cifar_batch(folder / "test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    description = (f"CIFAR-10 (Krizhevsky 2009) read from {folder}: train {x_train.shape}, "
                   f"test {x_test.shape} uint8 channels-first images, labels int64 0..9 "
                   f"({', '.join(CIFAR10_CLASSES)})")
    return CIFAR10(x_train, y_train, x_test, y_test, CIFAR10_CLASSES, description)


# ---------------------------------------------------------------------------------------------- QuickDraw
_QUICKDRAW_HINT = ("expected a sketch-rnn QuickDraw .npz (e.g. cat.npz) holding train, valid and test "
                   "arrays of stroke-3 sequences; download it by hand from the QuickDraw sketchrnn data set "
                   "and pass its path")


class QuickDraw(NamedTuple):
    """QuickDraw sketches as stroke-3 float32 sequences (dx, dy, pen_lifted), split as in the file."""

    train: list[np.ndarray]
    valid: list[np.ndarray]
    test: list[np.ndarray]
    scale: float
    description: str


def _read_npy(fp: IO[bytes], what: str) -> np.ndarray:
    """One `.npy` stream; object arrays go through the restricted unpickler, never `allow_pickle=True`."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise DataError(f"{what}: unsupported .npy version {version}")
    if dtype.hasobject:
        array = sources.restricted_load(fp, what)
        if not isinstance(array, np.ndarray) or array.shape != shape:
            raise DataError(f"{what}: the pickled array does not match its header shape {shape}")
        return array
    data = fp.read()
    count = int(np.prod(shape))
    if len(data) != count * dtype.itemsize:
        raise DataError(f"{what} is truncated: {len(data)} bytes for {shape} of {dtype}")
    return np.frombuffer(data, dtype, count).reshape(shape, order="F" if fortran else "C")


def _sketches(array: np.ndarray, what: str) -> list[np.ndarray]:
    """The stroke-3 sequences of one split as float32 [n, 3] arrays."""
    sequences = [np.asarray(s) for s in array]
    if not all(s.ndim == 2 and s.shape[1] == 3 and s.dtype.kind in "iuf" for s in sequences):
        raise DataError(f"{what}: expected numeric stroke-3 arrays [n, 3]; {_QUICKDRAW_HINT}")
    return [s.astype(np.float32) for s in sequences]


def load_quickdraw(path: str | Path) -> QuickDraw:
    """A sketch-rnn QuickDraw `.npz` (train/valid/test object arrays of stroke-3 int16), read safely."""
    path = Path(path)
    splits = {}
    try:
        with zipfile.ZipFile(path) as npz:
            for split in ("train", "valid", "test"):
                what = f"{split}.npy in {path}"
                if f"{split}.npy" not in npz.namelist():
                    raise DataError(f"{path} has no {split} array; {_QUICKDRAW_HINT}")
                with npz.open(f"{split}.npy") as fp:
                    splits[split] = _sketches(_read_npy(fp, what), what)
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"no file at {path}: {_QUICKDRAW_HINT}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"could not read {path} ({exc}): truncated or not an .npz; "
                        f"{_QUICKDRAW_HINT}") from exc
    if not splits["train"]:
        raise DataError(f"{path} has an empty train split; {_QUICKDRAW_HINT}")
    scale = stroke_scale(splits["train"])
    sizes = ", ".join(f"{name} {len(seqs)}" for name, seqs in splits.items())
    description = (f"QuickDraw sketches (Google, CC BY 4.0) read from {path}: {sizes} stroke-3 float32 "
                   f"sequences (dx, dy, pen_lifted); train offset std {scale:.3f}")
    return QuickDraw(splits["train"], splits["valid"], splits["test"], scale, description)

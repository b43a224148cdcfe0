"""One-off converter: the 8x8 digits from a scikit-learn wheel to tinyzoo/data/files/digits.npz.

Any scikit-learn wheel holds the same `sklearn/datasets/data/digits.csv.gz` (its sha256 is checked below);
tinyzoo used scikit-learn 1.5.2 (see tinyzoo/data/files/PROVENANCE.md):

    python -m pip download --no-deps --only-binary :all: -d /tmp/sk scikit-learn==1.5.2
    PYTHONPATH=. python scripts/make_digits_npz.py /tmp/sk/scikit_learn-1.5.2-*.whl
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
from pathlib import Path

import numpy as np

from tinyzoo.data import sources

MEMBER = "sklearn/datasets/data/digits.csv.gz"
MEMBER_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
OUT = Path(__file__).resolve().parent.parent / "tinyzoo" / "data" / "files" / "digits.npz"


def main(wheel: Path) -> None:
    """Convert the csv (64 values 0..16, then the label, per row), check it, write the npz."""
    raw = sources.read_member(wheel, MEMBER)
    assert hashlib.sha256(raw).hexdigest() == MEMBER_SHA256, f"{MEMBER} in {wheel} is not the expected file"
    table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode("ascii")), delimiter=",", dtype=np.int64)
    x, y = table[:, :64].astype(np.uint8), table[:, 64].astype(np.uint8)
    assert x.shape == (1797, 64) and x.max() == 16 and set(np.unique(y)) == set(range(10))
    print(f"wheel sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}, x {x.shape}, "
          f"class counts {np.bincount(y).tolist()}")
    np.savez_compressed(OUT, x=x, y=y)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

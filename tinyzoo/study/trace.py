"""A per-op profiler: every forward op and every backward rule, with shapes, wall time and bytes.

    with trace() as tr:
        loss = loss_fn(model(x), y)
        loss.backward()
    print(tr.table())          # top ops by total time
    tr.to_csv("ops.csv")       # one row per event

How it hooks in: a `Trace` is an op observer (`MODE.observers`). `record_op` calls `on_forward` once
an op's output exists; the engine calls `on_backward` once a node's backward rule has returned.

How time is measured, honestly:

- forward: `record_op` runs *after* the array computation, so there is no start signal. An op's time is
  the wall time since the previous event (the previous op, the end of a backward rule, entering the
  trace, or `mark()`). It covers the op's argument checks and its computation, and also any Python that
  ran in between — usually the caller's glue (a module's forward). Code that is not an op (loading a
  batch, `optimizer.step()`) is charged to the next op, so call `tr.mark()` right before the ops you want
  timed (for example at the top of each training step).
- backward: every op recorded inside the trace has its node's backward rule wrapped, so its time is
  exactly from the rule's start to its end. The ops a rule is written with run inside it; they are part
  of its time and are not listed separately. Graphs built before entering the trace are not wrapped:
  their backward rules are timed since the previous event, and their inner ops are listed as untaped.
- "untaped" ops are ops whose output went on no tape: run under `no_grad()`, on inputs needing no
  gradient, or by the engine itself between rules (summing the gradients of a tensor used twice).
- the engine's own bookkeeping between rules (topological sort, hooks) is charged to nothing; compare
  `totals["ms"]` with `wall_ms` to see how much of the time the ops account for.
- on a GPU, kernels run asynchronously; with `sync=True` (the default) the trace waits for the device
  before reading the clock, so times include the kernels (and the waiting slows the run down a little).

Bytes are those of new arrays: an op's output (a view of an input counts 0), a backward rule's input
gradients (each distinct array once; one that shares memory with the incoming gradient counts 0).
"""

from __future__ import annotations

import csv
import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.tensor import MODE, Tensor

__all__ = ["Event", "OpStats", "Trace", "trace"]


@dataclass
class Event:
    """One forward op, one backward rule, or one untaped op, as it happened."""

    phase: str  # "forward", "backward" or "untaped"
    op: str
    inputs: list[tuple[int, ...] | None]  # shapes (for backward: the gradient the rule received)
    outputs: list[tuple[int, ...] | None]  # shapes (for backward: the gradients it returned, None where none)
    ms: float
    bytes: int


@dataclass
class OpStats:
    """All events of one op in one phase, summed (a row of the table)."""

    phase: str
    op: str
    count: int
    total_ms: float
    bytes: int

    @property
    def mean_ms(self) -> float:
        """Mean wall time per call."""
        return self.total_ms / self.count


def _fresh_bytes(arrays: list[Any], sources: list[Any]) -> int:
    """nbytes of each distinct array among `arrays` that shares no memory with any of `sources`."""
    total, seen = 0, set()
    for array in arrays:
        if id(array) in seen:
            continue
        seen.add(id(array))
        xp = backend.xp_of(array)
        if not any(xp.may_share_memory(array, s) for s in sources if type(s) is type(array)):
            total += array.nbytes
    return total


def _shape(tensor: Tensor | None) -> tuple[int, ...] | None:
    return None if tensor is None else tuple(tensor.shape)


def _on_gpu(tensor: Tensor) -> bool:
    return not isinstance(tensor.data, np.ndarray)


class Trace:
    """Context manager recording every op while active; see the module docstring for the timing method."""

    def __init__(self, sync: bool = True) -> None:
        self.sync = sync
        self.events: list[Event] = []
        self.wall_ms = 0.0
        self._active = False
        self._entered = 0.0
        self._last = 0.0  # clock reading at the previous event
        self._rule_start: float | None = None  # set while a wrapped backward rule runs

    # ----- the context ------------------------------------------------------------------------
    def __enter__(self) -> Trace:
        MODE.observers.append(self)
        self._active = True
        self._entered = self._last = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        MODE.observers.remove(self)
        self._active = False
        self.wall_ms += (time.perf_counter() - self._entered) * 1e3

    def mark(self) -> None:
        """Restart the clock: time since the previous event is charged to nothing."""
        self._last = self._now(on_gpu=backend.cupy_if_loaded() is not None)

    def _now(self, on_gpu: bool) -> float:
        """The clock, after waiting for the GPU's queued work when `on_gpu` and sync are on."""
        if self.sync and on_gpu:
            backend.cupy_if_loaded().cuda.get_current_stream().synchronize()
        return time.perf_counter()

    # ----- the observer -----------------------------------------------------------------------
    def on_forward(self, name: str, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        """Record one op (or fold it into the backward rule that is running)."""
        if out._node is not None:
            out._node.backward = self._timed(out._node.backward, _on_gpu(out))
        if self._rule_start is not None:
            return
        now = self._now(_on_gpu(out))
        self.events.append(Event(
            phase="forward" if out._node is not None else "untaped",
            op=name,
            inputs=[_shape(t) for t in inputs],
            outputs=[_shape(out)],
            ms=(now - self._last) * 1e3,
            bytes=_fresh_bytes([out.data], [t.data for t in inputs]),
        ))  # fmt: skip
        self._last = now

    def on_backward(self, name: str, grad: Tensor, input_grads: tuple) -> None:
        """Record one backward rule, timed from its start when it was wrapped."""
        returned = [g for g in input_grads if g is not None]
        now = self._now(_on_gpu(grad))
        start = self._last if self._rule_start is None else self._rule_start
        self.events.append(Event(
            phase="backward",
            op=name,
            inputs=[_shape(grad)],
            outputs=[_shape(g) for g in input_grads],
            ms=(now - start) * 1e3,
            bytes=_fresh_bytes([g.data for g in returned], [grad.data]),
        ))  # fmt: skip
        self._rule_start = None
        self._last = now

    def _timed(self, rule: Callable, on_gpu: bool) -> Callable:
        """A backward rule that notes when it starts (only while this trace is active)."""

        @functools.wraps(rule)  # (the engine finds the tensors a rule reads through __wrapped__)
        def timed_rule(grad: Tensor, out: Tensor) -> tuple:
            if self._active:
                self._rule_start = self._now(on_gpu)
            try:
                return rule(grad, out)
            except BaseException:
                self._rule_start = None
                raise

        return timed_rule

    # ----- results ----------------------------------------------------------------------------
    def summary(self) -> list[OpStats]:
        """One row per (phase, op), by total time, longest first."""
        rows: dict[tuple[str, str], OpStats] = {}
        for e in self.events:
            row = rows.setdefault((e.phase, e.op), OpStats(e.phase, e.op, 0, 0.0, 0))
            row.count += 1
            row.total_ms += e.ms
            row.bytes += e.bytes
        return sorted(rows.values(), key=lambda r: r.total_ms, reverse=True)

    @property
    def totals(self) -> dict[str, float]:
        """Events, milliseconds and bytes over the whole trace (the sum of every row)."""
        return {
            "count": len(self.events),
            "ms": sum(e.ms for e in self.events),
            "bytes": sum(e.bytes for e in self.events),
        }

    def table(self, top: int = 20) -> str:
        """A profiler-like table of the `top` rows by total time, with totals and the wall time."""
        totals = self.totals
        share = totals["ms"] or 1.0
        lines = [f"{'phase':<9} {'op':<20} {'calls':>7} {'total ms':>10} {'mean ms':>9} {'% time':>7} {'bytes':>10}"]
        lines.append("-" * len(lines[0]))
        rows = self.summary()
        for r in rows[:top]:
            lines.append(
                f"{r.phase:<9} {r.op:<20} {r.count:>7} {r.total_ms:>10.3f} {r.mean_ms:>9.4f} "
                f"{100 * r.total_ms / share:>6.1f}% {_human_bytes(r.bytes):>10}"
            )
        if len(rows) > top:
            lines.append(f"... {len(rows) - top} more rows")
        lines.append("-" * len(lines[0]))
        total_bytes = _human_bytes(totals["bytes"])
        lines.append(f"{'total':<30} {totals['count']:>7} {totals['ms']:>10.3f} {'':>9} {'':>7} {total_bytes:>10}")
        if self.wall_ms:
            in_ops = 100 * totals["ms"] / self.wall_ms
            lines.append(f"wall time inside the trace: {self.wall_ms:.3f} ms ({in_ops:.0f}% in ops)")
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> None:
        """Write the events, the per-op rows and the totals as JSON."""
        summary = [{**asdict(r), "mean_ms": r.mean_ms} for r in self.summary()]
        document = {"events": [asdict(e) for e in self.events], "summary": summary, "totals": self.totals,
                    "wall_ms": self.wall_ms}  # fmt: skip
        Path(path).write_text(json.dumps(document, indent=1))

    def to_csv(self, path: str | Path) -> None:
        """Write one line per event: phase, op, input and output shapes, ms, bytes."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["phase", "op", "inputs", "outputs", "ms", "bytes"])
            for e in self.events:
                inputs, outputs = _shapes_text(e.inputs), _shapes_text(e.outputs)
                writer.writerow([e.phase, e.op, inputs, outputs, f"{e.ms:.6f}", e.bytes])


def _shapes_text(shapes: list[tuple[int, ...] | None]) -> str:
    return " ".join("-" if s is None else "x".join(map(str, s)) or "scalar" for s in shapes)


def _human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while n >= 1024 and power < len(units) - 1:
        n /= 1024
        power += 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"


def trace(sync: bool = True) -> Trace:
    """A Trace to use as `with trace() as tr:`; see the module docstring."""
    return Trace(sync=sync)

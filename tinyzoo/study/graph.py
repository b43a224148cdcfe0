"""Draw the recorded graph behind a tensor: one box per op and per leaf, arrows along the data flow.

    loss = ((x @ w) + b).tanh().sum()
    draw_graph(loss, "graph.svg", params={"w": w, "b": b})   # before loss.backward() frees the tape

The tape is walked from the tensor's node back to its leaves (`Node.inputs`). Leaves are named after the
parameters they are (pass `params=dict(model.named_parameters())` or `model=model`), scalar constants
by their value, everything else "input".

A whole model step is easier to read with every module drawn as one box. The tape does not know which
module ran an op, so the forward must run inside `record_modules(model)`, which notes, for every op,
the modules whose forward was running:

    with record_modules(model):
        loss = loss_fn(model(x), y)
    draw_graph(loss, "step.png", model=model, collapse_modules=model)   # one box per child of model

Layout: longest-path layering (every op one row below its deepest input, every leaf one row above its
first consumer), long edges routed through invisible dummy nodes, then a few barycentre sweeps to order
each row and reduce crossings — the first steps of the Sugiyama method. Graphviz `dot` draws it
instead when it is on PATH (and `use_dot` is not False); it is never required.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from tinyzoo.autograd.engine import topological_order
from tinyzoo.autograd.tensor import MODE, Node, Tensor
from tinyzoo.errors import GraphError
from tinyzoo.nn.module import Module

__all__ = ["GraphNode", "draw_graph", "graph_summary", "module_scopes", "record_modules", "to_dot"]


class GraphNode(NamedTuple):
    """One box of the graph: an op, a leaf tensor or a collapsed module call."""

    id: int
    kind: str  # "op"; "leaf" (gets a .grad: a parameter); "input" (needs no gradient); "module" (collapsed)
    label: str  # op name; parameter name, "input" or a scalar constant's value; or "name: Type (n ops)"
    shape: tuple[int, ...]  # the output's shape (for a module: the first tensor it hands on)
    dtype: str


Edge = tuple[int, int]  # (source node id, destination node id): data flows from source to destination


# =================================================================================================
# Which module ran an op
# =================================================================================================
Scope = tuple[int, int, str]  # one call of one module: (id(module), its earlier calls, its name in the model)

# id(op's Node) -> the module calls running when the op was recorded, outermost first
_SCOPES_OF_NODE: dict[int, tuple[Scope, ...]] = {}


@contextlib.contextmanager
def module_scopes(model: Module) -> Iterator[list[tuple[str, Module, int]]]:
    """While active, the yielded list is the stack of (name, module, call index) whose forward is running.

    Each module's `forward` is wrapped on the instance for the duration (the class is untouched), so
    nested calls push and pop in order; `call index` counts that module's calls since entering.
    """
    stack: list[tuple[str, Module, int]] = []
    calls: dict[int, int] = {}
    saved: list[tuple[Module, Any]] = []
    try:
        for name, module in model.named_modules():
            saved.append((module, module.__dict__.get("forward")))
            module.__dict__["forward"] = _scoped(name, module, module.forward, stack, calls)
        yield stack
    finally:
        for module, own_forward in saved:
            if own_forward is None:
                del module.__dict__["forward"]
            else:
                module.__dict__["forward"] = own_forward


def _scoped(name: str, module: Module, forward: Callable, stack: list, calls: dict[int, int]) -> Callable:
    """`forward` wrapped to push (name, module, call index) on `stack` while it runs."""

    def scoped_forward(*args: Any, **kwargs: Any) -> Any:
        index = calls.get(id(module), 0)
        calls[id(module)] = index + 1
        stack.append((name, module, index))
        try:
            return forward(*args, **kwargs)
        finally:
            stack.pop()

    return scoped_forward


class _ScopeRecorder:
    """Op observer: remember the module calls running when each taped op was recorded."""

    def __init__(self, stack: list[tuple[str, Module, int]]) -> None:
        self.stack = stack

    def on_forward(self, name: str, inputs: tuple, out: Tensor) -> None:
        if out._node is None or not self.stack:
            return
        key = id(out._node)
        _SCOPES_OF_NODE[key] = tuple((id(module), index, scope) for scope, module, index in self.stack)
        weakref.finalize(out._node, _SCOPES_OF_NODE.pop, key, None)  # forget it when the node dies

    def on_backward(self, name: str, grad: Tensor, input_grads: tuple) -> None:
        pass


@contextlib.contextmanager
def record_modules(model: Module) -> Iterator[None]:
    """Note which module call recorded each op, so `draw_graph(..., collapse_modules=...)` can group them."""
    with module_scopes(model) as stack:
        recorder = _ScopeRecorder(stack)
        MODE.observers.append(recorder)
        try:
            yield
        finally:
            MODE.observers.remove(recorder)


# =================================================================================================
# The graph as plain data
# =================================================================================================
def _inputs(vertex: Node | Tensor) -> tuple:
    """The vertices an op's node reads (a leaf reads none)."""
    return vertex.inputs if isinstance(vertex, Node) else ()


def _leaf_label(tensor: Tensor, names: dict[int, str]) -> str:
    """A parameter's name, the tensor's own name, a scalar constant's value, or "input"."""
    if id(tensor) in names:
        return names[id(tensor)]
    if tensor.name:
        return tensor.name
    if tensor.size == 1 and not tensor.requires_grad:
        return f"{tensor.item():g}"
    return "input"


def _collapse_targets(collapse_modules: Module | Iterable[Module] | None) -> list[Module]:
    """A Module stands for its direct children; a list for exactly those modules."""
    if collapse_modules is None:
        return []
    if isinstance(collapse_modules, Module):
        return list(collapse_modules.children())
    return list(collapse_modules)


def graph_summary(
    tensor: Tensor,
    params: dict[str, Tensor] | None = None,
    model: Module | None = None,
    collapse_modules: Module | Iterable[Module] | None = None,
) -> tuple[list[GraphNode], list[Edge]]:
    """The graph behind `tensor` as (nodes, edges), nodes listed inputs first; see the module docstring."""
    names = {id(p): name for name, p in (params or {}).items()}
    if model is not None:
        names.update({id(p): name for name, p in model.named_parameters()})
    try:
        walked = topological_order([tensor])
    except GraphError as exc:
        raise GraphError(f"{exc}; to see a graph, draw it before calling backward()") from None
    targets = _collapse_targets(collapse_modules)
    box_of, hidden = _boxes(walked, targets)
    vertices = [t for t in walked if id(t) not in hidden]
    key_of = {id(t): box_of.get(id(t), id(t)) for t in vertices}  # a box key stands for all its members

    members: dict[Any, list[Node | Tensor]] = {}
    for t in vertices:
        members.setdefault(key_of[id(t)], []).append(t)
    links: dict[tuple[Any, Any], None] = {}  # ordered set of (source key, destination key)
    for t in vertices:
        for inp in _inputs(t):
            if id(inp) in key_of and key_of[id(inp)] != key_of[id(t)]:
                links[(key_of[id(inp)], key_of[id(t)])] = None

    boxes = set(box_of.values())
    labels = _box_labels([k for k in members if k in boxes], targets)
    nodes: list[GraphNode] = []
    node_id: dict[Any, int] = {}
    for key in _topological(list(members), list(links)):
        node_id[key] = len(nodes)
        group = members[key]
        if key in labels:
            shown = _first_output(group, vertices, key_of, tensor)
            ops = sum(isinstance(t, Node) for t in group)
            label = f"{labels[key]} ({ops} op{'' if ops == 1 else 's'})"
            nodes.append(GraphNode(len(nodes), "module", label, shown.shape, str(shown.dtype)))
        else:
            (t,) = group
            if isinstance(t, Node):
                kind, label = "op", t.name
            else:
                kind, label = "leaf" if t.requires_grad else "input", _leaf_label(t, names)
            nodes.append(GraphNode(len(nodes), kind, label, t.shape, str(t.dtype)))
    return nodes, [(node_id[a], node_id[b]) for a, b in links]


def _topological(keys: list[Any], links: list[tuple[Any, Any]]) -> list[Any]:
    """Kahn's algorithm: every key after its sources, ties broken by the order of `keys`."""
    rank = {k: i for i, k in enumerate(keys)}
    waiting = {k: 0 for k in keys}
    succs: dict[Any, list[Any]] = {k: [] for k in keys}
    for a, b in links:
        waiting[b] += 1
        succs[a].append(b)
    ready = [k for k in keys if waiting[k] == 0]
    order = []
    while ready:
        ready.sort(key=rank.__getitem__, reverse=True)
        key = ready.pop()
        order.append(key)
        for s in succs[key]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    return order


def _boxes(vertices: list[Node | Tensor], targets: list[Module]) -> tuple[dict[int, Scope], set[int]]:
    """id(op output) -> the collapsed module call that made it, and the ids of leaves drawn inside boxes.

    A leaf disappears into the boxes when only boxes use it and it is a parameter of each of their
    modules (or a scalar constant): the weights of an RNN cell called T times are not drawn T times.
    """
    if not targets:
        return {}, set()
    target_ids = {id(m) for m in targets}
    box_of: dict[int, Scope] = {}
    for t in vertices:
        box = next((s for s in _SCOPES_OF_NODE.get(id(t), ()) if s[0] in target_ids), None)
        if box is not None:
            box_of[id(t)] = box
    if not box_of and any(isinstance(t, Node) for t in vertices):
        raise GraphError(
            "collapse_modules: no op of this graph was recorded inside a module; run the forward inside "
            "`with tinyzoo.study.record_modules(model):` so ops can be grouped by module"
        )
    params_of = {id(m): {id(p) for p in m.parameters()} for m in targets}
    users: dict[int, set[Scope | None]] = {}
    for t in vertices:
        for inp in _inputs(t):
            users.setdefault(id(inp), set()).add(box_of.get(id(t)))
    hidden = set()
    for t in vertices:
        used_by = users.get(id(t))
        if not isinstance(t, Node) and used_by and None not in used_by:
            constant = t.size == 1 and not t.requires_grad
            if constant or all(id(t) in params_of[module_id] for module_id, _, _ in used_by):
                hidden.add(id(t))
    return box_of, hidden


def _box_labels(boxes: list[Scope], targets: list[Module]) -> dict[Scope, str]:
    """ "name: Type" per box, numbered "#k" when one module was called several times."""
    types = {id(m): type(m).__name__ for m in targets}
    calls: dict[int, int] = {}
    for module_id, _, _ in boxes:
        calls[module_id] = calls.get(module_id, 0) + 1
    labels = {}
    for module_id, index, name in boxes:
        number = f" #{index}" if calls[module_id] > 1 else ""
        labels[(module_id, index, name)] = f"{name or types[module_id]}{number}: {types[module_id]}"
    return labels


def _first_output(group: list[Node | Tensor], vertices: list[Node | Tensor], key_of: dict[int, Any],
                  root: Tensor) -> Node | Tensor:  # fmt: skip
    """The first vertex of a box that is used outside it (or the graph's root when it is inside)."""
    box = key_of[id(group[0])]
    for t in vertices:
        if isinstance(t, Node) and key_of[id(t)] != box:
            for inp in t.inputs:
                if key_of.get(id(inp)) == box:
                    return inp
    return root


# =================================================================================================
# Layout: layers, dummy nodes, barycentre ordering
# =================================================================================================
def _layout(nodes: list[GraphNode], edges: list[Edge]) -> tuple[dict[Any, tuple[float, int]], list[list[Any]]]:
    """Positions (x, layer) for every node and dummy, and each edge's path as a list of node/dummy keys."""
    preds: dict[int, list[int]] = {n.id: [] for n in nodes}
    succs: dict[int, list[int]] = {n.id: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    layer: dict[Any, int] = {}
    for n in nodes:  # nodes come inputs first, so every predecessor already has its layer
        layer[n.id] = 1 + max((layer[p] for p in preds[n.id]), default=-1)
    for n in reversed(nodes):  # sources sit just above their first consumer
        if not preds[n.id] and succs[n.id]:
            layer[n.id] = min(layer[s] for s in succs[n.id]) - 1

    paths: list[list[Any]] = []
    for a, b in edges:
        path: list[Any] = [a]
        for level in range(layer[a] + 1, layer[b]):
            dummy = ("dummy", a, b, level)
            layer[dummy] = level
            path.append(dummy)
        paths.append(path + [b])

    rows: list[list[Any]] = [[] for _ in range(max(layer.values()) + 1)]
    for key, level in layer.items():
        rows[level].append(key)
    up: dict[Any, list[Any]] = {k: [] for k in layer}
    down: dict[Any, list[Any]] = {k: [] for k in layer}
    for path in paths:
        for a, b in itertools.pairwise(path):
            down[a].append(b)
            up[b].append(a)
    for _ in range(4):  # sweep down ordering each row by its predecessors, then up by its successors
        for sweep, neighbours in ((range(1, len(rows)), up), (range(len(rows) - 2, -1, -1), down)):
            for level in sweep:
                _order_by_barycentre(rows, level, neighbours)
    position = {key: (i - (len(row) - 1) / 2, level) for level, row in enumerate(rows) for i, key in enumerate(row)}
    return position, paths


def _order_by_barycentre(rows: list[list[Any]], level: int, neighbours: dict[Any, list[Any]]) -> None:
    """Sort one row by the mean index of each key's neighbours in the adjacent row (keys without any stay)."""
    nearby = rows[max(level - 1, 0) : level + 2]  # this row and the rows above and below
    index = {key: i for row in nearby for i, key in enumerate(row)}

    def barycentre(key: Any) -> float:
        near = neighbours[key]
        return sum(index[n] for n in near) / len(near) if near else index[key]

    rows[level].sort(key=barycentre)


# =================================================================================================
# Drawing
# =================================================================================================
_COLOURS = {"op": "#cfe2f3", "leaf": "#d9ead3", "input": "#eeeeee", "module": "#fce5cd"}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _node_text(node: GraphNode) -> str:
    return f"{node.label}\n{_shape_text(node.shape)} {node.dtype}"


def to_dot(nodes: list[GraphNode], edges: list[Edge]) -> str:
    """The graph in Graphviz's DOT language (top to bottom, boxes coloured by kind)."""
    lines = ["digraph tinyzoo {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for n in nodes:
        text = _node_text(n).replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'  n{n.id} [label="{text}", fillcolor="{_COLOURS[n.kind]}"];')
    lines += [f"  n{a} -> n{b};" for a, b in edges]
    return "\n".join(lines + ["}"]) + "\n"


def draw_graph(
    tensor: Tensor,
    path: str | Path,
    params: dict[str, Tensor] | None = None,
    model: Module | None = None,
    collapse_modules: Module | Iterable[Module] | None = None,
    use_dot: bool | None = None,
) -> Path:
    """Draw the graph behind `tensor` to `path` (.svg, .png, .pdf by suffix); returns the path.

    `use_dot=None` uses Graphviz when `dot` is on PATH, else matplotlib; True or False forces one.
    """
    path = Path(path)
    nodes, edges = graph_summary(tensor, params=params, model=model, collapse_modules=collapse_modules)
    if use_dot or (use_dot is None and shutil.which("dot")):
        fmt = path.suffix.lstrip(".").lower()
        subprocess.run(["dot", f"-T{fmt}", "-o", str(path)], input=to_dot(nodes, edges), text=True, check=True)
        return path
    _draw_matplotlib(nodes, edges, path)
    return path


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib Figure made without pyplot (no global state), or a clear error without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("drawing needs matplotlib: pip install 'tinyzoo[plot]'") from exc
    return Figure(**kwargs)


def _draw_matplotlib(nodes: list[GraphNode], edges: list[Edge], path: Path) -> None:
    """Render the layered layout with matplotlib."""
    position, paths = _layout(nodes, edges)
    texts = {n.id: _node_text(n) for n in nodes}
    widest = max(len(line) for text in texts.values() for line in text.split("\n"))
    column = 0.085 * widest + 0.5  # inches per slot in a row, from the longest text line
    row = 0.85  # inches per layer
    columns = max(Counter(level for _, level in position.values()).values())
    layers = 1 + max(level for _, level in position.values())
    fig = new_figure(figsize=(max(3.0, column * columns), max(2.0, row * layers)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(-columns / 2, columns / 2)
    ax.set_ylim(-layers + 0.5, 0.5)

    def xy(key: Any) -> tuple[float, float]:
        x, level = position[key]
        return x, -level

    boxes = {}
    for n in nodes:
        boxes[n.id] = ax.text(
            *xy(n.id), texts[n.id], ha="center", va="center", fontsize=9, zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": _COLOURS[n.kind], "edgecolor": "#555555"},
        )  # fmt: skip
    fig.draw_without_rendering()  # sizes the boxes, so edges can start and end on their borders
    to_data = ax.transData.inverted()
    half_height = {}
    for key, text in boxes.items():
        (_, bottom), (_, top) = to_data.transform(text.get_bbox_patch().get_window_extent().get_points())
        half_height[key] = (top - bottom) / 2
    for edge_path in paths:
        (xa, ya), (xb, yb) = xy(edge_path[0]), xy(edge_path[-1])
        start, end = (xa, ya - half_height[edge_path[0]]), (xb, yb + half_height[edge_path[-1]])
        points = [start, *map(xy, edge_path[1:-1]), end]  # bottom of the source, the dummies, top of the target
        ax.plot(*zip(*points[:-1]), color="#444444", lw=1.0, zorder=2)
        arrow = {"arrowstyle": "-|>", "color": "#444444", "lw": 1.0, "shrinkA": 0, "shrinkB": 0}
        ax.annotate("", xy=points[-1], xytext=points[-2], zorder=2, arrowprops=arrow)
    fig.savefig(path, dpi=150)

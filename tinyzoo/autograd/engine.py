"""Reverse-mode differentiation: walk the tape from the outputs back to the leaves.

The tape is a graph of Nodes: a node's `inputs` are the nodes of the ops that made its inputs, or the
tensors themselves for leaves and constants. Every Node carries a sequence number, given when its op
ran. An op's inputs always exist before the op runs, so visiting nodes in *decreasing* sequence number
visits every consumer of a tensor before the tensor itself: by the time a node's backward runs, all of
its output's gradient has arrived. A heap of the nodes reached so far gives that order directly, without
a separate topological sort (PyTorch's engine does the same with its `sequence_nr`). The walk is a loop
over the heap, never Python recursion, so a 20,000-op chain or a 1,000-step unrolled RNN backpropagates
without touching the recursion limit. Leaves are collected on the way and receive their gradients last.

As in PyTorch, a rule may return the gradient of a broadcast input at the broadcast shape, or in the
op's dtype: the engine sums it back to the input's shape and casts it to the input's dtype.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any

from tinyzoo.autograd.ops import astype, sum_to_shape
from tinyzoo.autograd.tensor import (
    MODE,
    IndexedGrad,
    Node,
    Tensor,
    as_array,
    check_finite,
    enable_grad,
    is_array,
    no_grad,
    wrap,
)
from tinyzoo.backend import xp_of
from tinyzoo.errors import GraphError, ShapeError


def topological_order(roots: Sequence[Tensor]) -> list[Node | Tensor]:
    """Every node and leaf (constants included) that leads to `roots`, inputs before the ops that use them.

    A root made by an op stands for its Node. Iterative depth-first search, for drawing graphs
    (backward itself needs no sort). A node freed by an earlier backward() raises GraphError.
    """
    order: list[Node | Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Node | Tensor, bool]] = [(_edge(root), False) for root in roots]
    while stack:
        vertex, inputs_done = stack.pop()
        if inputs_done:
            order.append(vertex)
            continue
        if id(vertex) in seen:
            continue
        seen.add(id(vertex))
        stack.append((vertex, True))
        if type(vertex) is Node:
            if vertex.freed:
                raise _freed_error(vertex.name)
            stack.extend((inp, False) for inp in reversed(vertex.inputs) if id(inp) not in seen)
    return order


def _edge(tensor: Tensor) -> Node | Tensor:
    """What the tape knows a tensor by: the Node of the op that made it, or the leaf tensor itself."""
    return tensor if tensor._node is None else tensor._node


def _initial_grad(output: Tensor, grad: Any) -> Tensor:
    """The seed gradient for one output: 1 for a scalar, else the user's `grad` (checked)."""
    if grad is None:
        if output.size != 1:
            raise GraphError(
                f"backward() on a tensor of shape {output.shape} needs `grad` of the same shape "
                "(or reduce the output to a scalar first, e.g. loss.sum())"
            )
        return Tensor(xp_of(output._data).ones_like(output._data))
    grad = grad if isinstance(grad, Tensor) else Tensor(as_array(grad, dtype=output.dtype))
    if grad.shape != output.shape:
        raise ShapeError(f"backward(): grad has shape {grad.shape} but the output has shape {output.shape}")
    return grad


def run_backward(
    outputs: Sequence[Tensor],
    grads: Sequence[Any],
    retain_graph: bool,
    create_graph: bool,
    inputs: Sequence[Tensor] | None = None,
) -> dict[int, Tensor]:
    """Propagate `grads` from `outputs` through the tape.

    With `inputs=None` gradients are accumulated into the `.grad` of every leaf reached; otherwise
    nothing is written and the gradients of `inputs` are returned, keyed by `id`.
    """
    for out in outputs:
        if not out.requires_grad:
            raise GraphError(
                f"backward(): the tensor of shape {out.shape} does not require grad — no input of the "
                "ops that made it has requires_grad=True (or it was computed under no_grad())"
            )
        if out._node is not None and out._node.freed:
            raise _freed_error(out._node.name)
    walk = _BackwardWalk(create_graph, None if inputs is None else {id(_edge(t)) for t in inputs})
    for out, grad in zip(outputs, grads):
        walk.send(_edge(out), _initial_grad(out, grad))
    anomaly, MODE.anomaly = MODE.anomaly, False  # the ops inside a backward rule are checked as one, by the walk
    try:
        with enable_grad() if create_graph else no_grad():
            walk.run(retain_graph, anomaly)
    finally:
        MODE.anomaly = anomaly
    return walk.found


class _BackwardWalk:
    """The state of one backward pass: gradients that have arrived, and the nodes still to visit."""

    def __init__(self, create_graph: bool, wanted: set[int] | None) -> None:
        self.create_graph = create_graph
        self.wanted = wanted  # ids of the nodes or leaves grad() asked for; None: accumulate into the leaves' .grad
        self.found: dict[int, Tensor] = {}
        self.pending: dict[int, Tensor] = {}  # gradient received so far, by id of its node or leaf
        self.owned: set[int] = set()  # pending buffers the walk allocated itself: safe to add into in place
        self.handed_out: set[int] = set()  # arrays given to a leaf as .grad: never share one between leaves
        self.heap: list[tuple[int, Node]] = []  # (-sequence number, node): the latest op comes out first
        self.leaves: list[Tensor] = []

    def send(self, edge: Node | Tensor, grad: Any) -> None:
        """Add `grad` to the gradient of `edge` (a node's output or a leaf), scheduling it the first time."""
        key = id(edge)
        if key not in self.pending:
            if type(edge) is Node:
                heapq.heappush(self.heap, (-edge.sequence, edge))
            else:
                self.leaves.append(edge)
            if not isinstance(grad, IndexedGrad):  # the first gradient to arrive is kept as it is
                self.pending[key] = grad
                return
        self._add_pending(key, grad)

    def run(self, retain_graph: bool, anomaly: bool) -> None:
        """Visit the nodes from the latest op back, then hand every leaf its gradient."""
        heap, pending, plain = self.heap, self.pending, self.wanted is None
        while heap:
            node = heapq.heappop(heap)[1]
            if node.inputs is None:  # node.freed, without a property call per node
                raise _freed_error(node.name)
            if MODE.last_inplace > node.sequence:  # something changed in place since this op ran
                _check_unchanged(node)
            # (the common case inline: no hooks, nothing asked for by grad())
            grad = pending.pop(id(node)) if plain and not node._hooks else self._take_gradient(node)
            self._send_back(node, grad, anomaly)
            if not retain_graph:
                node.inputs = node.backward = node.saved_output = None  # free the graph's memory as we go
        for leaf in self.leaves:
            grad = self._take_gradient(leaf)
            if self.wanted is None:
                self._accumulate(leaf, grad)

    def _take_gradient(self, edge: Node | Tensor) -> Tensor:
        """The complete gradient of a node's output or a leaf (every consumer has sent its share), hooks
        applied; kept if wanted."""
        grad = self.pending.pop(id(edge))
        if edge._hooks:
            for hook in edge._hooks:
                replaced = hook(grad)
                grad = grad if replaced is None else replaced
        if self.wanted is not None and id(edge) in self.wanted:
            self.found[id(edge)] = grad
        return grad

    def _send_back(self, node: Node, grad: Tensor, anomaly: bool) -> None:
        """Run one node's backward rule and send each input its gradient."""
        if self.create_graph and node.once_differentiable:
            raise GraphError(f"'{node.name}' is once-differentiable: its backward cannot be differentiated again")
        # (a rule that does not read its output gets None: the node saved nothing for it)
        input_grads = node.backward(grad, None if node.saved_output is None else node.output_for_backward())
        for observer in MODE.observers:
            observer.on_backward(node.name, grad, input_grads)
        for edge, input_grad in zip(node.inputs, input_grads):
            if input_grad is None or not edge.requires_grad:
                continue
            # (plain attributes, no Tensor properties: this runs for every input of every node)
            expected = edge if type(edge) is Node else edge._data
            got = input_grad._data if type(input_grad) is Tensor else input_grad  # (an IndexedGrad has both)
            if got.shape != expected.shape or (got.dtype is not expected.dtype and got.dtype != expected.dtype):
                input_grad = _fit(input_grad, edge, node.name)
            if anomaly:
                check_finite(node.name, input_grad._data, "backward", node)
            self.send(edge, input_grad)

    def _add_pending(self, key: int, grad: Any) -> None:
        """pending[key] += grad, in place when the walk owns the buffer (it allocated it; no one else sees it).

        Called for every gradient after a tensor's first, and for a first IndexedGrad (which needs a
        buffer to land in). A tensor used by many ops (x[t] for every t, a weight shared across steps)
        collects its gradient in one buffer instead of allocating a new sum per use.
        """
        pending, owned = self.pending, self.owned
        previous = pending.get(key)
        if isinstance(grad, IndexedGrad):  # (only made when the backward pass is not recorded)
            if key not in owned:
                xp = xp_of(grad._data)
                buffer = xp.zeros(grad.shape, dtype=grad.dtype) if previous is None else previous._data.copy()
                previous = pending[key] = Tensor(buffer)
                owned.add(key)
            grad.add_into(previous._data)
        elif self.create_graph:  # every sum must stay on the tape
            pending[key] = previous + grad
        elif key in owned:
            previous._data += grad._data
        else:
            pending[key] = previous + grad
            owned.add(key)

    def _accumulate(self, leaf: Tensor, grad: Tensor) -> None:
        """leaf.grad += grad (kept on the tape only with create_graph).

        A leaf's .grad is always its own writable array: one gradient array can reach several leaves
        (x + y sends the same grad to both), and a sum's gradient is a read-only broadcast view, so those
        are copied; in-place edits of one `.grad` (clipping, scaling) then never touch another's.
        """
        if not self.create_graph:
            array = grad._data
            writable = getattr(array.flags, "writeable", True)
            grad = Tensor(array.copy() if id(array) in self.handed_out or not writable else array)
        if leaf.grad is None:
            self.handed_out.add(id(grad._data))
            leaf.grad = grad
        else:
            leaf.grad = leaf.grad + grad


def _fit(grad: Tensor, edge: Node | Tensor, op: str) -> Tensor:
    """A rule's gradient for an input, summed back over broadcast axes to the input's shape and cast to its
    dtype (an IndexedGrad always has its input's shape)."""
    if grad.shape != edge.shape:
        lead = len(grad.shape) - len(edge.shape)
        if lead < 0 or any(n != 1 and n != m for n, m in zip(edge.shape, grad.shape[lead:])):
            raise ShapeError(
                f"backward of '{op}' returned a gradient of shape {grad.shape} "
                f"for an input of shape {edge.shape} (a bug in that op's backward)"
            )
        grad = sum_to_shape(grad, edge.shape)
    return astype(grad, edge.dtype)


def _check_unchanged(node: Node) -> None:
    """Raise when a tensor the backward rule of `node` reads was changed in place after the op ran.

    As in PyTorch, only what the rule reads counts (its saved tensors): the tensors its closure captured,
    and the output array the node saved (views may share it). An input the rule does not read may change.
    """
    for role, tensor in _read_by(node):
        if tensor.changed_since(node.sequence):
            raise GraphError(
                f"backward of '{node.name}': {role} (shape {tensor.shape}, dtype {tensor.dtype}) was modified "
                "by an in-place operation after the op ran, so the gradient would be wrong; change a copy "
                "(x.clone()) instead, or make the change before the op"
            )


def _read_by(node: Node) -> Iterator[tuple[str, Tensor]]:
    """(role, tensor) for every tensor the backward rule of `node` reads: the tensors its closure captured, and
    the raw arrays it captured (a kernel's rule keeps its inputs' arrays), seen through their memory's stamp."""
    rule = node.backward
    while hasattr(rule, "__wrapped__"):  # a rule wrapped by a tool (tinyzoo.study.trace times them)
        rule = rule.__wrapped__
    for cell in getattr(rule, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, Tensor):
                edge = _edge(item)
                position = next((i for i, inp in enumerate(node.inputs) if inp is edge), None)
                yield ("a tensor it reads" if position is None else f"its input {position}"), item
            elif is_array(item):
                yield "an array it reads", wrap(item)
    if node.saved_output is not None:
        yield "its output", wrap(node.saved_output)


def _freed_error(op: str) -> GraphError:
    return GraphError(
        f"trying to backward through the graph a second time: the tape behind '{op}' was freed by an earlier "
        "backward(); pass retain_graph=True to that first backward() if you need to go through it again"
    )


def backward(output: Tensor, grad: Any = None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate d(output)/d(leaf) into the `.grad` of every leaf that requires grad."""
    run_backward([output], [grad], retain_graph=retain_graph or create_graph, create_graph=create_graph)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of `outputs` with respect to `inputs`, returned (not accumulated into `.grad`).

    With `create_graph=True` the backward pass is itself recorded, so the result can be
    differentiated again (Hessian-vector products, gradient penalties).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs)
    keep = create_graph if retain_graph is None else retain_graph
    found = run_backward(outputs, grad_outputs, retain_graph=keep, create_graph=create_graph, inputs=inputs)
    result = tuple(found.get(id(_edge(t))) for t in inputs)
    if not allow_unused:
        for position, (tensor, value) in enumerate(zip(inputs, result)):
            if value is None:
                raise GraphError(
                    f"grad(): input {position} (shape {tensor.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
    return result

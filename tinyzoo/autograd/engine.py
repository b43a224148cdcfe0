"""Reverse-mode differentiation: walk the tape from the outputs back to the leaves.

Every Node carries a sequence number, given when its op ran. An op's inputs always exist before the
op runs, so visiting nodes in *decreasing* sequence number visits every consumer of a tensor before
the tensor itself: by the time a node's backward runs, all of its output's gradient has arrived. A
heap of the nodes reached so far gives that order directly, without a separate topological sort
(PyTorch's engine does the same with its `sequence_nr`). The walk is a loop over the heap, never
Python recursion, so a 20,000-op chain or a 1,000-step unrolled RNN backpropagates without touching
the recursion limit. Leaves are collected on the way and receive their gradients last.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from tinyzoo.autograd.tensor import MODE, IndexedGrad, Tensor, as_array, check_finite, enable_grad, no_grad
from tinyzoo.backend import xp_of
from tinyzoo.errors import GraphError, ShapeError


def topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Every tensor that leads to `roots`, constants included, inputs before the ops that use them.

    Iterative depth-first search, for drawing graphs (backward itself needs no sort). A node freed by
    an earlier backward() raises GraphError.
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False) for root in roots]
    while stack:
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        node = tensor._node
        if node is not None:
            if node.freed:
                raise _freed_error(node.name)
            stack.extend((inp, False) for inp in reversed(node.inputs) if id(inp) not in seen)
    return order


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
    walk = _BackwardWalk(create_graph, None if inputs is None else {id(t) for t in inputs})
    for out, grad in zip(outputs, grads):
        walk.send(out, _initial_grad(out, grad))
    anomaly, MODE.anomaly = MODE.anomaly, False  # the ops inside a backward rule are checked as one, by the walk
    try:
        with enable_grad() if create_graph else no_grad():
            walk.run(retain_graph, anomaly)
    finally:
        MODE.anomaly = anomaly
    return walk.found


class _BackwardWalk:
    """The state of one backward pass: gradients that have arrived, and the tensors still to visit."""

    def __init__(self, create_graph: bool, wanted: set[int] | None) -> None:
        self.create_graph = create_graph
        self.wanted = wanted  # ids of the tensors grad() asked for; None: accumulate into the leaves' .grad
        self.found: dict[int, Tensor] = {}
        self.pending: dict[int, Tensor] = {}  # gradient received so far, by id of the tensor it belongs to
        self.owned: set[int] = set()  # pending buffers the walk allocated itself: safe to add into in place
        self.handed_out: set[int] = set()  # arrays given to a leaf as .grad: never share one between leaves
        self.heap: list[tuple[int, Tensor]] = []  # (-sequence number, tensor): the latest op comes out first
        self.leaves: list[Tensor] = []

    def send(self, tensor: Tensor, grad: Any) -> None:
        """Add `grad` to the gradient of `tensor`, scheduling the tensor the first time one arrives."""
        key = id(tensor)
        if key not in self.pending:
            if tensor._node is None:
                self.leaves.append(tensor)
            else:
                heapq.heappush(self.heap, (-tensor._node.sequence, tensor))
            if not isinstance(grad, IndexedGrad):  # the first gradient to arrive is kept as it is
                self.pending[key] = grad
                return
        self._add_pending(key, grad)

    def run(self, retain_graph: bool, anomaly: bool) -> None:
        """Visit the nodes from the latest op back, then hand every leaf its gradient."""
        while self.heap:
            tensor = heapq.heappop(self.heap)[1]
            node = tensor._node
            if node.inputs is None:  # node.freed, without a property call per node
                raise _freed_error(node.name)
            if MODE.last_inplace > node.sequence:  # something changed in place since this op ran
                _check_unchanged(node, tensor)
            self._send_back(node, self._take_gradient(tensor), tensor, anomaly)
            if not retain_graph:
                node.free()
        for leaf in self.leaves:
            grad = self._take_gradient(leaf)
            if self.wanted is None:
                self._accumulate(leaf, grad)

    def _take_gradient(self, tensor: Tensor) -> Tensor:
        """A tensor's complete gradient (every consumer has sent its share), hooks applied; kept if wanted."""
        grad = self.pending.pop(id(tensor))
        if tensor._hooks:
            for hook in tensor._hooks:
                replaced = hook(grad)
                grad = grad if replaced is None else replaced
        if self.wanted is not None and id(tensor) in self.wanted:
            self.found[id(tensor)] = grad
        return grad

    def _send_back(self, node: Any, grad: Tensor, out: Tensor, anomaly: bool) -> None:
        """Run one node's backward rule and send each input its gradient."""
        if self.create_graph and node.once_differentiable:
            raise GraphError(f"'{node.name}' is once-differentiable: its backward cannot be differentiated again")
        input_grads = node.backward(grad, out)
        for observer in MODE.observers:
            observer.on_backward(node.name, grad, input_grads)
        for inp, input_grad in zip(node.inputs, input_grads):
            if input_grad is None or not inp.requires_grad:
                continue
            if input_grad.shape != inp._data.shape:  # (an IndexedGrad has the full shape, not its data's)
                raise ShapeError(
                    f"backward of '{node.name}' returned a gradient of shape {input_grad.shape} "
                    f"for an input of shape {inp.shape} (a bug in that op's backward)"
                )
            if anomaly:
                check_finite(node.name, input_grad._data, "backward", node)
            self.send(inp, input_grad)

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


def _check_unchanged(node: Any, out: Tensor) -> None:
    """Raise when an input or the output of `node` was changed in place after its op ran (as PyTorch does)."""
    for role, tensor in [*((f"input {i}", t) for i, t in enumerate(node.inputs)), ("output", out)]:
        if tensor.changed_since(node.sequence):
            raise GraphError(
                f"backward of '{node.name}': its {role} (shape {tensor.shape}, dtype {tensor.dtype}) was modified "
                "by an in-place operation after the op ran, so the gradient would be wrong; change a copy "
                "(x.clone()) instead, or make the change before the op"
            )


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
    result = tuple(found.get(id(t)) for t in inputs)
    if not allow_unused:
        for position, (tensor, value) in enumerate(zip(inputs, result)):
            if value is None:
                raise GraphError(
                    f"grad(): input {position} (shape {tensor.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
    return result

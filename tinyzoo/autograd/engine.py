"""Reverse-mode differentiation: walk the tape from the outputs back to the leaves.

The walk is iterative (an explicit stack, never Python recursion), so a 20,000-op chain or a
1,000-step unrolled RNN backpropagates without touching the recursion limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinyzoo.autograd.tensor import MODE, IndexedGrad, Tensor, as_array, check_finite, enable_grad, no_grad
from tinyzoo.backend import xp_of
from tinyzoo.errors import GraphError, ShapeError


def topological_order(roots: Sequence[Tensor], include_constants: bool = False) -> list[Tensor]:
    """Every tensor that leads to `roots`, inputs before the ops that use them (iterative depth-first).

    By default only tensors that need a gradient are visited; `include_constants=True` visits every
    input (for drawing the whole graph). A node freed by an earlier backward() raises GraphError.
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
            stack.extend(
                (inp, False)
                for inp in reversed(node.inputs)
                if (include_constants or inp.requires_grad) and id(inp) not in seen
            )
    return order


def _initial_grad(output: Tensor, grad: Any) -> Tensor:
    """The seed gradient for one output: 1 for a scalar, else the user's `grad` (checked)."""
    if grad is None:
        if output.size != 1:
            raise GraphError(
                f"backward() on a tensor of shape {output.shape} needs `grad` of the same shape "
                "(or reduce the output to a scalar first, e.g. loss.sum())"
            )
        return Tensor(xp_of(output.data).ones_like(output.data))
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
    wanted = None if inputs is None else {id(t) for t in inputs}
    found: dict[int, Tensor] = {}
    pending: dict[int, Tensor] = {}
    owned: set[int] = set()  # keys of pending buffers the engine allocated itself: safe to add into in place
    handed_out: set[int] = set()  # arrays already given to a leaf as .grad: never share one between leaves
    for out, grad in zip(outputs, grads):
        seed = _initial_grad(out, grad)
        pending[id(out)] = pending[id(out)] + seed if id(out) in pending else seed
    mode = enable_grad() if create_graph else no_grad()
    with mode:
        for tensor in reversed(topological_order(outputs)):
            grad = pending.pop(id(tensor), None)
            if grad is None:
                continue
            if tensor._hooks:
                for hook in tensor._hooks:
                    replaced = hook(grad)
                    grad = grad if replaced is None else replaced
            if wanted is not None and id(tensor) in wanted:
                found[id(tensor)] = grad
            node = tensor._node
            if node is None:
                if wanted is None:
                    _accumulate(tensor, grad, create_graph, handed_out)
                continue
            _send_back(tensor, node, grad, pending, owned, create_graph)
            if not retain_graph:
                node.free()
    return found


def _send_back(
    tensor: Tensor, node: Any, grad: Tensor, pending: dict[int, Tensor], owned: set[int], create_graph: bool
) -> None:
    """Run one node's backward and add the input gradients to `pending`."""
    if node.freed:
        raise _freed_error(node.name)
    if create_graph and node.once_differentiable:
        raise GraphError(f"'{node.name}' is once-differentiable: its backward cannot be differentiated again")
    anomaly, MODE.anomaly = MODE.anomaly, False  # the ops inside a backward rule are checked as one, below
    try:
        input_grads = node.backward(grad, tensor)
    finally:
        MODE.anomaly = anomaly
    for observer in MODE.observers:
        observer.on_backward(node.name, grad, input_grads)
    for inp, input_grad in zip(node.inputs, input_grads):
        if input_grad is None or not inp.requires_grad:
            continue
        if input_grad.shape != inp.shape:
            raise ShapeError(
                f"backward of '{node.name}' returned a gradient of shape {input_grad.shape} "
                f"for an input of shape {inp.shape} (a bug in that op's backward)"
            )
        if anomaly:
            check_finite(node.name, input_grad.data, "backward", node)
        _add_pending(pending, owned, id(inp), input_grad, create_graph)


def _add_pending(pending: dict[int, Tensor], owned: set[int], key: int, grad: Any, create_graph: bool) -> None:
    """pending[key] += grad, in place when the engine owns the buffer (it allocated it and no one else sees it).

    A tensor used by many ops (x[t] for every t, a weight shared across steps) collects its gradient in
    one buffer instead of allocating a new sum per use.
    """
    previous = pending.get(key)
    if create_graph:  # every sum must stay on the tape
        pending[key] = grad if previous is None else previous + grad
    elif isinstance(grad, IndexedGrad):
        if key not in owned:
            xp = xp_of(grad.data)
            buffer = xp.zeros(grad.shape, dtype=grad.dtype) if previous is None else previous.data.copy()
            previous = pending[key] = Tensor(buffer)
            owned.add(key)
        grad.add_into(previous.data)
    elif previous is None:
        pending[key] = grad
    elif key in owned:
        previous.data += grad.data
    else:
        pending[key] = previous + grad
        owned.add(key)


def _accumulate(leaf: Tensor, grad: Tensor, create_graph: bool, handed_out: set[int]) -> None:
    """leaf.grad += grad (kept on the tape only with create_graph).

    A leaf's .grad is always its own writable array: one gradient array can reach several leaves
    (x + y sends the same grad to both), and a sum's gradient is a read-only broadcast view, so those
    are copied; in-place edits of one `.grad` (clipping, scaling) then never touch another's.
    """
    if not create_graph:
        array = grad.data
        writable = getattr(array.flags, "writeable", True)
        grad = Tensor(array.copy() if id(array) in handed_out or not writable else array)
    if leaf.grad is None:
        handed_out.add(id(grad.data))
        leaf.grad = grad
    else:
        leaf.grad = leaf.grad + grad


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

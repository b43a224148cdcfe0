"""`explain(model, x)`: the module tree with parameters, output shapes, parameter memory and FLOPs.

One forward pass on the sample input (under `no_grad`) fills the table:

- output shape: a forward hook on every module notes what it returned (the last call, "×n" when a
  module ran several times, "-" when it did not run);
- FLOPs: an op observer counts 2 per multiply-add of every `linear` and `matmul` op (convolutions are
  matmuls here, so they are counted too) and of the fused recurrences of `nn.RNN/GRU/LSTM` (their
  h W_hhᵀ products), and adds it to every module whose forward was running — a module's FLOPs include
  its children's. The core elementwise, reduction and shape ops are not counted. Any other op (an
  `einsum`, whose subscripts the observer cannot see, or a custom kernel) is listed in the footer as
  not counted, so a total that misses real work says so;
- parameters and their memory: a module's own and its children's, each shared parameter once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tinyzoo.autograd import ops
from tinyzoo.autograd.tensor import MODE, Tensor, no_grad
from tinyzoo.nn.module import Module
from tinyzoo.study.graph import module_scopes
from tinyzoo.study.trace import _human_bytes

__all__ = ["explain", "op_flops"]


_NOT_COUNTED = (set(ops.__all__) | {"index_put"}) - {"einsum"}  # core elementwise, reduction and shape ops


def op_flops(name: str, inputs: tuple[Tensor, ...], out: Tensor) -> int | None:
    """2 × the multiply-adds of a linear, matmul or fused recurrent op; None for ops without a rule."""
    if name == "linear":  # inputs (x, weight [out, in], bias?)
        return 2 * out.size * inputs[1].shape[1]
    if name == "matmul":  # [..., n, k] @ [..., k, m]
        return 2 * out.size * inputs[0].shape[-1]
    if name in ("rnn_layer", "gru_layer", "lstm_layer"):  # (xproj [T, B, G·H], w_hh [G·H, H], ...): T steps of h W_hhᵀ
        return 2 * inputs[0].size * inputs[1].shape[1]
    return None


class _FlopCounter:
    """Op observer adding each op's FLOPs to every module call on the stack."""

    def __init__(self, stack: list[tuple[str, Module, int]]) -> None:
        self.stack = stack
        self.flops: dict[int, int] = {}
        self.not_counted: Counter[str] = Counter()  # ops that may do real work but have no FLOP rule

    def on_forward(self, name: str, inputs: tuple, out: Tensor) -> None:
        flops = op_flops(name, inputs, out)
        if flops is None:
            if name not in _NOT_COUNTED:
                self.not_counted[name] += 1
            return
        for module_id in {id(module) for _, module, _ in self.stack}:
            self.flops[module_id] = self.flops.get(module_id, 0) + flops

    def on_backward(self, name: str, grad: Tensor, input_grads: tuple) -> None:
        pass


def _shapes(value: Any) -> str:
    """[2, 3] for a tensor, ([2, 3], [2, 3]) for a tuple of them, "?" for anything else."""
    if isinstance(value, Tensor):
        return "[" + ", ".join(map(str, value.shape)) + "]"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shapes(v) for v in value) + ")"
    return "?" if value is not None else "None"


def _human_count(n: float) -> str:
    """1234567 -> '1.23 M'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def explain(model: Module, sample_input: Any) -> str:
    """The model's tree with parameter counts and memory, output shapes and FLOPs for `sample_input`.

    A tuple `sample_input` is passed as several positional arguments.
    """
    args = sample_input if isinstance(sample_input, tuple) else (sample_input,)
    outputs: dict[int, Any] = {}
    calls: dict[int, int] = {}

    def note_output(module: Module, inputs: tuple, output: Any) -> None:
        outputs[id(module)] = output
        calls[id(module)] = calls.get(id(module), 0) + 1

    named = list(model.named_modules())
    removers = [module.register_forward_hook(note_output) for _, module in named]
    try:
        with module_scopes(model) as stack, no_grad():
            counter = _FlopCounter(stack)
            MODE.observers.append(counter)
            try:
                result = model(*args)
            finally:
                MODE.observers.remove(counter)
    finally:
        for remove in removers:
            remove()

    rows = [("module", "output", "params", "memory", "FLOPs")]
    for name, module in named:
        depth = name.count(".") + 1 if name else 0
        title = f"{'  ' * depth}{name.rpartition('.')[2] or type(module).__name__}"
        if name:
            title += f" ({type(module).__name__})"
        params = list(module.parameters())
        shown = _shapes(outputs[id(module)]) if id(module) in outputs else "-"
        if calls.get(id(module), 0) > 1:
            shown += f" ×{calls[id(module)]}"
        rows.append((
            title,
            shown,
            f"{sum(p.size for p in params):,}",
            _human_bytes(sum(p.data.nbytes for p in params)),
            _human_count(counter.flops.get(id(module), 0)),
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    total = counter.flops.get(id(model), 0)
    lines.append("")
    lines.append(
        f"input {_shapes(args if len(args) > 1 else args[0])} -> output {_shapes(result)}; "
        f"{model.num_parameters():,} parameters ({_human_bytes(sum(p.data.nbytes for p in model.parameters()))}); "
        f"{_human_count(total)} FLOPs per forward"
    )
    lines.append("FLOPs: 2 per multiply-add of linear, matmul (so convolutions) and fused recurrent ops")
    if counter.not_counted:
        listed = ", ".join(f"{name} ×{n}" for name, n in sorted(counter.not_counted.items()))
        lines.append(f"not counted (no FLOP rule): {listed}")
    return "\n".join(lines)

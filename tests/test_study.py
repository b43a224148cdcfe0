"""tinyzoo.study: graph drawing, the op trace, gradient flow and explain()."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import study
from tinyzoo.autograd.tensor import MODE, record_op
from tinyzoo.nn import Module, Parameter


# ----- tiny models built from Parameters only ---------------------------------------------------
class Dense(Module):
    def __init__(self, n_in: int, n_out: int, seed: int = 0) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32))
        self.bias = Parameter(np.zeros(n_out, dtype=np.float32))

    def forward(self, x):
        return x @ self.weight + self.bias


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class MLP(Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = Dense(4, 16, seed=1)
        self.act = Tanh()
        self.fc2 = Dense(16, 3, seed=2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Unrolled(Module):
    """One Dense cell applied T times: h_t = tanh(x_t W + b + h_{t-1})."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = Dense(3, 3)

    def forward(self, xs):
        h = tz.zeros(xs.shape[1], 3)
        for t in range(xs.shape[0]):
            h = (self.cell(xs[t]) + h).tanh()
        return h


def mlp_loss(model: MLP, seed: int = 0) -> tz.Tensor:
    rng = np.random.default_rng(seed)
    x = tz.tensor(rng.standard_normal((8, 4)).astype(np.float32))
    y = tz.tensor(rng.standard_normal((8, 3)).astype(np.float32))
    return ((model(x) - y) ** 2).mean()


def assert_real_image(path) -> None:
    """A PNG of reasonable size whose pixels are not all one colour."""
    from matplotlib.image import imread

    assert path.stat().st_size > 5_000
    pixels = (imread(path)[..., :3] * 255).astype(np.int64)
    assert min(pixels.shape[:2]) > 100
    assert (pixels != pixels[0, 0]).any(axis=-1).mean() > 0.02  # more than a blank background
    assert len(np.unique(pixels @ [1 << 16, 1 << 8, 1])) > 20  # text, lines and fills in several colours


# ----- graph ------------------------------------------------------------------------------------
def test_graph_of_a_known_expression_has_exactly_the_expected_nodes_and_edges():
    x = tz.randn(8, 4)
    w = tz.randn(4, 3, requires_grad=True)
    b = tz.zeros(3, requires_grad=True)
    loss = ((x @ w) + b).tanh().sum()
    nodes, edges = study.graph_summary(loss, params={"w": w, "b": b})
    assert [(n.kind, n.label, n.shape) for n in nodes] == [
        ("input", "input", (8, 4)),
        ("leaf", "w", (4, 3)),
        ("op", "matmul", (8, 3)),
        ("leaf", "b", (3,)),
        ("op", "add", (8, 3)),
        ("op", "tanh", (8, 3)),
        ("op", "sum", ()),
    ]
    assert all(n.dtype == "float32" and n.id == i for i, n in enumerate(nodes))
    assert sorted(edges) == [(0, 2), (1, 2), (2, 4), (3, 4), (4, 5), (5, 6)]


def test_graph_names_a_models_parameters_and_shared_inputs_once():
    model = MLP()
    loss = mlp_loss(model)
    nodes, edges = study.graph_summary(loss, model=model)
    labels = [n.label for n in nodes]
    assert {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} <= set(labels)
    assert labels.count("matmul") == 2 and len(set(edges)) == len(edges)
    assert all(a < b for a, b in edges)  # inputs are listed before the ops that use them


def test_collapsed_graph_draws_one_box_per_module_call():
    model = MLP()
    with study.record_modules(model):
        loss = mlp_loss(model)
    nodes, edges = study.graph_summary(loss, model=model, collapse_modules=model)
    boxes = [n.label for n in nodes if n.kind == "module"]
    assert boxes == ["fc1: Dense (2 ops)", "act: Tanh (1 op)", "fc2: Dense (2 ops)"]
    assert not any(n.kind == "leaf" for n in nodes)  # the weights are drawn inside their boxes
    fc1, act, fc2 = (next(n.id for n in nodes if n.label == label) for label in boxes)
    assert (fc1, act) in edges and (act, fc2) in edges
    assert next(n.shape for n in nodes if n.id == fc1) == (8, 16)

    unrolled = Unrolled()
    with study.record_modules(unrolled):
        out = unrolled(tz.randn(4, 2, 3)).sum()
    nodes, _ = study.graph_summary(out, collapse_modules=[unrolled.cell])
    assert sorted(n.label for n in nodes if n.kind == "module") == [f"cell #{t}: Dense (2 ops)" for t in range(4)]
    assert not any(n.kind == "leaf" for n in nodes)  # the shared weights are not drawn four times


def test_graph_errors_say_what_to_do():
    model = MLP()
    loss = mlp_loss(model)
    with pytest.raises(tz.GraphError, match="record_modules"):
        study.graph_summary(loss, collapse_modules=model)
    loss.backward()
    with pytest.raises(tz.GraphError, match="before calling backward"):
        study.graph_summary(loss)


def test_module_scopes_nest_in_call_order_and_restore_forward():
    model = MLP()
    seen = []

    class Spy:
        def on_forward(self, name, inputs, out):
            seen.append((name, [n for n, _, _ in stack]))

        def on_backward(self, name, grad, input_grads):
            pass

    with study.module_scopes(model) as stack:
        MODE.observers.append(spy := Spy())
        try:
            model(tz.randn(2, 4))
        finally:
            MODE.observers.remove(spy)
    assert seen == [
        ("matmul", ["", "fc1"]), ("add", ["", "fc1"]), ("tanh", ["", "act"]),
        ("matmul", ["", "fc2"]), ("add", ["", "fc2"]),
    ]  # fmt: skip
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_draw_graph_writes_readable_png_and_svg(tmp_path):
    model = MLP()
    with study.record_modules(model):
        loss = mlp_loss(model)
    png = study.draw_graph(loss, tmp_path / "step.png", model=model, use_dot=False)
    assert_real_image(png)
    svg = study.draw_graph(loss, tmp_path / "boxes.svg", model=model, collapse_modules=model, use_dot=False)
    text = svg.read_text()
    assert text.startswith("<?xml") and "fc1: Dense" in text and "<path" in text
    dot = study.to_dot(*study.graph_summary(loss, model=model))
    assert dot.startswith("digraph") and 'label="fc1.weight\\n[4, 16] float32"' in dot and "n0 -> " in dot


# ----- trace ------------------------------------------------------------------------------------
def test_trace_names_every_op_of_a_model_step_and_totals_are_the_sum_of_rows(tmp_path):
    model = MLP()
    with study.trace() as tr:
        loss = mlp_loss(model)
        op_names = sorted(n.label for n in study.graph_summary(loss)[0] if n.kind == "op")
        loss.backward()
    forward = sorted(e.op for e in tr.events if e.phase == "forward")
    backward = sorted(e.op for e in tr.events if e.phase == "backward")
    assert forward == op_names == backward  # every taped op once forward, its rule once backward
    rows = tr.summary()
    totals = tr.totals
    assert totals["count"] == sum(r.count for r in rows) == len(tr.events)
    assert totals["ms"] == pytest.approx(sum(r.total_ms for r in rows))
    assert totals["bytes"] == sum(r.bytes for r in rows)
    assert 0 < totals["ms"] <= tr.wall_ms
    assert [r.total_ms for r in rows] == sorted((r.total_ms for r in rows), reverse=True)
    first = next(e for e in tr.events if e.op == "matmul")
    assert first.inputs == [(8, 4), (4, 16)] and first.outputs == [(8, 16)] and first.bytes == 8 * 16 * 4

    table = tr.table(top=3)
    assert "total ms" in table and "more rows" in table and "wall time" in table
    tr.to_json(tmp_path / "trace.json")
    document = json.loads((tmp_path / "trace.json").read_text())
    assert len(document["events"]) == totals["count"] and document["totals"]["bytes"] == totals["bytes"]
    tr.to_csv(tmp_path / "trace.csv")
    with open(tmp_path / "trace.csv") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == totals["count"] and lines[0]["inputs"] in ("8x4 4x16", "8x4 8x3")


def _slow_double(x: tz.Tensor) -> tz.Tensor:
    """2x, taking 30 ms forward and 20 ms backward (its rule also runs two ops)."""
    time.sleep(0.03)

    def backward(grad, _):
        time.sleep(0.02)
        return ((grad + grad) * 1.0,)

    return record_op("slow_double", x.data * 2, (x,), backward)


def test_trace_times_forward_since_the_previous_event_and_backward_rules_whole():
    x = tz.ones(3, requires_grad=True)
    with study.trace() as tr:
        y = _slow_double(x)
        loss = (y * y).sum()  # y used twice: the engine sums its two gradients with an untaped add
        loss.backward()
    stats = {(r.phase, r.op): r for r in tr.summary()}
    assert stats[("forward", "slow_double")].total_ms >= 30
    assert 20 <= stats[("backward", "slow_double")].total_ms < 45  # its own 20 ms, not the forward's 30
    assert stats[("forward", "mul")].total_ms < 20
    assert ("untaped", "add") in stats  # the gradient sum of y
    assert ("untaped", "mul") not in stats  # the ops inside slow_double's rule belong to its backward time
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 8.0, 8.0])


def test_trace_mark_restarts_the_clock_and_views_allocate_nothing():
    x = tz.ones(4, 4, requires_grad=True)
    with study.trace() as tr:
        time.sleep(0.02)
        tr.mark()
        y = x.reshape(16)
    (event,) = tr.events
    assert event.op == "reshape" and event.ms < 20 and event.bytes == 0
    y.sum().backward()  # outside the trace: nothing more is recorded
    assert len(tr.events) == 1


# ----- hooks and gradient flow ------------------------------------------------------------------
def test_hooks_fire_in_order_and_can_modify_gradients():
    x = tz.ones(4, requires_grad=True)
    h1 = x * 2
    h2 = h1 * 3
    h3 = h2 * 4
    order = []
    for name, h in (("h1", h1), ("h2", h2), ("h3", h3)):
        h.register_hook(lambda g, name=name: order.append(name))
    h2.register_hook(lambda g: g * 10)  # hooks run in registration order; a returned tensor replaces the grad
    flow = study.GradientFlow(Dense(1, 1))
    flow.watch([h1, h2, h3])  # registered after the scaling hook, so it sees the scaled gradient
    with study.trace() as tr:
        h3.sum().backward()
    flow.record(0)
    assert order == ["h3", "h2", "h1"]
    np.testing.assert_allclose(x.grad.numpy(), [240.0] * 4)
    np.testing.assert_allclose(flow.state_grad_norms[0], [120 * 2, 40 * 2, 1 * 2])  # ‖∂L/∂h_t‖, 4 equal entries
    assert [e.op for e in tr.events if e.phase == "backward"] == ["sum", "mul", "mul", "mul"]


def test_gradient_flow_logs_norms_and_update_ratios(tmp_path):
    model = MLP()
    flow = study.GradientFlow(model, label="mlp")
    lr = 0.1
    rng = np.random.default_rng(0)
    for step in range(30):
        x, y = (tz.tensor(rng.standard_normal(shape).astype(np.float32)) for shape in ((8, 4), (8, 3)))
        hidden = model.act(model.fc1(x))
        flow.watch([hidden])
        ((model.fc2(hidden) - y) ** 2).mean().backward()
        expected = {name: float(np.linalg.norm(p.grad.numpy())) for name, p in model.named_parameters()}
        for p in model.parameters():
            p.data -= lr * p.grad.data
        flow.record(step)
        model.zero_grad()
        for name, norm in expected.items():
            assert flow.grad_norm[name][-1] == pytest.approx(norm, rel=1e-5)
            assert flow.update_norm[name][-1] == pytest.approx(lr * norm, rel=1e-4)
    assert flow.steps == list(range(30)) and len(flow.state_grad_norms) == 30
    layers = flow.series("layer")
    assert list(layers) == ["fc1", "fc2"]
    grad, ratio = layers["fc1"]
    combined = np.hypot(flow.grad_norm["fc1.weight"], flow.grad_norm["fc1.bias"])
    np.testing.assert_allclose(grad, combined)
    assert np.all(ratio > 0) and np.isnan(flow.series("parameter")["fc1.bias"][1][0])  # bias starts at 0
    assert_real_image(flow.plot(tmp_path / "flow.png"))

    other = study.GradientFlow(MLP(), label="untrained")
    other.record(0)
    assert np.isnan(other.grad_norm["fc1.weight"][0])  # no gradient yet
    assert_real_image(study.compare_runs([flow, other], tmp_path / "compare.png"))


# ----- explain ----------------------------------------------------------------------------------
def test_explain_lists_modules_shapes_parameters_and_flops():
    model = MLP()
    text = study.explain(model, tz.randn(8, 4))
    lines = text.splitlines()
    row = {line.split()[0]: line for line in lines[2:6]}
    assert list(row) == ["MLP", "fc1", "act", "fc2"]
    assert "[8, 16]" in row["fc1"] and " 80 " in row["fc1"] and "320 B" in row["fc1"]
    assert "1.02 K" in row["fc1"] and "768" in row["fc2"] and "1.79 K" in row["MLP"]
    assert "131 parameters" in text and "input [8, 4] -> output [8, 3]" in text

    unrolled = Unrolled()
    text = study.explain(unrolled, tz.randn(5, 2, 3))
    assert "[2, 3] ×5" in text and "180 FLOPs" in text  # 5 calls × 2·(2·3·3) multiply-adds
    assert all("forward" not in m.__dict__ for m in unrolled.modules())


def test_explain_counts_matmul_flops_and_lists_ops_it_cannot_count():
    from tinyzoo.study.explain import op_flops

    x, w = tz.randn(2, 5, 3), tz.randn(3, 4)
    assert op_flops("matmul", (x, w), x @ w) == 2 * 2 * 5 * 4 * 3
    assert op_flops("tanh", (x,), x.tanh()) is None

    class Bilinear(Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = Parameter(np.ones((3, 4), dtype=np.float32))

        def forward(self, x):
            return tz.einsum("bij,jk->bik", x, self.weight).tanh()

    text = study.explain(Bilinear(), x)
    assert "not counted (no FLOP rule): einsum ×1" in text and "tanh" not in text.splitlines()[-1]

"""tinyzoo.study — look inside a model: its graph, a per-op profile, gradient flow, and a summary.

    from tinyzoo import study
    study.draw_graph(loss, "step.svg", model=model)      # the recorded graph (before backward)
    with study.trace() as tr:                            # every forward and backward op, timed
        loss = step(); loss.backward()
    print(tr.table())
    flow = study.GradientFlow(model)                     # gradient norms and update ratios per layer
    print(study.explain(model, x))                       # tree, output shapes, parameters, FLOPs

matplotlib (the `plot` extra) is imported only by the functions that draw.
"""

from tinyzoo.study.explain import explain
from tinyzoo.study.gradflow import GradientFlow, compare_runs
from tinyzoo.study.graph import GraphNode, draw_graph, graph_summary, module_scopes, record_modules, to_dot
from tinyzoo.study.trace import Event, OpStats, Trace, trace

__all__ = [
    "Event",
    "GradientFlow",
    "GraphNode",
    "OpStats",
    "Trace",
    "compare_runs",
    "draw_graph",
    "explain",
    "graph_summary",
    "module_scopes",
    "record_modules",
    "to_dot",
    "trace",
]

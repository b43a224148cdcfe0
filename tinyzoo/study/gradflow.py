"""Gradient flow: how large the gradients and the updates are, per layer, as training goes on.

    flow = GradientFlow(model)
    for step in range(steps):
        states = ...                     # optional: an RNN's hidden states h_1..h_T of this step
        flow.watch(states)               # log ‖∂L/∂h_t‖ for every t at the next backward
        loss.backward()
        optimizer.step()
        flow.record(step)                # after step(), before zero_grad()
        optimizer.zero_grad()
    flow.plot("flow.png")
    compare_runs([rnn_flow, gru_flow], "rnn_vs_gru.png")

Logged per parameter and step: ‖g‖ (the gradient), ‖Δw‖ (what the optimizer changed) and ‖w‖ before
the change. A layer's values combine its parameters as one vector (root of summed squares), so its
update/weight ratio is ‖Δw_layer‖ / ‖w_layer‖ — about 1e-3 per step is the usual healthy range.

`watch` uses `Tensor.register_hook`: the hook on each state stores ‖∂L/∂h_t‖ when the backward pass
reaches it. Gradients that shrink towards t = 1 are vanishing gradients; growing ones explode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyzoo import backend
from tinyzoo.autograd.tensor import Tensor
from tinyzoo.nn.module import Module
from tinyzoo.study.graph import new_figure

__all__ = ["GradientFlow", "compare_runs"]


def _norm(array: Any) -> float:
    """The Euclidean norm of all entries, as a Python float (one scalar leaves the GPU)."""
    return float(backend.xp_of(array).linalg.norm(array.ravel().astype("float64")))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (a zero-initialised bias)."""
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)


class GradientFlow:
    """Per-parameter gradient norms and update/weight ratios of one model, step by step.

    It keeps a copy of every parameter (on its device) to measure what each step changed.
    """

    def __init__(self, model: Module, label: str | None = None) -> None:
        self.label = label or type(model).__name__
        self.params = dict(model.named_parameters())
        self.steps: list[int] = []
        self.grad_norm: dict[str, list[float]] = {name: [] for name in self.params}
        self.update_norm: dict[str, list[float]] = {name: [] for name in self.params}
        self.weight_norm: dict[str, list[float]] = {name: [] for name in self.params}
        self.state_grad_norms: dict[int, list[float]] = {}  # step -> ‖∂L/∂s‖ of each watched state
        self._before = {name: p.data.copy() for name, p in self.params.items()}
        self._watched: list[float] | None = None

    def watch(self, states: Sequence[Tensor]) -> None:
        """Log ‖∂L/∂s‖ of each tensor in `states` (e.g. hidden states h_1..h_T) at the next backward."""
        norms = [math.nan] * len(states)
        for t, state in enumerate(states):
            state.register_hook(lambda grad, t=t: norms.__setitem__(t, _norm(grad.data)))
        self._watched = norms

    def record(self, step: int) -> None:
        """Log gradients and updates of this step: call after optimizer.step(), before zero_grad()."""
        self.steps.append(step)
        for name, p in self.params.items():
            before = self._before[name]
            self.grad_norm[name].append(math.nan if p.grad is None else _norm(p.grad.data))
            self.update_norm[name].append(_norm(p.data - before))
            self.weight_norm[name].append(_norm(before))
            self._before[name] = p.data.copy()
        if self._watched is not None:
            self.state_grad_norms[step] = self._watched
            self._watched = None

    def layers(self) -> dict[str, list[str]]:
        """Parameter names grouped by the module that owns them (the name up to its last dot)."""
        groups: dict[str, list[str]] = {}
        for name in self.params:
            groups.setdefault(name.rpartition(".")[0] or "(model)", []).append(name)
        return groups

    def series(self, per: str = "layer") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(gradient norm, update/weight ratio) over the recorded steps, per "layer", "parameter" or "model"."""
        if per not in ("layer", "parameter", "model"):
            raise ValueError(f"per must be 'layer', 'parameter' or 'model', got {per!r}")
        groups = {
            "layer": self.layers(),
            "parameter": {n: [n] for n in self.params},
            "model": {"all": list(self.params)},
        }
        result = {}
        for group, names in groups[per].items():
            grad, update, weight = (
                np.sqrt(np.sum([np.square(store[n]) for n in names], axis=0))
                for store in (self.grad_norm, self.update_norm, self.weight_norm)
            )
            result[group] = (grad, _ratio(update, weight))
        return result

    def plot(self, path: str | Path, per: str = "layer") -> Path:
        """Gradient norms and update/weight ratios per layer over training (and ‖∂L/∂h_t‖ if watched)."""
        panels = 3 if self.state_grad_norms else 2
        fig = new_figure(figsize=(5.2 * panels, 4.2), layout="constrained")
        axes = fig.subplots(1, panels)
        series = self.series(per)
        colours = _palette(len(series), "viridis")
        for colour, (group, (grad, ratio)) in zip(colours, series.items()):
            _trend(axes[0], self.steps, grad, colour, group)
            _trend(axes[1], self.steps, ratio, colour, group)
        _axes(axes[0], "training step", "gradient norm ‖∂L/∂θ‖", f"{self.label}: gradient per {per}")
        _axes(axes[1], "training step", "update / weight  ‖Δθ‖ / ‖θ‖", f"{self.label}: relative update per {per}")
        axes[1].axhline(1e-3, color="grey", linestyle=":", linewidth=1, label="1e-3 (rule of thumb)")
        axes[0].legend(fontsize=8, loc="best")
        axes[1].legend(fontsize=8, loc="best")
        if self.state_grad_norms:
            steps = sorted(self.state_grad_norms)
            for colour, step in zip(_palette(len(steps), "plasma"), steps):
                norms = self.state_grad_norms[step]
                axes[2].plot(range(1, len(norms) + 1), norms, color=colour, label=f"step {step}")
            _axes(axes[2], "time step t", "‖∂L/∂h_t‖", f"{self.label}: gradient reaching each time step")
            axes[2].legend(fontsize=8, loc="best", ncol=2 if len(steps) > 6 else 1)
        fig.savefig(path, dpi=130)
        return Path(path)


def compare_runs(flows: Sequence[GradientFlow], path: str | Path) -> Path:
    """Several runs in one figure: ‖∂L/∂h_t‖ over time steps (if watched), whole-model gradient and update ratio."""
    watched = [f for f in flows if f.state_grad_norms]
    panels = 3 if watched else 2
    fig = new_figure(figsize=(5.2 * panels, 4.2), layout="constrained")
    axes = list(fig.subplots(1, panels))
    colours = _palette(len(flows), "tab10")
    if watched:
        profile_axes = axes.pop(0)
        for colour, flow in zip(colours, flows):
            if not flow.state_grad_norms:
                continue
            first, last = min(flow.state_grad_norms), max(flow.state_grad_norms)
            for step, style in ((first, "--"), (last, "-")):
                norms = flow.state_grad_norms[step]
                label = f"{flow.label}, step {step}"
                profile_axes.plot(range(1, len(norms) + 1), norms, style, color=colour, label=label)
        _axes(profile_axes, "time step t  (loss after the last step)", "‖∂L/∂h_t‖", "gradient reaching each time step")
        profile_axes.legend(fontsize=8)
    for colour, flow in zip(colours, flows):
        ((grad, ratio),) = flow.series("model").values()
        _trend(axes[0], flow.steps, grad, colour, flow.label)
        _trend(axes[1], flow.steps, ratio, colour, flow.label)
    _axes(axes[0], "training step", "gradient norm ‖∂L/∂θ‖ (all parameters)", "gradient over training")
    _axes(axes[1], "training step", "update / weight  ‖Δθ‖ / ‖θ‖", "relative update over training")
    axes[1].axhline(1e-3, color="grey", linestyle=":", linewidth=1)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=130)
    return Path(path)


def _trend(ax: Any, steps: list[int], values: np.ndarray, colour: Any, label: str) -> None:
    """The raw series, faint, under its running geometric mean (window: 1/25 of the run), labelled."""
    window = max(1, len(values) // 25)
    if window == 1:
        ax.plot(steps, values, color=colour, label=label)
        return
    logs = np.pad(np.log(values), (window // 2, window - 1 - window // 2), mode="edge")
    ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
    ax.plot(steps, np.exp(np.convolve(logs, np.ones(window) / window, mode="valid")), color=colour, label=label)


def _palette(count: int, name: str) -> list[Any]:
    """`count` colours from a matplotlib colormap."""
    from matplotlib import colormaps

    cmap = colormaps[name]
    if name.startswith("tab"):
        return [cmap(i % cmap.N) for i in range(count)]
    return [cmap(0.9 * i / max(count - 1, 1)) for i in range(count)]


def _axes(ax: Any, xlabel: str, ylabel: str, title: str) -> None:
    """Log-scale y, labels, title and a light grid."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)

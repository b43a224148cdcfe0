"""Figures for the examples: learning curves, image grids and histograms (matplotlib, imported lazily).

Every function writes one file (PNG or SVG by suffix) and returns its path. Install the `plot`
extra (`pip install 'tinyzoo[plot]'`) to use them. Examples that draw their own figure take pyplot
from `pyplot()` and write it with `save(fig, path)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend (works without a screen)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'tinyzoo[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _marker(steps: Sequence[float]) -> str | None:
    """Dots for series too short to show as a line (a single evaluation would otherwise be invisible)."""
    return "o" if len(steps) < 8 else None


def save(fig: Any, path: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a figure; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def learning_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "loss",
    log_y: bool = False,
) -> Path:
    """One line per named (steps, values) series."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, label=name, marker=_marker(steps))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return save(fig, path)


def panels(
    series: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    xlabel: str = "step",
    xlabels: Mapping[str, str] | None = None,
) -> Path:
    """Side-by-side panels, one per metric (title → {line name → (steps, values)}); xlabels per title."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.8), squeeze=False)
    for ax, (title, curves) in zip(axes[0], series.items()):
        for name, (steps, values) in curves.items():
            ax.plot(steps, values, label=name, marker=_marker(steps))
        ax.set(xlabel=(xlabels or {}).get(title, xlabel), ylabel=title, title=title)
        ax.grid(alpha=0.3)
        if len(curves) > 1:
            ax.legend()
    return save(fig, path)


def image_grid(images: np.ndarray, path: str | Path, columns: int = 8, title: str = "",
               labels: Sequence[str] | None = None) -> Path:  # fmt: skip
    """A grid of grayscale images [N, H, W] (or [N, 1, H, W]) with optional per-image labels."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    rows = int(np.ceil(len(images) / columns))
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.2 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray")
            if labels is not None:
                ax.set_title(labels[i], fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def histogram(values: Mapping[str, np.ndarray] | np.ndarray, path: str | Path, xlabel: str, title: str = "",
              bins: int | Sequence[float] = 30) -> Path:  # fmt: skip
    """A histogram of one array, or overlaid histograms of several named arrays."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    named = values if isinstance(values, Mapping) else {"": values}
    for name, data in named.items():
        ax.hist(np.asarray(data).ravel(), bins=bins, alpha=0.6, label=name or None)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    if len(named) > 1:
        ax.legend()
    return save(fig, path)


def bars(values: Mapping[str, Sequence[float]], categories: Sequence[Any], path: str | Path, xlabel: str,
         ylabel: str, title: str = "") -> Path:  # fmt: skip
    """Grouped bars: one group per category, one bar per named series (e.g. halting distributions)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(values), 1)
    positions = np.arange(len(categories))
    for i, (name, heights) in enumerate(values.items()):
        ax.bar(positions + i * width, heights, width, label=name)
    ax.set_xticks(positions + width * (len(values) - 1) / 2, [str(c) for c in categories])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(values) > 1:
        ax.legend()
    return save(fig, path)

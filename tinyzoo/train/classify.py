"""Fitting and scoring a classifier on arrays: the small supervised loop several examples share.

The RBM/DBN example judges learned features with a logistic regression on them; the GAN example
scores its samples with a trained digit classifier. Both need the same three steps: train a model on
(x, y) arrays with Adam and cross-entropy, predict in batches without a graph, and measure accuracy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.data import DataLoader, TensorDataset
from tinyzoo.nn import functional as F
from tinyzoo.train.progress import ProgressBar


def predict(model: Callable[[tz.Tensor], tz.Tensor], x: np.ndarray, device: str = "cpu",
            batch_size: int = 1000) -> np.ndarray:  # fmt: skip
    """model(x) for an array x, in batches and without a graph, as a NumPy array."""
    with tz.no_grad():
        outputs = [model(tz.tensor(x[i : i + batch_size], device=device)).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs)


def fit_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, device: str = "cpu", lr: float = 1e-3,
                   batch_size: int = 128, seed: int = 0, desc: str = "classifier") -> float:  # fmt: skip
    """Train `model` (logits [batch, classes]) on arrays x, y with Adam and cross-entropy; returns the last loss."""
    optimizer = optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed, device=device)
    loss = tz.tensor(np.nan)
    with ProgressBar(epochs * len(loader), desc) as bar:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = F.cross_entropy(model(tz.tensor(xb, device=device)), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                bar.update(1)
            bar.update(0, loss=loss.item())  # the last batch's loss, read once an epoch
    return loss.item()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, device: str = "cpu") -> float:
    """Fraction of rows of x whose arg-max logit is the label y."""
    return float((predict(model, x, device).argmax(axis=1) == y).mean())

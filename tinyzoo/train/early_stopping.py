"""Early stopping on a validation set, and the optimisation recipe of a full-batch run that uses it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tinyzoo import nn


@dataclass(frozen=True)
class TrainingConfig:
    """A paper's optimisation recipe: Adam with L2 weight decay, full batch, and when to stop."""

    lr: float
    weight_decay: float
    epochs: int
    patience: int  # stop after this many epochs without progress on the validation data (see EarlyStopping)
    watch_accuracy: bool = False  # progress = a lower val loss (GCN) or a lower loss OR higher accuracy (GAT)


class EarlyStopping:
    """Stop after `patience` epochs without progress on validation data; keep the best weights.

    By validation loss alone (GCN): progress is a new lowest loss, and the weights of the lowest loss
    are kept. With `watch_accuracy` (the GAT reference code, execute_cora.py): progress is a loss at
    or below the lowest OR an accuracy at or above the highest so far, and the weights kept are those
    of the last epoch that did both at once. Accuracy on a small validation set (Cora's 500 nodes) moves in
    steps (0.2 %), so matching the best accuracy keeps training going through long flat stretches of the loss.
    """

    def __init__(self, patience: int, watch_accuracy: bool = False) -> None:
        self.patience, self.watch_accuracy = patience, watch_accuracy
        self.best_loss = math.inf
        self.best_accuracy = 0.0
        self.best_epoch = 0
        self.waited = 0
        self.best_weights: dict[str, Any] = {}

    def update(self, epoch: int, val_loss: float, val_accuracy: float, model: nn.Module) -> None:
        """Record one epoch's validation loss and accuracy (copying the weights when they are the best so far)."""
        if self.watch_accuracy:
            lower, higher = val_loss <= self.best_loss, val_accuracy >= self.best_accuracy
            progress, keep = lower or higher, lower and higher
        else:
            progress = keep = val_loss < self.best_loss
        if keep:
            self.best_epoch = epoch
            self.best_weights = {k: v.copy() for k, v in model.state_dict().items()}
        if progress:
            self.best_loss, self.best_accuracy = min(val_loss, self.best_loss), max(val_accuracy, self.best_accuracy)
            self.waited = 0
        else:
            self.waited += 1

    @property
    def stop(self) -> bool:
        """True once patience has run out."""
        return self.waited >= self.patience

    def finish(self, model: nn.Module) -> None:
        """Load the weights of the best epoch back into the model."""
        if self.best_weights:
            model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (for save_training)."""
        return {"best_loss": self.best_loss, "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch,
                "waited": self.waited, "best_weights": self.best_weights}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        self.best_loss, self.best_accuracy = state["best_loss"], state["best_accuracy"]
        self.best_epoch, self.waited, self.best_weights = state["best_epoch"], state["waited"], state["best_weights"]

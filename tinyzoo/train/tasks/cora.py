"""Semi-supervised node classification on Cora: the task and the training run shared by examples/gcn_cora.py
and examples/gat_cora.py (GCN, GAT, GATv2 from `tinyzoo.models`).

Semi-supervised classification (Kipf & Welling 2017; Veličković et al. 2018): every node's features
and the whole graph go through the network in one full-batch step, but the loss only sees the 140
labelled training nodes (20 per class). The 500 validation nodes decide when to stop and which
weights to keep (`EarlyStopping`: by validation loss for GCN, by validation loss and accuracy for GAT,
each as its reference code does); test accuracy on 1,000 other nodes is the result.

A run here trains one freshly built model per seed s on the split drawn with seed s, prints one line
per seed and their mean ± std, and can draw the hidden embeddings (and the attention weights) of the
last seed's model.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.backend import to_device, to_host
from tinyzoo.data import load_cora
from tinyzoo.models.graph_common import Graph, SparseFeatures, TwoLayerGNN, in_degrees, make_graph
from tinyzoo.nn import functional as F
from tinyzoo.train import EarlyStopping, MetricsLog, TrainingConfig, TrainingRun


class CoraTask(NamedTuple):
    """Cora on a device: features, labels, graph (with self-loops) and one seeded split."""

    x: SparseFeatures  # [N, 1433] float32, row-normalised bag of words
    labels: tz.Tensor  # [N] int64
    graph: Graph
    train: Any  # int64 [140] node indices
    val: Any  # int64 [500]
    test: Any  # int64 [1000]
    class_names: tuple[str, ...]


def cora_task(split_seed: int, device: str = "cpu") -> CoraTask:
    """Cora with the 20-per-class / 500 / 1,000 split drawn with `split_seed`."""
    cora = load_cora(split_seed=split_seed)
    n = len(cora.labels)
    return CoraTask(
        SparseFeatures.from_dense(cora.features, device),
        tz.tensor(cora.labels, device=device),
        make_graph(cora.edges, n, device),
        *(to_device(idx, device) for idx in (cora.train_idx, cora.val_idx, cora.test_idx)),
        cora.class_names,
    )


def loss_and_accuracy(logits: tz.Tensor, labels: tz.Tensor, nodes: Any) -> tuple[tz.Tensor, float]:
    """Cross entropy and accuracy of logits [N, C] on the given nodes."""
    picked, truth = logits[nodes], labels[nodes]
    accuracy = float((picked.argmax(axis=1).numpy() == truth.numpy()).mean())
    return F.cross_entropy(picked, truth), accuracy


@dataclass
class RunResult:
    """The outcome of training on one seed."""

    seed: int
    test_accuracy: float
    val_accuracy: float
    best_epoch: int
    epochs: int  # epochs trained in this run (after a resume: only the new ones)
    epoch_seconds: float  # median wall time of one training step (forward, backward, update)


def train_node_classifier(
    model: TwoLayerGNN,
    task: CoraTask,
    config: TrainingConfig,
    seed: int,
    save: str | None = None,
    resume: str | None = None,
    log: MetricsLog | None = None,
    trace: bool = False,
) -> RunResult:
    """Full-batch Adam on the training nodes with early stopping on the validation nodes; test accuracy at the end."""
    optimizer = optim.Adam(model.parameter_groups(config.weight_decay), lr=config.lr)
    stopper = EarlyStopping(config.patience, config.watch_accuracy)
    files = argparse.Namespace(seed=seed, resume=resume, save=save, log=None, trace=trace)
    training = TrainingRun(files, model, optimizer, total=config.epochs, desc=f"seed {seed}", metrics_log=log,
                           stopper=stopper)  # fmt: skip
    trained, step_seconds = training.start, []
    with training:
        for epoch in training.steps():
            if stopper.stop:
                break
            began = time.perf_counter()
            model.train()
            with training.trace(epoch):
                loss, train_accuracy = loss_and_accuracy(model(task.x, task.graph), task.labels, task.train)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            step_seconds.append(time.perf_counter() - began)

            model.eval()
            with tz.no_grad():
                val_loss, val_accuracy = loss_and_accuracy(model(task.x, task.graph), task.labels, task.val)
            stopper.update(epoch, val_loss.item(), val_accuracy, model)
            training.log(epoch, seed=seed, loss=loss.item(), train_acc=train_accuracy, val_loss=val_loss.item(),
                         val_acc=val_accuracy)  # fmt: skip
            trained = epoch
    training.save(trained)
    stopper.finish(model)
    model.eval()
    with tz.no_grad():
        logits = model(task.x, task.graph)
    return RunResult(
        seed,
        loss_and_accuracy(logits, task.labels, task.test)[1],
        loss_and_accuracy(logits, task.labels, task.val)[1],
        stopper.best_epoch,
        trained - training.start,
        float(np.median(step_seconds)) if step_seconds else float("nan"),
    )


def run_seeds(
    build: Callable[[int, int], TwoLayerGNN],
    config: TrainingConfig,
    seeds: Iterable[int],
    device: str = "cpu",
    **options: Any,
) -> tuple[list[RunResult], TwoLayerGNN, CoraTask]:
    """Train a fresh model per seed s on the split with seed s (tz.manual_seed(s) too).

    `build(in_features, num_classes)` makes the model; `options` go to train_node_classifier. Returns the
    results and the last seed's model and task (for figures).
    """
    results = []
    for seed in seeds:
        tz.manual_seed(seed)
        task = cora_task(seed, device)
        model = build(task.x.shape[1], len(task.class_names)).to(device)
        results.append(train_node_classifier(model, task, config, seed, **options))
    return results, model, task


def summary(results: list[RunResult]) -> str:
    """Mean ± std (population) of test accuracy over the runs, and the mean of their median epoch times."""
    accuracy = np.array([r.test_accuracy for r in results]) * 100
    steps = np.mean([r.epoch_seconds for r in results]) * 1000
    return (f"test accuracy {accuracy.mean():.1f} ± {accuracy.std():.1f} % over {len(results)} seed(s) "
            f"[{', '.join(f'{a:.1f}' for a in accuracy)}]; epoch time {steps:.1f} ms")  # fmt: skip


def report(name: str, results: list[RunResult]) -> str:
    """One line per seed (test and validation accuracy, best epoch, epochs trained), then `name: summary`."""
    lines = [f"seed {r.seed}: test accuracy {r.test_accuracy:.1%} (val {r.val_accuracy:.1%}, best epoch "
             f"{r.best_epoch}, {r.epochs} epochs trained)" for r in results]  # fmt: skip
    return "\n".join([*lines, f"{name}: {summary(results)}"])


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project the rows of x [N, D] onto their two principal directions: [N, 2].

    The principal directions are the top right singular vectors of the centred data, taken here from
    the SVD of the small D × D scatter matrix Xᵀ X (its singular vectors are the same).
    """
    centred = x - x.mean(axis=0)  # [N, D]
    _, _, directions = np.linalg.svd(centred.T @ centred)  # rows: principal directions, by variance
    return centred @ directions[:2].T


def plot_run(path: str, model: TwoLayerGNN, task: CoraTask, title: str) -> None:
    """PCA of the hidden embeddings by class; with an attention model, a histogram of its attention weights."""
    from tinyzoo.plot import pyplot, save

    plt = pyplot()

    model.eval()
    with tz.no_grad():
        points = pca_2d(model.embed(task.x, task.graph).numpy())
    labels = task.labels.numpy()
    attention = model.attention(task.x, task.graph) if hasattr(model, "attention") else None
    fig, axes = plt.subplots(1, 1 if attention is None else 2, figsize=(6.5 if attention is None else 13, 5.2),
                             squeeze=False)  # fmt: skip
    ax = axes[0, 0]
    for c, name in enumerate(task.class_names):
        ax.scatter(*points[labels == c].T, s=6, alpha=0.7, label=name.replace("_", " "))
    ax.set(xlabel="principal component 1", ylabel="principal component 2",
           title="hidden node embeddings (PCA), coloured by class")  # fmt: skip
    ax.legend(fontsize=8, markerscale=2.5, loc="upper left")
    if attention is not None:
        ax = axes[0, 1]
        degree = to_host(in_degrees(task.graph))
        uniform = 1.0 / degree[to_host(task.graph.dst)]  # α_ij if every neighbour weighed the same
        bins = np.linspace(0, 1, 41)
        ax.hist(uniform, bins=bins, density=True, histtype="step", color="black", lw=1.5, label="uniform 1/|N(i)|")
        for layer, alpha in enumerate(attention, 1):
            label = f"layer {layer}, {alpha.shape[1]} head{'s' if alpha.shape[1] > 1 else ''}"
            ax.hist(alpha.ravel(), bins=bins, density=True, alpha=0.5, label=label)
        ax.set(xlabel="attention weight α_ij", ylabel="density over (edge, head) pairs", yscale="log",
               title="learned attention weights vs uniform attention")  # fmt: skip
        ax.legend(fontsize=8)
    fig.suptitle(title)
    print(f"figure written to {save(fig, path)}")

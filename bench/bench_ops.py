"""Engine overhead: per-op cost against PyTorch eager, and an MLP train step against hand-written NumPy.

    python bench/bench_ops.py [--threads 1] [--repeats 30]

Case 1 chains 200 tiny elementwise ops on a (4, 4) tensor, forward + backward: almost pure Python
overhead, so it measures how lean the tape is. Case 2 is one SGD step of a 784-256-10 MLP, batch 128,
float32: tinyzoo's cost above hand-written NumPy is the engine's own cost. Every peer gets the same
data and initial weights; the losses must agree before anything is timed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import measure, ratio, set_threads

import tinyzoo as tz

CHAIN_LENGTH = 50  # × 4 ops = 200 ops


def chain_tinyzoo(x0: np.ndarray) -> float:
    """200 elementwise ops and a backward pass through them."""
    x = tz.tensor(x0, requires_grad=True)
    y = x
    for _ in range(CHAIN_LENGTH):
        y = (y * 0.9 + 0.1).tanh() - 0.05
    y.sum().backward()
    return float(x.grad.data.sum())


def chain_torch(x0: np.ndarray) -> float:
    """The same chain in PyTorch eager mode."""
    import torch

    x = torch.tensor(x0, requires_grad=True)
    y = x
    for _ in range(CHAIN_LENGTH):
        y = (y * 0.9 + 0.1).tanh() - 0.05
    y.sum().backward()
    return float(x.grad.sum())


class MlpData:
    """One batch and one set of initial weights shared by every peer."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((128, 784)).astype(np.float32)
        self.y = rng.integers(0, 10, 128)
        self.w1 = (rng.standard_normal((784, 256)) * np.sqrt(2 / 784)).astype(np.float32)
        self.b1 = np.zeros(256, np.float32)
        self.w2 = (rng.standard_normal((256, 10)) * np.sqrt(2 / 256)).astype(np.float32)
        self.b2 = np.zeros(10, np.float32)

    def weights(self) -> list[np.ndarray]:
        """Fresh copies of the initial weights."""
        return [w.copy() for w in (self.w1, self.b1, self.w2, self.b2)]


LR = 0.01


def mlp_step_numpy(data: MlpData, params: list[np.ndarray]) -> float:
    """Forward, cross-entropy, backward and SGD by hand."""
    w1, b1, w2, b2 = params
    pre = data.x @ w1 + b1  # [128, 256]
    hidden = np.maximum(pre, 0)
    logits = hidden @ w2 + b2  # [128, 10]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(data.y))
    loss = -log_probs[rows, data.y].mean()
    d_logits = np.exp(log_probs)
    d_logits[rows, data.y] -= 1
    d_logits /= len(data.y)
    d_w2, d_b2 = hidden.T @ d_logits, d_logits.sum(axis=0)
    d_pre = (d_logits @ w2.T) * (pre > 0)
    d_w1, d_b1 = data.x.T @ d_pre, d_pre.sum(axis=0)
    for p, g in zip(params, (d_w1, d_b1, d_w2, d_b2)):
        p -= LR * g
    return float(loss)


def mlp_step_tinyzoo(data: MlpData, params: list[tz.Tensor]) -> float:
    """The same step through tinyzoo's tape."""
    w1, b1, w2, b2 = params
    logits = (tz.as_tensor(data.x) @ w1 + b1).relu() @ w2 + b2  # no copy, like torch.from_numpy
    loss = -logits.log_softmax(axis=1)[np.arange(len(data.y)), data.y].mean()
    loss.backward()
    with tz.no_grad():
        for p in params:
            p.data -= LR * p.grad.data
            p.grad = None
    return float(loss.data)


def mlp_step_torch(data: MlpData, params: list) -> float:
    """The same step in PyTorch eager mode."""
    import torch

    w1, b1, w2, b2 = params
    logits = torch.relu(torch.from_numpy(data.x) @ w1 + b1) @ w2 + b2
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.y))
    loss.backward()
    with torch.no_grad():
        for p in params:
            p -= LR * p.grad
            p.grad = None
    return float(loss.detach())


def torch_available() -> bool:
    """True when PyTorch imports."""
    try:
        import torch  # noqa: F401

        return True
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Print per-op and MLP-step timings and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    have_torch = torch_available()
    print(f"threads={args.threads}  numpy {np.__version__}  torch: {'yes' if have_torch else 'not installed'}")

    x0 = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    ops = CHAIN_LENGTH * 4 + 1
    ours = measure(lambda: chain_tinyzoo(x0), repeats=args.repeats)
    print(f"(1) 200-op chain fwd+bwd   tinyzoo {ours}  = {ours.median_ms * 1e3 / ops:.1f} µs/op")
    if have_torch:
        assert abs(chain_tinyzoo(x0) - chain_torch(x0)) < 1e-4, "chain gradients disagree with torch"
        theirs = measure(lambda: chain_torch(x0), repeats=args.repeats)
        print(f"                           torch   {theirs}  = {theirs.median_ms * 1e3 / ops:.1f} µs/op")
        print(f"    ratio tinyzoo / torch: {ratio(ours, theirs):.2f}x  (target ≤ 2x)")

    data = MlpData()
    numpy_params = data.weights()
    tz_params = [tz.tensor(w, requires_grad=True) for w in data.weights()]
    fresh_tz_params = [tz.tensor(w, requires_grad=True) for w in data.weights()]
    losses = [mlp_step_numpy(data, data.weights()), mlp_step_tinyzoo(data, fresh_tz_params)]
    if have_torch:
        import torch

        torch_params = [torch.tensor(w, requires_grad=True) for w in data.weights()]
        losses.append(mlp_step_torch(data, [torch.tensor(w, requires_grad=True) for w in data.weights()]))
    assert max(losses) - min(losses) < 1e-4, f"MLP losses disagree between peers: {losses}"
    hand = measure(lambda: mlp_step_numpy(data, numpy_params), repeats=args.repeats)
    ours = measure(lambda: mlp_step_tinyzoo(data, tz_params), repeats=args.repeats)
    print(f"(2) MLP 784-256-10 b128    numpy   {hand}")
    print(f"                           tinyzoo {ours}")
    print(f"    ratio tinyzoo / hand NumPy: {ratio(ours, hand):.2f}x  (target ≤ 1.3x)")
    if have_torch:
        theirs = measure(lambda: mlp_step_torch(data, torch_params), repeats=args.repeats)
        print(f"                           torch   {theirs}")
        print(f"    ratio tinyzoo / torch: {ratio(ours, theirs):.2f}x")


if __name__ == "__main__":
    main()

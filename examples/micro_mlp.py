"""A two-layer MLP on two interleaved moons, written against the bare engine (no tinyzoo.nn, no optimizer).

Everything a framework would hide is here: parameters are tensors with requires_grad, the loss is
built from ops, `backward()` fills `.grad`, and the update is plain gradient descent under no_grad.

    python examples/micro_mlp.py [--steps 300] [--hidden 32] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tinyzoo as tz


def make_moons(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles in 2-D (the classic 'two moons'), labels 0/1."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(label == 0, np.cos(angle), 1 - np.cos(angle))
    y = np.where(label == 0, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + rng.normal(0, noise, (n, 2))
    return points.astype(np.float32), label


def init_params(hidden: int, device: str) -> list[tz.Tensor]:
    """W1 [2, hidden], b1, W2 [hidden, 2], b2 with Kaiming-style scaling."""
    w1 = tz.randn(2, hidden, device=device) * np.sqrt(2 / 2)
    w2 = tz.randn(hidden, 2, device=device) * np.sqrt(2 / hidden)
    params = [w1, tz.zeros(hidden, device=device), w2, tz.zeros(2, device=device)]
    return [p.detach().requires_grad_() for p in params]


def forward(params: list[tz.Tensor], x: tz.Tensor) -> tz.Tensor:
    """logits = relu(x W1 + b1) W2 + b2."""
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2  # [batch, 2]


def cross_entropy(logits: tz.Tensor, labels: np.ndarray) -> tz.Tensor:
    """Mean negative log-likelihood of the true class under softmax(logits)."""
    log_probs = logits.log_softmax(axis=1)  # [batch, 2]
    return -log_probs[np.arange(len(labels)), labels].mean()


def main(argv: list[str] | None = None) -> int:
    """Train, print progress and the final test accuracy; exit code 0 when it reaches 97 %."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        tz.backend.array_module(args.device)
    except tz.DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    tz.manual_seed(args.seed)
    x_train, y_train = make_moons(800, 0.1, args.seed)
    x_test, y_test = make_moons(400, 0.1, args.seed + 1)
    xs = tz.tensor(x_train, device=args.device)
    params = init_params(args.hidden, args.device)

    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = cross_entropy(forward(params, xs), y_train)
        loss.backward()
        with tz.no_grad():
            for p in params:
                p.data -= args.lr * p.grad.data
                p.grad = None
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    with tz.no_grad():
        predicted = forward(params, tz.tensor(x_test, device=args.device)).argmax(axis=1).numpy()
    accuracy = float((predicted == y_test).mean())
    print(f"test accuracy {accuracy:.2%} after {args.steps} steps in {time.perf_counter() - start:.2f} s")
    return 0 if accuracy >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())

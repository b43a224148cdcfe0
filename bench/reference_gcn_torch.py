"""An independent PyTorch GCN on tinyzoo's seeded Cora splits: what Kipf & Welling's recipe scores there.

    python bench/reference_gcn_torch.py [--seeds 10] [--no-bias] [--kipf-stop]

Not a speed benchmark: an accuracy reference for examples/gcn_cora.py, written directly in PyTorch with
a dense Â (no tinyzoo model code), on the same splits (split seed s = 0 .. seeds-1, drawn by
`tinyzoo.data.load_cora`). The recipe: dropout 0.5 → Â X W₁ + b₁ → ReLU → dropout 0.5 → Â H W₂ + b₂,
Glorot-uniform weights, Adam lr 0.01, L2 5e-4 · ½‖W₁‖² on the first layer's weights, at most 200 epochs,
stopping after 10 epochs without a lower validation loss and keeping the weights of the lowest one.
`--no-bias` drops the biases (as the reference code does); `--kipf-stop` stops as that code does (the
validation loss above the mean of the 10 epochs before) and keeps the last weights.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

import tinyzoo as tz


def normalised_adjacency(edges: np.ndarray, num_nodes: int) -> torch.Tensor:
    """Dense Â = D̃^-1/2 (A + I) D̃^-1/2."""
    adjacency = np.eye(num_nodes, dtype=np.float32)
    adjacency[edges[1], edges[0]] = 1
    inv_sqrt = adjacency.sum(1) ** -0.5
    return torch.from_numpy(inv_sqrt[:, None] * adjacency * inv_sqrt[None, :])


def glorot(fan_in: int, fan_out: int) -> torch.nn.Parameter:
    """Glorot-uniform weights [fan_in, fan_out]."""
    bound = np.sqrt(6 / (fan_in + fan_out))
    return torch.nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound))


def train_one(split_seed: int, bias: bool, kipf_stop: bool) -> tuple[float, float]:
    """Train on one split; (test accuracy, validation accuracy) in %."""
    cora = tz.data.load_cora(split_seed=split_seed)
    a_hat = normalised_adjacency(np.asarray(cora.edges), len(cora.labels))
    x, y = torch.from_numpy(cora.features), torch.from_numpy(cora.labels)
    train, val, test = (torch.from_numpy(np.asarray(i)) for i in (cora.train_idx, cora.val_idx, cora.test_idx))
    torch.manual_seed(split_seed)
    w1, w2 = glorot(x.shape[1], 16), glorot(16, int(y.max()) + 1)
    b1, b2 = torch.nn.Parameter(torch.zeros(16)), torch.nn.Parameter(torch.zeros(w2.shape[1]))
    params = [w1, w2, b1, b2] if bias else [w1, w2]
    optimizer = torch.optim.Adam(params, lr=0.01)

    def logits(training: bool) -> torch.Tensor:
        h = F.dropout(x, 0.5, training)
        h = F.dropout(torch.relu(a_hat @ (h @ w1) + (b1 if bias else 0)), 0.5, training)
        return a_hat @ (h @ w2) + (b2 if bias else 0)

    best_loss, kept, waited, history = float("inf"), None, 0, []
    for _ in range(200):
        optimizer.zero_grad()
        loss = F.cross_entropy(logits(True)[train], y[train]) + 5e-4 * (w1**2).sum() / 2
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            val_loss = F.cross_entropy(logits(False)[val], y[val]).item()
        if kipf_stop:
            history.append(val_loss)
            if len(history) > 11 and val_loss > np.mean(history[-11:-1]):
                break
            kept = [p.detach().clone() for p in params]
        elif val_loss < best_loss:
            best_loss, kept, waited = val_loss, [p.detach().clone() for p in params], 0
        else:
            waited += 1
            if waited >= 10:
                break
    with torch.no_grad():
        for p, value in zip(params, kept):
            p.copy_(value)
        predicted = logits(False).argmax(1)
    return ((predicted[test] == y[test]).float().mean().item() * 100,
            (predicted[val] == y[val]).float().mean().item() * 100)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Train on splits 0 .. seeds-1 and print mean ± std test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--no-bias", action="store_true")
    parser.add_argument("--kipf-stop", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = np.array([train_one(s, not args.no_bias, args.kipf_stop) for s in range(args.seeds)])
    print(f"PyTorch GCN (bias={not args.no_bias}, kipf_stop={args.kipf_stop}) on {args.seeds} seeded splits: "
          f"test {runs[:, 0].mean():.1f} ± {runs[:, 0].std():.1f} %, validation {runs[:, 1].mean():.1f} %")  # fmt: skip
    print("per split:", ", ".join(f"{a:.1f}" for a in runs[:, 0]))


if __name__ == "__main__":
    main()

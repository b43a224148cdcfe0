"""Optional: composite functions' values and gradients against PyTorch (skipped when torch is absent)."""

from __future__ import annotations

import numpy as np
import pytest

import tinyzoo as tz

torch = pytest.importorskip("torch")

ROWS = np.array([[0], [2], [1], [0]])


def chain(x, w, lib):
    """tanh of a matmul, then logsumexp and mean."""
    return lib.logsumexp(lib.tanh(x @ w), 1).mean()


def picked_log_prob(x, w, lib):
    """-log softmax(x w) at chosen columns (gather)."""
    rows = ROWS if lib is tz else torch.tensor(ROWS)
    return -lib.gather(lib.softmax(x @ w, -1), 1, rows).log().sum()


def einsum_norm(x, w, lib):
    """Column norms of sigmoid(einsum)."""
    activated = lib.sigmoid(lib.einsum("ij,jk->ik", x, w))
    return (tz.norm(activated, axis=0) if lib is tz else torch.linalg.norm(activated, dim=0)).sum()


def moments(x, w, lib):
    """Population variance times sample std."""
    if lib is tz:
        return (tz.var(x, axis=0, ddof=0) * tz.std(w, axis=1)[:2].sum()).sum()
    return (torch.var(x, dim=0, unbiased=False) * torch.std(w, dim=1)[:2].sum()).sum()


def padded_running_sum(x, w, lib):
    """cumsum of a flipped, padded tensor, squared."""
    if lib is tz:
        return (tz.cumsum(tz.flip(tz.pad(x, ((1, 0), (0, 2))), 0), 1) ** 2).sum() + w.sum()
    return (torch.cumsum(torch.flip(torch.nn.functional.pad(x, (0, 2, 1, 0)), (0,)), 1) ** 2).sum() + w.sum()


COMPOSITES = [chain, picked_log_prob, einsum_norm, moments, padded_running_sum]


@pytest.mark.parametrize("fn", COMPOSITES)
def test_composite_matches_torch(fn):
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    x, w = tz.tensor(x0, requires_grad=True), tz.tensor(w0, requires_grad=True)
    tx, tw = torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    value, expected = fn(x, w, tz), fn(tx, tw, torch)
    value.backward()
    expected.backward()
    np.testing.assert_allclose(value.item(), expected.item(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-12)

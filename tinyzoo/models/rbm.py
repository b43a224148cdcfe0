"""Restricted Boltzmann machines trained by contrastive divergence, and deep belief nets stacked from them
(Smolensky 1986; Hinton 2002; Tieleman 2008; Hinton, Osindero & Teh 2006).

An RBM is an energy-based model of binary visible units v ∈ {0,1}^n (the pixels) and binary hidden units
h ∈ {0,1}^m (the features), with weights W [n, m], visible biases b [n] and hidden biases c [m]:

    E(v, h) = -bᵀv - cᵀh - vᵀW h                p(v, h) = exp(-E(v, h)) / Z,    Z = Σ_{v,h} exp(-E(v, h))

"Restricted" means no visible-visible or hidden-hidden weights, so given one layer the units of the
other are independent and the conditionals factorise into logistic units:

    p(h_j = 1 | v) = σ(c_j + Σ_i v_i W_ij)              p(v_i = 1 | h) = σ(b_i + Σ_j W_ij h_j)

Summing the hidden units out gives the free energy, p(v) = exp(-F(v)) / Z with

    F(v) = -bᵀv - Σ_j log(1 + exp(c_j + W_jᵀ v))        (W_j the j-th column of W; log(1 + eˣ) = softplus)

and the gradient of the log-likelihood is a difference of two correlations,

    ∂ log p(v) / ∂W = ⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model        (biases: ⟨v⟩ or ⟨h⟩ likewise),

where ⟨·⟩_data takes v from the training set and h ~ p(h | v) (the "positive phase"), and ⟨·⟩_model
averages over the model's own joint distribution (the "negative phase"), which needs Z and is
intractable. Contrastive divergence (CD-k) estimates the negative phase with a short Gibbs chain

    v⁰ = data  →  h⁰ ~ p(h | v⁰)  →  v¹ ~ p(v | h⁰)  →  h¹ ~ p(h | v¹)  →  ...  →  v^k

and uses v^k as a sample of the model. The chain starts at the data, so k = 1 already gives useful
(if biased) updates; as k → ∞ the chain forgets its start and the estimate becomes the exact gradient.
Persistent CD (PCD) keeps one set of "fantasy" chains alive across updates instead of restarting them at
the data, so with small learning rates they stay close to samples of the current model.

There is no backpropagation here: the statistics above are the gradient. `contrastive_divergence`
writes their negative into each parameter's `.grad` (both phases use the probabilities p(h | v) rather
than sampled h, which lowers the variance without biasing the estimate), and an ordinary SGD step with
momentum does the rest.

A deep belief net is trained greedily, one RBM at a time: the first RBM models the pixels, the second
models the first one's hidden probabilities p(h¹ | v) as if they were data, and so on. The top layer's
probabilities are features; a logistic regression on them (`tinyzoo.train.fit_classifier`) shows how much of the digit
identity they kept, without any label having been used to learn them.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, optim
from tinyzoo.nn import functional as F


def bernoulli(p: tz.Tensor) -> tz.Tensor:
    """A 0/1 sample of independent Bernoulli units with probabilities p (same shape, dtype and device)."""
    u = tz.rand(*p.shape, dtype=p.dtype, device=p.device)
    return (u < p).astype(p.dtype)


class RBM(nn.Module):
    """A Bernoulli-Bernoulli RBM: W [n_visible, n_hidden], visible biases b, hidden biases c."""

    def __init__(self, n_visible: int, n_hidden: int, weight_std: float = 0.01) -> None:
        super().__init__()
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.W = nn.init.normal_(nn.Parameter(np.empty((n_visible, n_hidden), dtype=np.float32)), 0.0, weight_std)
        self.b = nn.Parameter(np.zeros(n_visible, dtype=np.float32))
        self.c = nn.Parameter(np.zeros(n_hidden, dtype=np.float32))

    def energy(self, v: tz.Tensor, h: tz.Tensor) -> tz.Tensor:
        """E(v, h) = -bᵀv - cᵀh - vᵀWh for v [batch, n_visible], h [batch, n_hidden] → [batch]."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(axis=-1)

    def free_energy(self, v: tz.Tensor) -> tz.Tensor:
        """F(v) = -bᵀv - Σ_j softplus(c_j + W_jᵀv) for v [batch, n_visible] → [batch]."""
        return -(v @ self.b) - F.softplus(v @ self.W + self.c).sum(axis=-1)

    def hidden_probs(self, v: tz.Tensor) -> tz.Tensor:
        """p(h_j = 1 | v) = σ(c + vW): [batch, n_visible] → [batch, n_hidden]."""
        return tz.sigmoid(v @ self.W + self.c)

    def visible_probs(self, h: tz.Tensor) -> tz.Tensor:
        """p(v_i = 1 | h) = σ(b + hWᵀ): [batch, n_hidden] → [batch, n_visible]."""
        return tz.sigmoid(h @ self.W.T + self.b)

    def gibbs(self, v: tz.Tensor, k: int = 1) -> tz.Tensor:
        """k full steps v → h ~ p(h | v) → v ~ p(v | h) of block Gibbs sampling; returns the last v."""
        for _ in range(k):
            v = bernoulli(self.visible_probs(bernoulli(self.hidden_probs(v))))
        return v

    def reconstruction_error(self, v: tz.Tensor) -> tz.Tensor:
        """Mean squared error between v and its mean-field reconstruction p(v | h = p(h | v)): a progress
        monitor (not the objective CD follows, but it falls as the RBM learns the data)."""
        return ((self.visible_probs(self.hidden_probs(v)) - v) ** 2).mean()

    def forward(self, v: tz.Tensor) -> tz.Tensor:
        """The hidden probabilities p(h | v), the RBM's features of v."""
        return self.hidden_probs(v)


def contrastive_divergence(rbm: RBM, v_data: tz.Tensor, v_chain: tz.Tensor, k: int) -> tz.Tensor:
    """Write the CD-k estimate of -∂ log p(v_data)/∂θ into W.grad, b.grad and c.grad; return the chain's end.

    The negative phase runs k Gibbs steps from v_chain: the data itself for CD-k, or the persistent
    fantasy particles for PCD (they may number differently from the batch).
    """
    with tz.no_grad():
        h_data = rbm.hidden_probs(v_data)  # positive phase: p(h | v), v from the data   [batch, hidden]
        v_model = rbm.gibbs(v_chain, k)  # negative phase: samples of the model            [chains, visible]
        h_model = rbm.hidden_probs(v_model)  # [chains, hidden]
        n_data, n_model = v_data.shape[0], v_model.shape[0]
        rbm.W.grad = -(v_data.T @ h_data / n_data - v_model.T @ h_model / n_model)  # -(⟨vhᵀ⟩_data - ⟨vhᵀ⟩_model)
        rbm.b.grad = -(v_data.mean(axis=0) - v_model.mean(axis=0))  # [visible]
        rbm.c.grad = -(h_data.mean(axis=0) - h_model.mean(axis=0))  # [hidden]
    return v_model


def cd_optimizer(rbm: RBM, lr: float, momentum: float = 0.5, weight_decay: float = 1e-4) -> optim.SGD:
    """SGD with momentum for CD updates; weight decay (an L2 pull) on W only, as Hinton's guide advises."""
    return optim.SGD(
        [{"params": [rbm.W], "weight_decay": weight_decay}, {"params": [rbm.b, rbm.c], "weight_decay": 0.0}],
        lr=lr,
        momentum=momentum,
    )


def cd_step(rbm: RBM, optimizer: optim.Optimizer, v_data: tz.Tensor, k: int = 1,
            chain: tz.Tensor | None = None) -> tz.Tensor:  # fmt: skip
    """One update: CD-k when chain is None, else PCD-k continuing `chain`; returns the chain's new state."""
    v_model = contrastive_divergence(rbm, v_data, v_data if chain is None else chain, k)
    optimizer.step()
    return v_model


class DBN(nn.Module):
    """A stack of RBMs with layer sizes `sizes` (e.g. [784, 500, 500]), trained greedily bottom-up."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"a DBN needs at least two layer sizes, got {list(sizes)}")
        self.sizes = list(sizes)
        self.rbms = nn.ModuleList(RBM(n_in, n_out) for n_in, n_out in pairwise(sizes))

    def forward(self, v: tz.Tensor, depth: int | None = None) -> tz.Tensor:
        """Mean-field upward pass through the first `depth` RBMs (all by default): the features of v."""
        for rbm in list(self.rbms)[:depth]:
            v = rbm.hidden_probs(v)  # [batch, size of the next layer]
        return v


def demo() -> tuple[DBN, tz.Tensor]:
    """The 784-500-500 DBN of examples/rbm_mnist.py and a batch of binary images
    (for `python -m tinyzoo explain rbm`)."""
    return DBN([784, 500, 500]), tz.tensor((np.random.default_rng(0).random((4, 784)) < 0.5).astype(np.float32))

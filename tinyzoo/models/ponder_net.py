"""PonderNet: Learning to Ponder (Banino, Balaguer & Blundell, 2021).

A network that decides how long to think. A step function s is applied again and again to the same
input; after every step n it emits a prediction ŷ_n and the probability λ_n of halting *at* step n,
given it has not halted before:

    h_1 = s(x, h_0)                 ŷ_n = f(h_n)          λ_n = σ(g(h_n))          h_{n+1} = s(x, h_n)

The probability of halting exactly at step n is the geometric-style product

    p_n = λ_n · Π_{j<n} (1 - λ_j),        n = 1..N, renormalised over the N allowed steps: p_n / Σ_{m≤N} p_m.

Training runs all N steps and weighs every step's loss by the chance of stopping there:

    L = Σ_n p_n · BCE(ŷ_n, y)  +  β · KL(p ‖ p_G),

where p_G(n) ∝ λ_p (1 - λ_p)^{n-1} is a geometric prior truncated at N (and renormalised), whose mean
1/λ_p sets how long the network ponders a priori. The KL is taken in the paper's direction —
halting distribution first — which some public implementations reverse (nn.KLDivLoss(log p, p_G)
computes KL(p_G ‖ p)).

At evaluation the network halts by sampling: at each step it stops with probability λ_n, and the
prediction of the step where it stopped is the answer; a walk that reaches N without halting starts
again from step 1 (the renormalised p_n is exactly the distribution of where such walks stop).
Expected steps Σ_n n·p_n tell how long it thinks.

Truncation. The paper's distribution lives on n = 1, 2, ...; training needs a last step N. A common
choice (labml_nn's, and this file's first version) sets λ_N = 1, lumping all the mass left at step N
onto it. On parity that lump was a plateau: once the later steps start to answer better, the halting
mass moves late and half of it piles onto step N (≈ 14 of 20 steps, KL ≈ 3, no trend with difficulty).
Runs left the plateau, abruptly, at a random time — seed 0 after ~2,600 of its 3,000 steps with one BLAS
thread, not within them in the README's earlier two-thread run — so the seed and the summation order
decided whether a run pondered adaptively. Our reading: step N's answer gets the most training, so
stopping earlier does not pay, and the only force against the lump is the KL at β = 0.01. Renormalising
over 1..N, as the prior p_G is, leaves no such spike (the mass a small λ leaves past N is spread over
all steps in proportion); with it no run of 8 seeds reached the plateau (training KL ≤ 1.8, final mean
steps ≤ 9.6), and 6 of 8 ended with expected steps rising with the number of non-zero inputs (Spearman ρ
≥ 0.9) — as many as with the lump, where 2 of 8 stayed on or near the plateau, and with a smaller rise
(0.2–1.6 steps from 1 to 8 inputs, against 0.7–1.9 for the runs that left the plateau). See the README
row for the numbers.

Numerics: p_n is computed in log space, log p_n = log λ_n + Σ_{j<n} log(1 - λ_j) with
log σ(z) = -softplus(-z) and log(1 - σ(z)) = -softplus(z), so no probability underflows to 0 and
the KL's log p_n is always finite.

The task is the paper's parity problem (see `parity_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.errors import TinyzooError
from tinyzoo.nn import functional as F


def parity_batch(
    batch_size: int,
    n_elems: int,
    rng: np.random.Generator,
    nonzero: tuple[int, int] | None = None,
    scatter: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The parity task of PonderNet §3.1: x [batch, n_elems] float32, y [batch] float32 in {0, 1}.

    For each vector, k ~ Uniform{lo, ..., hi} with (lo, hi) = nonzero, by default (1, n_elems); the
    first k entries are independently +1 or -1 (each with probability ½) and the remaining n_elems - k
    entries are 0. The label is 1 when the number of +1 entries is odd, else 0. With scatter=True the
    k non-zero entries sit at random positions instead (as in labml_nn's data set). The extrapolation
    experiment trains on k from the lower half of the range and tests on the upper half; it needs
    scatter=True, or the inputs past position n/2 would be 0 throughout training and their weights untrained.
    """
    lo, hi = nonzero or (1, n_elems)
    if not 1 <= lo <= hi <= n_elems:
        raise TinyzooError(f"parity_batch: nonzero=({lo}, {hi}) must satisfy 1 <= lo <= hi <= n_elems={n_elems}")
    x = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(batch_size, n_elems))
    k = rng.integers(lo, hi + 1, size=(batch_size, 1))
    x[np.arange(n_elems)[None, :] >= k] = 0.0
    if scatter:
        x = rng.permuted(x, axis=1)
    y = ((x == 1.0).sum(axis=1) % 2).astype(np.float32)
    return x, y


@dataclass
class PonderOutput:
    """Everything one forward pass over all N steps produces (all tensors are [N, batch])."""

    logits: tz.Tensor  # ŷ_n as logits
    log_p: tz.Tensor  # log p_n, the log-probability of halting at step n
    halt_logits: tz.Tensor  # z_n with λ_n = σ(z_n)

    @property
    def p(self) -> tz.Tensor:
        """The halting distribution p_n."""
        return self.log_p.exp()


class PonderGRU(nn.Module):
    """PonderNet with a GRU cell as the step function s, and linear heads f (prediction) and g (halting)."""

    def __init__(self, n_elems: int, n_hidden: int, max_steps: int) -> None:
        super().__init__()
        self.n_hidden, self.max_steps = n_hidden, max_steps
        self.gru = nn.GRUCell(n_elems, n_hidden)
        self.output_layer = nn.Linear(n_hidden, 1)
        self.lambda_layer = nn.Linear(n_hidden, 1)

    def forward(self, x: tz.Tensor) -> PonderOutput:
        """Run all max_steps steps on x [batch, n_elems]."""
        h = self.gru(x)  # h_1 [batch, hidden]
        logits, halt_logits = [], []
        for n in range(1, self.max_steps + 1):
            logits.append(self.output_layer(h)[:, 0])  # ŷ_n [batch]
            halt_logits.append(self.lambda_layer(h)[:, 0])  # z_n [batch]
            if n < self.max_steps:
                h = self.gru(x, h)
        halt_logits = tz.stack(halt_logits)  # [N, batch]
        return PonderOutput(tz.stack(logits), halting_log_probs(halt_logits), halt_logits)

    def halt_by_sampling(self, x: tz.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Evaluation: stop at step n with probability λ_n, a walk that passes N starting again. Returns
        (predicted labels, steps taken) per example. Where such walks stop is distributed as the renormalised
        p_n, so the step is drawn from p_n directly (one uniform number per example, no restarts)."""
        with tz.no_grad():
            out = self.forward(x)
        cumulative = np.cumsum(out.p.numpy(), axis=0)  # P(halt at or before n)  [N, batch]
        cumulative[-1] = 1.0  # 1 up to rounding
        steps = (rng.random(x.shape[0]) < cumulative).argmax(axis=0)  # the step that halted (0-based)
        predicted = out.logits.numpy()[steps, np.arange(x.shape[0])] > 0
        return predicted.astype(np.float32), steps + 1


def halting_log_probs(halt_logits: tz.Tensor) -> tz.Tensor:
    """log p_n = log λ_n + Σ_{j<n} log(1 - λ_j) - log Z for halt logits [N, batch], Z = Σ_{n≤N} of the rest."""
    log_lambda = -F.softplus(-halt_logits)  # log σ(z_n)                                  [N, batch]
    log_continue = -F.softplus(halt_logits[:-1])  # log(1 - σ(z_n)), n < N                [N-1, batch]
    not_halted_before = tz.cumsum(log_continue, axis=0)  # Σ_{j<=n} log(1 - λ_j)            [N-1, batch]
    before = tz.concat([tz.zeros_like(halt_logits[:1]), not_halted_before], axis=0)  # Σ_{j<n} [N, batch]
    log_p = log_lambda + before  # the untruncated log p_n                                  [N, batch]
    return log_p - tz.logsumexp(log_p, axis=0, keepdims=True)  # renormalised over 1..N


def truncated_geometric(lambda_p: float, max_steps: int) -> np.ndarray:
    """p_G(n) ∝ λ_p (1 - λ_p)^{n-1} for n = 1..N, renormalised to sum to 1."""
    n = np.arange(max_steps)
    prior = lambda_p * (1 - lambda_p) ** n
    return prior / prior.sum()


def reconstruction_loss(out: PonderOutput, y: tz.Tensor) -> tz.Tensor:
    """L_rec = mean over the batch of Σ_n p_n · BCE(ŷ_n, y)."""
    targets = tz.broadcast_to(y, out.logits.shape)  # [N, batch]
    per_step = F.binary_cross_entropy_with_logits(out.logits, targets, reduction="none")
    return (out.p * per_step).sum(axis=0).mean()


def regularisation_loss(out: PonderOutput, log_prior: tz.Tensor) -> tz.Tensor:
    """KL(p ‖ p_G) = Σ_n p_n (log p_n - log p_G(n)), averaged over the batch."""
    return (out.p * (out.log_p - log_prior[:, None])).sum(axis=0).mean()


def expected_steps(out: PonderOutput) -> tz.Tensor:
    """E[steps] = Σ_n n · p_n, averaged over the batch."""
    n = tz.arange(1, out.log_p.shape[0] + 1, dtype=out.log_p.dtype, device=out.log_p.device)[:, None]
    return (out.p * n).sum(axis=0).mean()


def demo() -> tuple[PonderGRU, tz.Tensor]:
    """A small PonderNet and a batch of parity inputs (for `python -m tinyzoo explain ponder_net`)."""
    x, _ = parity_batch(4, 8, np.random.default_rng(0))
    return PonderGRU(n_elems=8, n_hidden=64, max_steps=20), tz.tensor(x)

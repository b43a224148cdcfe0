"""docs/figures/gradflow_rnn_vs_gated.png: a tanh RNN, a GRU and an LSTM on a memory task.

The class of a sequence of T = 30 random ±1 values is its first value; the model sees it only through
the recurrence. Hidden size 32, batch 32, Adam lr 3e-3, 1500 steps. The gated cells start with the
gate that keeps memory biased open (LSTM forget gate, GRU update gate: bias 1, as is common practice).
"""
import time

import numpy as np

import tinyzoo as tz
from tinyzoo import nn, optim, study
from tinyzoo.nn import functional as F

T, B, H, STEPS = 30, 32, 32, 1500


class Memory(nn.Module):
    """Read a sequence with a recurrent cell, classify from the last hidden state."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell
        self.head = nn.Linear(H, 2)

    def forward(self, xs):
        state, states = None, []
        for t in range(xs.shape[0]):
            state = self.cell(xs[t], state)
            states.append(state[0] if isinstance(state, tuple) else state)
        return self.head(states[-1]), states


def batch(rng):
    label = rng.integers(0, 2, B)
    xs = rng.choice([-1.0, 1.0], (T, B, 1)).astype(np.float32)
    xs[0, :, 0] = 2.0 * label - 1.0
    return tz.tensor(xs), tz.tensor(label)


flows = []
for label, make in (("tanh RNN", nn.RNNCell), ("GRU", nn.GRUCell), ("LSTM", nn.LSTMCell)):
    tz.manual_seed(0)
    rng = np.random.default_rng(0)
    cell = make(1, H)
    if make is not nn.RNNCell:
        cell.bias_ih.data[H:2 * H] = 1.0   # gate order: LSTM i, f, g, o; GRU r, z, n
    model = Memory(cell)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    flow = study.GradientFlow(model, label=label)
    start, correct = time.time(), []
    for step in range(STEPS):
        xs, y = batch(rng)
        logits, states = model(xs)
        loss = F.cross_entropy(logits, y)
        if step in (0, STEPS - 1):
            flow.watch(states)
        loss.backward()
        opt.step()
        flow.record(step)
        opt.zero_grad()
        correct.append(float((logits.numpy().argmax(1) == y.numpy()).mean()))
    print(f"{label}: {time.time() - start:.1f}s, accuracy over the last 50 steps {np.mean(correct[-50:]):.2f}")
    flows.append(flow)
study.compare_runs(flows, "docs/figures/gradflow_rnn_vs_gated.png")
flows[0].plot("/tmp/study/flow_rnn_per_parameter.png", per="parameter")

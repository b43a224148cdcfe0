"""docs/figures: the graph of one MLP training step, of one LSTM cell step, and of a GRU unrolled 4 steps."""
import tinyzoo as tz
from tinyzoo import nn, study
from tinyzoo.nn import functional as F

tz.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
x, y = tz.randn(8, 4), tz.randint(0, 3, (8,))
loss = F.cross_entropy(model(x), y)
study.draw_graph(loss, "docs/figures/graph_mlp_step.png", model=model, use_dot=False)

cell = nn.LSTMCell(4, 8)
h, c = cell(tz.randn(2, 4))
study.draw_graph((h ** 2).mean(), "docs/figures/graph_lstm_cell_step.png", model=cell, use_dot=False)


class Reader(nn.Module):
    """A GRU cell run over the sequence, a linear head on the last state."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, xs):
        h = None
        for x_t in xs:
            h = self.cell(x_t, h)
        return self.head(h)


reader = Reader()
with study.record_modules(reader):
    loss = F.cross_entropy(reader(tz.randn(4, 2, 4)), tz.randint(0, 3, (2,)))
study.draw_graph(loss, "docs/figures/graph_gru_unrolled_modules.png", model=reader, collapse_modules=reader,
                 use_dot=False)

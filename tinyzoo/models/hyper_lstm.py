"""HyperLSTM: an LSTM whose weights are modulated at every step by a smaller LSTM (Ha, Dai & Le, 2016).

A *dynamic hypernetwork* generates the weights of a recurrent network as it runs. Generating a full
H×H matrix per step would be far too costly, so the paper's HyperLSTM uses **weight scaling**: a
small "hyper" LSTM emits, at every step, one scale per *row* of each static weight matrix. Scaling
the rows of W by a vector d is the same as scaling W·h elementwise,

    (diag(d) W) h = d ⊙ (W h),

so a time-varying weight matrix W_t = diag(d_t) W costs one elementwise product per step.

The hyper-LSTM (hidden size N̂, small) reads the main LSTM's previous output and the input,

    x̂_t = [h_{t-1}; x_t]
    ĥ_t, ĉ_t = LSTM(x̂_t, (ĥ_{t-1}, ĉ_{t-1}))

and its output is projected to small embeddings (size N_z) for each gate y ∈ {i, f, g, o},

    z_h^y = W_ĥh^y ĥ_t + b_ĥh^y        z_x^y = W_ĥx^y ĥ_t + b_ĥx^y        z_b^y = W_ĥb^y ĥ_t

which are projected up to the main hidden size H to give the row scales and the bias,

    d_h^y = W_hz^y z_h^y        d_x^y = W_xz^y z_x^y        b^y = W_bz^y z_b^y + b_0^y.

The main LSTM then runs with layer normalisation (Ba et al. 2016) on every gate and on the cell:

    y_t = LN_y(d_h^y ⊙ W_h^y h_{t-1} + d_x^y ⊙ W_x^y x_t + b^y)        for y ∈ {i, f, g, o}
    c_t = σ(f_t) ⊙ c_{t-1} + σ(i_t) ⊙ tanh(g_t)
    h_t = σ(o_t) ⊙ tanh(LN_c(c_t)).

With d_h = d_x = 1, b = b_0 and no layer norm this is exactly an LSTM (the tests check it against
`nn.LSTMCell`). The paper's equations write ĥ_{t-1} in the z projections; like its reference code
(and labml_nn) we use ĥ_t, the hyper-LSTM's output at the same step. Deviation: the hyper-LSTM here is
the library's plain `nn.LSTMCell`, without the layer norm the paper also puts inside it.

Initialisation: the z projections start near zero with biases of 1 (z_h, z_x ≈ 1) and W_hz, W_xz are
filled with 1/N_z, so d_h, d_x ≈ 1 at the start — the network begins as a layer-normalised LSTM and
learns how to modulate it. (The weights into z are small random numbers rather than zero: with every
z_k equal, every column of W_hz would get the same gradient and the N_z dimensions would never
separate.) W_bz starts at zero, so the dynamic bias is b_0 at first.
"""

from __future__ import annotations

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.char_rnn import CellStack
from tinyzoo.nn import functional as F
from tinyzoo.nn import init

GATES = 4  # i, f, g, o, in nn.LSTMCell's order

HyperState = tuple[tz.Tensor, tz.Tensor, tz.Tensor, tz.Tensor]  # (h, c, ĥ, ĉ)


def _parameter(*shape: int, fill: float = 0.0) -> nn.Parameter:
    """A float32 Parameter of `shape` filled with `fill`."""
    return nn.Parameter(np.full(shape, fill, dtype=np.float32))


class HyperLSTMCell(nn.Module):
    """One step of the HyperLSTM (see the module docstring): x [B, I], (h, c, ĥ, ĉ) → (h', new state)."""

    def __init__(self, input_size: int, hidden_size: int, hyper_size: int = 64, n_z: int = 16,
                 layer_norm: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.input_size, self.hidden_size, self.hyper_size, self.n_z = input_size, hidden_size, hyper_size, n_z
        self.layer_norm = layer_norm
        H = hidden_size
        self.hyper = nn.LSTMCell(hidden_size + input_size, hyper_size)  # reads x̂_t = [h_{t-1}; x_t]
        # ĥ_t → z_h, z_x, z_b: N_z numbers per gate each
        self.z_h = nn.Linear(hyper_size, GATES * n_z)
        self.z_x = nn.Linear(hyper_size, GATES * n_z)
        self.z_b = nn.Linear(hyper_size, GATES * n_z, bias=False)
        for z in (self.z_h, self.z_x, self.z_b):
            init.normal_(z.weight, 0.0, 0.01)
        for z in (self.z_h, self.z_x):
            init.ones_(z.bias)
        # z → d_h, d_x, dynamic bias: one [H, N_z] projection per gate
        self.w_hz = _parameter(GATES, H, n_z, fill=1.0 / n_z)
        self.w_xz = _parameter(GATES, H, n_z, fill=1.0 / n_z)
        self.w_bz = _parameter(GATES, H, n_z)
        # the static weights whose rows get scaled, and the static bias b_0
        self.w_h = nn.Linear(H, GATES * H, bias=False)
        self.w_x = nn.Linear(input_size, GATES * H, bias=False)
        bound = 1.0 / np.sqrt(H)  # nn.LSTMCell's U(-1/√H, 1/√H), so both start alike
        for p in (self.w_h.weight, self.w_x.weight):
            init.uniform_(p, -bound, bound)
        self.bias = init.uniform_(_parameter(GATES, H), -bound, bound)
        if layer_norm:  # LN_y of each gate (its own γ, β) and LN_c of the cell
            self.gate_norm_weight = _parameter(GATES, H, fill=1.0)
            self.gate_norm_bias = _parameter(GATES, H)
            self.cell_norm = nn.LayerNorm(H)

    def initial_state(self, x: tz.Tensor) -> HyperState:
        """Zeros for (h, c) [B, H] and (ĥ, ĉ) [B, N̂], with x [B, I]'s batch size, dtype and device."""
        xp = tz.backend.xp_of(x.data)
        zeros = [tz.Tensor(xp.zeros((x.shape[0], n), dtype=x.dtype)) for n in (self.hidden_size, self.hyper_size)]
        return zeros[0], zeros[0], zeros[1], zeros[1]

    def forward(self, x: tz.Tensor, state: HyperState) -> tuple[tz.Tensor, HyperState]:
        """x [B, I], state (h, c, ĥ, ĉ) → (h_t [B, H], (h_t, c_t, ĥ_t, ĉ_t))."""
        h, c, h_hat, c_hat = state
        B, H = x.shape[0], self.hidden_size
        h_hat, c_hat = self.hyper(tz.concat([h, x], axis=-1), (h_hat, c_hat))  # [B, N̂] each
        d_h = self._per_gate(self.z_h(h_hat), self.w_hz)  # [B, 4, H]
        d_x = self._per_gate(self.z_x(h_hat), self.w_xz)  # [B, 4, H]
        b = self._per_gate(self.z_b(h_hat), self.w_bz) + self.bias  # [B, 4, H]
        wh = self.w_h(h).reshape(B, GATES, H)  # W_h^y h_{t-1}  [B, 4, H]
        wx = self.w_x(x).reshape(B, GATES, H)  # W_x^y x_t      [B, 4, H]
        gates = d_h * wh + d_x * wx + b  # [B, 4, H]
        if self.layer_norm:
            gates = F.layer_norm(gates, H) * self.gate_norm_weight + self.gate_norm_bias  # each gate on its own
        i, f, g, o = (gates[:, k] for k in range(GATES))  # [B, H] each
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * (self.cell_norm(c) if self.layer_norm else c).tanh()
        return h, (h, c, h_hat, c_hat)

    def _per_gate(self, z: tz.Tensor, w: tz.Tensor) -> tz.Tensor:
        """z [B, 4·N_z] through the gate-wise projections w [4, H, N_z] → [B, 4, H]: W^y z^y for each gate y."""
        return tz.einsum("bgz,ghz->bgh", z.reshape(z.shape[0], GATES, self.n_z), w)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, hyper_size={self.hyper_size}, n_z={self.n_z}, "
                f"layer_norm={self.layer_norm}")  # fmt: skip


class HyperLSTM(CellStack):
    """Stacked HyperLSTM cells, batch first: x [B, T, I] → (h [B, T, H], per-layer states (h, c, ĥ, ĉ))."""

    def __init__(self, input_size: int, hidden_size: int, hyper_size: int = 64, n_z: int = 16,
                 num_layers: int = 1, layer_norm: bool = True) -> None:  # fmt: skip
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        super().__init__([HyperLSTMCell(n, hidden_size, hyper_size, n_z, layer_norm) for n in sizes])


def demo() -> tuple[nn.Module, np.ndarray]:
    """A HyperLSTM language model as in examples/hyperlstm_shakespeare.py and a batch of character ids
    (for `python -m tinyzoo explain hyper_lstm`)."""
    from tinyzoo.models.char_rnn import CharLM

    ids = np.random.default_rng(0).integers(0, 64, (4, 100))  # [batch, T]
    return CharLM(64, 64, HyperLSTM(64, 128), 128), ids

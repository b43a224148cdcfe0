"""Recurrent layers: the Elman RNN, the GRU and the LSTM, as single cells and as stacked sequence layers.

Parameters follow PyTorch exactly — names, shapes, gate order and the U(-1/√H, 1/√H) initialisation —
so a `state_dict` copies across in either direction. For a layer with G gates (RNN 1, GRU 3, LSTM 4):

    weight_ih [G·H, I]   weight_hh [G·H, H]   bias_ih [G·H]   bias_hh [G·H]

Two ways to run a recurrence live here:

- The cells (`RNNCell`, `GRUCell`, `LSTMCell`) are written with ordinary tinyzoo ops, one time step per
  call. They are the readable reference, and autograd differentiates them like anything else.
- The sequence layers (`RNN`, `GRU`, `LSTM`) first project the whole input sequence in one matmul
  (x W_ihᵀ + b_ih for all T steps at once), then run the recurrence over time as *one* fused op per layer
  and direction, whose backward is backpropagation through time written out by hand on arrays. The
  fused op keeps the tape at a handful of nodes per layer instead of a dozen per step — and, above all,
  avoids slicing x_t out of a taped [T, ...] tensor, whose backward would materialise a dense
  [T, B, G·H] gradient for every step (O(T²) work). The tests check the fused layers against a loop of
  the cells, against PyTorch, and by finite differences; their backward is once-differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyzoo.autograd import ops
from tinyzoo.autograd.tensor import Tensor, record_op
from tinyzoo.backend import xp_of
from tinyzoo.errors import ShapeError
from tinyzoo.nn import functional as F
from tinyzoo.nn import init
from tinyzoo.nn.module import Module, Parameter

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell"]


def _uniform_parameters(module: Module, hidden_size: int) -> None:
    """PyTorch's recurrent initialisation: every weight and bias ~ U(-1/√H, 1/√H)."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


def _empty(*shape: int) -> Parameter:
    """A float32 Parameter of `shape`, to be filled by the initialiser."""
    return Parameter(np.zeros(shape, dtype=np.float32))


# =================================================================================================
# Cells: one time step, written with tinyzoo ops
# =================================================================================================
class _CellBase(Module):
    """The four parameters of a cell with `gates` gates, laid out as PyTorch's."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = _empty(gates * hidden_size, input_size)
        self.weight_hh = _empty(gates * hidden_size, hidden_size)
        self.bias_ih = _empty(gates * hidden_size) if bias else None
        self.bias_hh = _empty(gates * hidden_size) if bias else None
        _uniform_parameters(self, hidden_size)

    def _batched(self, x: Tensor, states: tuple[Tensor | None, ...]) -> tuple[Tensor, tuple[Tensor, ...], bool]:
        """Check x [B, I] (or unbatched [I]) and give every state as [B, H] (zeros when None)."""
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__}: expected input [batch, {self.input_size}] or "
                f"[{self.input_size}], got {x.shape}"
            )
        unbatched = x.ndim == 1
        x = x.unsqueeze(0) if unbatched else x
        full = []
        for s in states:
            if s is None:
                s = Tensor(xp_of(x.data).zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
            elif unbatched:
                s = s.unsqueeze(0)
            if s.shape != (x.shape[0], self.hidden_size):
                raise ShapeError(
                    f"{type(self).__name__}: hidden state has shape {s.shape}, "
                    f"expected {(x.shape[0], self.hidden_size)}"
                )
            full.append(s)
        return x, tuple(full), unbatched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_CellBase):
    """Elman RNN cell:  h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh),  act = tanh or relu."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, gates=1)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: x [B, I], h [B, H] (zeros when None) → h' [B, H]."""
        x, (h,), unbatched = self._batched(x, (h,))
        a = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        h = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return h.squeeze(0) if unbatched else h


class GRUCell(_CellBase):
    """Gated recurrent unit (Cho et al. 2014), gate order r, z, n as in PyTorch:

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)          reset gate
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)          update gate
    n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))  candidate (r scales the *projected* h)
    h' = (1 - z) ⊙ n + z ⊙ h
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, gates=3)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: x [B, I], h [B, H] (zeros when None) → h' [B, H]."""
        x, (h,), unbatched = self._batched(x, (h,))
        x_r, x_z, x_n = F.linear(x, self.weight_ih, self.bias_ih).chunk(3, axis=-1)  # 3 × [B, H]
        h_r, h_z, h_n = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, axis=-1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        h = (1 - z) * n + z * h
        return h.squeeze(0) if unbatched else h


class LSTMCell(_CellBase):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997), gate order i, f, g, o as in PyTorch:

    i  = σ(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f  = σ(W_if x + b_if + W_hf h + b_hf)      forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)   candidate cell
    o  = σ(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias, gates=4)

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """One step: x [B, I], hx = (h, c) each [B, H] (zeros when None) → (h', c')."""
        x, (h, c), unbatched = self._batched(x, (None, None) if hx is None else hx)
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)  # [B, 4H]
        i, f, g, o = gates.chunk(4, axis=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


# =================================================================================================
# Fused recurrences: a whole sequence of one layer and direction as one op, with BPTT by hand
# =================================================================================================
def _sigmoid(xp: Any, a: Any) -> Any:
    """σ(a) = ½ + ½ tanh(a / 2): one transcendental and no overflow for any a."""
    return 0.5 * xp.tanh(0.5 * a) + 0.5


def _steps(length: int, reverse: bool) -> range:
    """Time indices in processing order."""
    return range(length - 1, -1, -1) if reverse else range(length)


def _recurrence_grads(
    inputs: tuple[Tensor, ...], d_xproj: Any, d_hproj: Any, h_prev: Any, d_states: tuple[Any, ...]
) -> tuple[Tensor | None, ...]:
    """The input gradients of a fused layer, in the order (xproj, w_hh, b_hh, *initial states).

    With hproj_t = h_{t-1} W_hhᵀ + b_hh, the weight gradient is summed over time in one matmul:
    dW_hh = Σ_t d_hproj_tᵀ h_{t-1}, and db_hh = Σ_t d_hproj_t.
    """
    gh, hidden = d_hproj.shape[-1], h_prev.shape[-1]
    d_w = d_hproj.reshape(-1, gh).T @ h_prev.reshape(-1, hidden)  # [G·H, H]
    d_b = d_hproj.sum(axis=(0, 1))  # [G·H]
    arrays = (d_xproj, d_w, d_b, *d_states)
    return tuple(Tensor(a) if t.requires_grad else None for t, a in zip(inputs, arrays))


def _rnn_layer(xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, reverse: bool, relu: bool) -> Tensor:
    """Elman recurrence h_t = act(xproj_t + h_{t-1} W_hhᵀ + b_hh) over xproj [T, B, H] → h [T, B, H].

    Backward: with δ_t = ∂L/∂h_t (from the output and from step t+1), ∂L/∂a_t = δ_t ⊙ act'(a_t) and
    the gradient passed to h_{t-1} is (∂L/∂a_t) W_hh.
    """
    xp = xp_of(xproj.data)
    w, b = w_hh.data, b_hh.data
    hs = xp.empty(xproj.shape, dtype=xproj.dtype)  # [T, B, H] every h_t
    h_prev = xp.empty_like(hs)  # [T, B, H] the state each step read
    h = h0.data
    for t in _steps(len(hs), reverse):
        h_prev[t] = h
        a = xproj.data[t] + h @ w.T + b
        h = xp.maximum(a, 0) if relu else xp.tanh(a)
        hs[t] = h

    def backward(grad: Tensor, _: Tensor) -> tuple:
        d_a = xp.empty_like(hs)  # [T, B, H] ∂L/∂a_t
        dh = xp.zeros_like(h0.data)
        for t in _steps(len(hs), not reverse):
            dh = dh + grad.data[t]
            d_a[t] = dh * (hs[t] > 0) if relu else dh * (1 - hs[t] * hs[t])
            dh = d_a[t] @ w
        return _recurrence_grads((xproj, w_hh, b_hh, h0), d_a, d_a, h_prev, (dh,))

    return record_op("rnn_layer", hs, (xproj, w_hh, b_hh, h0), backward, once_differentiable=True)


def _gru_layer(xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, reverse: bool) -> Tensor:
    """GRU recurrence over xproj [T, B, 3H] (= x W_ihᵀ + b_ih, gates r, z, n) → h [T, B, H].

    Backward, with δ = ∂L/∂h_t and hn = W_hn h_{t-1} + b_hn:
        ∂n_pre = δ (1 - z)(1 - n²)      ∂z_pre = δ (h_{t-1} - n) z (1 - z)
        ∂r_pre = ∂n_pre hn r (1 - r)    ∂hn = ∂n_pre r
        ∂h_{t-1} = δ z + [∂r_pre, ∂z_pre, ∂hn] W_hh
    """
    xp = xp_of(xproj.data)
    H = h0.shape[-1]
    w, b = w_hh.data, b_hh.data
    T, B = xproj.shape[:2]
    hs = xp.empty((T, B, H), dtype=xproj.dtype)  # [T, B, H] every h_t
    h_prev = xp.empty_like(hs)
    saved = xp.empty((T, B, 4 * H), dtype=xproj.dtype)  # r, z, n and hn per step
    h = h0.data
    for t in _steps(T, reverse):
        h_prev[t] = h
        x_t, h_proj = xproj.data[t], h @ w.T + b  # [B, 3H] each
        r = _sigmoid(xp, x_t[:, :H] + h_proj[:, :H])
        z = _sigmoid(xp, x_t[:, H : 2 * H] + h_proj[:, H : 2 * H])
        hn = h_proj[:, 2 * H :]
        n = xp.tanh(x_t[:, 2 * H :] + r * hn)
        h = n + z * (h - n)
        hs[t] = h
        saved[t] = xp.concatenate([r, z, n, hn], axis=-1)

    def backward(grad: Tensor, _: Tensor) -> tuple:
        d_x = xp.empty_like(xproj.data)  # [T, B, 3H] ∂L/∂xproj_t
        d_hproj = xp.empty_like(xproj.data)  # [T, B, 3H] ∂L/∂(h_{t-1} W_hhᵀ + b_hh)
        dh = xp.zeros_like(h0.data)
        for t in _steps(T, not reverse):
            r, z, n, hn = (saved[t, :, k * H : (k + 1) * H] for k in range(4))
            dh = dh + grad.data[t]
            d_n = dh * (1 - z) * (1 - n * n)
            d_z = dh * (h_prev[t] - n) * z * (1 - z)
            d_r = d_n * hn * r * (1 - r)
            d_x[t] = xp.concatenate([d_r, d_z, d_n], axis=-1)
            d_hproj[t] = xp.concatenate([d_r, d_z, d_n * r], axis=-1)
            dh = dh * z + d_hproj[t] @ w
        return _recurrence_grads((xproj, w_hh, b_hh, h0), d_x, d_hproj, h_prev, (dh,))

    return record_op("gru_layer", hs, (xproj, w_hh, b_hh, h0), backward, once_differentiable=True)


def _lstm_layer(xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: Tensor, reverse: bool) -> Tensor:
    """LSTM recurrence over xproj [T, B, 4H] (= x W_ihᵀ + b_ih, gates i, f, g, o) → [T, 2, B, H] (h_t, c_t).

    Backward, with δh = ∂L/∂h_t and δc = ∂L/∂c_t + δh o (1 - tanh² c_t):
        ∂i_pre = δc g i (1 - i)    ∂f_pre = δc c_{t-1} f (1 - f)
        ∂g_pre = δc i (1 - g²)     ∂o_pre = δh tanh(c_t) o (1 - o)
        ∂h_{t-1} = ∂gates W_hh     ∂c_{t-1} = δc f
    """
    xp = xp_of(xproj.data)
    H = h0.shape[-1]
    w, b = w_hh.data, b_hh.data
    T, B = xproj.shape[:2]
    acts = xp.empty_like(xproj.data)  # [T, B, 4H] i, f, g, o after their nonlinearities
    hc = xp.empty((T, 2, B, H), dtype=xproj.dtype)  # h_t and c_t
    h_prev = xp.empty((T, B, H), dtype=xproj.dtype)
    c_prev = xp.empty_like(h_prev)
    h, c = h0.data, c0.data
    for t in _steps(T, reverse):
        h_prev[t], c_prev[t] = h, c
        a = xproj.data[t] + h @ w.T + b  # [B, 4H]
        acts[t, :, : 2 * H] = _sigmoid(xp, a[:, : 2 * H])  # i, f
        acts[t, :, 2 * H : 3 * H] = xp.tanh(a[:, 2 * H : 3 * H])  # g
        acts[t, :, 3 * H :] = _sigmoid(xp, a[:, 3 * H :])  # o
        i, f, g, o = (acts[t, :, k * H : (k + 1) * H] for k in range(4))
        c = f * c + i * g
        h = o * xp.tanh(c)
        hc[t, 0], hc[t, 1] = h, c

    def backward(grad: Tensor, _: Tensor) -> tuple:
        d_a = xp.empty_like(acts)  # [T, B, 4H] ∂L/∂(pre-activation gates)
        dh, dc = xp.zeros_like(h0.data), xp.zeros_like(c0.data)
        for t in _steps(T, not reverse):
            i, f, g, o = (acts[t, :, k * H : (k + 1) * H] for k in range(4))
            tanh_c = xp.tanh(hc[t, 1])
            dh = dh + grad.data[t, 0]
            dc = dc + grad.data[t, 1] + dh * o * (1 - tanh_c * tanh_c)
            d_a[t, :, :H] = dc * g * i * (1 - i)
            d_a[t, :, H : 2 * H] = dc * c_prev[t] * f * (1 - f)
            d_a[t, :, 2 * H : 3 * H] = dc * i * (1 - g * g)
            d_a[t, :, 3 * H :] = dh * tanh_c * o * (1 - o)
            dh = d_a[t] @ w
            dc = dc * f
        return _recurrence_grads((xproj, w_hh, b_hh, h0, c0), d_a, d_a, h_prev, (dh, dc))

    return record_op("lstm_layer", hc, (xproj, w_hh, b_hh, h0, c0), backward, once_differentiable=True)


# =================================================================================================
# Stacked, optionally bidirectional sequence layers
# =================================================================================================
class _RNNBase(Module):
    """Shared body of RNN, GRU and LSTM: parameters per layer and direction, stacking, dropout."""

    gates = 1
    has_cell_state = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        gh = self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{layer}{suffix}", _empty(gh, layer_input))
                setattr(self, f"weight_hh_l{layer}{suffix}", _empty(gh, hidden_size))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", _empty(gh))
                    setattr(self, f"bias_hh_l{layer}{suffix}", _empty(gh))
        _uniform_parameters(self, hidden_size)

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse")[: self.num_directions]

    def extra_repr(self) -> str:
        extras = [f"{self.input_size}, {self.hidden_size}"]
        extras += [f"num_layers={self.num_layers}"] if self.num_layers > 1 else []
        extras += ["batch_first=True"] if self.batch_first else []
        extras += [f"dropout={self.dropout}"] if self.dropout else []
        extras += ["bidirectional=True"] if self.bidirectional else []
        return ", ".join(extras)

    def _initial_state(self, state: Tensor | None, x: Tensor, unbatched: bool, what: str) -> Tensor:
        """The [layers · directions, B, H] initial state: zeros when None, checked otherwise."""
        shape = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if state is None:
            return Tensor(xp_of(x.data).zeros(shape, dtype=x.dtype))
        state = state.unsqueeze(1) if unbatched else state
        if state.shape != shape:
            raise ShapeError(
                f"{type(self).__name__}: {what} has shape {state.shape}, expected {shape} "
                "(num_layers · num_directions, batch, hidden_size)"
            )
        return state

    def _direction(self, x: Tensor, layer: int, suffix: str, h0: Tensor, c0: Tensor | None) -> tuple:
        """One layer in one direction over x [T, B, I] → (h [T, B, H], h_n [B, H], c_n [B, H] or None)."""
        T, B, _ = x.shape
        w_ih = getattr(self, f"weight_ih_l{layer}{suffix}")
        w_hh = getattr(self, f"weight_hh_l{layer}{suffix}")
        if self.bias:
            b_ih, b_hh = getattr(self, f"bias_ih_l{layer}{suffix}"), getattr(self, f"bias_hh_l{layer}{suffix}")
        else:
            b_ih, b_hh = None, Tensor(xp_of(w_hh.data).zeros(w_hh.shape[0], dtype=w_hh.dtype))
        xproj = F.linear(x.reshape(T * B, -1), w_ih, b_ih).reshape(T, B, -1)  # [T, B, G·H] all steps at once
        reverse = suffix == "_reverse"
        h_seq, c_seq = self._recurrence(xproj, w_hh, b_hh, h0, c0, reverse)
        last = 0 if reverse else -1  # the reverse direction ends at t = 0
        return h_seq, h_seq[last], None if c_seq is None else c_seq[last]

    def forward(self, x: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        """x [T, B, I] ([B, T, I] if batch_first, or unbatched [T, I]) → (output [T, B, D·H], h_n [L·D, B, H])."""
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__}: expected input [seq, batch, {self.input_size}] "
                f"(or [batch, seq, ...] with batch_first, or unbatched [seq, ...]), got {x.shape}"
            )
        unbatched = x.ndim == 2
        x = x.unsqueeze(1) if unbatched else (x.swapaxes(0, 1) if self.batch_first else x)  # [T, B, I]
        if self.has_cell_state:
            h0, c0 = (None, None) if hx is None else hx
        else:
            h0, c0 = hx, None
        h0 = self._initial_state(h0, x, unbatched, "h0")
        c0 = self._initial_state(c0, x, unbatched, "c0") if self.has_cell_state else None
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = F.dropout(x, self.dropout, self.training)  # between layers, never after the last
            outputs = []
            for direction, suffix in enumerate(self._suffixes()):
                k = layer * self.num_directions + direction
                out, h_n, c_n = self._direction(x, layer, suffix, h0[k], None if c0 is None else c0[k])
                outputs.append(out)
                finals_h.append(h_n)
                finals_c.append(c_n)
            x = ops.concat(outputs, axis=-1) if len(outputs) > 1 else outputs[0]  # [T, B, D·H]
        output = x.squeeze(1) if unbatched else (x.swapaxes(0, 1) if self.batch_first else x)
        h_n = ops.stack(finals_h)  # [L·D, B, H]
        h_n = h_n.squeeze(1) if unbatched else h_n
        if not self.has_cell_state:
            return output, h_n
        c_n = ops.stack(finals_c)
        return output, (h_n, c_n.squeeze(1) if unbatched else c_n)


class RNN(_RNNBase):
    """Stacked Elman RNN: per layer h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), act tanh or relu.

    forward(x, h0=None) → (output [T, B, D·H], h_n [L·D, B, H]) with D = 2 when bidirectional; the
    reverse direction reads the sequence backwards and its outputs sit in the upper H features.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity

    def _recurrence(self, xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: None, reverse: bool) -> tuple:
        """The fused Elman recurrence → (h [T, B, H], None)."""
        return _rnn_layer(xproj, w_hh, b_hh, h0, reverse, relu=self.nonlinearity == "relu"), None


class GRU(_RNNBase):
    """Stacked GRU; each layer applies `GRUCell`'s equations at every step (see there).

    forward(x, h0=None) → (output [T, B, D·H], h_n [L·D, B, H]).
    """

    gates = 3

    def _recurrence(self, xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: None, reverse: bool) -> tuple:
        """The fused GRU recurrence → (h [T, B, H], None)."""
        return _gru_layer(xproj, w_hh, b_hh, h0, reverse), None


class LSTM(_RNNBase):
    """Stacked LSTM; each layer applies `LSTMCell`'s equations at every step (see there).

    forward(x, (h0, c0)=None) → (output [T, B, D·H], (h_n, c_n) each [L·D, B, H]).
    """

    gates = 4
    has_cell_state = True

    def _recurrence(self, xproj: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, c0: Tensor, reverse: bool) -> tuple:
        """The fused LSTM recurrence → (h [T, B, H], c [T, B, H])."""
        hc = _lstm_layer(xproj, w_hh, b_hh, h0, c0, reverse)  # [T, 2, B, H]
        return hc[:, 0], hc[:, 1]

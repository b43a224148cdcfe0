"""The Transformer: an encoder-decoder built from attention alone (Vaswani et al. 2017, "Attention Is All You Need").

A source sequence x_1..x_S is read by an encoder, and a target y_1..y_T is generated one token at a
time by a decoder that looks at everything the encoder produced and at the tokens it has generated.

Embeddings. Tokens become vectors E[x] · √d_model, plus a fixed sinusoidal position code (§3.5)

    PE(pos, 2k) = sin(pos / 10000^(2k/d_model)),      PE(pos, 2k+1) = cos(pos / 10000^(2k/d_model)),

whose wavelengths form a geometric progression from 2π to 10000·2π, so PE(pos + δ) is a linear
function of PE(pos) for every offset δ. The tables E start at N(0, 1/d_model), so E[x]·√d_model has
unit scale, like the position code. (`position="t5"` drops the code and adds T5's relative position
bias to the self-attention scores instead: see `tinyzoo.models.t5_bias`.)

Encoder. N blocks of  x ← x + SelfAttention(x);  x ← x + FFN(x)  (each with a LayerNorm, see below).
Padding keys are masked out, so a padded sequence gives the same result as the unpadded one.

Decoder. N blocks of  y ← y + CausalSelfAttention(y);  y ← y + CrossAttention(y, memory);  y ← y + FFN(y).
The causal mask lets position t attend to positions ≤ t only, so the output at t cannot depend on any
later target token; that is what makes teacher forcing legal. Training feeds  BOS y_1 .. y_{T-1}  and
asks for  y_1 .. y_T  (= .. EOS) at every position at once:

    L = − Σ_t log p(y_t | y_<t, x),      p(· | y_<t, x) = softmax(W_o decoder(y_<t, x)_t + b_o)

(padded targets are ignored).

Normalisation. The paper puts the LayerNorm after each residual sum (post-norm, norm_first=False);
most later models put it before the sublayer and add a final LayerNorm after each stack (pre-norm,
norm_first=True), which trains without learning-rate warm-up at depth. Both are `TransformerBlock`s.

Decoding. `greedy_decode` appends the most probable token until EOS. `beam_search` keeps the k most
probable partial sequences (by Σ log p), extends each by every token, keeps the best k of the k·V
candidates, and finally picks the hypothesis with the best score / lp(length), with GNMT's length
penalty lp(n) = ((5 + n) / 6)^α (Wu et al. 2016; α = 0 means no normalisation). With k = 1 it is greedy.

The task data for the example (reverse or sort strings) is at the end of this file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.models.t5_bias import RelativePositionBias
from tinyzoo.nn import functional as F
from tinyzoo.nn import init


def sinusoidal_positions(length: int, d_model: int) -> np.ndarray:
    """PE [length, d_model]: sin in the even columns, cos in the odd ones (§3.5 of the paper)."""
    pos = np.arange(length)[:, None]  # [L, 1]
    inverse_wavelength = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)  # [⌈d/2⌉]
    angles = pos * inverse_wavelength  # [L, ⌈d/2⌉]
    pe = np.zeros((length, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe


def add_positions(x: tz.Tensor) -> tz.Tensor:
    """x [B, L, d] + PE [L, d] (a constant, made on x's device in x's dtype)."""
    pe = sinusoidal_positions(x.shape[1], x.shape[2])
    return x + tz.tensor(pe, device=x.device, dtype=x.dtype)


class Transformer(nn.Module):
    """Encoder-decoder Transformer: (source ids [B, S], target-input ids [B, T]) → logits [B, T, tgt_vocab]."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        d_ff: int = 512,
        dropout: float = 0.1,
        norm_first: bool = True,
        position: str = "sinusoidal",
        activation: str = "relu",
        *,
        pad_id: int,
        bos_id: int,
        eos_id: int,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        if position not in ("sinusoidal", "t5"):
            raise ValueError(f"Transformer: position must be 'sinusoidal' or 't5', got {position!r}")
        self.d_model, self.position, self.norm_first = d_model, position, norm_first
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id  # the special tokens of the vocabularies
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        for table in (self.src_embed.weight, self.tgt_embed.weight):
            init.normal_(table, std=d_model**-0.5)
            table.data[pad_id] = 0

        def block(decoder: bool) -> nn.TransformerBlock:
            return nn.TransformerBlock(d_model, num_heads, d_ff, dropout, norm_first, activation,
                                       causal=decoder, cross_attention=decoder)  # fmt: skip

        self.encoder = nn.ModuleList([block(decoder=False) for _ in range(num_encoder_layers)])
        self.decoder = nn.ModuleList([block(decoder=True) for _ in range(num_decoder_layers)])
        # Pre-norm leaves the residual stream un-normalised: one last LayerNorm closes each stack.
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        if position == "t5":  # one table per stack, shared by its layers; cross-attention gets none (as T5)
            self.encoder_bias = RelativePositionBias(num_heads, True, num_buckets, max_distance)
            self.decoder_bias = RelativePositionBias(num_heads, False, num_buckets, max_distance)
        self.generator = nn.Linear(d_model, tgt_vocab)

    def extra_repr(self) -> str:
        norm = "pre-norm" if self.norm_first else "post-norm"
        return f"d_model={self.d_model}, {norm}, position={self.position}"

    def _embed(self, table: nn.Embedding, ids: np.ndarray) -> tz.Tensor:
        """E[ids] · √d_model, plus the sinusoidal code unless positions come from T5 biases.   [B, L, d]"""
        x = table(ids) * math.sqrt(self.d_model)
        return add_positions(x) if self.position == "sinusoidal" else x

    def encode(self, src: np.ndarray) -> tuple[tz.Tensor, np.ndarray]:
        """Source ids [B, S] → (memory [B, S, d], padding mask [B, S], True = PAD)."""
        src = _ids(src)
        padding = src == self.pad_id  # [B, S]
        x = self._embed(self.src_embed, src)  # [B, S, d]
        bias = self.encoder_bias(src.shape[1], src.shape[1]) if self.position == "t5" else None  # [1, h, S, S]
        for block in self.encoder:
            x = block(x, key_padding_mask=padding, attn_bias=bias)
        return self.encoder_norm(x), padding

    def decode(self, tgt_in: np.ndarray, memory: tz.Tensor, memory_padding: np.ndarray) -> tz.Tensor:
        """Target-input ids [B, T] (BOS first) and the encoder's memory → next-token logits [B, T, tgt_vocab].

        No target padding mask is needed: padding only follows EOS, so the causal mask already hides it
        from every real position (and the loss ignores the padded positions themselves).
        """
        tgt_in = _ids(tgt_in)
        y = self._embed(self.tgt_embed, tgt_in)  # [B, T, d]
        bias = self.decoder_bias(tgt_in.shape[1], tgt_in.shape[1]) if self.position == "t5" else None
        for block in self.decoder:
            y = block(y, memory, memory_key_padding_mask=memory_padding, attn_bias=bias)
        return self.generator(self.decoder_norm(y))  # [B, T, V]

    def forward(self, src: np.ndarray, tgt_in: np.ndarray) -> tz.Tensor:
        """Teacher forcing: logits [B, T, V] for every target position at once."""
        memory, padding = self.encode(src)
        return self.decode(tgt_in, memory, padding)

    def greedy_decode(self, src: np.ndarray, max_len: int) -> np.ndarray:
        """The most probable next token, again and again: ids [B, ≤ max_len] without BOS, PAD after EOS.

        Like beam_search, it runs the model as it is: call model.eval() first when it has dropout.
        """
        with tz.no_grad():
            memory, padding = self.encode(src)
            out = np.full((len(padding), 1), self.bos_id)  # [B, t + 1]
            done = np.zeros(len(padding), dtype=bool)
            for _ in range(max_len):
                logits = self.decode(out, memory, padding)[:, -1]  # [B, V]
                token = np.where(done, self.pad_id, logits.argmax(axis=-1).numpy())
                out = np.concatenate([out, token[:, None]], axis=1)
                done |= token == self.eos_id
                if done.all():
                    break
        return out[:, 1:]

    def beam_search(
        self,
        src: np.ndarray,
        max_len: int,
        beam_width: int = 4,
        length_penalty: float = 0.0,
    ) -> np.ndarray:
        """Beam search with k = beam_width hypotheses per sentence: ids [B, ≤ max_len] like greedy_decode.

        A finished hypothesis (it has emitted EOS) stays in the beam and is extended by PAD at no cost.
        The answer is the hypothesis with the best Σ log p / ((5 + length) / 6)^length_penalty.
        """
        k = beam_width
        with tz.no_grad():
            memory, padding = self.encode(src)
            B = len(padding)
            memory = tz.repeat_interleave(memory, k, axis=0)  # [B·k, S, d]
            padding = np.repeat(padding, k, axis=0)  # [B·k, S]
            seqs = np.full((B, k, 1), self.bos_id)  # [B, k, t + 1]
            scores = np.full((B, k), -np.inf)  # Σ log p of each hypothesis                     [B, k]
            scores[:, 0] = 0.0  # one live hypothesis to start with, so the k first picks differ
            done = np.zeros((B, k), dtype=bool)
            for _ in range(max_len):
                logits = self.decode(seqs.reshape(B * k, -1), memory, padding)[:, -1]  # [B·k, V]
                log_p = logits.log_softmax(axis=-1).numpy().reshape(B, k, -1)  # [B, k, V]
                log_p[done] = -np.inf
                log_p[done, self.pad_id] = 0.0
                V = log_p.shape[-1]
                candidates = (scores[..., None] + log_p).reshape(B, k * V)  # [B, k·V]
                best = np.argsort(-candidates, axis=1, kind="stable")[:, :k]  # [B, k]
                parent, token = np.divmod(best, V)
                seqs = np.concatenate([np.take_along_axis(seqs, parent[..., None], 1), token[..., None]], axis=2)
                scores = np.take_along_axis(candidates, best, 1)
                done = np.take_along_axis(done, parent, 1) | (token == self.eos_id)
                if done.all():
                    break
        lengths = (seqs[:, :, 1:] != self.pad_id).sum(axis=2)  # tokens up to and including EOS  [B, k]
        normalised = scores / ((5.0 + lengths) / 6.0) ** length_penalty
        pick = normalised.argmax(axis=1)  # [B]
        return seqs[np.arange(B), pick, 1:]


def sequence_loss(logits: tz.Tensor, targets: Any, pad_id: int) -> tz.Tensor:
    """Mean cross-entropy of logits [B, T, V] against target ids [B, T], ignoring PAD targets."""
    return F.sequence_cross_entropy(logits, _ids(targets), ignore_index=pad_id)


def _ids(ids: Any) -> Any:
    """Token ids as an array where they are (a host list or array, or a tensor's array on the GPU): the
    masks are computed beside them, so ids on the GPU never come back to the host."""
    return ids.data if isinstance(ids, tz.Tensor) else np.asarray(ids)


# =================================================================================================
# The example's task: reverse (or sort) random strings
# =================================================================================================
PAD, BOS, EOS = 0, 1, 2  # the special tokens of the task's vocabulary; symbols start at 3


def seq2seq_batch(
    task: str, batch_size: int, max_len: int, alphabet: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random strings of length 1..max_len over `alphabet` symbols (ids 3..) and their reversal or sorting.

    Returns (src [B, max_len + 1], tgt_in [B, max_len + 1], tgt_out [B, max_len + 1]), all int64:
    src = x_1..x_n EOS PAD..,  tgt_in = BOS y_1..y_n PAD..,  tgt_out = y_1..y_n EOS PAD..
    """
    if task not in ("reverse", "sort"):
        raise ValueError(f"seq2seq_batch: task must be 'reverse' or 'sort', got {task!r}")
    lengths = rng.integers(1, max_len + 1, size=batch_size)  # [B]
    symbols = rng.integers(3, 3 + alphabet, size=(batch_size, max_len))  # [B, max_len]
    src = np.full((batch_size, max_len + 1), PAD)
    tgt_in, tgt_out = src.copy(), src.copy()
    for b, n in enumerate(lengths):
        x = symbols[b, :n]
        y = x[::-1] if task == "reverse" else np.sort(x)
        src[b, : n + 1] = [*x, EOS]
        tgt_in[b, : n + 1] = [BOS, *y]
        tgt_out[b, : n + 1] = [*y, EOS]
    return src, tgt_in, tgt_out


def exact_match(predicted: np.ndarray, tgt_out: np.ndarray) -> np.ndarray:
    """Per sequence: True when predicted ids [B, T'] equal tgt_out [B, T] up to and including EOS."""
    width = max(predicted.shape[1], tgt_out.shape[1])

    def padded(ids: np.ndarray) -> np.ndarray:
        return np.pad(ids, ((0, 0), (0, width - ids.shape[1])), constant_values=PAD)

    return (padded(predicted) == padded(tgt_out)).all(axis=1)


def demo() -> tuple[Transformer, tuple[np.ndarray, np.ndarray]]:
    """A small Transformer and a batch of (source, target-input) ids (for `python -m tinyzoo explain transformer`)."""
    src, tgt_in, _ = seq2seq_batch("reverse", 4, 20, 10, np.random.default_rng(0))
    return Transformer(13, 13, d_model=64, num_heads=4, d_ff=256, pad_id=PAD, bos_id=BOS, eos_id=EOS), (src, tgt_in)

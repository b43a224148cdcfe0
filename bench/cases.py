"""The benchmark cases: each builds one step per peer with the same shapes, dtype, weights and data.

A builder returns `Built`: zero-argument steps keyed by peer name (tinyzoo first), each returning
the loss (a float) so the runner can check that the peers agree before timing them. Train steps
(MLP, CNN) also apply an SGD update; the others are one forward and one backward. Per-op and MLP
steps are the ones of bench_ops.py, reused; the rest are written here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernels import cora_like_graph  # also sets OMP_WAIT_POLICY=passive before Numba loads (see there)
from bench_ops import CHAIN_LENGTH, LR, MlpData, chain_tinyzoo, chain_torch, mlp_step_numpy, mlp_step_tinyzoo
from bench_ops import mlp_step_torch as mlp_step_torch_cpu
from peers import Device, installed, to_numpy

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.kernels import dynamic_routing
from tinyzoo.models.gat import GATLayer
from tinyzoo.models.graph_common import make_graph
from tinyzoo.nn import functional as F

Step = Callable[[], float]


@dataclass
class Built:
    """The steps of one case at one size, keyed by peer ("tinyzoo" first), and notes on skipped peers."""

    steps: dict[str, Step]
    notes: list[str] = field(default_factory=list)


@dataclass
class Case:
    """A named benchmark: `build(quick, device)` makes its steps."""

    key: str
    title: str
    build: Callable[[bool, Device], Built]


def uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float, dtype: Any) -> np.ndarray:
    """U(-bound, bound) draws of `shape` in `dtype` (the shared initial weights)."""
    return rng.uniform(-bound, bound, shape).astype(dtype)


def tz_step(params: list[tz.Tensor], loss_fn: Callable[[], tz.Tensor], lr: float = 0.0) -> Step:
    """Zero the gradients, forward, backward and (when lr > 0) an SGD update, through tinyzoo."""

    def step() -> float:
        for p in params:
            p.grad = None
        loss = loss_fn()
        loss.backward()
        if lr:
            with tz.no_grad():
                for p in params:
                    p.data -= lr * p.grad.data
        return to_numpy(loss.data)

    return step


def torch_step(params: list[Any], loss_fn: Callable[[], Any], lr: float = 0.0) -> Step:
    """The same step through PyTorch eager."""
    import torch

    def step() -> float:
        for p in params:
            p.grad = None
        loss = loss_fn()
        loss.backward()
        if lr:
            with torch.no_grad():
                for p in params:
                    p -= lr * p.grad
        return float(loss.detach())

    return step


def load_torch(module: Any, state: dict[str, np.ndarray]) -> Any:
    """Copy NumPy arrays into a torch module's parameters by name."""
    import torch

    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return module


def skip(notes: list[str], peer: str, device: Device) -> bool:
    """True (and a note) when `peer` cannot run here."""
    if device.allows(peer) and (not peer.startswith("torch") or device.torch_ok()):
        return False
    notes.append(f"{peer}: skipped ({'not installed' if not installed(peer.split()[0]) else 'CPU-only'})")
    return True


def cpu_only(case: str, device: Device) -> Built | None:
    """An empty Built with a note when a CPU-only case is asked for on the GPU."""
    return Built({}, [f"{case}: CPU-only case (reuses bench_ops.py's NumPy-bound steps), skipped on the GPU"]) \
        if device.gpu else None  # fmt: skip


# ----- (1) per-op overhead ---------------------------------------------------------------------------
def chain_autograd(x0: np.ndarray) -> float:
    """bench_ops' 200-op chain through HIPS autograd."""
    import autograd.numpy as anp
    from autograd import grad

    def f(x: Any) -> Any:
        y = x
        for _ in range(CHAIN_LENGTH):
            y = anp.tanh(y * 0.9 + 0.1) - 0.05
        return anp.sum(y)

    return float(grad(f)(x0).sum())


def chain_mygrad(x0: np.ndarray) -> float:
    """bench_ops' 200-op chain through mygrad."""
    import mygrad as mg

    x = mg.tensor(x0)
    y = x
    for _ in range(CHAIN_LENGTH):
        y = mg.tanh(y * 0.9 + 0.1) - 0.05
    mg.sum(y).backward()
    return float(x.grad.sum())


def build_chain(quick: bool, device: Device) -> Built:
    """200 tiny elementwise ops on a (4, 4) tensor, forward + backward (already tiny: same in --quick)."""
    if (skipped := cpu_only("per-op", device)) is not None:
        return skipped
    x0 = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    built = Built({"tinyzoo": lambda: chain_tinyzoo(x0)})
    for peer, fn in (("torch", chain_torch), ("autograd", chain_autograd), ("mygrad", chain_mygrad)):
        if not skip(built.notes, peer, device):
            built.steps[peer] = lambda fn=fn: fn(x0)
    return built


# ----- (2) MLP train step -----------------------------------------------------------------------------
def mlp_data(batch: int, dtype: Any) -> MlpData:
    """bench_ops' MLP weights (cast to dtype) with a batch of `batch` random inputs and labels."""
    data = MlpData()
    rng = np.random.default_rng(1)
    data.x, data.y = rng.standard_normal((batch, 784)).astype(dtype), rng.integers(0, 10, batch)
    for name in ("w1", "b1", "w2", "b2"):
        setattr(data, name, getattr(data, name).astype(dtype))
    return data


def mlp_loss(params: list[Any], x: Any, y: np.ndarray, xp: Any) -> Any:
    """Cross-entropy of the 784-256-10 ReLU MLP written against a NumPy-like module `xp` (autograd, mygrad)."""
    w1, b1, w2, b2 = params
    logits = xp.maximum(x @ w1 + b1, 0) @ w2 + b2
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    return -xp.mean(log_probs[np.arange(len(y)), y])


def mlp_step_autograd(data: MlpData, params: list[np.ndarray]) -> float:
    """One SGD step with gradients from HIPS autograd."""
    import autograd.numpy as anp
    from autograd import value_and_grad

    loss, grads = value_and_grad(lambda p: mlp_loss(p, data.x, data.y, anp))(params)
    for p, g in zip(params, grads):
        p -= LR * g
    return float(loss)


def mlp_step_mygrad(data: MlpData, params: list[Any]) -> float:
    """One SGD step with gradients from mygrad."""
    import mygrad as mg

    loss = mlp_loss(params, data.x, data.y, mg)
    loss.backward()
    for p in params:
        p.data -= LR * p.grad
    return float(loss.item())


def build_mlp(quick: bool, device: Device, batch: int = 128, dtype: Any = np.float32) -> Built:
    """MLP 784-256-10 SGD step at `batch` (8 in --quick)."""
    if (skipped := cpu_only("MLP", device)) is not None:
        return skipped
    data = mlp_data(8 if quick else batch, dtype)
    numpy_params = data.weights()
    tz_params = [tz.tensor(w, requires_grad=True) for w in data.weights()]
    built = Built({"tinyzoo": lambda: mlp_step_tinyzoo(data, tz_params), "numpy (hand)": lambda: mlp_step_numpy(
        data, numpy_params)})  # fmt: skip
    if not skip(built.notes, "torch", device):
        import torch

        torch_params = [torch.tensor(w, requires_grad=True) for w in data.weights()]
        built.steps["torch"] = lambda: mlp_step_torch_cpu(data, torch_params)
    if not skip(built.notes, "autograd", device):
        autograd_params = data.weights()
        built.steps["autograd"] = lambda: mlp_step_autograd(data, autograd_params)
    if not skip(built.notes, "mygrad", device):
        import mygrad as mg

        mygrad_params = [mg.tensor(w) for w in data.weights()]
        built.steps["mygrad"] = lambda: mlp_step_mygrad(data, mygrad_params)
    return built


# ----- (3) CNN train step -----------------------------------------------------------------------------
def cnn_layers(lib: Any) -> list[Any]:
    """conv 1→16 3×3, ReLU, pool 2, conv 16→32 3×3, ReLU, pool 2, flatten, linear 800→10, in `lib` (tz.nn, torch.nn)."""
    return [lib.Conv2d(1, 16, 3), lib.ReLU(), lib.MaxPool2d(2), lib.Conv2d(16, 32, 3), lib.ReLU(), lib.MaxPool2d(2),
            lib.Flatten(), lib.Linear(32 * 5 * 5, 10)]  # fmt: skip


def build_cnn(quick: bool, device: Device) -> Built:
    """2-conv CNN on 28×28, batch 64 (4 in --quick), one SGD step."""
    rng = np.random.default_rng(0)
    batch = 4 if quick else 64
    x, y = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch)
    ours = device.tz_module(nn.Sequential(*cnn_layers(nn)))
    state = {k: np.array(v) for k, v in nn.Sequential(*cnn_layers(nn)).state_dict().items()}
    ours.load_state_dict({k: device.tz(v).data for k, v in state.items()})
    x_ours, y_ours = device.tz(x), device.tz(y).data
    built = Built({"tinyzoo": device.synced("tinyzoo", tz_step(
        list(ours.parameters()), lambda: F.cross_entropy(ours(x_ours), y_ours), LR))})  # fmt: skip
    built.notes.append("CNN: no hand-NumPy column (optional in the brief; im2col by hand would copy tinyzoo's)")
    if not skip(built.notes, "torch", device):
        import torch

        theirs = device.torch_module(load_torch(torch.nn.Sequential(*cnn_layers(torch.nn)), state))
        x_t, y_t = device.torch(x), device.torch(y)
        built.steps["torch"] = device.synced("torch", torch_step(
            list(theirs.parameters()), lambda: torch.nn.functional.cross_entropy(theirs(x_t), y_t), LR))  # fmt: skip
    return built


# ----- (3b) ResNet-18 (CIFAR stem) train step ------------------------------------------------------------
def resnet18_torch(num_classes: int = 10) -> Any:
    """tinyzoo.models.resnet.resnet18(stem="cifar") in torch.nn, module for module (so state dicts load as they are).

    ReLUs are torchvision's in-place ones: the same arithmetic, and the memory torchvision's ResNet uses.
    """
    import torch

    def conv_bn(i: int, o: int, k: int, s: int = 1, relu: bool = False) -> Any:
        layers = [torch.nn.Conv2d(i, o, k, s, k // 2, bias=False), torch.nn.BatchNorm2d(o)]
        return torch.nn.Sequential(*layers, *[torch.nn.ReLU(inplace=True)] * relu)

    class BasicBlock(torch.nn.Module):
        def __init__(self, i: int, o: int, s: int = 1) -> None:
            super().__init__()
            self.residual = torch.nn.Sequential(conv_bn(i, o, 3, s, relu=True), conv_bn(o, o, 3))
            self.shortcut = conv_bn(i, o, 1, s) if s != 1 or i != o else torch.nn.Identity()

        def forward(self, x: Any) -> Any:
            return torch.relu_(self.residual(x) + self.shortcut(x))

    class ResNet18(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Sequential(conv_bn(3, 64, 3, relu=True))
            self.stages = torch.nn.Sequential(*(torch.nn.Sequential(BasicBlock(i, o, s), BasicBlock(o, o))
                                                for i, o, s in ((64, 64, 1), (64, 128, 2), (128, 256, 2),
                                                                (256, 512, 2))))  # fmt: skip
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.fc = torch.nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))

    return ResNet18()


def resnet_peers(batch: int, device: Device) -> tuple[dict[str, Step], list[str]]:
    """One step (forward, cross-entropy, backward; no update, so repeats stay comparable) per peer."""
    from tinyzoo.models.resnet import resnet18

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, batch)
    ours = device.tz_module(resnet18(num_classes=10, stem="cifar"))
    state = {k: np.array(v) for k, v in ours.state_dict().items()}
    x_ours, y_ours = device.tz(x), device.tz(y).data
    steps = {"tinyzoo": device.synced("tinyzoo", tz_step(
        list(ours.parameters()), lambda: F.cross_entropy(ours(x_ours), y_ours)))}  # fmt: skip
    notes: list[str] = []
    if not skip(notes, "torch", device):
        import torch

        theirs = device.torch_module(load_torch(resnet18_torch(), state))
        x_t, y_t = device.torch(x), device.torch(y)
        steps["torch"] = device.synced("torch", torch_step(
            list(theirs.parameters()), lambda: torch.nn.functional.cross_entropy(theirs(x_t), y_t)))  # fmt: skip
    return steps, notes


def build_resnet(quick: bool, device: Device) -> Built:
    """ResNet-18 with the CIFAR stem on 3×32×32, batch 32 (2 in --quick): forward + cross-entropy + backward."""
    steps, notes = resnet_peers(2 if quick else 32, device)
    return Built(steps, notes)


# ----- (4) LSTM forward + backward --------------------------------------------------------------------
def lstm_weights(inputs: int, hidden: int, dtype: Any) -> dict[str, np.ndarray]:
    """Shared LSTM weights in torch's layout and gate order (i, f, g, o)."""
    rng, bound = np.random.default_rng(0), hidden**-0.5
    shapes = {"weight_ih": (4 * hidden, inputs), "weight_hh": (4 * hidden, hidden), "bias_ih": (4 * hidden,),
              "bias_hh": (4 * hidden,)}  # fmt: skip
    return {name: uniform(rng, shape, bound, dtype) for name, shape in shapes.items()}


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-a))


def lstm_numpy(x: np.ndarray, w: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    """Loss mean(h²) over a [T, B, I] sequence and its weight gradients, by hand (BPTT)."""
    T, B, _ = x.shape
    H = w["weight_hh"].shape[1]
    xproj = x @ w["weight_ih"].T + (w["bias_ih"] + w["bias_hh"])  # [T, B, 4H]
    hs = np.zeros((T + 1, B, H), x.dtype)  # hs[t + 1] = h_t; hs[0] = 0
    cs = np.zeros((T + 1, B, H), x.dtype)
    gates = np.empty((T, B, 4 * H), x.dtype)  # activated i, f, g, o
    for t in range(T):
        a = xproj[t] + hs[t] @ w["weight_hh"].T
        a[:, : 2 * H] = _sigmoid(a[:, : 2 * H])
        a[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])
        a[:, 3 * H :] = _sigmoid(a[:, 3 * H :])
        i, f, g, o = np.split(a, 4, axis=1)
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * np.tanh(cs[t + 1])
        gates[t] = a
    out = hs[1:]
    loss = float((out * out).mean())
    d_out = 2 * out / out.size
    d_gates = np.empty_like(gates)
    dh, dc = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
    for t in range(T - 1, -1, -1):
        i, f, g, o = np.split(gates[t], 4, axis=1)
        tanh_c = np.tanh(cs[t + 1])
        dh = dh + d_out[t]
        dc = dc + dh * o * (1 - tanh_c * tanh_c)
        d_gates[t] = np.concatenate(
            [dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g * g), dh * tanh_c * o * (1 - o)], axis=1
        )
        dc = dc * f
        dh = d_gates[t] @ w["weight_hh"]
    flat = d_gates.reshape(T * B, 4 * H)
    bias = flat.sum(axis=0)
    grads = {"weight_ih": flat.T @ x.reshape(T * B, -1), "weight_hh": flat.T @ hs[:-1].reshape(T * B, H),
             "bias_ih": bias, "bias_hh": bias}  # fmt: skip
    return loss, grads


def build_lstm(quick: bool, device: Device, dtype: Any = np.float32) -> Built:
    """LSTM hidden 256 (input 256), batch 32, 64 steps, loss mean(h²), forward + backward."""
    T, B, I, H = (4, 2, 8, 8) if quick else (64, 32, 256, 256)
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)
    w = lstm_weights(I, H, dtype)
    layer, cell = device.tz_module(nn.LSTM(I, H).to(dtype)), device.tz_module(nn.LSTMCell(I, H).to(dtype))
    layer.load_state_dict({f"{k}_l0": device.tz(v).data for k, v in w.items()})
    cell.load_state_dict({k: device.tz(v).data for k, v in w.items()})
    xs = device.tz(x)

    def tz_fused() -> tz.Tensor:
        out = layer(xs)[0]
        return (out * out).mean()

    def tz_cells() -> tz.Tensor:
        state, hs = None, []
        for t in range(T):
            state = cell(xs[t], state)
            hs.append(state[0])
        out = tz.stack(hs)
        return (out * out).mean()

    built = Built({"tinyzoo": device.synced("tinyzoo", tz_step(list(layer.parameters()), tz_fused))})
    built.steps["tinyzoo LSTMCell loop"] = device.synced("tinyzoo", tz_step(list(cell.parameters()), tz_cells))
    if not device.gpu:
        built.steps["numpy (hand BPTT)"] = lambda: lstm_numpy(x, w)[0]
    if not skip(built.notes, "torch", device):
        import torch

        t_layer = device.torch_module(load_torch(torch.nn.LSTM(I, H).to(_torch_dtype(dtype)),
                                                 {f"{k}_l0": v for k, v in w.items()}))  # fmt: skip
        t_cell = device.torch_module(load_torch(torch.nn.LSTMCell(I, H).to(_torch_dtype(dtype)), w))
        x_t = device.torch(x)

        def torch_fused() -> Any:
            out = t_layer(x_t)[0]
            return (out * out).mean()

        def torch_cells() -> Any:
            state, hs = None, []
            for t in range(T):
                state = t_cell(x_t[t], state)
                hs.append(state[0])
            out = torch.stack(hs)
            return (out * out).mean()

        built.steps["torch nn.LSTM"] = device.synced("torch", torch_step(list(t_layer.parameters()), torch_fused))
        built.steps["torch LSTMCell loop"] = device.synced("torch", torch_step(list(t_cell.parameters()), torch_cells))
    return built


def _torch_dtype(dtype: Any) -> Any:
    import torch

    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


# ----- (5) multi-head attention -----------------------------------------------------------------------
def build_mha(quick: bool, device: Device, dtype: Any = np.float32) -> Built:
    """Self-attention block, 8 heads, seq 128, d 256, batch 16, loss mean(out²), forward + backward."""
    B, L, E, heads = (2, 8, 16, 2) if quick else (16, 128, 256, 8)
    x = np.random.default_rng(1).standard_normal((B, L, E)).astype(dtype)
    ours = device.tz_module(nn.MultiheadAttention(E, heads).to(dtype))
    rng, bound = np.random.default_rng(0), (6 / (4 * E)) ** 0.5
    state = {"in_proj_weight": uniform(rng, (3 * E, E), bound, dtype),
             "in_proj_bias": uniform(rng, (3 * E,), 0.1, dtype),
             "out_proj.weight": uniform(rng, (E, E), E**-0.5, dtype),
             "out_proj.bias": uniform(rng, (E,), 0.1, dtype)}  # fmt: skip
    ours.load_state_dict({k: device.tz(v).data for k, v in state.items()})
    x_ours = device.tz(x)

    def tz_loss() -> tz.Tensor:
        out = ours(x_ours, x_ours, x_ours, need_weights=False)[0]
        return (out * out).mean()

    built = Built({"tinyzoo": device.synced("tinyzoo", tz_step(list(ours.parameters()), tz_loss))})
    if not skip(built.notes, "torch", device):
        import torch

        theirs = torch.nn.MultiheadAttention(E, heads, batch_first=True).to(_torch_dtype(dtype))
        theirs = device.torch_module(load_torch(theirs, state))
        x_t = device.torch(x)

        def torch_loss() -> Any:
            out = theirs(x_t, x_t, x_t, need_weights=False)[0]
            return (out * out).mean()

        built.steps["torch"] = device.synced("torch", torch_step(list(theirs.parameters()), torch_loss))
    return built


# ----- (6) GAT layer ------------------------------------------------------------------------------------
GAT_NODES, GAT_UNDIRECTED, GAT_IN = 2708, 5278, 64


def random_graph(nodes: int, undirected: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """src, dst of about `undirected` distinct random node pairs, both directions, no self-loops (GATLayer adds them).

    Duplicates are dropped: a repeated edge would count twice in tinyzoo's edge softmax but once in a dense mask.
    """
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, nodes, undirected), rng.integers(0, nodes, undirected)
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)])[:, a != b], axis=1)
    return np.concatenate([pairs[0], pairs[1]]), np.concatenate([pairs[1], pairs[0]])


def build_gat(quick: bool, device: Device, edge_scale: float | None = None, dense_peer: bool = True) -> Built:
    """GATLayer (8 heads × 8, 64 input features, no dropout) on a Cora-sized graph, loss mean(out²), fwd + bwd.

    edge_scale=None: a Cora-like graph (skewed degrees, 13,264 edges with self-loops, bench_kernels);
    otherwise a uniform random graph with edge_scale × Cora's edge count on the same nodes.
    """
    nodes, heads, features = (40, 2, 4) if quick else (GAT_NODES, 8, 8)
    if edge_scale is None and not quick:
        src, dst, _ = cora_like_graph()
    else:
        src, dst = random_graph(nodes, int((80 if quick else GAT_UNDIRECTED) * (edge_scale or 1.0)))
    graph = make_graph(np.stack([src, dst]), nodes, device="cuda" if device.gpu else "cpu")
    rng = np.random.default_rng(0)
    in_features = 8 if quick else GAT_IN
    x = rng.standard_normal((nodes, in_features)).astype(np.float32)
    ours = device.tz_module(GATLayer(in_features, features, heads, dropout=0.0))
    state = {k: np.array(v) for k, v in GATLayer(in_features, features, heads, dropout=0.0).state_dict().items()}
    state["bias"] = uniform(rng, state["bias"].shape, 0.1, np.float32)
    ours.load_state_dict({k: device.tz(v).data for k, v in state.items()})
    x_ours = device.tz(x)

    def tz_loss() -> tz.Tensor:
        out = ours(x_ours, graph)
        return (out * out).mean()

    edges = len(tz.backend.to_device(graph.dst, "cpu"))
    built = Built({"tinyzoo": device.synced("tinyzoo", tz_step(list(ours.parameters()), tz_loss))})
    built.notes.append(f"GAT: {nodes} nodes, {edges} edges incl. self-loops, {in_features} input features; "
                       "peers: a dense masked torch layer, and PyTorch Geometric's GATConv where it is installed")
    if dense_peer and not skip(built.notes, "torch dense", device):
        built.steps["torch dense"] = device.synced("torch", dense_gat_torch(state, x, graph, heads, features, device))
    if not skip(built.notes, PYG_GAT, device):
        built.steps[PYG_GAT] = device.synced("torch", pyg_gat_torch(state, x, graph, heads, features, device))
    return built


PYG_GAT = "torch_geometric GATConv"


def pyg_gat_torch(state: dict[str, np.ndarray], x: np.ndarray, graph: Any, heads: int, features: int,
                  device: Device) -> Step:  # fmt: skip
    """The same GAT layer as PyTorch Geometric's GATConv (sparse, message passing), with tinyzoo's weights."""
    import torch
    from torch_geometric.nn import GATConv

    conv = device.torch_module(GATConv(x.shape[1], features, heads, concat=True, negative_slope=0.2, dropout=0.0,
                                       add_self_loops=False, bias=True))  # the graph has its self-loops already
    linear = conv.lin if getattr(conv, "lin", None) is not None else conv.lin_src  # renamed in PyG 2.5
    with torch.no_grad():
        linear.weight.copy_(device.torch(state["linear.weight"]))
        conv.att_dst.copy_(device.torch(state["attn_query"]).view(1, heads, features))  # scores the receiving node
        conv.att_src.copy_(device.torch(state["attn_neighbour"]).view(1, heads, features))  # and the sender
        conv.bias.copy_(device.torch(state["bias"]))
    edge_index = device.torch(np.stack([tz.backend.to_host(graph.src), tz.backend.to_host(graph.dst)]))
    x_t = device.torch(x)

    def loss_fn() -> Any:
        out = conv(x_t, edge_index)
        return (out * out).mean()

    return torch_step([p for p in conv.parameters() if p.requires_grad], loss_fn)


def dense_gat_torch(state: dict[str, np.ndarray], x: np.ndarray, graph: Any, heads: int, features: int,
                    device: Device) -> Step:  # fmt: skip
    """The same GAT layer in torch with an N×N attention matrix per head, non-edges masked to -inf."""
    import torch

    n = x.shape[0]
    params = {k: device.torch(v, requires_grad=True) for k, v in state.items()}
    adjacency = torch.zeros((n, n), dtype=torch.bool, device="cuda" if device.gpu else "cpu")
    src, dst = (torch.as_tensor(np.asarray(tz.backend.to_device(a, "cpu"))) for a in (graph.src, graph.dst))
    adjacency[dst, src] = True  # row i attends over its in-neighbours j
    x_t = device.torch(x)

    def loss_fn() -> Any:
        z = (x_t @ params["linear.weight"].T).view(n, heads, features)  # [N, heads, F]
        query = (z * params["attn_query"]).sum(-1).T  # [heads, N]
        neighbour = (z * params["attn_neighbour"]).sum(-1).T
        scores = torch.nn.functional.leaky_relu(query[:, :, None] + neighbour[:, None, :], 0.2)  # [heads, N, N]
        alpha = scores.masked_fill(~adjacency, float("-inf")).softmax(-1)
        out = (alpha @ z.transpose(0, 1)).transpose(0, 1).reshape(n, heads * features) + params["bias"]
        return (out * out).mean()

    return torch_step(list(params.values()), loss_fn)


# ----- (7) capsule routing ------------------------------------------------------------------------------
def routing_torch(u: Any, iterations: int) -> Any:
    """Dynamic routing in torch ops, the gradient flowing through every iteration (as tinyzoo's)."""
    import torch

    logits = torch.zeros(u.shape[:3], dtype=u.dtype, device=u.device)
    for t in range(iterations):
        s = (logits.softmax(2).unsqueeze(-1) * u).sum(1)  # [B, out, dim]
        squared = (s * s).sum(-1, keepdim=True)
        v = s * (squared.sqrt() / (1 + squared))
        if t < iterations - 1:
            logits = logits + (u * v.unsqueeze(1)).sum(-1)
    return v


def build_routing(quick: bool, device: Device) -> Built:
    """Routing batch 128, 1152 → 10 capsules × 16, 3 iterations, loss mean(v²), forward + backward of û."""
    shape = (2, 32, 4, 8) if quick else (128, 1152, 10, 16)
    u = (np.random.default_rng(0).standard_normal(shape) * 0.05).astype(np.float32)
    u_ours = device.tz(u, requires_grad=True)

    def tz_loss() -> tz.Tensor:
        v = dynamic_routing(u_ours, 3)
        return (v * v).mean()

    built = Built({"tinyzoo": device.synced("tinyzoo", tz_step([u_ours], tz_loss))})
    if not skip(built.notes, "torch", device):
        u_t = device.torch(u, requires_grad=True)

        def torch_loss() -> Any:
            v = routing_torch(u_t, 3)
            return (v * v).mean()

        built.steps["torch"] = device.synced("torch", torch_step([u_t], torch_loss))
    return built


# ----- (9) memory of a long unrolled RNN backward (each peer in a fresh process) --------------------------
def rss_mb(field: str = "VmRSS") -> float:
    """VmRSS (current) or VmHWM (peak) resident set size of this process in MB, from /proc/self/status.

    Not ru_maxrss: Linux keeps that high-water mark across fork + exec, so a child would report its parent's.
    """
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def rnn_memory_worker(peer: str, steps: int) -> None:
    """Unroll a tanh RNN cell (hidden 128, batch 16) for `steps` steps, backward, print RSS figures as JSON."""
    rng = np.random.default_rng(0)
    B, H = 16, 128
    arrays = [rng.standard_normal((steps, B, H)).astype(np.float32), uniform(rng, (H, H), H**-0.5, np.float32),
              uniform(rng, (H, H), H**-0.5, np.float32), np.zeros(H, np.float32)]  # fmt: skip
    if peer == "torch":
        import torch

        x, wx, wh, b = (torch.tensor(a, requires_grad=i > 0) for i, a in enumerate(arrays))
        h = torch.zeros((B, H))
    else:
        x, wx, wh, b = (tz.tensor(a, requires_grad=i > 0) for i, a in enumerate(arrays))
        h = tz.zeros((B, H))
    before = rss_mb()
    for t in range(steps):
        h = (x[t] @ wx + h @ wh + b).tanh()
    loss = (h * h).mean()
    loss.backward()
    peak = rss_mb("VmHWM")
    print(json.dumps({"peer": peer, "loss": float(loss.item()), "peak_mb": peak, "before_mb": before}))


def resnet_memory_worker(peer: str, batch: int, steps: int = 3) -> None:
    """Peak RSS growth of `steps` ResNet-18 steps over the set-up (model, data), freed memory kept; prints JSON."""
    from tinyzoo import backend

    backend.keep_freed_memory()
    step = resnet_peers(batch, Device("cpu"))[0][peer]
    before = rss_mb()
    for _ in range(steps):
        loss = step()
    peak = rss_mb("VmHWM")
    print(json.dumps({"peer": peer, "model": "resnet18", "loss": loss, "peak_mb": peak, "before_mb": before}))


CASES = [
    Case("per_op", "(1) 200 elementwise ops fwd+bwd, (4,4) f32", build_chain),
    Case("mlp", "(2) MLP 784-256-10 b128 SGD step f32", build_mlp),
    Case("cnn", "(3) CNN 2-conv 28×28 b64 SGD step f32", build_cnn),
    Case("resnet", "(3b) ResNet-18 CIFAR stem 3×32×32 b32 fwd+bwd f32", build_resnet),
    Case("lstm", "(4) LSTM h256 b32 T64 fwd+bwd f32", build_lstm),
    Case("mha", "(5) MHA seq128 d256 b16 8 heads fwd+bwd f32", build_mha),
    Case("gat", "(6) GAT layer Cora-sized 8×8 heads fwd+bwd f32", build_gat),
    Case("routing", "(7) routing b128 1152→10×16 3 it fwd+bwd f32", build_routing),
    Case("mlp_f64", "(8) MLP step f64", lambda q, d: build_mlp(q, d, dtype=np.float64)),
    Case("lstm_f64", "(8) LSTM fwd+bwd f64", lambda q, d: build_lstm(q, d, dtype=np.float64)),
    Case("mha_f64", "(8) MHA fwd+bwd f64", lambda q, d: build_mha(q, d, dtype=np.float64)),
]

"""GPU readiness without a GPU: one training step of every model family on the strict stand-in device.

`strict_device()` puts tinyzoo.testing.strict_device's stand-in in CuPy's place, so every op takes the
CuPy branch and any implicit device-to-host copy (float(), np.asarray, a stray np. call on device data,
a boolean-mask index) raises HostSyncError at the line that did it. Each step below is forward, loss,
backward, clip_grad_norm_ and an optimizer step; the only copy to the host it may make is the one read
of the loss at the end, which `backend.host_transfers()` counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import backend, nn, optim
from tinyzoo.nn import functional as F
from tinyzoo.testing import strict_device as strict
from tinyzoo.testing.strict_device import HostSyncError, StrictArray, strict_cupy, strict_device

# Without a GPU numba.cuda is unavailable, so the kernels take their reference path, as on CuPy without Numba.
pytestmark = pytest.mark.filterwarnings("ignore:tinyzoo.kernels:RuntimeWarning")

DEV = "cuda:0"  # the stand-in's device name inside strict_device()
RNG = np.random.default_rng(0)


def on_device(array: Any) -> tz.Tensor:
    """A host array as a tensor on the strict device."""
    return tz.tensor(array, device=DEV)


# ----- the stand-in itself ---------------------------------------------------------------------------
def test_the_stand_in_is_the_gpu_path_and_refuses_every_implicit_copy():
    with strict_device() as device:
        x = tz.randn(3, 4, device=device, requires_grad=True)
        assert device == DEV and x.device == DEV and isinstance(x.data, StrictArray)
        assert backend.xp_of(x.data) is strict_cupy
        data = x.data
        refused = {
            "float": lambda: float(data.sum()),
            "int": lambda: int(data.sum()),
            "bool": lambda: bool(data.sum() > 0),
            "item": lambda: data.sum().item(),
            "tolist": lambda: data.tolist(),
            "np.asarray": lambda: np.asarray(data),
            "np.exp": lambda: np.exp(data),
            "np.sum": lambda: np.sum(data),
            "np.add.at": lambda: np.add.at(data, [0], 1.0),
            "iteration": lambda: list(data),
            "f-string": lambda: f"{data.sum():.3f}",
            "host operand": lambda: data + np.ones(4, np.float32),
            "boolean mask": lambda: data[data > 0],
            "nonzero": lambda: strict_cupy.nonzero(data),
            "range": lambda: range(data.argmax()),
        }
        for what, attempt in refused.items():
            with pytest.raises(HostSyncError, match=r"test_strict_device\.py:\d+"):
                attempt()
                pytest.fail(f"{what} was not refused")
        before = backend.host_transfers()
        host = backend.to_host(data)  # the explicit copy: allowed, counted
        assert isinstance(host, np.ndarray) and backend.host_transfers() == before + 1
        np.testing.assert_allclose(host.sum(), x.sum().item(), rtol=1e-6)
    assert backend.xp_of(np.zeros(1)) is np and backend.cupy_if_loaded() is not strict_cupy


def test_arithmetic_matches_numpy():
    a = RNG.standard_normal((3, 5)).astype(np.float32)
    b = RNG.standard_normal((5, 2)).astype(np.float32)
    with strict_device():
        ta, tb = on_device(a).requires_grad_(), on_device(b).requires_grad_()
        out = (ta @ tb).tanh().sum()
        out.backward()
        got = [backend.to_host(t) for t in (out.data, ta.grad.data, tb.grad.data)]
    ca, cb = tz.tensor(a, requires_grad=True), tz.tensor(b, requires_grad=True)
    expected = (ca @ cb).tanh().sum()
    expected.backward()
    for g, e in zip(got, (expected.data, ca.grad.data, cb.grad.data)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


# ----- one training step per family --------------------------------------------------------------------
def images(batch: int = 4, side: int = 28, channels: int = 1) -> np.ndarray:
    return RNG.random((batch, channels, side, side), dtype=np.float32)


def labels(batch: int = 4, classes: int = 10) -> np.ndarray:
    return RNG.integers(0, classes, batch)


def classifier(model: nn.Module, side: int = 28, channels: int = 1) -> Callable[[], tz.Tensor]:
    x, y = on_device(images(side=side, channels=channels)), on_device(labels())
    return lambda: F.cross_entropy(model(x), y)


def mlp():
    from tinyzoo.models.mlp import MLP

    model = MLP([784, 32, 10], dropout=0.1).to(DEV)
    x, y = on_device(images().reshape(4, -1)), on_device(labels())
    return model, lambda: F.cross_entropy(model(x), y)


def cnn():
    from tinyzoo.models.cnn import SimpleCNN

    model = SimpleCNN(channels=(4, 8), hidden=16, dropout=0.1).to(DEV)
    return model, classifier(model)


def resnet18():
    from tinyzoo.models.resnet import resnet18

    model = resnet18(num_classes=10, in_channels=1, stem="cifar", width=4).to(DEV)
    return model, classifier(model, side=8)


def char_lm(kind: str) -> Callable:
    def build():
        from tinyzoo.models.char_rnn import char_rnn, loss_nats

        model = char_rnn(kind, vocab_size=12, hidden_size=16, num_layers=2, embed_dim=8).to(DEV)
        ids = RNG.integers(0, 12, (3, 9))
        x, y = on_device(ids[:, :-1]), on_device(ids[:, 1:])
        return model, lambda: loss_nats(model, x, y)

    return build


def cell_lm(make_core: Callable[[], nn.Module]) -> Callable:
    def build():
        from tinyzoo.models.char_rnn import CharLM, loss_nats

        model = CharLM(12, 8, make_core(), 16).to(DEV)
        ids = RNG.integers(0, 12, (3, 9))
        x, y = on_device(ids[:, :-1]), on_device(ids[:, 1:])
        return model, lambda: loss_nats(model, x, y)

    return build


def hyper_lstm_core() -> nn.Module:
    from tinyzoo.models.hyper_lstm import HyperLSTM

    return HyperLSTM(8, 16, hyper_size=8, n_z=4)


def rhn_core() -> nn.Module:
    from tinyzoo.models.rhn import RHN

    return RHN(8, 16, depth=2)


def ponder_net():
    from tinyzoo.models import ponder_net as pn

    model = pn.PonderGRU(n_elems=6, n_hidden=8, max_steps=5).to(DEV)
    x, y = pn.parity_batch(4, 6, RNG)
    x, y = on_device(x), on_device(y)
    log_prior = on_device(np.log(pn.truncated_geometric(0.2, 5)).astype(np.float32))

    def loss():
        out = model(x)
        return pn.reconstruction_loss(out, y) + 0.01 * pn.regularisation_loss(out, log_prior)

    return model, loss


def graph_model(kind: str) -> Callable:
    def build():
        from tinyzoo.models.gat import GAT
        from tinyzoo.models.gatv2 import GATv2
        from tinyzoo.models.gcn import GCN
        from tinyzoo.models.graph_common import SparseFeatures, make_graph

        n, features = 7, 5
        edges = np.array([[0, 1, 2, 3, 4, 5, 6, 1], [1, 2, 3, 4, 5, 6, 0, 3]])
        graph = make_graph(edges, n, device=DEV)
        x = (RNG.random((n, features)) < 0.4).astype(np.float32)
        x = SparseFeatures.from_dense(x, device=DEV) if kind != "gat-dense" else on_device(x)
        builders = {"gcn": lambda: GCN(features, 3, hidden=4), "gat": lambda: GAT(features, 3, hidden=4, heads=2),
                    "gat-dense": lambda: GAT(features, 3, hidden=4, heads=2), "gatv2": lambda: GATv2(features, 3, 4, 2)}
        model = builders[kind]().to(DEV)
        y, train = on_device(labels(n, 3)), on_device(np.array([0, 2, 5]))
        return model, lambda: F.cross_entropy(model(x, graph)[train], y[train])

    return build


def capsnet():
    from tinyzoo.models.capsnet import CapsNet, CapsNetConfig, capsnet_loss

    config = CapsNetConfig(image_size=12, conv_channels=4, conv_kernel=5, primary_maps=2, primary_dim=4,
                           primary_kernel=3, digit_dim=4, decoder_hidden=(8, 8))
    model = CapsNet(config).to(DEV)
    x, y = on_device(images(side=12)), on_device(labels())
    return model, lambda: capsnet_loss(model(x, y), x, y)[0]


def transformer():
    from tinyzoo.models.transformer import BOS, EOS, PAD, Transformer, seq2seq_batch, sequence_loss

    model = Transformer(8, 8, d_model=8, num_heads=2, d_ff=16, num_encoder_layers=1, num_decoder_layers=1,
                        pad_id=PAD, bos_id=BOS, eos_id=EOS).to(DEV)  # fmt: skip
    src, tgt_in, tgt_out = (on_device(a) for a in seq2seq_batch("reverse", 3, 5, 5, RNG))
    return model, lambda: sequence_loss(model(src, tgt_in), tgt_out, PAD)


def t5_transformer():
    from tinyzoo.models.transformer import BOS, EOS, PAD, Transformer, seq2seq_batch, sequence_loss

    model = Transformer(8, 8, d_model=8, num_heads=2, d_ff=16, num_encoder_layers=1, num_decoder_layers=1,
                        position="t5", num_buckets=4, max_distance=8, pad_id=PAD, bos_id=BOS, eos_id=EOS).to(DEV)
    src, tgt_in, tgt_out = (on_device(a) for a in seq2seq_batch("reverse", 3, 5, 5, RNG))
    return model, lambda: sequence_loss(model(src, tgt_in), tgt_out, PAD)


def gpt():
    from tinyzoo.models.gpt import GPT, lm_loss

    model = GPT(12, d_model=8, num_layers=1, num_heads=2, max_len=16, dropout=0.1).to(DEV)
    ids = RNG.integers(0, 12, (3, 9))
    x, y = on_device(ids[:, :-1]), on_device(ids[:, 1:])
    return model, lambda: lm_loss(model, x, y)


def bert():
    from tinyzoo.models.bert import BERT, mask_tokens, mlm_loss

    model = BERT(13, d_model=8, num_layers=1, num_heads=2, max_len=16).to(DEV)
    batch = mask_tokens(RNG.integers(0, 12, (3, 10)), 12, 12, RNG)
    batch = batch._replace(inputs=on_device(batch.inputs), targets=on_device(batch.targets))
    return model, lambda: mlm_loss(model, batch, device=DEV)


def vit():
    from tinyzoo.models.vit import ViT

    model = ViT(8, 4, 1, 10, d_model=8, num_layers=1, num_heads=2, d_ff=16, dropout=0.1).to(DEV)
    return model, classifier(model, side=8)


def xlnet():
    from tinyzoo.models.xlnet import XLNet, prediction_targets, sample_orders, sequence_batch, xlnet_loss

    model = XLNet(10, d_model=8, num_heads=2, num_layers=1, d_ff=16).to(DEV)
    tokens, order = sequence_batch("palindrome", 3, 6, 10, RNG), sample_orders(3, 6, RNG)
    targets = prediction_targets(order, 2.0)
    tokens, order, targets = on_device(tokens), on_device(order), on_device(targets)
    return model, lambda: xlnet_loss(model(tokens, order), tokens, targets)


def pointer_net():
    from tinyzoo.models.pointer_net import PointerNet, pointer_loss, sort_batch

    model = PointerNet(input_size=1, embed_size=8, hidden_size=8).to(DEV)
    x, pointers = sort_batch(3, 5, RNG)
    x, pointers = on_device(x), on_device(pointers)
    return model, lambda: pointer_loss(model(x, pointers)[0], pointers)


def autoencoder(arch: str) -> Callable:
    def build():
        from tinyzoo.models.autoencoder import build_autoencoder, reconstruction_loss

        model = build_autoencoder(arch, code_size=4).to(DEV)
        x = on_device(images().reshape(4, -1))
        return model, lambda: reconstruction_loss(model(x), x)

    return build


def dcgan():
    from tinyzoo.models.gan import GAN, dcgan_init_, discriminator_loss, generator_loss, to_gan_range

    model = GAN(z_dim=4, channels=2)
    dcgan_init_(model)
    model.to(DEV)
    real = to_gan_range(on_device(images()))

    def loss():
        fake = model.generator(tz.randn(4, 4, device=DEV))
        d = discriminator_loss(model.discriminator(real), model.discriminator(fake.detach()))
        return d + generator_loss(model.discriminator(fake))

    return model, loss


def dqn():
    from tinyzoo.models.dqn import QNetwork, ReplayBuffer, td_loss

    q_net, target = QNetwork(4, 2, hidden=8).to(DEV), QNetwork(4, 2, hidden=8).to(DEV)
    buffer = ReplayBuffer(16, 4)
    for _ in range(8):
        obs = RNG.standard_normal(4).astype(np.float32)
        buffer.add(obs, int(RNG.integers(2)), 1.0, obs + 0.1, False)
    batch = buffer.sample(5, RNG)
    return q_net, lambda: td_loss(q_net, target, batch, gamma=0.9)


def sketch_rnn():
    from tinyzoo.data import to_stroke5
    from tinyzoo.models.sketch_rnn import SketchRNN, sketch_loss

    model = SketchRNN(enc_hidden=4, dec_hidden=8, z_dim=4, n_mixtures=2).to(DEV)
    drawings = []
    for length in (6, 9, 4):
        seq = np.column_stack([RNG.normal(size=(length, 2)), RNG.random(length) < 0.2]).astype(np.float32)
        seq[-1, 2] = 1
        drawings.append(to_stroke5(seq, 10))
    strokes = on_device(np.stack(drawings))
    return model, lambda: sketch_loss(model(strokes), strokes[:, 1:], step=0)[0]


FAMILIES: dict[str, Callable[[], tuple[nn.Module, Callable[[], tz.Tensor]]]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet18": resnet18,
    "rnn-lm": char_lm("rnn"),
    "gru-lm": char_lm("gru"),
    "lstm-lm": char_lm("lstm"),
    "hyper-lstm": cell_lm(hyper_lstm_core),
    "rhn": cell_lm(rhn_core),
    "ponder-net": ponder_net,
    "gat": graph_model("gat"),
    "gat-dense-features": graph_model("gat-dense"),
    "gatv2": graph_model("gatv2"),
    "gcn": graph_model("gcn"),
    "capsnet": capsnet,
    "transformer": transformer,
    "transformer-t5-bias": t5_transformer,
    "gpt": gpt,
    "bert": bert,
    "vit": vit,
    "xlnet": xlnet,
    "pointer-net": pointer_net,
    "dense-autoencoder": autoencoder("dense"),
    "conv-autoencoder": autoencoder("conv"),
    "dcgan": dcgan,
    "dqn": dqn,
    "sketch-rnn": sketch_rnn,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_copies_nothing_to_the_host_but_the_loss(family):
    tz.manual_seed(0)
    with strict_device():
        model, loss_fn = FAMILIES[family]()
        model.train()
        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        before = [backend.to_host(p.data) for p in model.parameters()]
        start, logged = backend.host_transfers(), len(strict.copies_to_host)
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()  # the one read of a logging interval
        copies = strict.copies_to_host[logged:]
        assert backend.host_transfers() - start == 1, f"the step copied to the host at {copies}"
        after = [backend.to_host(p.data) for p in model.parameters()]
    assert np.isfinite(value)
    assert all(isinstance(p.data, StrictArray) for p in model.parameters())
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "the optimizer step changed nothing"


def test_an_rbm_contrastive_divergence_step_stays_on_the_device():
    from tinyzoo.models.rbm import RBM, cd_optimizer, contrastive_divergence

    tz.manual_seed(0)
    with strict_device():
        rbm = RBM(12, 6).to(DEV)
        optimizer = cd_optimizer(rbm, lr=0.1)
        v = on_device((RNG.random((5, 12)) < 0.5).astype(np.float32))
        start = backend.host_transfers()
        chain = contrastive_divergence(rbm, v, v, k=2)  # writes the CD-k gradients
        optim.clip_grad_norm_(rbm.parameters(), 1.0)
        optimizer.step()
        assert isinstance(chain.data, StrictArray)
        error = rbm.reconstruction_error(v).item()
        assert backend.host_transfers() - start == 1, f"copies to the host at {strict.copies_to_host}"
    assert np.isfinite(error)


def test_a_data_loader_batches_and_augments_on_the_device():
    from tinyzoo.data import DataLoader, TensorDataset
    from tinyzoo.models.capsnet import random_shift

    x, y = images(10), labels(10)
    with strict_device():
        loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, seed=0, device=DEV)
        start = backend.host_transfers()
        batches = list(loader)
        shifted = random_shift(batches[0][0], 2, np.random.default_rng(0))  # CapsNet's augmentation
        assert backend.host_transfers() == start
        assert all(isinstance(a, StrictArray) for batch in batches for a in batch) and shifted.shape == (4, 1, 28, 28)
        got = np.concatenate([backend.to_host(b[1]) for b in batches])
    assert sorted(got) == sorted(y) and [len(b[0]) for b in batches] == [4, 4, 2]


def test_a_bad_index_on_the_device_is_reported_at_the_next_copy_to_the_host():
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    with strict_device():
        table = on_device(x)
        good = tz.index_select(table, 0, on_device(np.array([4, 0, -5])))  # no check waits for the device
        assert backend.to_host(good.data).shape == (3, 3)
        tz.index_select(table, 0, on_device(np.array([1, 5])))  # runs: the check's flag is set on the device
        F.cross_entropy(table, on_device(np.array([0, 1, 2, 3, 4])))  # a second bad index: the first is named
        with pytest.raises(tz.IndexRangeError, match=r"index_select: index values do not all lie in \[-5, 5\)"):
            backend.to_host(good.data)
        assert backend.to_host(good.data).shape == (3, 3)  # reported once
        with pytest.raises(tz.IndexRangeError, match="cross_entropy: target labels"):
            F.cross_entropy(table, on_device(np.array([0, 1, -100, 2, 3])), ignore_index=-100).item()
    with pytest.raises(tz.IndexRangeError, match=r"index_select: index values span \[1, 5\]"):  # the host: at once
        tz.index_select(tz.tensor(x), 0, np.array([1, 5]))


def test_edge_grouping_of_a_device_graph_waits_for_nothing():
    import importlib

    edge_softmax_module = importlib.import_module("tinyzoo.kernels.edge_softmax")
    dst = np.array([2, 0, 1, 1, 2, 0])
    expected = edge_softmax_module.segments(dst, 3)
    with strict_device():
        device_dst = on_device(dst).data
        start = backend.host_transfers()
        first = edge_softmax_module.segments(device_dst, 3)
        again = edge_softmax_module.segments(device_dst, 3)
        assert backend.host_transfers() == start and again is first  # a fixed graph is grouped once
        got = [backend.to_host(a) for a in first]
    np.testing.assert_array_equal(got[0], expected.indptr)
    np.testing.assert_array_equal(got[1], expected.perm)


OPTIMIZERS = [
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (optim.Adam, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    (optim.AdamW, {"lr": 0.05, "amsgrad": True}),
    (optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
    (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.2, "initial_accumulator_value": 0.5}),
]


@pytest.mark.parametrize(("cls", "kwargs"), OPTIMIZERS, ids=[c.__name__ for c, _ in OPTIMIZERS])
def test_every_optimizer_and_schedule_steps_on_the_device_and_matches_the_cpu(cls, kwargs):
    start = [RNG.standard_normal(shape).astype(np.float32) for shape in ((3, 4), (4,))]
    grads = [[RNG.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(3)]
    cpu = [tz.tensor(a, requires_grad=True) for a in start]
    cpu_opt = cls(cpu, **kwargs)
    cpu_schedule = optim.WarmupCosine(cpu_opt, warmup_steps=1, total_steps=5)
    with strict_device():
        dev = [on_device(a).requires_grad_() for a in start]
        dev_opt = cls(dev, **kwargs)
        dev_schedule = optim.WarmupCosine(dev_opt, warmup_steps=1, total_steps=5)
        transfers = backend.host_transfers()
        for step_grads in grads:
            for c, d, g in zip(cpu, dev, step_grads):
                c.grad, d.grad = tz.tensor(g), on_device(g)
            optim.clip_grad_norm_(dev, 1.0)
            dev_opt.step()
            dev_schedule.step()
            optim.clip_grad_norm_(cpu, 1.0)
            cpu_opt.step()
            cpu_schedule.step()
        assert backend.host_transfers() == transfers
        got = [backend.to_host(d.data) for d in dev]
    for g, c in zip(got, cpu):
        np.testing.assert_allclose(g, c.data, rtol=1e-5, atol=1e-6)

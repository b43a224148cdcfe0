"""tinyzoo.nn.layers: PyTorch's defaults and initialisation, gradients through every layer (float64),
train vs eval behaviour, state_dict round trips, reprs and the errors for inputs of the wrong shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo.nn import Module, Sequential
from tinyzoo.nn import functional as F
from tinyzoo.nn.layers import (
    ELU,
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    BatchNormReLU2d,
    Dropout,
    Embedding,
    Flatten,
    GroupNorm,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)


def randn(*shape: int, seed: int = 0) -> tz.Tensor:
    """A float64 leaf of standard normal draws."""
    return tz.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def perturbed(layer: Module) -> Module:
    """The layer in float64 with its parameters moved off their (often all-ones/zeros) initial values."""
    layer.double()
    for i, p in enumerate(layer.parameters()):
        p.data = p.data + np.random.default_rng(i).uniform(-0.5, 0.5, p.shape)
    return layer


# ----- initialisation and defaults ----------------------------------------------------------------
def test_linear_initialisation_matches_torch_formulas():
    tz.manual_seed(0)
    layer = Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform(a=√5) on fan_in = 400 gives U(±1/√400)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
    assert layer.weight.shape == (300, 400) and layer.bias.shape == (300,)
    assert layer.weight.numpy().std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert Linear(3, 2, bias=False).bias is None and len(list(Linear(3, 2, bias=False).parameters())) == 1


def test_norm_and_embedding_defaults():
    bn = BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(5))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(5))
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == np.int64
    assert sorted(bn.state_dict()) == ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]
    assert list(BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []
    ln = LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and (ln.weight.numpy() == 1).all() and (ln.bias.numpy() == 0).all()
    assert LayerNorm(4, bias=False).bias is None and LayerNorm(4, elementwise_affine=False).weight is None
    tz.manual_seed(0)
    emb = Embedding(1000, 64, padding_idx=-1)
    assert emb.padding_idx == 999 and (emb.weight.numpy()[999] == 0).all()
    assert emb.weight.numpy().std() == pytest.approx(1, rel=0.02)


# ----- gradients through every layer ----------------------------------------------------------------
GRADIENT_CASES = {
    "Linear": (lambda: Linear(4, 3), (2, 5, 4)),
    "Linear-no-bias": (lambda: Linear(4, 3, bias=False), (4,)),
    "BatchNorm1d": (lambda: BatchNorm1d(3), (4, 3)),
    "BatchNorm1d-3d": (lambda: BatchNorm1d(3), (2, 3, 4)),
    "BatchNorm2d": (lambda: BatchNorm2d(2), (2, 2, 3, 2)),
    "BatchNorm2d-eval": (lambda: BatchNorm2d(2).eval(), (2, 2, 3, 2)),
    "BatchNormReLU2d": (lambda: BatchNormReLU2d(2), (2, 2, 3, 2)),
    "BatchNormReLU2d-eval": (lambda: BatchNormReLU2d(2).eval(), (2, 2, 3, 2)),
    "LayerNorm": (lambda: LayerNorm((3, 2)), (2, 3, 2)),
    "GroupNorm": (lambda: GroupNorm(2, 4), (2, 4, 3)),
    "Dropout-eval": (lambda: Dropout(0.5).eval(), (3, 4)),
    "ReLU": (ReLU, (3, 4)),
    "LeakyReLU": (lambda: LeakyReLU(0.2), (3, 4)),
    "ELU": (lambda: ELU(0.5), (3, 4)),
    "GELU": (GELU, (3, 4)),
    "Tanh": (Tanh, (3, 4)),
    "Sigmoid": (Sigmoid, (3, 4)),
    "Softplus": (lambda: Softplus(2.0), (3, 4)),
    "Softmax": (lambda: Softmax(dim=0), (3, 4)),
    "LogSoftmax": (lambda: LogSoftmax(dim=1), (3, 4)),
    "Flatten": (Flatten, (2, 3, 2)),
    "Identity": (Identity, (2, 3)),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_through_layer(name):
    make, shape = GRADIENT_CASES[name]
    layer = perturbed(make())
    x = randn(*shape)
    tz.gradcheck(lambda x, *params: layer(x), [x, *layer.parameters()])


def test_gradients_through_a_small_network_and_training_dropout():
    net = perturbed(Sequential(Linear(5, 4), BatchNorm1d(4), ReLU(), Dropout(0.3), Linear(4, 2), LayerNorm(2)))
    x = randn(6, 5)

    def fn(x, *params):
        tz.manual_seed(7)  # the same dropout mask on every evaluation
        return net(x)

    tz.gradcheck(fn, [x, *net.parameters()])


def test_embedding_gradient_and_padding_row():
    emb = perturbed(Embedding(6, 3, padding_idx=2))
    tz.gradcheck(lambda w: emb(np.array([[0, 3, 3], [5, 0, 1]])), [emb.weight])
    emb(np.array([[0, 2, 2], [5, 0, 1]])).sum().backward()  # the padding row (2) is used but not trained
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [2, 1, 0, 0, 0, 1])


# ----- train vs eval ---------------------------------------------------------------------------------
def test_batch_norm_train_updates_running_stats_and_eval_uses_them():
    bn = BatchNorm1d(3, momentum=0.5)
    x = tz.tensor(np.random.default_rng(0).normal(2.0, 3.0, (50, 3)).astype(np.float32))
    out = bn(x)
    np.testing.assert_allclose(out.numpy().mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * x.numpy().mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.5 + 0.5 * x.numpy().var(0, ddof=1), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    bn.eval()
    expected = (x.numpy() - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(bn(x).numpy(), expected, rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1  # evaluation leaves the statistics alone


def test_batch_norm_cumulative_average_and_untracked_stats():
    bn = BatchNorm1d(2, momentum=None)
    batches = [np.random.default_rng(i).normal(i, 1, (8, 2)) for i in range(3)]
    for b in batches:
        bn(tz.tensor(b))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], 0), rtol=1e-5)
    untracked = BatchNorm1d(2, track_running_stats=False).eval()  # batch statistics even in eval
    np.testing.assert_allclose(untracked(tz.tensor(batches[2])).numpy().mean(0), 0, atol=1e-6)


def test_dropout_train_and_eval():
    drop = Dropout(0.25)
    x = tz.ones(100, 100)
    tz.manual_seed(0)
    out = drop(x).numpy()
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)} and abs((out == 0).mean() - 0.25) < 0.02
    assert drop.eval()(x) is x


# ----- saving and loading ------------------------------------------------------------------------------
def _network() -> Sequential:
    return Sequential(Linear(4, 6), BatchNorm1d(6), ReLU(), Linear(6, 3), LayerNorm(3), GroupNorm(1, 3))


def test_state_dict_round_trip():
    tz.manual_seed(0)
    net = _network()
    net(tz.randn(8, 4))  # move the running statistics off their start
    saved = {k: v.copy() for k, v in net.state_dict().items()}
    tz.manual_seed(1)
    fresh = _network()
    fresh.load_state_dict(saved)
    x = tz.randn(5, 4)
    np.testing.assert_array_equal(fresh.eval()(x).numpy(), net.eval()(x).numpy())
    assert fresh[1].num_batches_tracked.item() == 1 and fresh[1].num_batches_tracked.dtype == np.int64


def test_load_state_dict_errors():
    net = _network()
    state = dict(net.state_dict())
    with pytest.raises(tz.ShapeError, match=r"missing keys \['1.running_var'\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "1.running_var"})
    with pytest.raises(tz.ShapeError, match=r"unexpected keys \['9.weight'\]"):
        net.load_state_dict({**state, "9.weight": np.zeros(3)})
    with pytest.raises(tz.ShapeError, match=r"0.weight: checkpoint \(6, 5\) vs model \(6, 4\)"):
        net.load_state_dict({**state, "0.weight": np.zeros((6, 5))})


# ----- repr and bad inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (Linear(784, 256), "Linear(in_features=784, out_features=256, bias=True)  # weight[256, 784], bias[256]"),
        (BatchNorm2d(8), "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"),
        (LayerNorm(16), "LayerNorm((16,), eps=1e-05, elementwise_affine=True)"),
        (GroupNorm(2, 8), "GroupNorm(2, 8, eps=1e-05, affine=True)"),
        (Embedding(10, 3, padding_idx=0), "Embedding(10, 3, padding_idx=0)  # weight[10, 3]"),
        (Dropout(0.1), "Dropout(p=0.1)"),
        (LeakyReLU(0.2), "LeakyReLU(negative_slope=0.2)"),
        (ELU(), "ELU(alpha=1.0)"),
        (GELU(), "GELU(approximate='tanh')"),
        (Softplus(), "Softplus(beta=1.0)"),
        (Softmax(1), "Softmax(dim=1)"),
        (LogSoftmax(), "LogSoftmax(dim=-1)"),
        (Flatten(), "Flatten(start_dim=1, end_dim=-1)"),
        (ReLU(), "ReLU()"),
        (Tanh(), "Tanh()"),
        (Sigmoid(), "Sigmoid()"),
        (Identity(), "Identity()"),
    ],
)
def test_repr(layer, text):
    assert repr(layer).startswith(text)


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (Linear(784, 256), (32, 100), r"Linear\(784→256\) got input of shape \(32, 100\): last axis must be 784"),
        (BatchNorm1d(4), (8, 5), r"BatchNorm1d\(4\) got input of shape \(8, 5\): expected \[N, C\] or \[N, C, L\]"),
        (BatchNorm1d(4), (2, 4, 3, 3), r"BatchNorm1d\(4\) got input of shape \(2, 4, 3, 3\)"),
        (BatchNorm2d(3), (2, 3, 4), r"BatchNorm2d\(3\) got input of shape \(2, 3, 4\): expected \[N, C, H, W\]"),
        (LayerNorm(8), (2, 7), r"LayerNorm\(\(8,\).*got input of shape \(2, 7\): last axes must be \(8,\)"),
        (
            GroupNorm(2, 4),
            (2, 6, 3),
            r"GroupNorm\(2, 4.*got input of shape \(2, 6, 3\): expected \[N, C, ...\] with C = 4",
        ),
        (Flatten(2), (3, 4), r"Flatten\(start_dim=2.*needs axes 2 and -1"),
    ],
)
def test_wrong_input_shape(layer, shape, message):
    with pytest.raises(tz.ShapeError, match=message):
        layer(tz.zeros(*shape))


def test_bad_arguments_and_indices():
    with pytest.raises(ValueError, match="not divisible"):
        GroupNorm(3, 4)
    with pytest.raises(ValueError, match="p must lie"):
        Dropout(-0.1)
    with pytest.raises(ValueError, match="padding_idx 5"):
        Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="approximate='tanh'"):
        GELU("none")
    with pytest.raises(tz.IndexRangeError, match="vocabulary has 5 entries"):
        Embedding(5, 2)(np.array([[1, 5]]))
    with pytest.raises(tz.DTypeError, match="integers"):
        Embedding(5, 2)(tz.zeros(3))


def test_loss_of_nan_output_is_nan_and_anomaly_mode_finds_the_source():
    """A NaN anywhere in the forward pass makes the loss NaN (nothing hides it); detect_anomaly names the op."""
    net = Sequential(Linear(3, 2))
    x = tz.tensor(np.array([[1.0, -1.0, 2.0]], dtype=np.float32))
    with np.errstate(invalid="ignore"):
        loss = F.cross_entropy(net(tz.log(x)), np.array([1]))  # log(-1) = NaN
        assert np.isnan(loss.item())
        with tz.detect_anomaly(), pytest.raises(tz.AnomalyError, match="forward of 'log' produced NaN"):
            net(tz.log(x))


# ----- against torch ----------------------------------------------------------------------------------
TORCH_LAYERS = {
    "Linear": (lambda nn: nn.Linear(5, 3), (4, 2, 5)),
    "BatchNorm1d": (lambda nn: nn.BatchNorm1d(3, momentum=None), (6, 3)),
    "BatchNorm2d": (lambda nn: nn.BatchNorm2d(3, momentum=0.2), (4, 3, 2, 5)),
    "LayerNorm": (lambda nn: nn.LayerNorm((2, 5)), (4, 2, 5)),
    "GroupNorm": (lambda nn: nn.GroupNorm(3, 6), (4, 6, 5)),
}


@pytest.mark.parametrize("name", sorted(TORCH_LAYERS))
def test_layers_against_torch(name):
    """The same weights give the same outputs, gradients and running statistics over a few steps, train and eval."""
    torch = pytest.importorskip("torch")
    make, shape = TORCH_LAYERS[name]
    theirs = make(torch.nn).double()
    ours = make(tz.nn.layers).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step, training in enumerate([True, True, False]):
        theirs.train(training)
        ours.train(training)
        x = np.random.default_rng(step).standard_normal(shape) * 2 + 1
        x_ours, x_theirs = tz.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        g = np.random.default_rng(10 + step).standard_normal(shape[:-1] + (3,) if name == "Linear" else shape)
        out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
        out_ours.backward(g)
        out_theirs.backward(torch.tensor(g))
        np.testing.assert_allclose(out_ours.numpy(), out_theirs.detach().numpy(), rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=1e-5, atol=1e-8)
        grads = {k: p.grad.numpy() for k, p in theirs.named_parameters()}
        for k, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), grads[k], rtol=1e-5, atol=1e-8)
        ours.zero_grad()
        theirs.zero_grad()
        state = theirs.state_dict()
        for k, v in ours.state_dict().items():
            np.testing.assert_allclose(v, state[k].numpy(), rtol=1e-5, atol=1e-8)


# =================================================================================================
# The fused training-mode BatchNorm(+ReLU) op against the unfused reference F.batch_norm (+ F.relu)
# =================================================================================================
BN_SHAPES = [(4, 3), (3, 2, 5), (2, 3, 4, 5)]


def _bn_case(shape: tuple[int, ...], channels_last: bool, seed: int) -> list[tz.Tensor]:
    """x (channels-last in memory when asked, as after a conv), γ and β as float64 leaves."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + 1
    if channels_last and x.ndim > 2:
        x = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    return [tz.tensor(a, requires_grad=True) for a in (x, rng.standard_normal(shape[1]), rng.standard_normal(shape[1]))]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_fused_batch_norm_equals_the_unfused_reference(shape, channels_last, relu, affine):
    from tinyzoo.nn.layers import batch_norm_training

    def fused(x, w, b):
        return batch_norm_training(x, w if affine else None, b if affine else None, 1e-5, relu=relu)[0]

    def reference(x, w, b):
        out = F.batch_norm(x, None, None, w if affine else None, b if affine else None, training=True)
        return F.relu(out) if relu else out

    g = np.random.default_rng(9).standard_normal(shape)
    results = []
    for fn in (fused, reference):
        leaves = _bn_case(shape, channels_last, seed=3)
        out = fn(*leaves)
        (out * tz.tensor(g)).sum().backward()
        results.append([out.numpy()] + [leaf.grad.numpy() for leaf in leaves[: 3 if affine else 1]])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_fused_batch_norm_second_derivatives_and_tape():
    from tinyzoo.nn.layers import batch_norm_training

    x, w, b = _bn_case((3, 2, 4, 3), channels_last=True, seed=4)
    tz.gradgradcheck(lambda x, w, b: batch_norm_training(x, w, b, 1e-5, relu=True)[0], [x, w, b], atol=1e-4)
    out = batch_norm_training(x, w, b, 1e-5)[0]
    assert out._node.inputs == (x, w, b)  # one op: x̂, x̂·γ are not kept for backward


def test_batch_norm_relu_is_batch_norm_then_relu():
    """BatchNormReLU2d (one fused op while training) = BatchNorm2d then ReLU: outputs, gradients, running
    statistics and state-dict keys, in training and evaluation."""
    x, _, _ = _bn_case((4, 3, 5, 5), channels_last=True, seed=6)
    fused, ref = BatchNormReLU2d(3).double(), BatchNorm2d(3).double()
    assert list(fused.state_dict()) == list(ref.state_dict())
    for training in (True, True, False):
        fused.train(training), ref.train(training)
        for module in (fused, ref):
            module.zero_grad()
        x.grad = None
        out = fused(x)
        assert out.grad_fn == ("batch_norm_relu" if training else "relu")
        g = tz.tensor(np.random.default_rng(7).normal(size=x.shape))
        (out * g).sum().backward()
        got = [out.numpy(), x.grad.numpy(), fused.weight.grad.numpy(), fused.bias.grad.numpy()]
        x.grad = None
        expected_out = ref(x).relu()
        (expected_out * g).sum().backward()
        expected = [expected_out.numpy(), x.grad.numpy(), ref.weight.grad.numpy(), ref.bias.grad.numpy()]
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fused.running_var.numpy(), ref.running_var.numpy(), rtol=1e-12)


def test_batch_norm_module_trains_like_the_functional_reference():
    """The module (fused op) and F.batch_norm (reference) give the same output, gradients and running statistics."""
    x, _, _ = _bn_case((4, 3, 5, 5), channels_last=True, seed=5)
    fused, ref = BatchNorm2d(3), BatchNorm2d(3)
    out = fused(x)
    assert out.grad_fn == "batch_norm"
    expected = F.batch_norm(x, ref.running_mean, ref.running_var, ref.weight, ref.bias, training=True, momentum=0.1)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fused.running_var.numpy(), ref.running_var.numpy(), rtol=1e-6)

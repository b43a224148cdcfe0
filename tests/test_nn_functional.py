"""tinyzoo.nn.functional: every op's value against NumPy, its gradient against finite differences (float64,
by hypothesis over random shapes with size-1 axes), its errors, and — where torch is installed — its value
and gradients against torch's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.autograd import ops
from tinyzoo.nn import conv
from tinyzoo.nn import functional as F

PROPERTY = settings(max_examples=25, deadline=None)
FEW = settings(max_examples=10, deadline=None)

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 4)
reductions = st.sampled_from(["mean", "sum", "none"])


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 4) -> st.SearchStrategy[tuple[int, ...]]:
    """Small shapes (size-1 axes included) so finite differences stay cheap."""
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def leaf(seed: int, shape: tuple[int, ...], low: float = -2.0, high: float = 2.0) -> tz.Tensor:
    """A float64 leaf with values drawn uniformly from [low, high)."""
    return tz.tensor(np.random.default_rng(seed).uniform(low, high, shape), requires_grad=True)


def labels(seed: int, shape: tuple[int, ...], classes: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, shape)


# =================================================================================================
# Linear maps, dropout, lookups, padding
# =================================================================================================
@PROPERTY
@given(seed=seeds, lead=shapes(0, 2), n_in=sizes, n_out=sizes, bias=st.booleans())
def test_linear(seed, lead, n_in, n_out, bias):
    x, w, b = leaf(seed, (*lead, n_in)), leaf(seed + 1, (n_out, n_in)), leaf(seed + 2, (n_out,))
    inputs = [x, w, b] if bias else [x, w]
    out = F.linear(*inputs)
    np.testing.assert_allclose(out.numpy(), x.numpy() @ w.numpy().T + (b.numpy() if bias else 0), rtol=1e-12)
    tz.gradcheck(F.linear, inputs)


def test_linear_second_order_and_errors():
    x, w, b = leaf(0, (3, 4)), leaf(1, (2, 4)), leaf(2, (2,))
    tz.gradgradcheck(lambda x, w, b: F.linear(x, w, b).tanh(), [x, w, b])
    with pytest.raises(tz.ShapeError, match=r"last axis must be 4"):
        F.linear(leaf(0, (3, 5)), w)
    with pytest.raises(tz.ShapeError, match=r"bias has shape \(3,\)"):
        F.linear(x, w, leaf(0, (3,)))


@PROPERTY
@given(seed=seeds, shape=shapes(1, 3, 6), p=st.sampled_from([0.1, 0.5, 0.8]))
def test_dropout_gradient_is_the_mask(seed, shape, p):
    tz.manual_seed(seed)
    x = leaf(seed, shape, 0.5, 2.0)
    out = F.dropout(x, p)
    out.sum().backward()
    kept = out.numpy() != 0
    np.testing.assert_allclose(out.numpy()[kept], x.numpy()[kept] / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-12)


def test_dropout_statistics_modes_and_seeding():
    x = tz.ones(200, 500)
    tz.manual_seed(0)
    out = F.dropout(x, 0.3).numpy()
    assert abs((out == 0).mean() - 0.3) < 0.01 and abs(out.mean() - 1) < 0.01
    tz.manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, 0.3).numpy(), out)
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    assert F.dropout(tz.ones(3, dtype="float16"), 0.5).dtype == np.float16
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        F.dropout(x, 1.5)


@PROPERTY
@given(seed=seeds, index_shape=shapes(1, 3), vocab=sizes, dim=sizes)
def test_embedding(seed, index_shape, vocab, dim):
    weight, index = leaf(seed, (vocab, dim)), labels(seed, index_shape, vocab)
    np.testing.assert_array_equal(F.embedding(index, weight).numpy(), weight.numpy()[index])
    tz.gradcheck(lambda w: F.embedding(index, w), [weight])  # repeated indices add up


def test_embedding_padding_and_errors():
    weight = leaf(0, (5, 3))
    F.embedding(np.array([[0, 2], [2, 4]]), weight, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy()[:, 0], [1, 0, 0, 0, 1])
    with pytest.raises(tz.IndexRangeError, match=r"indices span \[0, 7\] but the vocabulary has 5 entries"):
        F.embedding(np.array([0, 7]), weight)
    with pytest.raises(tz.IndexRangeError, match="vocabulary has 5"):
        F.embedding(np.array([-1]), weight)
    with pytest.raises(tz.DTypeError, match="indices must be integers"):
        F.embedding(np.array([0.0]), weight)


def test_one_hot():
    out = F.one_hot(np.array([[0, 2], [1, 2]]))
    assert out.dtype == np.int64 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), np.eye(3, dtype=np.int64)[[[0, 2], [1, 2]]])
    assert F.one_hot(np.array([1]), 4).shape == (1, 4)
    with pytest.raises(tz.IndexRangeError, match="num_classes is 2"):
        F.one_hot(np.array([2]), 2)


@PROPERTY
@given(seed=seeds, shape=shapes(1, 3), data=st.data())
def test_pad_takes_torch_order(seed, shape, data):
    pairs = data.draw(st.integers(1, len(shape)))
    widths = data.draw(st.lists(st.integers(0, 2), min_size=2 * pairs, max_size=2 * pairs))
    x = leaf(seed, shape)
    numpy_widths = [(0, 0)] * (len(shape) - pairs) + [(widths[2 * i], widths[2 * i + 1]) for i in range(pairs)][::-1]
    expected = np.pad(x.numpy(), numpy_widths, constant_values=0.5)
    np.testing.assert_array_equal(F.pad(x, widths, value=0.5).numpy(), expected)
    tz.gradcheck(lambda x: F.pad(x, widths), [x])


def test_pad_errors():
    with pytest.raises(tz.ShapeError, match="pairs"):
        F.pad(tz.zeros(2, 3), (1, 1, 1))
    with pytest.raises(ValueError, match="mode='constant'"):
        F.pad(tz.zeros(2, 3), (1, 1), mode="reflect")


def test_reexports():
    for name in ("relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax"):
        assert getattr(F, name) is getattr(ops, name)
    for name in ("conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"):
        assert getattr(F, name) is getattr(conv, name)


# =================================================================================================
# Normalisation
# =================================================================================================
def _normalized(x: np.ndarray, axes: tuple[int, ...], eps: float = 1e-5) -> np.ndarray:
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


@PROPERTY
@given(seed=seeds, n=st.integers(2, 4), c=sizes, spatial=shapes(0, 2, 3), affine=st.booleans())
def test_batch_norm_training(seed, n, c, spatial, affine):
    x, w, b = leaf(seed, (n, c, *spatial)), leaf(seed + 1, (c,)), leaf(seed + 2, (c,))
    params = [w, b] if affine else [None, None]
    mean, var = tz.zeros(c, dtype="float64"), tz.ones(c, dtype="float64")
    out = F.batch_norm(x, mean, var, *params, training=True, momentum=0.25)
    axes, shape = (0, *range(2, x.ndim)), (c,) + (1,) * len(spatial)
    expected = _normalized(x.numpy(), axes)
    if affine:
        expected = expected * w.numpy().reshape(shape) + b.numpy().reshape(shape)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-12)
    count = x.size // c
    np.testing.assert_allclose(mean.numpy(), 0.25 * x.numpy().mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), 0.75 + 0.25 * x.numpy().var(axis=axes) * count / (count - 1), rtol=1e-12)
    differentiable = [x, *(p for p in params if p is not None)]
    tz.gradcheck(lambda x, *p: F.batch_norm(x, None, None, *params, training=True), differentiable)


@PROPERTY
@given(seed=seeds, n=sizes, c=sizes, spatial=shapes(0, 2, 3))
def test_batch_norm_eval_uses_running_statistics(seed, n, c, spatial):
    x, w, b = leaf(seed, (n, c, *spatial)), leaf(seed + 1, (c,)), leaf(seed + 2, (c,))
    mean, var = tz.tensor(np.linspace(-1, 1, c)), tz.tensor(np.linspace(0.5, 2, c))
    shape = (c,) + (1,) * len(spatial)
    expected = (x.numpy() - mean.numpy().reshape(shape)) / np.sqrt(var.numpy().reshape(shape) + 1e-5)
    out = F.batch_norm(x, mean, var, w, b)
    np.testing.assert_allclose(out.numpy(), expected * w.numpy().reshape(shape) + b.numpy().reshape(shape), rtol=1e-9)
    tz.gradcheck(lambda x, w, b: F.batch_norm(x, mean, var, w, b), [x, w, b])


def test_normalisation_second_order():
    x, w, b = leaf(0, (3, 4, 2)), leaf(1, (4,)), leaf(2, (4,))
    tz.gradgradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b], atol=1e-4)
    tz.gradgradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), [x, w, b], atol=1e-4)


def test_batch_norm_errors_and_constant_input():
    with pytest.raises(tz.ShapeError, match="more than one value per channel"):
        F.batch_norm(tz.zeros(1, 3), None, None, training=True)
    with pytest.raises(tz.ShapeError, match="has 3 channels"):
        F.batch_norm(tz.zeros(2, 3), tz.zeros(4), tz.ones(4), training=True)
    x = tz.tensor(np.full((4, 2, 3), 7.0), requires_grad=True)
    out = F.batch_norm(x, None, None, training=True)
    out.backward(np.random.default_rng(0).standard_normal(out.shape))
    assert np.isfinite(out.numpy()).all() and np.isfinite(x.grad.numpy()).all()


@PROPERTY
@given(seed=seeds, lead=shapes(1, 2), normalized=shapes(1, 2), affine=st.booleans())
def test_layer_norm(seed, lead, normalized, affine):
    x, w, b = leaf(seed, lead + normalized), leaf(seed + 1, normalized), leaf(seed + 2, normalized)
    params = [w, b] if affine else []
    fn = (lambda x, w, b: F.layer_norm(x, normalized, w, b)) if affine else (lambda x: F.layer_norm(x, normalized))
    axes = tuple(range(len(lead), x.ndim))
    expected = _normalized(x.numpy(), axes) * (w.numpy() if affine else 1) + (b.numpy() if affine else 0)
    np.testing.assert_allclose(fn(x, *params).numpy(), expected, rtol=1e-9, atol=1e-12)
    tz.gradcheck(fn, [x, *params])


def test_layer_norm_second_order_constant_input_and_errors():
    x, w, b = leaf(0, (3, 4)), leaf(1, (4,)), leaf(2, (4,))
    tz.gradgradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), [x, w, b], atol=1e-4)
    constant = tz.tensor(np.full((2, 5), -3.0), requires_grad=True)
    out = F.layer_norm(constant, 5)
    out.backward(np.ones(out.shape))
    assert np.isfinite(out.numpy()).all() and np.isfinite(constant.grad.numpy()).all()
    with pytest.raises(tz.ShapeError, match=r"does not end in normalized_shape \(5,\)"):
        F.layer_norm(x, 5)


@PROPERTY
@given(seed=seeds, n=sizes, groups=st.integers(1, 3), per_group=st.integers(1, 2), spatial=shapes(0, 2, 3))
def test_group_norm(seed, n, groups, per_group, spatial):
    c = groups * per_group
    x, w, b = leaf(seed, (n, c, *spatial)), leaf(seed + 1, (c,)), leaf(seed + 2, (c,))
    grouped = x.numpy().reshape(n, groups, -1)
    shape = (c,) + (1,) * len(spatial)
    expected = _normalized(grouped, (2,)).reshape(x.shape) * w.numpy().reshape(shape) + b.numpy().reshape(shape)
    np.testing.assert_allclose(F.group_norm(x, groups, w, b).numpy(), expected, rtol=1e-9, atol=1e-12)
    tz.gradcheck(lambda x, w, b: F.group_norm(x, groups, w, b), [x, w, b])


def test_group_norm_error():
    with pytest.raises(tz.ShapeError, match=r"6 channels .* cannot be split into 4 groups"):
        F.group_norm(tz.zeros(2, 6), 4)


# =================================================================================================
# Classification losses
# =================================================================================================
def _log_softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@PROPERTY
@given(
    seed=seeds,
    n=sizes,
    c=st.integers(1, 5),
    extra=shapes(0, 2, 2),
    reduction=reductions,
    smoothing=st.sampled_from([0.0, 0.2]),
    weighted=st.booleans(),
    ignore=st.booleans(),
)
def test_cross_entropy_with_class_indices(seed, n, c, extra, reduction, smoothing, weighted, ignore):
    z = leaf(seed, (n, c, *extra), -3, 3)
    target = labels(seed, (n, *extra), c)
    if ignore and target.size > 1:
        target.reshape(-1)[0] = -100
    weight = tz.tensor(np.random.default_rng(seed).uniform(0.5, 2, c)) if weighted else None

    def fn(z):
        return F.cross_entropy(z, target, weight, reduction=reduction, label_smoothing=smoothing)

    # Reference: the definition, with dense log-probabilities and one-hot targets.
    logp, w = np.moveaxis(_log_softmax(z.numpy()), 1, -1), np.ones(c) if weight is None else weight.numpy()
    valid = target != -100
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    loss = valid * (-(1 - smoothing) * w[safe] * picked - smoothing / c * (logp * w).sum(-1))
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.sum() / (valid * w[safe]).sum()}[reduction]
    np.testing.assert_allclose(fn(z).numpy(), expected, rtol=1e-9, atol=1e-12)
    tz.gradcheck(fn, [z])


@PROPERTY
@given(seed=seeds, n=sizes, c=st.integers(1, 5), reduction=reductions, smoothing=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_with_probabilities(seed, n, c, reduction, smoothing):
    z, q = leaf(seed, (n, c), -3, 3), leaf(seed + 1, (n, c), 0, 1)
    weight = tz.tensor(np.random.default_rng(seed).uniform(0.5, 2, c))

    def fn(z, q):
        return F.cross_entropy(z, q, weight, reduction=reduction, label_smoothing=smoothing)

    smoothed = q.numpy() * (1 - smoothing) + smoothing / c
    loss = -(smoothed * weight.numpy() * _log_softmax(z.numpy())).sum(1)
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    np.testing.assert_allclose(fn(z, q).numpy(), expected, rtol=1e-9)
    tz.gradcheck(fn, [z, q])


def test_cross_entropy_is_stable_and_second_order():
    z = tz.tensor(np.array([[1e4, -1e4, 0.0], [0.0, 1e4, 1e4]], dtype=np.float32), requires_grad=True)
    loss = F.cross_entropy(z, np.array([1, 2]), label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(z.grad.numpy()).all()
    assert loss.item() == pytest.approx(
        (0.9 * 2e4 + 0.1 / 3 * 3e4 + 0.9 * np.log(2) + 0.1 / 3 * (1e4 + 3 * np.log(2))) / 2
    )
    z64 = leaf(0, (3, 4))
    tz.gradgradcheck(lambda z: F.cross_entropy(z, np.array([0, 3, 1]), label_smoothing=0.1), [z64])


def test_cross_entropy_unbatched_and_float32_stays_float32():
    z = leaf(0, (4,))
    np.testing.assert_allclose(F.cross_entropy(z, np.array(2)).item(), -_log_softmax(z.numpy()[None])[0, 2])
    z32 = tz.randn(5, 3, requires_grad=True)
    weight = tz.tensor(np.ones(3))  # float64 weights do not promote a float32 loss
    assert F.cross_entropy(z32, np.arange(5) % 3, weight).dtype == np.float32


def test_cross_entropy_label_errors():
    z = tz.zeros(4, 10)
    with pytest.raises(tz.IndexRangeError, match=r"cross_entropy: target labels span \[0, 12\] .* 10 classes"):
        F.cross_entropy(z, np.array([0, 12, 3, -100]))
    with pytest.raises(tz.IndexRangeError, match=r"span \[-1, 3\]"):
        F.cross_entropy(z, np.array([-1, 3, 3, 3]))
    with pytest.raises(tz.ShapeError, match=r"targets of shape \(4,\), got \(4, 1\)"):
        F.cross_entropy(z, np.zeros((4, 1), dtype=np.int64))
    with pytest.raises(tz.DTypeError, match="target labels must be integers"):
        F.cross_entropy(z, np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(z, np.zeros(4, dtype=np.int64), reduction="avg")


def test_cross_entropy_of_nan_logits_is_nan_and_anomaly_mode_names_it():
    z = tz.tensor(np.array([[np.nan, 0.0], [1.0, 2.0]]), requires_grad=True)
    assert np.isnan(F.cross_entropy(z, np.array([0, 1])).item())
    with tz.detect_anomaly(), pytest.raises(tz.AnomalyError, match="forward of 'cross_entropy' produced NaN"):
        F.cross_entropy(z, np.array([0, 1]))


@PROPERTY
@given(seed=seeds, n=sizes, c=sizes, extra=shapes(0, 1, 3), reduction=reductions, weighted=st.booleans())
def test_nll_loss(seed, n, c, extra, reduction, weighted):
    logp = leaf(seed, (n, c, *extra), -3, 0)
    target = labels(seed, (n, *extra), c)
    weight = tz.tensor(np.random.default_rng(seed).uniform(0.5, 2, c)) if weighted else None
    w = np.ones(c) if weight is None else weight.numpy()
    picked = np.take_along_axis(logp.numpy(), target[:, None], 1)[:, 0]
    loss = -w[target] * picked
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.sum() / w[target].sum()}[reduction]

    def fn(logp):
        return F.nll_loss(logp, target, weight, reduction=reduction)

    np.testing.assert_allclose(fn(logp).numpy(), expected, rtol=1e-9)
    tz.gradcheck(fn, [logp])


@PROPERTY
@given(seed=seeds, shape=shapes(1, 3), reduction=reductions, weighted=st.booleans())
def test_binary_cross_entropy(seed, shape, reduction, weighted):
    p, y = leaf(seed, shape, 0.05, 0.95), leaf(seed + 1, shape, 0, 1)
    weight = tz.tensor(np.random.default_rng(seed).uniform(0.5, 2, shape)) if weighted else None
    loss = -(y.numpy() * np.log(p.numpy()) + (1 - y.numpy()) * np.log(1 - p.numpy())) * (
        1 if weight is None else weight.numpy()
    )
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]

    def fn(p, y):
        return F.binary_cross_entropy(p, y, weight, reduction)

    np.testing.assert_allclose(fn(p, y).numpy(), expected, rtol=1e-9)
    tz.gradcheck(fn, [p, y])


def test_binary_cross_entropy_clamps_logs_and_checks_range():
    p = tz.tensor(np.array([0.0, 1.0, 0.0]), requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100, 100, 0])
    loss.sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), [-1e12, 1e12, 0])  # torch's (p - y) / max(p (1 - p), 1e-12)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(tz.tensor([1.5]), tz.tensor([1.0]))
    with pytest.raises(tz.ShapeError, match=r"input has shape \(4, 1\) but target has shape \(4,\)"):
        F.binary_cross_entropy(tz.full((4, 1), 0.5), tz.ones(4))


@PROPERTY
@given(seed=seeds, shape=shapes(1, 3), reduction=reductions, pos_weighted=st.booleans())
def test_binary_cross_entropy_with_logits(seed, shape, reduction, pos_weighted):
    x, y = leaf(seed, shape, -4, 4), leaf(seed + 1, shape, 0, 1)
    pos_weight = tz.tensor(np.random.default_rng(seed).uniform(0.5, 3, shape[-1:])) if pos_weighted else None
    k = 1 if pos_weight is None else pos_weight.numpy()
    s = 1 / (1 + np.exp(-x.numpy()))
    loss = -(k * y.numpy() * np.log(s) + (1 - y.numpy()) * np.log(1 - s))
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]

    def fn(x, y):
        return F.binary_cross_entropy_with_logits(x, y, reduction=reduction, pos_weight=pos_weight)

    np.testing.assert_allclose(fn(x, y).numpy(), expected, rtol=1e-9)
    tz.gradcheck(fn, [x, y])


def test_binary_cross_entropy_with_logits_is_stable():
    x = tz.tensor(np.array([1e4, -1e4, 1e4, -1e4], dtype=np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, tz.tensor([1.0, 0.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0, 0, 1e4, 1e4])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 0, 1, -1])


# =================================================================================================
# Regression losses and divergences
# =================================================================================================
REGRESSION = {
    "mse_loss": (F.mse_loss, lambda d: d * d),
    "l1_loss": (F.l1_loss, np.abs),
    "huber_loss": (
        lambda x, y, r: F.huber_loss(x, y, r, delta=0.7),
        lambda d: np.where(abs(d) < 0.7, d * d / 2, 0.7 * (abs(d) - 0.35)),
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSION))
@PROPERTY
@given(seed=seeds, shape=shapes(1, 3), reduction=reductions)
def test_regression_losses(name, seed, shape, reduction):
    fn, reference = REGRESSION[name]
    x, y = leaf(seed, shape), leaf(seed + 1, shape)
    loss = reference(x.numpy() - y.numpy())
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    np.testing.assert_allclose(fn(x, y, reduction).numpy(), expected, rtol=1e-9)
    tz.gradcheck(lambda x, y: fn(x, y, reduction), [x, y])


def test_regression_loss_errors():
    with pytest.raises(tz.ShapeError, match=r"mse_loss: input has shape \(3, 1\) but target has shape \(3,\)"):
        F.mse_loss(tz.zeros(3, 1), tz.zeros(3))
    with pytest.raises(ValueError, match="delta must be positive"):
        F.huber_loss(tz.zeros(3), tz.zeros(3), delta=0)


@PROPERTY
@given(
    seed=seeds,
    shape=shapes(1, 3),
    reduction=st.sampled_from(["mean", "batchmean", "sum", "none"]),
    log_target=st.booleans(),
)
def test_kl_div(seed, shape, reduction, log_target):
    logq, p = leaf(seed, shape, -3, 0), leaf(seed + 1, shape, 0.05, 1)
    target = tz.tensor(np.log(p.numpy()), requires_grad=True) if log_target else p
    loss = p.numpy() * (np.log(p.numpy()) - logq.numpy())
    expected = {"none": loss, "sum": loss.sum(), "mean": loss.mean(), "batchmean": loss.sum() / shape[0]}[reduction]

    def fn(logq, t):
        return F.kl_div(logq, t, reduction, log_target)

    np.testing.assert_allclose(fn(logq, target).numpy(), expected, rtol=1e-9)
    tz.gradcheck(fn, [logq, target])


def test_kl_div_zero_target_is_finite():
    logq = tz.tensor(np.log([0.5, 0.5]), requires_grad=True)
    target = tz.tensor(np.array([1.0, 0.0]), requires_grad=True)
    loss = F.kl_div(logq, target, "sum")
    loss.backward()
    assert loss.item() == pytest.approx(np.log(2))
    assert np.isfinite(target.grad.numpy()).all() and np.isfinite(logq.grad.numpy()).all()


# =================================================================================================
# Against torch (float64, values and gradients to 1e-5), when it is installed
# =================================================================================================
def _torch_cases() -> dict[str, tuple[str, dict, dict]]:
    """case → (function name, float inputs to differentiate, constant arguments), all by torch's keyword names."""
    rng = np.random.default_rng(0)
    x3, w4 = rng.standard_normal((6, 4, 5)), rng.uniform(0.5, 2, 4)
    logits, target = rng.standard_normal((6, 4, 5)) * 3, rng.integers(0, 4, (6, 5))
    target[0, :2] = -100
    probs = rng.dirichlet(np.ones(4), (6, 5)).transpose(0, 2, 1)
    p01, y01 = rng.uniform(0.05, 0.95, (6, 4)), rng.uniform(0, 1, (6, 4))
    channels = {"weight": rng.uniform(0.5, 2, 4), "bias": rng.standard_normal(4)}
    return {
        "batch_norm": ("batch_norm", {"input": x3, **channels}, {"training": True, "momentum": 0.3}),
        "batch_norm_eval": ("batch_norm", {"input": x3, **channels}, {"training": False}),
        "layer_norm": ("layer_norm", {"input": x3, "weight": x3[0], "bias": x3[1]}, {"normalized_shape": (4, 5)}),
        "group_norm": ("group_norm", {"input": x3, **channels}, {"num_groups": 2}),
        "linear": ("linear", {"input": x3, "weight": rng.standard_normal((2, 5)), "bias": rng.standard_normal(2)}, {}),
        "cross_entropy": ("cross_entropy", {"input": logits}, {"target": target}),
        "cross_entropy_smooth": (
            "cross_entropy",
            {"input": logits},
            {"target": target, "weight": w4, "label_smoothing": 0.15},
        ),
        "cross_entropy_sum": ("cross_entropy", {"input": logits}, {"target": target, "weight": w4, "reduction": "sum"}),
        "cross_entropy_none": (
            "cross_entropy",
            {"input": logits},
            {"target": target, "label_smoothing": 0.1, "reduction": "none"},
        ),
        "cross_entropy_probs": (
            "cross_entropy",
            {"input": logits, "target": probs},
            {"weight": w4, "label_smoothing": 0.2},
        ),
        "nll_loss": ("nll_loss", {"input": _log_softmax(logits)}, {"target": target, "weight": w4}),
        "mse_loss": ("mse_loss", {"input": p01, "target": y01}, {}),
        "l1_loss": ("l1_loss", {"input": p01, "target": y01}, {"reduction": "sum"}),
        "huber_loss": ("huber_loss", {"input": p01 * 4, "target": y01}, {"delta": 0.6}),
        "binary_cross_entropy": ("binary_cross_entropy", {"input": p01, "target": y01}, {"weight": w4}),
        "bce_with_logits": (
            "binary_cross_entropy_with_logits",
            {"input": x3[:, :, 0] * 3, "target": y01},
            {"pos_weight": w4},
        ),
        "kl_div": ("kl_div", {"input": _log_softmax(logits), "target": probs}, {"reduction": "batchmean"}),
        "kl_div_log_target": (
            "kl_div",
            {"input": _log_softmax(logits), "target": np.log(probs)},
            {"reduction": "sum", "log_target": True},
        ),
    }


TORCH_CASES = _torch_cases()


@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_against_torch(case):
    torch = pytest.importorskip("torch")
    name, differentiable, constants = TORCH_CASES[case]

    def run(functional, make):
        """The output, the gradient of every input and (for batch_norm) the updated running statistics."""
        inputs = {k: make(v, requires_grad=True) for k, v in differentiable.items()}
        kwargs = {k: make(v) if isinstance(v, np.ndarray) else v for k, v in constants.items()}
        if name == "batch_norm":
            kwargs |= {"running_mean": make(np.linspace(-1, 1, 4)), "running_var": make(np.linspace(0.5, 2, 4))}
        out = getattr(functional, name)(**inputs, **kwargs)
        out.backward(make(np.random.default_rng(1).standard_normal(tuple(out.shape))))
        stats = [kwargs[k].numpy() for k in ("running_mean", "running_var") if k in kwargs]
        return [out.detach().numpy(), *(t.grad.numpy() for t in inputs.values()), *stats]

    ours = run(F, lambda a, requires_grad=False: tz.tensor(a, requires_grad=requires_grad))
    theirs = run(torch.nn.functional, lambda a, requires_grad=False: torch.tensor(a, requires_grad=requires_grad))
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-8)


def test_sequence_cross_entropy_flattens_positions_and_skips_ignored_targets():
    rng = np.random.default_rng(0)
    logits = tz.tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)  # [B, T, V]
    targets = np.array([[1, 4, -100], [0, -100, 2]])
    loss = F.sequence_cross_entropy(logits, targets)
    kept = targets != -100
    log_p = logits.numpy() - np.log(np.exp(logits.numpy()).sum(axis=-1, keepdims=True))
    want = -np.take_along_axis(log_p, np.where(kept, targets, 0)[..., None], -1)[..., 0][kept].mean()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    np.testing.assert_allclose(F.sequence_cross_entropy(logits, np.where(kept, targets, 3), ignore_index=3).item(),
                               want, rtol=1e-12)  # fmt: skip
    with pytest.raises(tz.ShapeError, match="sequence_cross_entropy"):
        F.sequence_cross_entropy(logits, targets[:, :2])

"""Every op: forward against NumPy, gradient against central finite differences (float64), by hypothesis.

Each test draws shapes (0-d and size-1 axes included), broadcastable pairs, axes (negative ones too)
and keepdims, with values kept where finite differences are exact (see tinyzoo.testing.strategies).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.testing import strategies as tzst

FAST = settings(max_examples=15, deadline=None)


def check(fn, reference, *arrays: np.ndarray, differentiable: tuple[int, ...] | None = None) -> None:
    """fn(*tensors) equals reference(*arrays), and gradcheck passes for the differentiable inputs."""
    differentiable = tuple(range(len(arrays))) if differentiable is None else differentiable
    tensors = [tz.tensor(a, requires_grad=i in differentiable) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    np.testing.assert_allclose(out.numpy(), reference(*arrays), rtol=1e-9, atol=1e-12)
    assert out.dtype == np.float64
    if differentiable:
        assert tz.gradcheck(fn, tensors)


# ----- elementwise unary ------------------------------------------------------------------------
def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


UNARY = {
    "neg": (tz.neg, np.negative, {}),
    "exp": (tz.exp, np.exp, {}),
    "log": (tz.log, np.log, {"positive": True}),
    "log1p": (tz.log1p, np.log1p, {"positive": True}),
    "sqrt": (tz.sqrt, np.sqrt, {"positive": True}),
    "abs": (tz.abs, np.abs, {"away_from_zero": True}),
    "sin": (tz.sin, np.sin, {}),
    "cos": (tz.cos, np.cos, {}),
    "tanh": (tz.tanh, np.tanh, {}),
    "sigmoid": (tz.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {}),
    "relu": (tz.relu, lambda x: np.maximum(x, 0), {"away_from_zero": True}),
    "leaky_relu": (lambda x: tz.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x), {"away_from_zero": True}),
    "elu": (lambda x: tz.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), {"away_from_zero": True}),
    "gelu": (tz.gelu, _gelu, {}),
    "softplus": (lambda x: tz.softplus(x, 2.0), lambda x: np.log1p(np.exp(2 * x)) / 2, {}),
    "clamp": (lambda x: tz.clamp(x, -0.523, 0.517), lambda x: np.clip(x, -0.523, 0.517), {"distinct": True}),
    "square": (lambda x: x**2, np.square, {}),
    "cube": (lambda x: x**3, lambda x: x**3, {}),
    "rsub": (lambda x: 1.5 - x, lambda x: 1.5 - x, {}),
    "rdiv": (lambda x: 2.0 / x, lambda x: 2.0 / x, {"positive": True}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(data=st.data())
def test_unary(name, data):
    fn, reference, options = UNARY[name]
    x = data.draw(tzst.arrays(tzst.shapes(), **options))
    check(fn, reference, x)


# ----- elementwise binary (broadcasting) --------------------------------------------------------
BINARY = {
    "add": (tz.add, np.add, {}, {}),
    "sub": (tz.sub, np.subtract, {}, {}),
    "mul": (tz.mul, np.multiply, {}, {}),
    "div": (tz.div, np.divide, {}, {"positive": True}),
    "pow": (tz.pow, np.power, {"positive": True}, {}),
    "operator_mix": (lambda a, b: (a + b) * a - b / (a * a + 1), lambda a, b: (a + b) * a - b / (a * a + 1), {}, {}),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@FAST
@given(data=st.data())
def test_binary_broadcasting(name, data):
    fn, reference, options_a, options_b = BINARY[name]
    shape_a, shape_b = data.draw(tzst.broadcastable_shapes())
    a = data.draw(tzst.arrays(shape_a, **options_a))
    b = data.draw(tzst.arrays(shape_b, **options_b))
    check(fn, reference, a, b)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@FAST
@given(data=st.data())
def test_maximum_minimum(op, data):
    shape_a, shape_b = data.draw(tzst.broadcastable_shapes())
    size_a = int(np.prod(shape_a))
    values = data.draw(tzst.arrays((size_a + int(np.prod(shape_b)),), distinct=True))
    a, b = values[:size_a].reshape(shape_a), values[size_a:].reshape(shape_b)
    check(getattr(tz, op), getattr(np, op), a, b)


@FAST
@given(data=st.data())
def test_where_and_masked_fill(data):
    shape_a, shape_b = data.draw(tzst.broadcastable_shapes())
    a, b = data.draw(tzst.arrays(shape_a)), data.draw(tzst.arrays(shape_b))
    cond = a > 0
    check(lambda x, y: tz.where(cond, x, y), lambda x, y: np.where(cond, x, y), a, b)
    check(lambda x: tz.masked_fill(x, cond, -3.0), lambda x: np.where(cond, -3.0, x), a)


def test_sum_to_shape_undoes_broadcasting():
    grad = tz.ones(2, 3, 4, dtype="float64")
    assert tz.sum_to_shape(grad, (3, 1)).shape == (3, 1)
    np.testing.assert_allclose(tz.sum_to_shape(grad, (3, 1)).numpy(), np.full((3, 1), 8.0))
    np.testing.assert_allclose(tz.sum_to_shape(grad, ()).numpy(), 24.0)
    np.testing.assert_allclose(tz.sum_to_shape(grad, (1, 4)).numpy(), np.full((1, 4), 6.0))


# ----- reductions -----------------------------------------------------------------------------
REDUCTIONS = {
    "sum": (tz.sum, np.sum, {}),
    "mean": (tz.mean, np.mean, {}),
    "max": (tz.max, np.max, {"distinct": True}),
    "min": (tz.min, np.min, {"distinct": True}),
    "var": (lambda t, **kw: tz.var(t, ddof=0, **kw), np.var, {}),
    "std": (lambda t, **kw: tz.std(t, ddof=0, **kw), np.std, {"distinct": True}),
    "norm": (tz.norm, lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
             {"away_from_zero": True}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(data=st.data())
def test_reductions(name, data):
    fn, reference, options = REDUCTIONS[name]
    x = data.draw(tzst.arrays(tzst.shapes(), **options))
    axis = data.draw(tzst.axes(x.ndim))
    keepdims = data.draw(st.booleans())
    reduced = x.size if axis is None else int(np.prod(np.array(x.shape)[np.atleast_1d(axis)]))
    if name == "std" and reduced == 1:
        return  # the std of one value is 0, where sqrt has no derivative (torch gives NaN there too)
    check(lambda t: fn(t, axis=axis, keepdims=keepdims), lambda a: reference(a, axis=axis, keepdims=keepdims), x)


@FAST
@given(data=st.data())
def test_logsumexp_softmax_log_softmax(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1)))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    keepdims = data.draw(st.booleans())
    peak = x.max(axis=axis, keepdims=True)
    lse = np.log(np.exp(x - peak).sum(axis=axis, keepdims=True)) + peak
    check(lambda t: tz.logsumexp(t, axis, keepdims), lambda a: lse if keepdims else np.squeeze(lse, axis), x)
    check(lambda t: tz.softmax(t, axis), lambda a: np.exp(a - lse), x)
    check(lambda t: tz.log_softmax(t, dim=axis), lambda a: a - lse, x)


@FAST
@given(data=st.data())
def test_prod_cumsum_cumprod(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1), away_from_zero=True))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    check(lambda t: tz.prod(t, axis), lambda a: np.prod(a, axis=axis), x)
    check(lambda t: tz.cumsum(t, axis), lambda a: np.cumsum(a, axis=axis), x)
    check(lambda t: tz.cumprod(t, axis), lambda a: np.cumprod(a, axis=axis), x)


def test_prod_gradient_exact_with_zeros():
    x = tz.tensor(np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 4.0]]), requires_grad=True)
    tz.prod(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0]])


def test_argmax_argmin_and_norm_at_zero():
    x = tz.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]))
    assert x.argmax(axis=1).tolist() == [1, 0] and tz.argmin(x, dim=1).tolist() == [0, 1]
    zero = tz.zeros(3, dtype="float64", requires_grad=True)
    tz.norm(zero).backward()
    assert np.all(np.isfinite(zero.grad.numpy()))


# ----- shape ops -------------------------------------------------------------------------------
@FAST
@given(data=st.data())
def test_reshape_flatten_squeeze_unsqueeze(data):
    x = data.draw(tzst.arrays(tzst.shapes()))
    check(lambda t: t.reshape(-1), lambda a: a.reshape(-1), x)
    check(lambda t: tz.view(t, (1,) + x.shape), lambda a: a.reshape((1,) + a.shape), x)
    check(lambda t: tz.flatten(t), lambda a: a.reshape(-1), x)
    check(lambda t: tz.squeeze(t), np.squeeze, x)
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    check(lambda t: tz.unsqueeze(t, axis), lambda a: np.expand_dims(a, axis), x)


@FAST
@given(data=st.data())
def test_permute_transpose_swapaxes_flip(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1)))
    order = tuple(data.draw(st.permutations(range(x.ndim))))
    check(lambda t: t.permute(order), lambda a: a.transpose(order), x)
    check(lambda t: t.T, lambda a: a.T, x)
    a1, a2 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    check(lambda t: tz.swapaxes(t, a1, a2), lambda a: np.swapaxes(a, a1, a2), x)
    axis = data.draw(tzst.axes(x.ndim))
    check(lambda t: tz.flip(t, axis), lambda a: np.flip(a, axis), x)


@FAST
@given(data=st.data())
def test_broadcast_to_expand(data):
    shape, target = data.draw(tzst.broadcastable_shapes())
    full = np.broadcast_shapes(shape, target)
    x = data.draw(tzst.arrays(shape))
    check(lambda t: tz.broadcast_to(t, full), lambda a: np.broadcast_to(a, full), x)
    check(lambda t: t.expand(*full), lambda a: np.broadcast_to(a, full), x)


@FAST
@given(data=st.data())
def test_concat_stack_split_chunk(data):
    shape = data.draw(tzst.shapes(min_dims=1))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x, y = data.draw(tzst.arrays(shape)), data.draw(tzst.arrays(shape))
    check(lambda a, b: tz.concat([a, b], axis), lambda a, b: np.concatenate([a, b], axis), x, y)
    check(lambda a, b: tz.stack([a, b], axis=axis), lambda a, b: np.stack([a, b], axis), x, y)
    size = data.draw(st.integers(1, 3))
    length = shape[axis]
    bounds = list(range(size, length, size))
    for i, piece in enumerate(np.split(x, bounds, axis=axis)):
        check(lambda t, i=i: tz.split(t, size, axis)[i] * 2, lambda a, piece=piece: piece * 2, x)
    pieces = tz.chunk(tz.tensor(x), 2, axis)
    np.testing.assert_allclose(np.concatenate([p.numpy() for p in pieces], axis), x)


@FAST
@given(data=st.data())
def test_pad_repeat_tile(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1)))
    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(x.ndim)]
    check(lambda t: tz.pad(t, widths, value=0.5), lambda a: np.pad(a, widths, constant_values=0.5), x)
    repeats = data.draw(st.integers(1, 3))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    check(lambda t: tz.repeat_interleave(t, repeats, axis), lambda a: np.repeat(a, repeats, axis), x)
    reps = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=x.ndim + 1)))
    check(lambda t: tz.tile(t, reps), lambda a: np.tile(a, reps), x)


# ----- indexing ------------------------------------------------------------------------------
@FAST
@given(data=st.data())
def test_getitem_basic_and_advanced(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=2, min_side=2)))
    rows = data.draw(tzst.index_arrays(x.shape[0], (5,)))  # repeats included: gradients must add up
    mask = x > 0
    indices = [
        0,
        -1,
        slice(None, None, 2),
        (Ellipsis, 1),
        (None, slice(1, None)),
        rows,
        (rows, slice(None)),
        mask,
        (slice(None), np.array([1, 0, 1])),
    ]
    for index in indices:
        check(lambda t, index=index: t[index], lambda a, index=index: a[index], x)
    check(lambda t: t[tz.tensor(rows)], lambda a: a[rows], x)


@FAST
@given(data=st.data())
def test_gather_scatter_add_index_select_index_add(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1, min_side=2)))
    axis = data.draw(st.integers(0, x.ndim - 1))
    index_shape = tuple(data.draw(st.integers(1, 4)) if i == axis else n for i, n in enumerate(x.shape))
    index = data.draw(tzst.index_arrays(x.shape[axis], index_shape))
    check(lambda t: tz.gather(t, axis, index), lambda a: np.take_along_axis(a, index, axis), x)
    check(lambda t: tz.take_along_axis(t, index, axis), lambda a: np.take_along_axis(a, index, axis), x)
    src = data.draw(tzst.arrays(index_shape))

    def scatter_reference(a, s):
        out = a.copy()
        positions = list(np.indices(index.shape, sparse=True))
        positions[axis] = index
        np.add.at(out, tuple(positions), s)
        return out

    check(lambda t, s: tz.scatter_add(t, axis, index, s), scatter_reference, x, src)
    flat_index = index.reshape(-1)[: data.draw(st.integers(1, 5))]
    check(lambda t: tz.index_select(t, axis, flat_index), lambda a: np.take(a, flat_index, axis), x)
    source_shape = x.shape[:axis] + (len(flat_index),) + x.shape[axis + 1 :]
    source = data.draw(tzst.arrays(source_shape))

    def index_add_reference(a, s):
        out = a.copy()
        np.add.at(out, (slice(None),) * axis + (flat_index,), s)
        return out

    check(lambda t, s: tz.index_add(t, axis, flat_index, s), index_add_reference, x, source)


# ----- linear algebra --------------------------------------------------------------------------
@FAST
@given(data=st.data())
def test_matmul_batched_broadcasting_and_vectors(data):
    n, k, m = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = data.draw(tzst.broadcastable_shapes(max_dims=2, max_side=3))
    a = data.draw(tzst.arrays(batch_a + (n, k)))
    b = data.draw(tzst.arrays(batch_b + (k, m)))
    check(tz.matmul, np.matmul, a, b)
    v = data.draw(tzst.arrays((k,)))
    check(lambda x, y: x @ y, np.matmul, a, v)
    check(lambda y, x: y @ x, np.matmul, v, b)
    check(tz.outer, np.outer, v, data.draw(tzst.arrays((m,))))


EINSUM_SPECS = ["ij,jk->ik", "bij,bjk->bik", "bhqd,bhkd->bhqk", "ij->ji", "ij->", "i,i->", "ij,j->i", "ijk,ik->j",
                "ij,kl->ijkl", "bi,bj"]  # fmt: skip


@pytest.mark.parametrize("spec", EINSUM_SPECS)
@FAST
@given(data=st.data())
def test_einsum(spec, data):
    lhs = spec.split("->")[0].split(",")
    sizes = {c: data.draw(st.integers(1, 3)) for c in set("".join(lhs))}
    operands = [data.draw(tzst.arrays(tuple(sizes[c] for c in term))) for term in lhs]
    check(lambda *t: tz.einsum(spec, *t), lambda *a: np.einsum(spec, *a), *operands)


# ----- dtype and conversions ------------------------------------------------------------------
def test_astype_keeps_gradient_dtype():
    x = tz.tensor(np.arange(3.0), requires_grad=True)
    (x.float() * 2).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [2.0, 2.0, 2.0]
    assert tz.tensor([1.0, 2.0]).dtype == np.float32 and tz.tensor(np.zeros(2)).dtype == np.float64
    assert (tz.tensor([1.0], dtype="float32") * 2.5).dtype == np.float32  # Python scalars do not upcast


# ----- second order ----------------------------------------------------------------------------
@FAST
@given(data=st.data())
def test_second_derivatives(data):
    x = data.draw(tzst.arrays(tzst.shapes(min_dims=1, max_dims=2)))
    for fn in (tz.tanh, lambda t: t**3, lambda t: tz.softmax(t, -1), lambda t: tz.logsumexp(t, -1), tz.sigmoid,
               lambda t: (t @ t.T) if t.ndim == 2 else t * t):  # fmt: skip
        assert tz.gradgradcheck(fn, [tz.tensor(x, requires_grad=True)])


def test_third_derivatives_through_the_fused_activation_backwards():
    """tanh and sigmoid backward are single ops (tanh_backward, sigmoid_backward): they differentiate again, twice."""
    xs = np.array([0.3, -1.2, 2.0])
    t, s = np.tanh(xs), 1 / (1 + np.exp(-xs))
    expected = {tz.tanh: -2 * (1 - t**2) * (1 - 3 * t**2), tz.sigmoid: s * (1 - s) * (1 - 6 * s + 6 * s**2)}
    for fn, third in expected.items():
        x = tz.tensor(xs, requires_grad=True)
        (first,) = tz.grad(fn(x).sum(), x, create_graph=True)
        (second,) = tz.grad(first.sum(), x, create_graph=True)
        (result,) = tz.grad(second.sum(), x)
        np.testing.assert_allclose(result.numpy(), third, atol=1e-12)


def test_hessian_vector_product_of_cube():
    x = tz.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    v = tz.tensor(np.array([1.0, 1.0, 2.0]))
    (g,) = tz.grad((x**3).sum(), x, create_graph=True)
    (hv,) = tz.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.numpy(), 6 * x.numpy() * v.numpy())

"""Every op of the op table (tests/op_table.py), one test each: forward against NumPy, gradient against
central finite differences (float64), by hypothesis.

Each example draws awkward inputs (0-d tensors, zero-length axes, size-1 broadcasting, strided views,
small and broadcast index arrays, tensor bounds), float64 or float32, and which inputs require a
gradient (so every rule's "no gradient for this input" branch runs too); it checks the value and dtype,
the gradients (finite differences in float64; shape, dtype and agreement with float64 in float32), that
inputs that need no gradient get none, and that no input array was modified.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_table import CASES, Drawn

import tinyzoo as tz
from tinyzoo.testing import strategies as tzst

FAST = settings(max_examples=15, deadline=None)
TOLERANCE = {np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-12}, np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5}}


def check(drawn: Drawn, data: st.DataObject, dtype: np.dtype) -> None:
    """The drawn call equals its NumPy reference; gradients are right; inputs are left as they were."""
    originals = [a.copy() for a in drawn.inputs]
    wants = [drawn.differentiable and data.draw(st.booleans(), label=f"input {i} requires grad")
             for i in range(len(drawn.inputs))]  # fmt: skip
    tensors = [tz.from_numpy(a).requires_grad_(want) for a, want in zip(drawn.inputs, wants)]
    out = drawn.tz(*tensors)
    if drawn.ref is not None:  # (convolutions and pooling have PyTorch as their reference: test_ops_torch.py)
        expected = np.asarray(drawn.ref(*drawn.inputs))
        assert out.shape == expected.shape, f"shape {out.shape}, NumPy gives {expected.shape}"
        if expected.dtype.kind == "f":
            assert out.dtype == (drawn.out_dtype or dtype), f"dtype {out.dtype} for {dtype} inputs"
        np.testing.assert_allclose(out.numpy(), expected, **TOLERANCE[dtype])
    else:
        assert out.dtype == dtype, f"dtype {out.dtype} for {dtype} inputs"
    if any(wants):
        _check_gradients(drawn, tensors, wants, dtype)
    for array, original in zip(drawn.inputs, originals):
        np.testing.assert_array_equal(array, original, err_msg="the op modified its input")


def _check_gradients(drawn: Drawn, tensors: list[tz.Tensor], wants: list[bool], dtype: np.dtype) -> None:
    if dtype == np.float64 and drawn.smooth:
        tz.gradcheck(drawn.tz, tensors)  # (raises GradcheckError naming the input and element)
        return
    out = drawn.tz(*tensors)
    cotangent = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(tz.tensor(cotangent, dtype=out.dtype))
    wide = [tz.tensor(a.astype(np.float64), requires_grad=want) for a, want in zip(drawn.inputs, wants)]
    drawn.tz(*wide).backward(tz.tensor(cotangent))
    for t, w, want in zip(tensors, wide, wants):
        if not want:
            assert t.grad is None, "an input that needs no gradient got one"
            continue
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
        if drawn.smooth:
            np.testing.assert_allclose(t.grad.numpy(), w.grad.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", sorted(CASES))
@FAST
@given(data=st.data())
def test_op(name: str, data: st.DataObject) -> None:
    dtype = data.draw(tzst.float_dtypes(), label="dtype")
    check(CASES[name].draw(data, dtype), data, dtype)


# ----- beyond the table ------------------------------------------------------------------------------
def test_sum_to_shape_undoes_broadcasting():
    grad = tz.ones(2, 3, 4, dtype="float64")
    assert tz.sum_to_shape(grad, (3, 1)).shape == (3, 1)
    np.testing.assert_allclose(tz.sum_to_shape(grad, (3, 1)).numpy(), np.full((3, 1), 8.0))
    np.testing.assert_allclose(tz.sum_to_shape(grad, ()).numpy(), 24.0)
    np.testing.assert_allclose(tz.sum_to_shape(grad, (1, 4)).numpy(), np.full((1, 4), 6.0))


def test_argmax_argmin_and_norm_at_zero():
    x = tz.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]))
    assert x.argmax(axis=1).tolist() == [1, 0] and tz.argmin(x, dim=1).tolist() == [0, 1]
    zero = tz.zeros(3, dtype="float64", requires_grad=True)
    tz.norm(zero).backward()
    assert np.all(np.isfinite(zero.grad.numpy()))


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
        tz.gradgradcheck(fn, [tz.tensor(x, requires_grad=True)])


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

"""Every op of the op table against PyTorch, in float64: values and vector-Jacobian products on the same
awkward draws test_ops.py uses (skipped as a whole when torch is absent, which the summary shows).

Where tinyzoo departs from PyTorch on purpose, the difference is listed in the README's table of
deliberate differences; the cases here call the PyTorch spelling that means the same thing.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_table import CASES

import tinyzoo as tz

torch = pytest.importorskip("torch")

TORCH_CASES = sorted(CASES)


def _as_torch(array: np.ndarray, requires_grad: bool) -> torch.Tensor:
    return torch.tensor(array.copy(order="C"), requires_grad=requires_grad)  # (torch refuses negative strides)


@pytest.mark.parametrize("name", TORCH_CASES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_op_matches_torch(name: str, data: st.DataObject) -> None:
    drawn = CASES[name].draw(data, np.dtype(np.float64))
    wants = [drawn.differentiable] * len(drawn.inputs)
    ours = [tz.tensor(a, requires_grad=want) for a, want in zip(drawn.inputs, wants)]
    theirs = [_as_torch(a, want) for a, want in zip(drawn.inputs, wants)]
    out, expected = drawn.tz(*ours), drawn.torch(torch, *theirs)
    assert out.shape == tuple(expected.shape), f"shape {out.shape}, PyTorch gives {tuple(expected.shape)}"
    tolerance = {"rtol": 1e-9, "atol": 1e-12} if out.dtype != np.float32 else {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), **tolerance)
    if not (drawn.differentiable and drawn.smooth and expected.requires_grad):
        return
    cotangent = np.random.default_rng(0).standard_normal(out.shape)
    our_grads = tz.grad(out, ours, grad_outputs=tz.tensor(cotangent), allow_unused=True)
    their_grads = torch.autograd.grad(expected, theirs, torch.tensor(cotangent), allow_unused=True)
    for position, (mine, reference, t) in enumerate(zip(our_grads, their_grads, ours)):
        mine = np.zeros(t.shape) if mine is None else mine.numpy()
        reference = np.zeros(t.shape) if reference is None else reference.numpy()
        np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12, err_msg=f"gradient of input {position}")


def test_every_case_has_a_torch_peer():
    """No op of the table escapes the comparison: every draw function names PyTorch's spelling."""
    rng_data = st.data()
    missing = []

    @settings(max_examples=1, deadline=None)
    @given(data=rng_data)
    def probe(data: st.DataObject) -> None:
        for name, case in CASES.items():
            if case.draw(data, np.dtype(np.float64)).torch is None:
                missing.append(name)

    probe()
    assert not missing, f"cases without a PyTorch peer: {sorted(set(missing))}"

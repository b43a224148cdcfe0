"""tinyzoo.kernels: edge softmax / aggregation and dynamic routing.

Each kernel is checked three ways: the Numba kernel against the reference (tinyzoo ops) on
hypothesis-drawn inputs, forward and gradient, in float64 to 1e-6; gradcheck on the kernel; and an
independent formulation (a dense masked N×N softmax for graphs). The numba.cuda kernels run under
Numba's CUDA simulator in a subprocess (the simulator must be switched on before numba.cuda is
imported); the CuPy paths are marked `gpu`.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo.kernels import _dispatch, dynamic_routing, edge_aggregate, edge_softmax, squash

# The package exports the function edge_softmax, which shadows the submodule of the same name.
es_module = importlib.import_module("tinyzoo.kernels.edge_softmax")
routing_module = importlib.import_module("tinyzoo.kernels.routing")

REPO = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=20, deadline=None)
TOL = {"rtol": 1e-6, "atol": 1e-6}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with the repo importable; fail the test with its output if it fails."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    full_env.pop("TINYZOO_KERNELS", None)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def grads(out: tz.Tensor, inputs: list[tz.Tensor], seed: int = 1) -> list[np.ndarray]:
    """Gradients of <out, w> for a fixed random w."""
    weights = tz.tensor(np.random.default_rng(seed).standard_normal(out.shape))
    return [g.numpy() for g in tz.grad((out * weights).sum(), inputs)]


# =================================================================================================
# Graphs
# =================================================================================================
@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 8, max_edges: int = 24) -> dict:
    """A random multigraph: isolated nodes, self-loops, duplicate edges, hubs, sorted or not."""
    num_nodes = draw(st.integers(1, max_nodes))
    num_edges = draw(st.integers(0, max_edges))
    node = st.integers(0, num_nodes - 1)
    src = draw(st.lists(node, min_size=num_edges, max_size=num_edges))
    dst = draw(st.lists(node, min_size=num_edges, max_size=num_edges))
    if num_edges and draw(st.booleans()):  # one node receives every edge
        dst = [draw(node)] * num_edges
    if draw(st.booleans()):  # self-loops on every node, as GAT adds them
        src, dst = src + list(range(num_nodes)), dst + list(range(num_nodes))
    if src and draw(st.booleans()):  # a duplicated edge
        src, dst = [*src, src[0]], [*dst, dst[0]]
    src, dst = np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)
    if draw(st.booleans()):  # CSR order
        order = np.argsort(dst, kind="stable")
        src, dst = src[order], dst[order]
    num_nodes += draw(st.integers(0, 2))  # trailing isolated nodes
    heads = draw(st.integers(1, 8))
    features = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "src": src,
        "dst": dst,
        "num_nodes": num_nodes,
        "scores": rng.standard_normal((len(dst), heads)) * 3,
        "h": rng.standard_normal((num_nodes, heads, features)),
    }


def gat(scores: tz.Tensor, h: tz.Tensor, g: dict, impl: str) -> tz.Tensor:
    alpha = edge_softmax(scores, g["dst"], g["num_nodes"], impl=impl)
    return edge_aggregate(alpha, h, g["src"], g["dst"], g["num_nodes"], impl=impl)


@FAST
@given(graphs())
def test_edge_softmax_numba_matches_reference(g: dict) -> None:
    scores = tz.tensor(g["scores"], requires_grad=True)
    kernel = edge_softmax(scores, g["dst"], g["num_nodes"], impl="numba")
    reference = edge_softmax(scores, g["dst"], g["num_nodes"], impl="reference")
    assert kernel.grad_fn == "edge_softmax" and reference.grad_fn != "edge_softmax"  # the two paths both ran
    np.testing.assert_allclose(kernel.numpy(), reference.numpy(), **TOL)
    if len(g["dst"]):  # each receiving node's weights sum to one
        sums = np.zeros((g["num_nodes"], kernel.shape[1]))
        np.add.at(sums, g["dst"], kernel.numpy())
        np.testing.assert_allclose(sums[np.unique(g["dst"])], 1.0, **TOL)
        np.testing.assert_allclose(grads(kernel, [scores])[0], grads(reference, [scores])[0], **TOL)
        tz.gradcheck(lambda s: edge_softmax(s, g["dst"], g["num_nodes"], impl="numba"), [scores])


@FAST
@given(graphs())
def test_edge_aggregate_numba_matches_reference(g: dict) -> None:
    scores = tz.tensor(g["scores"], requires_grad=True)
    h = tz.tensor(g["h"], requires_grad=True)
    kernel, reference = gat(scores, h, g, "numba"), gat(scores, h, g, "reference")
    assert kernel.grad_fn == "edge_aggregate" and reference.grad_fn != "edge_aggregate"  # the two paths both ran
    assert kernel.shape == (g["num_nodes"], *g["h"].shape[1:])
    np.testing.assert_allclose(kernel.numpy(), reference.numpy(), **TOL)
    if len(g["dst"]):
        for got, want in zip(grads(kernel, [scores, h]), grads(reference, [scores, h])):
            np.testing.assert_allclose(got, want, **TOL)
        tz.gradcheck(lambda s, x: gat(s, x, g, "numba"), [scores, h])


def dense_gat(scores: tz.Tensor, h: tz.Tensor, src: np.ndarray, dst: np.ndarray, num_nodes: int) -> tuple:
    """Test-only dense equivalent: scatter scores into [N, N, heads], masked softmax over sources, einsum."""
    heads = scores.shape[1]
    flat = dst * num_nodes + src
    dense = tz.index_add(tz.zeros(num_nodes * num_nodes, heads, dtype="float64"), 0, flat, scores)
    dense = dense.reshape(num_nodes, num_nodes, heads)
    mask = np.zeros((num_nodes, num_nodes, 1), dtype=bool)
    mask[dst, src] = True
    alpha = tz.softmax(tz.where(mask, dense, -1e30), axis=1) * tz.tensor(mask.astype(np.float64))
    return alpha, tz.einsum("ijh,jhf->ihf", alpha, h)


@FAST
@given(graphs(), st.data())
def test_kernels_match_dense_masked_softmax(g: dict, data: st.DataObject) -> None:
    keys = np.unique(np.stack([g["dst"], g["src"]]), axis=1, return_index=True)[1]  # drop duplicate edges
    keep = np.sort(keys) if len(g["dst"]) else np.zeros(0, dtype=np.int64)
    g = {**g, "src": g["src"][keep], "dst": g["dst"][keep], "scores": g["scores"][keep]}
    scores, h = tz.tensor(g["scores"], requires_grad=True), tz.tensor(g["h"], requires_grad=True)
    impl = data.draw(st.sampled_from(["numba", "reference"]))
    alpha = edge_softmax(scores, g["dst"], g["num_nodes"], impl=impl)
    out = edge_aggregate(alpha, h, g["src"], g["dst"], g["num_nodes"], impl=impl)
    dense_alpha, dense_out = dense_gat(scores, h, g["src"], g["dst"], g["num_nodes"])
    np.testing.assert_allclose(alpha.numpy(), dense_alpha.numpy()[g["dst"], g["src"]], **TOL)
    np.testing.assert_allclose(out.numpy(), dense_out.numpy(), **TOL)
    if len(g["dst"]):
        for got, want in zip(grads(out, [scores, h]), grads(dense_out, [scores, h])):
            np.testing.assert_allclose(got, want, **TOL)


def test_edge_softmax_is_stable_for_large_scores() -> None:
    dst = np.array([0, 0, 1])
    scores = tz.tensor(np.array([[1000.0], [999.0], [-1000.0]]))
    for impl in ("numba", "reference"):
        alpha = edge_softmax(scores, dst, 2, impl=impl).numpy()
        np.testing.assert_allclose(alpha[:, 0], [1 / (1 + np.exp(-1)), 1 / (1 + np.e), 1.0])


def test_float32_kernels_match_reference() -> None:
    rng = np.random.default_rng(3)
    n, e = 50, 400
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    scores = tz.tensor(rng.standard_normal((e, 4)).astype(np.float32), requires_grad=True)
    h = tz.tensor(rng.standard_normal((n, 4, 8)).astype(np.float32), requires_grad=True)
    g = {"src": src, "dst": dst, "num_nodes": n}
    kernel, reference = gat(scores, h, g, "numba"), gat(scores, h, g, "reference")
    assert kernel.dtype == np.float32 and kernel.grad_fn == "edge_aggregate" != reference.grad_fn
    np.testing.assert_allclose(kernel.numpy(), reference.numpy(), rtol=1e-4, atol=1e-5)
    for got, want in zip(grads(kernel, [scores, h]), grads(reference, [scores, h])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    u = tz.tensor(rng.standard_normal((3, 20, 5, 8)).astype(np.float32), requires_grad=True)
    v_kernel, v_reference = dynamic_routing(u, 3, impl="numba"), dynamic_routing(u, 3, impl="reference")
    assert v_kernel.dtype == np.float32 and v_kernel.grad_fn == "dynamic_routing" != v_reference.grad_fn
    np.testing.assert_allclose(v_kernel.numpy(), v_reference.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads(v_kernel, [u])[0], grads(v_reference, [u])[0], rtol=1e-3, atol=1e-4)


# =================================================================================================
# Routing
# =================================================================================================
@FAST
@given(
    st.integers(1, 3), st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5),
    st.integers(0, 2**32 - 1),
)  # fmt: skip
def test_routing_numba_matches_reference(
    batch: int, n_in: int, n_out: int, dim: int, iterations: int, seed: int
) -> None:
    u = tz.tensor(np.random.default_rng(seed).standard_normal((batch, n_in, n_out, dim)), requires_grad=True)
    kernel = dynamic_routing(u, iterations, impl="numba")
    reference = dynamic_routing(u, iterations, impl="reference")
    assert kernel.grad_fn == "dynamic_routing" != reference.grad_fn and kernel.shape == (batch, n_out, dim)
    np.testing.assert_allclose(kernel.numpy(), reference.numpy(), **TOL)
    np.testing.assert_allclose(grads(kernel, [u])[0], grads(reference, [u])[0], **TOL)
    if u.size <= 60:
        tz.gradcheck(lambda x: dynamic_routing(x, iterations, impl="numba"), [u])


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_routing_gradcheck(iterations: int) -> None:
    u = tz.tensor(np.random.default_rng(iterations).standard_normal((2, 4, 3, 5)), requires_grad=True)
    tz.gradcheck(lambda x: dynamic_routing(x, iterations, impl="numba"), [u])
    tz.gradcheck(lambda x: dynamic_routing(x, iterations, impl="reference"), [u])


def test_routing_one_iteration_is_uniform_coupling() -> None:
    u = np.random.default_rng(0).standard_normal((2, 6, 3, 4))
    s = u.sum(axis=1) / 3  # one iteration: c = 1/out_caps everywhere
    norm = np.linalg.norm(s, axis=-1, keepdims=True)
    expected = norm**2 / (1 + norm**2) * s / norm
    for impl in ("numba", "reference"):
        np.testing.assert_allclose(dynamic_routing(tz.tensor(u), 1, impl=impl).numpy(), expected, **TOL)


def test_routing_of_zero_votes_is_zero_with_finite_gradient() -> None:
    u = tz.zeros(2, 3, 4, 5, dtype="float64", requires_grad=True)
    for impl in ("numba", "reference"):
        v = dynamic_routing(u, 3, impl=impl)
        assert np.all(v.numpy() == 0)
        (grad,) = grads(v, [u])
        assert np.all(np.isfinite(grad))
        tz.gradcheck(lambda x, impl=impl: dynamic_routing(x, 3, impl=impl), [u])


def test_squash_matches_formula_and_is_safe_at_zero() -> None:
    s = np.random.default_rng(0).standard_normal((4, 6))
    s[1] = 0.0
    norm = np.linalg.norm(s, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        expected = np.nan_to_num(norm**2 / (1 + norm**2) * s / norm)
    x = tz.tensor(s, requires_grad=True)
    out = squash(x)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-15)
    (grad,) = tz.grad(out.sum(), [x])
    assert np.all(np.isfinite(grad.numpy())) and np.all(grad.numpy()[1] == 0)
    tz.gradcheck(squash, [x])
    tz.gradgradcheck(squash, [tz.tensor(s[[0, 2, 3]], requires_grad=True)])
    np.testing.assert_allclose(squash(tz.tensor(s.T), axis=0).numpy(), expected.T, rtol=1e-12, atol=1e-15)


# =================================================================================================
# Dispatch, second order, determinism, contiguity
# =================================================================================================
def test_dispatch_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    scores, dst = tz.tensor(np.ones((3, 2)), requires_grad=True), np.array([0, 1, 1])
    assert edge_softmax(scores, dst, 2).grad_fn == "edge_softmax"
    monkeypatch.setenv("TINYZOO_KERNELS", "reference")
    forced = edge_softmax(scores, dst, 2)
    assert forced.grad_fn != "edge_softmax"
    np.testing.assert_allclose(forced.numpy(), [[1, 1], [0.5, 0.5], [0.5, 0.5]])
    assert dynamic_routing(tz.ones(1, 2, 2, 2, requires_grad=True), 2).grad_fn != "dynamic_routing"
    monkeypatch.setenv("TINYZOO_KERNELS", "fastest")
    with pytest.raises(ValueError, match="TINYZOO_KERNELS"):
        edge_softmax(scores, dst, 2)
    with pytest.raises(tz.DeviceError, match="cuda kernel needs CuPy"):
        edge_softmax(scores, dst, 2, impl="cuda")
    monkeypatch.setenv("TINYZOO_KERNELS", "auto")
    half = tz.tensor(np.ones((3, 2), np.float16))
    assert edge_softmax(half, dst, 2).grad_fn != "edge_softmax"  # auto: float16 takes the reference path
    with pytest.raises(tz.DTypeError, match="impl='numba' runs on float32 or float64"):
        edge_softmax(half, dst, 2, impl="numba")


def test_kernels_are_once_differentiable_and_the_reference_twice() -> None:
    g = {"src": np.array([0, 1, 2, 2]), "dst": np.array([1, 2, 0, 1]), "num_nodes": 3}
    rng = np.random.default_rng(0)
    scores = tz.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    h = tz.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    u = tz.tensor(rng.standard_normal((1, 3, 2, 2)), requires_grad=True)
    with pytest.raises(tz.GraphError, match="once-differentiable"):
        tz.grad(gat(scores, h, g, "numba").sum(), [scores], create_graph=True)
    with pytest.raises(tz.GraphError, match="once-differentiable"):
        tz.grad(dynamic_routing(u, 2, impl="numba").sum(), [u], create_graph=True)
    tz.gradgradcheck(lambda s, x: gat(s, x, g, "reference"), [scores, h])
    tz.gradgradcheck(lambda x: dynamic_routing(x, 2, impl="reference"), [u])


def test_kernels_are_deterministic_across_runs_and_thread_counts() -> None:
    import numba

    rng = np.random.default_rng(7)
    n, e = 3000, 40000
    g = {"src": rng.integers(0, n, e), "dst": rng.integers(0, n, e), "num_nodes": n}
    scores = tz.tensor(rng.standard_normal((e, 4)), requires_grad=True)
    h = tz.tensor(rng.standard_normal((n, 4, 8)), requires_grad=True)
    u = tz.tensor(rng.standard_normal((8, 64, 10, 8)), requires_grad=True)

    def run() -> list[np.ndarray]:
        out, v = gat(scores, h, g, "numba"), dynamic_routing(u, 3, impl="numba")
        return [out.numpy(), v.numpy(), *grads(out, [scores, h]), *grads(v, [u])]

    first = run()
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = run()
    finally:
        numba.set_num_threads(threads)
    for a, b, c in zip(first, run(), single):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(2)
    wide = rng.standard_normal((10, 6))
    dst_long = rng.integers(0, 4, 20)
    h_t = rng.standard_normal((3, 4, 5)).transpose(1, 0, 2)  # [4, 3, 5], not contiguous
    src = rng.integers(0, 4, 10)
    for impl in ("numba", "reference"):
        alpha = edge_softmax(tz.tensor(wide[:, ::2]), dst_long[::2], 4, impl=impl)
        np.testing.assert_allclose(
            alpha.numpy(), edge_softmax(tz.tensor(wide[:, ::2].copy()), dst_long[::2].copy(), 4, impl=impl).numpy()
        )
        out = edge_aggregate(alpha, tz.tensor(h_t), src, dst_long[::2], 4, impl=impl)
        want = edge_aggregate(alpha, tz.tensor(h_t.copy()), src, dst_long[::2].copy(), 4, impl=impl)
        np.testing.assert_allclose(out.numpy(), want.numpy())
    u = rng.standard_normal((2, 4, 3, 5)).transpose(0, 2, 1, 3)  # [2, 3, 4, 5], not contiguous
    np.testing.assert_allclose(
        dynamic_routing(tz.tensor(u), 3, impl="numba").numpy(),
        dynamic_routing(tz.tensor(u), 3, impl="reference").numpy(),
        **TOL,
    )


def test_cached_grouping_follows_an_index_mutated_in_place() -> None:
    scores = tz.tensor(np.arange(8.0).reshape(4, 2))
    dst = np.array([0, 1, 1, 2])
    first = edge_softmax(scores, dst, 3, impl="numba").numpy()
    dst[0] = 2  # same array object, new contents: the cached CSR grouping must not be reused
    np.testing.assert_allclose(
        edge_softmax(scores, dst, 3, impl="numba").numpy(), edge_softmax(scores, dst, 3, impl="reference").numpy()
    )
    assert not np.allclose(first, edge_softmax(scores, dst, 3, impl="numba").numpy())


def test_empty_graph() -> None:
    scores = tz.tensor(np.zeros((0, 2)), requires_grad=True)
    empty = np.zeros(0, dtype=np.int64)
    for impl in ("numba", "reference"):
        alpha = edge_softmax(scores, empty, 3, impl=impl)
        out = edge_aggregate(alpha, tz.tensor(np.ones((3, 2, 4))), empty, empty, 3, impl=impl)
        assert alpha.shape == (0, 2) and np.all(out.numpy() == 0) and out.shape == (3, 2, 4)


# =================================================================================================
# Bad input: a tinyzoo error before any kernel runs
# =================================================================================================
@pytest.fixture
def no_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any kernel compile or launch fail the test: bad input must be rejected before."""

    def forbidden(*_: object) -> None:
        raise AssertionError("a kernel was reached with bad input")

    for name in ("cpu_kernel", "run_cpu", "cuda_kernel", "launch"):
        monkeypatch.setattr(_dispatch, name, forbidden)


@pytest.mark.usefixtures("no_kernels")
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: edge_softmax(s, [0, 1, 3], 3), tz.IndexRangeError, r"edge_softmax: dst values span \[0, 3\]"),
        (lambda s: edge_softmax(s, [0, -1, 2], 3), tz.IndexRangeError, r"\[-1, 2\] but must lie in \[0, 3\)"),
        (lambda s: edge_softmax(s, [0, 1], 3), tz.ShapeError, r"dst has 2 entries but scores has shape \(3, 2\)"),
        (lambda s: edge_softmax(s, [0.0, 1.0, 2.0], 3), tz.DTypeError, "dst must hold integers, got dtype float64"),
        (lambda s: edge_softmax(s, [[0, 1, 2]], 3), tz.ShapeError, r"dst must be 1-D \[E\], got shape \(1, 3\)"),
        (lambda s: edge_softmax(s[:, 0], [0, 1, 2], 3), tz.ShapeError, r"scores must be \[E, heads\].*\(3,\)"),
        (lambda s: edge_softmax(s.astype("int64"), [0, 1, 2], 3), tz.DTypeError, "scores must be floating"),
        (lambda s: edge_softmax(s, [0, 1, 2], -1), tz.ShapeError, "num_nodes must be >= 0"),
        (lambda s: edge_softmax(s, np.array([0, 1, 2], dtype=bool), 3), tz.DTypeError, "integers"),
        (
            lambda s: edge_aggregate(s, tz.ones(2, 2, 4, dtype="float64"), [0, 1, 2], [0, 1, 2], 3),
            tz.IndexRangeError,
            r"edge_aggregate: src values span \[0, 2\] but must lie in \[0, 2\) \(h has shape \(2, 2, 4\)\)",
        ),
        (
            lambda s: edge_aggregate(s, tz.ones(3, 2, 4, dtype="float64"), [0, 1, 2], [0, 1, 5], 3),
            tz.IndexRangeError,
            r"edge_aggregate: dst values span \[0, 5\]",
        ),
        (
            lambda s: edge_aggregate(s, tz.ones(3, 5, 4, dtype="float64"), [0, 1, 2], [0, 1, 2], 3),
            tz.ShapeError,
            r"alpha \(3, 2\) has 2 heads but h \(3, 5, 4\) has 5",
        ),
        (lambda s: edge_aggregate(s, tz.ones(3, 2, dtype="float64"), [0], [0], 3), tz.ShapeError, "h must be"),
        (lambda s: edge_aggregate(s, tz.ones(3, 2, 4), [0, 1, 2], [0, 1, 2], 3), tz.DTypeError, "same dtype"),
        (
            lambda s: edge_aggregate(s, tz.ones(3, 2, 4, dtype="float64"), [0, 1], [0, 1, 2], 3),
            tz.ShapeError,
            r"edge_aggregate: src has 2 entries but alpha has shape \(3, 2\)",
        ),
        (lambda s: dynamic_routing(s, 3), tz.ShapeError, r"dynamic_routing: u_hat must be .*got shape \(3, 2\)"),
        (lambda s: dynamic_routing(tz.ones(1, 2, 3, 4).astype("int64"), 3), tz.DTypeError, "floating point"),
        (lambda s: dynamic_routing(tz.ones(1, 2, 3, 4), 0), ValueError, "iterations must be >= 1"),
        (lambda s: dynamic_routing(tz.ones(1, 2, 0, 4), 3), tz.ShapeError, "no output capsules"),
    ],
)  # fmt: skip
def test_bad_input_is_rejected_before_the_kernel(call, error, message) -> None:
    scores = tz.tensor(np.zeros((3, 2)), requires_grad=True)
    with pytest.raises(error, match=message):
        call(scores)


# =================================================================================================
# Import, fallback and compile cache (subprocesses: fresh interpreters)
# =================================================================================================
def test_import_does_not_load_numba() -> None:
    run_python("""
        import sys
        import tinyzoo, tinyzoo.kernels
        from tinyzoo.kernels import edge_softmax, dynamic_routing
        assert "numba" not in sys.modules, "numba imported at import time"
    """)


def test_without_numba_the_reference_runs_with_one_warning() -> None:
    done = run_python("""
        import sys, warnings
        sys.modules["numba"] = None  # `import numba` now raises ImportError
        import numpy as np
        import tinyzoo as tz
        from tinyzoo.kernels import dynamic_routing, edge_softmax
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            alpha = edge_softmax(tz.ones(3, 2, requires_grad=True), np.array([0, 1, 1]), 2)
            v = dynamic_routing(tz.ones(1, 2, 2, 2, requires_grad=True), 2)
        assert alpha.grad_fn != "edge_softmax" and v.grad_fn != "dynamic_routing"
        np.testing.assert_allclose(alpha.numpy(), [[1, 1], [0.5, 0.5], [0.5, 0.5]])
        numba_warnings = [w for w in caught if "Numba is not available" in str(w.message)]
        assert len(numba_warnings) == 1, [str(w.message) for w in caught]
        for kernel in (lambda: edge_softmax(tz.ones(3, 2), np.array([0, 1, 1]), 2, impl="numba"),
                       lambda: dynamic_routing(tz.ones(1, 2, 2, 2), 2, impl="numba")):
            try:  # asked for by name, a missing backend is an error, never a silent fallback
                kernel()
            except tz.DeviceError as error:
                assert "Numba is not installed" in str(error), error
            else:
                raise AssertionError("impl='numba' ran without Numba")
        print("ok")
    """)
    assert "ok" in done.stdout


def test_second_process_loads_compiled_kernels_from_cache() -> None:
    code = """
        import numpy as np, tinyzoo as tz
        from tinyzoo.kernels import _dispatch, edge_softmax
        from tinyzoo.kernels.edge_softmax import _softmax_forward_cpu
        edge_softmax(tz.tensor(np.ones((3, 2))), np.array([0, 1, 1]), 2, impl="numba")
        stats = _dispatch.cpu_kernel(_softmax_forward_cpu).stats
        print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """
    run_python(code)  # compiles and writes the cache if no earlier run did
    hits, misses = run_python(code).stdout.split()
    assert int(hits) >= 1 and int(misses) == 0


# =================================================================================================
# GPU kernels under Numba's CUDA simulator (CPU only), and on a real GPU
# =================================================================================================
SIMULATOR_CHECK = """
    import importlib
    import numpy as np
    import tinyzoo as tz
    es = importlib.import_module("tinyzoo.kernels.edge_softmax")
    rt = importlib.import_module("tinyzoo.kernels.routing")
    es.CUDA_THREADS = rt.CUDA_THREADS = 16  # several blocks, and strided loops in the routing blocks
    rng = np.random.default_rng(0)

    def close(got, want):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    graphs = {
        "random": (rng.integers(0, 6, 17), rng.integers(0, 6, 17), 8),  # nodes 6, 7 isolated
        "hub": (rng.integers(0, 5, 12), np.full(12, 3), 5),
        "loops+duplicates": (np.r_[np.arange(5), 1, 1], np.r_[np.arange(5), 2, 2], 5),
        "empty": (np.zeros(0, np.int64), np.zeros(0, np.int64), 3),
    }
    for name, (src, dst, n) in graphs.items():
        for order in (np.arange(len(dst)), np.argsort(dst, kind="stable")):
            s, d, heads = src[order], dst[order], 3
            scores = tz.tensor(rng.standard_normal((len(d), heads)) * 3, requires_grad=True)
            h = tz.tensor(rng.standard_normal((n, heads, 4)), requires_grad=True)
            alpha_ref = es.edge_softmax(scores, d, n, impl="reference")
            out_ref = es.edge_aggregate(alpha_ref, h, s, d, n, impl="reference")
            g_out = rng.standard_normal(out_ref.shape)
            grad_scores, grad_h = tz.grad((out_ref * tz.tensor(g_out)).sum(), [scores, h], allow_unused=True)
            by_dst, by_src = es.segments(d, n), es.segments(s, n)
            alpha = es._softmax_forward_cuda(scores.data, by_dst)
            close(alpha, alpha_ref.numpy())
            out = es._aggregate_forward_cuda(alpha, h.data, s, by_dst, n)
            close(out, out_ref.numpy())
            close(es._aggregate_grad_h_cuda(g_out, alpha, d, by_src), grad_h.numpy())
            grad_alpha = es._aggregate_grad_alpha_cuda(g_out, h.data, s, d)
            if len(d):
                close(es._softmax_backward_cuda(alpha, grad_alpha, by_dst), grad_scores.numpy())

    for shape, iterations in [((2, 5, 3, 4), 3), ((1, 40, 2, 3), 1), ((3, 7, 4, 2), 4)]:
        u = tz.tensor(rng.standard_normal(shape), requires_grad=True)
        v_ref = rt.dynamic_routing(u, iterations, impl="reference")
        g_v = rng.standard_normal(v_ref.shape)
        (grad_u,) = tz.grad((v_ref * tz.tensor(g_v)).sum(), [u])
        v, coupling, s = rt._routing_forward_cuda(u.data, iterations)
        close(v, v_ref.numpy())
        close(rt._routing_backward_cuda(u.data, g_v, coupling, s), grad_u.numpy())
    print("simulator ok")
"""


def test_cuda_kernels_under_the_simulator() -> None:
    done = run_python(SIMULATOR_CHECK, NUMBA_ENABLE_CUDASIM="1")
    assert "simulator ok" in done.stdout


@pytest.fixture
def cupy():
    if not tz.gpu_available():
        pytest.skip("needs a CUDA GPU and CuPy")
    import cupy

    return cupy


@pytest.mark.gpu
def test_gpu_kernels_match_the_cpu(cupy) -> None:
    rng = np.random.default_rng(0)
    n, e = 300, 3000
    g = {"src": rng.integers(0, n, e), "dst": rng.integers(0, n, e), "num_nodes": n}
    g_gpu = {**g, "src": cupy.asarray(g["src"]), "dst": cupy.asarray(g["dst"])}
    scores, h = rng.standard_normal((e, 4)), rng.standard_normal((n, 4, 8))
    cpu = [tz.tensor(scores, requires_grad=True), tz.tensor(h, requires_grad=True)]
    gpu = [tz.tensor(scores, device="cuda", requires_grad=True), tz.tensor(h, device="cuda", requires_grad=True)]
    out_gpu = gat(*gpu, g_gpu, None)
    assert out_gpu.grad_fn == "edge_aggregate" and out_gpu.device.startswith("cuda")
    out_cpu = gat(*cpu, g, "reference")
    np.testing.assert_allclose(out_gpu.numpy(), out_cpu.numpy(), **TOL)
    weights = rng.standard_normal(out_cpu.shape)
    got = tz.grad((out_gpu * tz.tensor(weights, device="cuda")).sum(), gpu)
    want = tz.grad((out_cpu * tz.tensor(weights)).sum(), cpu)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), **TOL)
    again = gat(*gpu, g_gpu, None)
    assert np.array_equal(again.numpy(), out_gpu.numpy())

    u = rng.standard_normal((16, 100, 10, 8))
    u_gpu, u_cpu = tz.tensor(u, device="cuda", requires_grad=True), tz.tensor(u, requires_grad=True)
    v_gpu, v_cpu = dynamic_routing(u_gpu, 3), dynamic_routing(u_cpu, 3, impl="reference")
    assert v_gpu.grad_fn == "dynamic_routing"
    np.testing.assert_allclose(v_gpu.numpy(), v_cpu.numpy(), **TOL)
    weights = rng.standard_normal(v_cpu.shape)
    (got,) = tz.grad((v_gpu * tz.tensor(weights, device="cuda")).sum(), [u_gpu])
    (want,) = tz.grad((v_cpu * tz.tensor(weights)).sum(), [u_cpu])
    np.testing.assert_allclose(got.numpy(), want.numpy(), **TOL)

"""PyTorch habits that must work (or fail loudly) in tinyzoo: in-place updates with version counters,
item assignment, dtype objects and promotion, generators, the Tensor surface, and the edge cases a port
meets (checkpoints from elsewhere, scripts in a folder named tinyzoo)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import nn


# ----- in-place updates ------------------------------------------------------------------------------
def test_manual_sgd_update_in_no_grad_changes_the_model():
    model = nn.Linear(3, 1)
    x, y = tz.randn(16, 3), tz.randn(16, 1)
    losses = []
    for _ in range(20):
        loss = ((model(x) - y) ** 2).mean()
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with tz.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad  # rebinding would leave the model unchanged; this must write in place
    assert losses[-1] < 0.8 * losses[0]
    assert all(isinstance(p, nn.Parameter) and p.is_leaf for p in model.parameters())


def test_data_idiom_of_micrograd_and_makemore():
    p = tz.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    p.data -= 0.5 * p.grad  # NumPy hands the subtraction to Tensor; .data must still end up an array
    assert isinstance(p.data, np.ndarray) and p.tolist() == [0.0, 0.0]
    (p * 3).sum().backward()  # and the tensor keeps working
    with pytest.raises(tz.GraphError, match="requires grad"):
        p.data = p * 2


def test_in_place_on_a_leaf_that_requires_grad_is_refused_under_grad_mode():
    w = tz.ones(3, requires_grad=True)
    with pytest.raises(tz.GraphError, match="no_grad"):
        w += 1
    with pytest.raises(tz.GraphError, match="no_grad"):
        w[0] = 5.0


def test_changing_a_saved_tensor_makes_backward_refuse():
    x = tz.tensor([1.0, 2.0, 3.0], requires_grad=True)
    s = (x * x).sum()
    x.data += 1  # PyTorch: "modified by an inplace operation"
    with pytest.raises(tz.GraphError, match="modified by an in-place operation"):
        s.backward()
    y = tz.tensor([1.0, 2.0], requires_grad=True)
    h = y.exp()
    view = h.detach()  # shares h's memory
    out = (h * 2).sum()
    view.mul_(3)  # changes h's memory behind the tape's back
    with pytest.raises(tz.GraphError, match="in-place"):
        out.backward()


def test_in_place_on_a_non_leaf_is_differentiable_like_torch():
    torch = pytest.importorskip("torch")
    values = np.array([0.5, -1.0, 2.0])

    def run(lib, tensor):
        x = tensor(values, requires_grad=True)
        h = x * 2
        h.mul_(x)  # h = 2x², recorded
        h += x  # h = 2x² + x
        h[1] = x[0] * 3  # item assignment (from h itself tinyzoo refuses: see the next test)
        h.clamp_(-5.0, 5.0)
        h.sum().backward()
        return h.detach().numpy().copy(), x.grad.numpy().copy()

    ours = run(tz, lambda v, requires_grad: tz.tensor(v, requires_grad=requires_grad))
    theirs = run(torch, lambda v, requires_grad: torch.tensor(v, requires_grad=requires_grad))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_in_place_change_of_values_no_rule_reads_leaves_backward_right_like_torch():
    """As PyTorch: indexing and add keep no values, so changing their input in place afterwards is fine."""
    torch = pytest.importorskip("torch")

    def indexed_then_changed(lib, tensor):
        x = tensor([1.0, 2.0], requires_grad=True)
        h = x * 2
        h[1] = h[0] * 3  # getitem read h's shape, not its values
        (h * h).sum().backward()
        return x.grad.numpy().copy()

    np.testing.assert_allclose(indexed_then_changed(tz, tz.tensor), indexed_then_changed(torch, torch.tensor))


def test_in_place_change_of_values_a_rule_reads_refuses_backward():
    """mul's rule reads its operands: changing one in place afterwards makes its backward refuse, naming it."""
    x = tz.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    squares = h * h
    h[1] = 0.0
    with pytest.raises(tz.GraphError, match=r"'mul'.*modified by an in-place operation"):
        squares.sum().backward()


def test_item_assignment_forms_and_gradcheck():
    m = tz.arange(10)
    m[m > 5] = 0
    assert m.tolist() == [0, 1, 2, 3, 4, 5, 0, 0, 0, 0]
    t = tz.zeros(2, 3)
    t[0] = tz.tensor([1.0, 2.0, 3.0])
    t[:, 1] = 7.0
    t[np.array([1]), 2] = -1.0
    assert t.tolist() == [[1.0, 7.0, 3.0], [0.0, 7.0, -1.0]]

    def assign(x, v):
        y = x * 1.0
        y[1:, ::2] = v
        return y * y

    x, v = tz.randn(3, 4, dtype="float64", requires_grad=True), tz.randn(2, dtype="float64", requires_grad=True)
    tz.gradcheck(assign, [x, v])  # (raises GradcheckError naming the element on a mismatch)


def test_in_place_results_must_fit():
    x = tz.zeros(3, dtype="int64")
    with pytest.raises(tz.DTypeError, match="cannot be stored in x in place"):
        x += 0.5
    with pytest.raises(tz.ShapeError, match="cannot broadcast x itself"):
        tz.zeros(3).add_(tz.ones(2, 3))


def test_numpy_bridge_shares_memory():
    a = np.ones(3)
    t = tz.from_numpy(a)
    t.add_(1)
    assert a.tolist() == [2.0, 2.0, 2.0]
    n = t.numpy()
    n[0] = 9
    assert t.tolist() == [9.0, 2.0, 2.0]


# ----- dtypes ------------------------------------------------------------------------------------------
PROMOTION = [  # (a, b, result) as PyTorch gives them
    (tz.ones(2), tz.ones(2, dtype="float64"), "float64"),
    (tz.ones(2), tz.tensor(1.0, dtype="float64"), "float32"),  # 0-d tensors do not promote within a category
    (tz.ones(2), 2.5, "float32"),
    (tz.ones(2, dtype="int64"), 2.5, "float32"),
    (tz.ones(2, dtype="int64"), tz.ones(2), "float32"),  # NumPy: float64
    (tz.ones(2, dtype="int32"), 3, "int32"),
    (tz.ones(2, dtype="bool"), 3, "int64"),
    (tz.ones(2, dtype="int64"), tz.tensor(1.5, dtype="float64"), "float64"),
    (tz.ones(2, dtype="uint8"), tz.tensor(1), "uint8"),
]


@pytest.mark.parametrize("a, b, result", PROMOTION)
def test_promotion_table(a, b, result):
    assert (a + b).dtype == result and (b * a).dtype == result
    torch = pytest.importorskip("torch")
    ta, tb = (torch.from_numpy(v.numpy().copy()) if isinstance(v, tz.Tensor) else v for v in (a, b))
    assert (ta + tb).dtype == getattr(torch, result)  # the table itself is PyTorch's


def test_dtype_objects_and_spellings():
    assert tz.float32 == np.float32 and tz.float32 == "float32" and tz.float == tz.float32 and tz.long == np.int64
    assert tz.tensor([1.0], dtype="float").dtype == np.float32  # PyTorch's "float", not NumPy's float64
    assert tz.tensor(np.float64(1.0)).dtype == np.float64 and tz.tensor(1.0).dtype == np.float32
    assert (tz.tensor([1, 2]) / tz.tensor([2, 2])).dtype == np.float32
    assert tz.arange(0.0, 1.0, 0.25).dtype == np.float32 and tz.arange(5).dtype == np.int64
    assert (tz.ones(2) ** tz.tensor([2, 3])).dtype == np.float32
    assert tz.exp(tz.tensor([1, 2])).dtype == np.float32
    assert tz.ones(2).long().dtype == np.int64 and tz.ones(2).double().dtype == np.float64
    assert tz.ones(2).to("cpu").device == tz.device("cpu") and tz.ones(2).device.type == "cpu"
    with pytest.raises(tz.DTypeError):
        tz.Tensor(np.array(["a"]))


# ----- the Tensor surface ------------------------------------------------------------------------------
def test_tensor_surface():
    x = tz.arange(6.0).reshape(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size == 6 and x.numel() == x.nelement() == 6
    assert x.t().shape == (3, 2) and x.t().contiguous().data.flags.c_contiguous
    assert x.clone().tolist() == x.tolist() and x.clone().data is not x.data
    assert x.new_zeros(4).dtype == x.dtype and x.new_ones((1, 2)).shape == (1, 2)
    values, indices = tz.max(x, 1)
    assert values.tolist() == [2.0, 5.0] and indices.tolist() == [2, 2]
    assert x.max(axis=1).tolist() == [2.0, 5.0]  # NumPy's spelling keeps NumPy's meaning
    assert x.repeat(2, 1).shape == (4, 3) and tz.repeat_interleave(x, 2, dim=0).shape == (4, 3)
    assert tz.var(tz.tensor([1.0, 2.0, 3.0])).item() == 1.0  # PyTorch's default: correction=1
    assert tz.var(tz.tensor([1.0, 2.0, 3.0]), ddof=0).item() == pytest.approx(2 / 3)
    assert (x > 2).any().item() and not (x > 9).all().item()
    assert tz.equal(x, x.clone()) and tz.allclose(x, x + 1e-9)
    assert tz.log2(tz.tensor([8.0])).item() == pytest.approx(3.0)
    with pytest.raises(TypeError, match="repeat_interleave"):
        tz.repeat(x, 2, axis=0)
    grad_target = tz.ones(2, requires_grad=True)
    (grad_target * 2).backward(gradient=tz.ones(2))
    assert grad_target.grad.tolist() == [2.0, 2.0]


def test_creation_and_generators():
    g = tz.Generator().manual_seed(7)
    a = tz.randn(3, generator=g)
    b = tz.randn(3, generator=tz.Generator().manual_seed(7))
    assert a.tolist() == b.tolist()
    tz.manual_seed(0)
    c = tz.randn(3)
    tz.manual_seed(0)
    tz.randn(2, generator=tz.Generator().manual_seed(1))  # a private stream leaves the global one alone
    assert tz.randn(3).tolist() == c.tolist()
    assert tz.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert tz.empty(2, 3).shape == (2, 3) and tz.full((2,), 3).dtype == np.int64
    assert tz.rand_like(tz.ones(2, dtype="float64")).dtype == np.float64
    assert sorted(tz.randperm(5, generator=g).tolist()) == [0, 1, 2, 3, 4]
    draws = tz.multinomial(tz.tensor([0.0, 1.0, 0.0]), 4, replacement=True, generator=g)
    assert draws.tolist() == [1, 1, 1, 1]
    assert tz.randint(10, (3,), generator=g).shape == (3,) and tz.randint(2, 5, (2, 2)).max().item() < 5
    from tinyzoo.models.gpt import sample_next  # the zoo's samplers take it where they take a NumPy rng

    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    draws = [[sample_next(logits, rng=stream) for _ in range(20)]
             for stream in (tz.Generator().manual_seed(5), tz.Generator().manual_seed(5))]  # fmt: skip
    assert draws[0] == draws[1] and len(set(draws[0])) > 1
    t = tz.zeros(1000)
    t.uniform_(-1, 1, generator=g)
    assert -1 <= t.min().item() and t.max().item() < 1 and abs(t.mean().item()) < 0.1


# ----- edges a port meets ---------------------------------------------------------------------------
def test_checkpoint_with_a_tampered_array_header_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "model.npz"
    tz.save({"w": np.ones((3, 4))}, path)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    member = next(name for name in members if name.endswith(".npy"))
    members[member] = members[member].replace(b"(3, 4)", b"(30000000, 400000)")  # declares 96 TB
    with zipfile.ZipFile(path, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    with pytest.raises(tz.CheckpointError, match="declares an array of shape"):
        tz.load(path)


def test_detect_anomaly_names_a_user_script_in_a_folder_named_tinyzoo(tmp_path):
    """A fresh `git clone` lands in tinyzoo/: the user's own files there are not library code."""
    folder = tmp_path / "tinyzoo" / "experiments"
    folder.mkdir(parents=True)
    script = folder / "script.py"
    script.write_text(textwrap.dedent("""
        import tinyzoo as tz
        x = tz.tensor([-1.0], requires_grad=True)
        with tz.detect_anomaly():
            try:
                x.log()
            except tz.AnomalyError as error:
                print(error)
    """))
    root = Path(tz.__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=folder,
                            env={"PYTHONPATH": str(root), "PATH": ""}, check=True)  # fmt: skip
    assert f"{script}:6" in result.stdout, result.stdout + result.stderr


def test_negative_zero_operands_keep_their_sign():
    """-0.0 == 0.0, so a cache of Python-number constants must not hand one out for the other (NumPy's results)."""
    x = tz.tensor([1.0, -2.0])
    for first, second in ((0.0, -0.0), (-0.0, 0.0)):
        for op in (lambda t, c: t * c, lambda t, c: c * t, lambda t, c: t + c, lambda t, c: -(t * 0.0) + c):
            for value in (first, second):
                expected = op(np.array([1.0, -2.0], np.float32), value)
                got = op(x, value).numpy()
                np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))

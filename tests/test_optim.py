"""Optimizers, schedulers and clipping: hand-derived NumPy updates, checkpoints, errors, and torch parity."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

import tinyzoo as tz
from tinyzoo import backend
from tinyzoo.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    ReduceLROnPlateau,
    RMSprop,
    StepLR,
    WarmupCosine,
    clip_grad_norm_,
    clip_grad_value_,
)

SHAPES = [(3, 4), (5,)]
TARGETS = [np.random.default_rng(1).standard_normal(shape) for shape in SHAPES]


def initial_arrays(dtype: type = np.float64) -> list[np.ndarray]:
    """Starting values of the test parameters (fresh copies each call)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def gradient(values: np.ndarray, index: int, t: int) -> np.ndarray:
    """The gradient fed at step t: a quadratic pull to a target plus a step-dependent kick (so amsgrad matters)."""
    kick = np.random.default_rng(100 * t + index).standard_normal(values.shape)
    return (2 * (values - TARGETS[index]) + kick).astype(values.dtype)


def make_params(arrays: list[np.ndarray]) -> list[tz.Tensor]:
    """Leaf tensors holding copies of `arrays` (optimizers write into .data in place)."""
    return [tz.tensor(a.copy(), requires_grad=True) for a in arrays]


def run(optimizer, params: list[tz.Tensor], steps: range) -> list[np.ndarray]:
    """Feed `gradient` for each t in steps and step; returns the final parameter values."""
    for t in steps:
        for i, p in enumerate(params):
            p.grad = tz.Tensor(gradient(p.data, i, t))
        optimizer.step()
    return [p.numpy() for p in params]


# ----- hand-derived references (float64, written from the papers' / docs' formulas) --------------
def ref_sgd(p, i, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    buf = None
    for t in steps:
        g = gradient(p, i, t) + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def ref_adam(p, i, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    b1, b2 = betas
    m = v = vmax = np.zeros_like(p)
    for k, t in enumerate(steps, start=1):
        g = gradient(p, i, t)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - b1**k)
        v_hat = (vmax if amsgrad else v) / (1 - b2**k)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def ref_adamw(p, i, steps, **kwargs):
    return ref_adam(p, i, steps, decoupled=True, **{"weight_decay": 1e-2, **kwargs})


def ref_rmsprop(p, i, steps, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    s = mean = buf = np.zeros_like(p)
    for t in steps:
        g = gradient(p, i, t) + weight_decay * p
        s = alpha * s + (1 - alpha) * g**2
        mean = alpha * mean + (1 - alpha) * g
        d = np.sqrt(s - mean**2 if centered else s) + eps
        if momentum > 0:
            buf = momentum * buf + g / d
            p = p - lr * buf
        else:
            p = p - lr * g / d
    return p


def ref_adagrad(p, i, steps, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    s = np.full_like(p, initial_accumulator_value)
    for k, t in enumerate(steps, start=1):
        g = gradient(p, i, t) + weight_decay * p
        s = s + g**2
        p = p - lr / (1 + (k - 1) * lr_decay) * g / (np.sqrt(s) + eps)
    return p


CASES = [
    (SGD, ref_sgd, {"lr": 0.1}),
    (SGD, ref_sgd, {"lr": 0.1, "weight_decay": 0.05}),
    (SGD, ref_sgd, {"lr": 0.05, "momentum": 0.9}),
    (SGD, ref_sgd, {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (SGD, ref_sgd, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    (Adam, ref_adam, {"lr": 0.05}),
    (Adam, ref_adam, {"lr": 0.05, "betas": (0.8, 0.9), "weight_decay": 0.1}),
    (Adam, ref_adam, {"lr": 0.05, "betas": (0.5, 0.6), "amsgrad": True, "eps": 1e-3}),
    (AdamW, ref_adamw, {"lr": 0.05}),
    (AdamW, ref_adamw, {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True, "betas": (0.5, 0.6)}),
    (RMSprop, ref_rmsprop, {"lr": 0.01}),
    (RMSprop, ref_rmsprop, {"lr": 0.01, "centered": True, "alpha": 0.9}),
    (RMSprop, ref_rmsprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1}),
    (RMSprop, ref_rmsprop, {"lr": 0.01, "momentum": 0.5, "centered": True, "eps": 1e-4}),
    (Adagrad, ref_adagrad, {"lr": 0.1}),
    (Adagrad, ref_adagrad, {"lr": 0.1, "lr_decay": 0.2, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
]
CASE_IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for cls, _, kw in CASES]


@pytest.mark.parametrize(("cls", "reference", "kwargs"), CASES, ids=CASE_IDS)
def test_update_matches_hand_derived_numpy(cls, reference, kwargs):
    params = make_params(initial_arrays())
    got = run(cls(params, **kwargs), params, range(6))
    for i, (start, value) in enumerate(zip(initial_arrays(), got)):
        np.testing.assert_allclose(value, reference(start, i, range(6), **kwargs), rtol=1e-10, atol=1e-12)


def test_first_steps_by_hand():
    p = tz.tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.5)
    p.grad = tz.tensor([2.0, 4.0])
    opt.step()  # buffer = g
    np.testing.assert_allclose(p.numpy(), [0.8, -2.4], rtol=1e-6)
    opt.step()  # buffer = 0.5 g + g
    np.testing.assert_allclose(p.numpy(), [0.5, -3.0], rtol=1e-6)

    q = tz.tensor([1.0, -2.0, 3.0], requires_grad=True)
    q.grad = tz.tensor([10.0, -0.1, 1e-3])
    Adam([q], lr=0.01).step()  # the first Adam step moves every coordinate by ~lr against its gradient
    np.testing.assert_allclose(q.numpy(), [0.99, -1.99, 2.99], rtol=1e-5)


def test_param_groups_use_their_own_hyperparameters():
    a, b = make_params(initial_arrays())
    a0, b0 = a.numpy().copy(), b.numpy().copy()
    opt = SGD([{"params": [a]}, {"params": b, "lr": 0.01, "momentum": 0.0}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.0
    a.grad = tz.Tensor(np.ones_like(a.data))
    b.grad = tz.Tensor(np.ones_like(b.data))
    opt.step()
    opt.step()
    np.testing.assert_allclose(a.numpy(), a0 - 0.1 - 0.1 * 1.9)
    np.testing.assert_allclose(b.numpy(), b0 - 0.02)
    opt.add_param_group({"params": [tz.zeros(2, requires_grad=True)], "lr": 0.5})
    assert opt.param_groups[2]["momentum"] == 0.9 and opt.param_groups[2]["lr"] == 0.5


def test_step_is_in_place_off_the_tape_and_leaves_grads_alone():
    p, q = make_params(initial_arrays(np.float32))
    array = p.data
    grad = np.ones_like(p.data)
    p.grad = tz.Tensor(grad)
    opt = AdamW([p, q], lr=0.1, weight_decay=0.1)
    assert opt.step(lambda: 42.0) == 42.0
    assert p.data is array and p.is_leaf and p.grad_fn is None
    assert p.data.dtype == np.float32
    np.testing.assert_array_equal(p.grad.data, np.ones_like(p.data))  # the gradient is read, never written
    assert q.grad is None and q not in opt.state  # params without a gradient are skipped
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.data, 0.0)
    np.testing.assert_array_equal(grad, 1.0)  # zeroing made a fresh array
    opt.zero_grad()
    assert p.grad is None


def test_trains_through_backward():
    target = tz.tensor([1.0, -2.0, 3.0])
    p = tz.zeros(3, requires_grad=True)
    opt = Adam([p], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        ((p - target) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(p.numpy(), target.numpy(), atol=1e-3)


# ----- checkpoints ---------------------------------------------------------------------------------
def through_json_and_npz(tree):
    """What a JSON + npz checkpoint writer does to a state dict: arrays to npz, everything else to JSON."""
    arrays: dict[str, np.ndarray] = {}

    def strip(node):
        if isinstance(node, dict):
            assert all(isinstance(key, str) for key in node), f"non-string keys in {list(node)}"
            return {key: strip(value) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [strip(value) for value in node]
        if isinstance(node, np.ndarray):
            arrays[f"a{len(arrays)}"] = node
            return {"__array__": f"a{len(arrays) - 1}"}
        assert isinstance(node, (bool, int, float, str)), f"{type(node).__name__} in a state dict"
        return node

    text = json.dumps(strip(tree))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    stored = np.load(buffer)

    def put_back(node):
        if isinstance(node, dict):
            return stored[node["__array__"]] if "__array__" in node else {k: put_back(v) for k, v in node.items()}
        if isinstance(node, list):
            return [put_back(value) for value in node]
        return node

    return put_back(json.loads(text))


RESUME_CASES = [
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.05, "amsgrad": True}),
    (RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.2, "initial_accumulator_value": 0.5}),
]


@pytest.mark.parametrize(("cls", "kwargs"), RESUME_CASES, ids=[c.__name__ for c, _ in RESUME_CASES])
def test_state_dict_resumes_bit_identically(cls, kwargs):
    def optimizer_for(params):
        return cls([{"params": params[:1]}, {"params": params[1:], "lr": 0.02}], **kwargs)

    params = make_params(initial_arrays(np.float32))
    opt = optimizer_for(params)
    run(opt, params, range(3))
    saved = opt.state_dict()
    saved_values = [p.numpy().copy() for p in params]
    continued = run(opt, params, range(3, 5))
    assert not np.array_equal(saved_values[0], continued[0])

    fresh = make_params(saved_values)
    resumed_opt = optimizer_for(fresh)
    resumed_opt.load_state_dict(through_json_and_npz(saved))
    resumed = run(resumed_opt, fresh, range(3, 5))
    for a, b in zip(continued, resumed):
        np.testing.assert_array_equal(a, b)
    assert resumed_opt.param_groups[1]["lr"] == 0.02


def test_state_dict_is_a_snapshot_keyed_by_position():
    params = make_params(initial_arrays())
    opt = Adam([params[1], params[0]], lr=0.1)
    run(opt, params, range(2))
    saved = opt.state_dict()
    assert saved["param_groups"][0]["params"] == [0, 1]
    assert set(saved["state"]) == {"0", "1"} and saved["state"]["0"]["exp_avg"].shape == SHAPES[1]
    assert saved["state"]["0"]["step"] == 2
    before = saved["state"]["0"]["exp_avg"].copy()
    run(opt, params, range(2, 4))
    np.testing.assert_array_equal(saved["state"]["0"]["exp_avg"], before)


def test_load_state_dict_rejects_a_mismatch():
    params = make_params(initial_arrays())
    opt = SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, range(1))
    saved = opt.state_dict()
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: the saved state has 1 parameter group"):
        SGD([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="saved group 0 has 2 parameter"):
        SGD(params[:1]).load_state_dict(saved)
    swapped = make_params(initial_arrays()[::-1])
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 has shape \(3, 4\)"):
        SGD(swapped, momentum=0.9).load_state_dict(saved)


def test_state_dicts_survive_tinyzoo_save(tmp_path):
    from tinyzoo import checkpoint

    params = make_params(initial_arrays(np.float32))
    opt = Adam(params, lr=0.05, amsgrad=True)
    plateau = ReduceLROnPlateau(opt, patience=0)
    run(opt, params, range(3))
    plateau.step(1.0)
    state = {"params": params, "optimizer": opt.state_dict(), "scheduler": plateau.state_dict()}
    checkpoint.save(state, tmp_path / "ckpt.npz")
    continued = run(opt, params, range(3, 5))

    loaded = checkpoint.load(tmp_path / "ckpt.npz")
    fresh = make_params(loaded["params"])
    resumed = Adam(fresh, lr=0.05, amsgrad=True)
    resumed.load_state_dict(loaded["optimizer"])
    resumed_plateau = ReduceLROnPlateau(resumed, patience=0)
    resumed_plateau.load_state_dict(loaded["scheduler"])
    assert resumed_plateau.best == 1.0 and resumed.state[fresh[0]]["step"] == 3
    for a, b in zip(continued, run(resumed, fresh, range(3, 5))):
        np.testing.assert_array_equal(a, b)


# ----- errors --------------------------------------------------------------------------------------
def _p():
    return tz.zeros(2, requires_grad=True)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Adam([_p()], lr=-0.1), ValueError, r"Adam: invalid lr=-0.1"),
        (lambda: Adam([_p()], betas=(1.0, 0.999)), ValueError, r"Adam: invalid betas\[0\]=1.0"),
        (lambda: AdamW([_p()], betas=(0.9, -0.1)), ValueError, r"AdamW: invalid betas\[1\]=-0.1"),
        (lambda: Adam([_p()], betas=0.9), ValueError, r"Adam: betas must be a pair"),
        (lambda: Adam([_p()], eps=float("nan")), ValueError, r"Adam: invalid eps=nan"),
        (lambda: SGD([_p()], lr="0.1"), TypeError, r"SGD: lr must be a real number, got '0.1'"),
        (lambda: SGD([_p()], momentum=-0.9), ValueError, r"SGD: invalid momentum=-0.9"),
        (lambda: SGD([_p()], nesterov=True), ValueError, r"SGD: nesterov=True needs momentum > 0"),
        (lambda: RMSprop([_p()], alpha=-1.0), ValueError, r"RMSprop: invalid alpha=-1.0"),
        (lambda: Adagrad([_p()], lr_decay=-1), ValueError, r"Adagrad: invalid lr_decay=-1"),
        (lambda: SGD([{"params": [_p()], "lr": -1.0}]), ValueError, r"SGD: invalid lr=-1.0"),
        (lambda: SGD([]), ValueError, r"SGD: got an empty parameter list"),
        (lambda: SGD([{"params": []}]), ValueError, r"SGD: parameter group 0 has no parameters"),
        (lambda: SGD(_p()), TypeError, r"SGD: params must be an iterable .* got one Tensor"),
        (lambda: SGD({_p()}), TypeError, r"SGD: params must be an ordered collection"),
        (lambda: Adam([np.zeros(2)]), TypeError, r"Adam: parameter 0 of group 0 is a ndarray, not a tinyzoo Tensor"),
        (lambda: Adam([_p(), tz.zeros(2)]), ValueError, r"Adam: parameter 1 of group 0 .* does not require grad"),
        (lambda: Adam([_p() * 2]), ValueError, r"Adam: parameter 0 of group 0 .* is not a leaf tensor .*'mul'"),
        (lambda: (lambda p: SGD([p, p]))(_p()), ValueError, r"SGD: parameter 1 of group 0 .* appears more than once"),
    ],
)
def test_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ----- clipping ------------------------------------------------------------------------------------
def test_clip_grad_norm():
    a, b, c = tz.zeros(2, requires_grad=True), tz.zeros(1, requires_grad=True), tz.zeros(1, requires_grad=True)
    a.grad, b.grad = tz.tensor([3.0, 4.0]), tz.tensor([12.0])
    assert clip_grad_norm_([a, b, c], max_norm=100.0).item() == pytest.approx(13.0)
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])  # under the limit: untouched
    assert clip_grad_norm_([a, b, c], max_norm=6.5).item() == pytest.approx(13.0)
    np.testing.assert_allclose(np.concatenate([a.grad.numpy(), b.grad.numpy()]), [1.5, 2.0, 6.0], rtol=1e-6)
    assert c.grad is None
    assert clip_grad_norm_(a, max_norm=1.0, norm_type=math.inf).item() == pytest.approx(2.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.75, 1.0], rtol=1e-6)
    assert clip_grad_norm_([c], max_norm=1.0).item() == 0.0
    a.grad = tz.tensor([np.nan, 1.0])
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total 2\.0-norm .* is nan"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


def test_clip_grad_norm_clips_shared_gradient_arrays_once():
    x, y = tz.ones(2, requires_grad=True), tz.ones(2, requires_grad=True)
    (3 * (x + y)).sum().backward()  # the tape may give x and y one shared gradient array
    clip_grad_norm_([x, y], max_norm=3.0)
    np.testing.assert_allclose(x.grad.numpy(), [1.5, 1.5], rtol=1e-5)
    np.testing.assert_allclose(y.grad.numpy(), [1.5, 1.5], rtol=1e-5)


def test_clip_grad_value():
    a = tz.zeros(3, requires_grad=True)
    a.grad = tz.tensor([-5.0, 0.5, 2.0])
    clip_grad_value_([a], 1.0)
    np.testing.assert_array_equal(a.grad.numpy(), [-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        clip_grad_value_([a], -1.0)


# ----- schedulers ----------------------------------------------------------------------------------
def lr_sequence(scheduler, steps: int) -> list[float]:
    """The lr of the first group now and after each of `steps` scheduler steps."""
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    return lrs


def sgd(lr: float = 1.0) -> SGD:
    return SGD([_p()], lr=lr)


def test_closed_form_schedules():
    c = (1 + math.cos(math.pi / 4)) / 2
    steps = lr_sequence(StepLR(sgd(), step_size=3, gamma=0.5), 7)
    np.testing.assert_allclose(steps, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(lr_sequence(ExponentialLR(sgd(2.0), gamma=0.5), 3), [2, 1, 0.5, 0.25])
    cosine = lr_sequence(CosineAnnealingLR(sgd(), T_max=4, eta_min=0.2), 4)
    np.testing.assert_allclose(cosine, [1, 0.2 + 0.8 * c, 0.6, 0.2 + 0.8 * (1 - c), 0.2])
    np.testing.assert_allclose(lr_sequence(LinearWarmup(sgd(), warmup_steps=4), 5), [0, 0.25, 0.5, 0.75, 1, 1])
    np.testing.assert_allclose(lr_sequence(LinearWarmup(sgd(), warmup_steps=2, start_factor=0.5), 3), [0.5, 0.75, 1, 1])
    np.testing.assert_allclose(
        lr_sequence(WarmupCosine(sgd(), warmup_steps=2, total_steps=6, min_lr=0.1), 8),
        [0, 0.5, 1, 0.1 + 0.9 * c, 0.55, 0.1 + 0.9 * (1 - c), 0.1, 0.1, 0.1],
    )


def test_scheduler_sets_every_group_and_resumes():
    def make():
        a, b = tz.zeros(1, requires_grad=True), tz.zeros(1, requires_grad=True)
        opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=1.0)
        return opt, WarmupCosine(opt, warmup_steps=2, total_steps=8, min_lr=0.01)

    opt, sched = make()
    for _ in range(3):
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    assert sched.get_last_lr()[1] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi / 6)) / 2)
    saved_opt, saved_sched = through_json_and_npz(opt.state_dict()), through_json_and_npz(sched.state_dict())
    later = [(sched.step(), sched.get_last_lr())[1] for _ in range(4)]

    opt2, sched2 = make()  # resuming: the new scheduler's constructor sets epoch-0 lrs, loading undoes that
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert [g["lr"] for g in opt2.param_groups] == saved_sched["_last_lr"]
    assert [(sched2.step(), sched2.get_last_lr())[1] for _ in range(4)] == later


def test_reduce_lr_on_plateau():
    opt = sgd()
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.3)
    lrs = []
    for metric in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8]:
        sched.step(metric)
        lrs.append(sched.get_last_lr()[0])
    # bad steps 1, 2, 3 > patience -> 0.5; one cooldown step; 3 more bad -> 0.3 (min_lr), then clamped
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3]

    sched = ReduceLROnPlateau(sgd(), mode="max", patience=0, threshold=0.1)
    sched.step(1.0)
    sched.step(1.05)  # within the relative threshold: not an improvement
    assert sched.get_last_lr() == [pytest.approx(0.1)]
    sched = ReduceLROnPlateau(sgd(), patience=0, threshold=0.1, threshold_mode="abs")
    sched.step(tz.tensor(1.0))
    sched.step(0.95)
    assert sched.get_last_lr() == [pytest.approx(0.1)]
    saved = through_json_and_npz(sched.state_dict())
    assert saved["best"] == 1.0 and saved["num_bad_epochs"] == 0
    resumed = ReduceLROnPlateau(sgd(), patience=0, threshold=0.1, threshold_mode="abs")
    resumed.load_state_dict(saved)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.1) and resumed.best == 1.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StepLR(sgd(), step_size=0), "StepLR: step_size must be > 0"),
        (lambda: CosineAnnealingLR(sgd(), T_max=0), "CosineAnnealingLR: T_max must be > 0"),
        (lambda: WarmupCosine(sgd(), warmup_steps=5, total_steps=5), "WarmupCosine: need 0 <= warmup_steps"),
        (lambda: LinearWarmup(sgd(), warmup_steps=3, start_factor=2.0), "LinearWarmup: start_factor"),
        (lambda: ReduceLROnPlateau(sgd(), factor=1.0), "ReduceLROnPlateau: factor must be in"),
        (lambda: ReduceLROnPlateau(sgd(), mode="up"), "ReduceLROnPlateau: mode must be"),
        (lambda: ReduceLROnPlateau(sgd(), min_lr=[0.1, 0.2]), "got 2 min_lr values for 1 parameter group"),
    ],
)
def test_scheduler_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="StepLR: expected a tinyzoo Optimizer, got list"):
        StepLR([_p()], step_size=1)


# ----- parity with torch (skipped when torch is not installed) ------------------------------------
@pytest.mark.parametrize(("cls", "reference", "kwargs"), CASES, ids=CASE_IDS)
def test_matches_torch(cls, reference, kwargs):
    torch = pytest.importorskip("torch")
    start = initial_arrays(np.float32)
    params = make_params(start)
    ours = run(cls(params, **kwargs), params, range(8))

    theirs = [torch.tensor(a, requires_grad=True) for a in start]
    opt = getattr(torch.optim, cls.__name__)(theirs, **kwargs)
    for t in range(8):
        for i, p in enumerate(theirs):
            p.grad = torch.from_numpy(gradient(p.detach().numpy(), i, t))
        opt.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-6, atol=1e-6)
    ours_state = cls(params, **kwargs)
    run(ours_state, params, range(1))
    assert set(ours_state.state[params[0]]) == set(opt.state[theirs[0]])  # same state names, so recipes port


def test_schedulers_match_torch():
    torch = pytest.importorskip("torch")
    lr_scheduler = torch.optim.lr_scheduler

    def theirs(make, steps, metrics=None):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
        sched = make(opt)
        lrs = [sched.get_last_lr()[0]]
        for k in range(steps):
            opt.step()
            sched.step(*([metrics[k]] if metrics else []))
            lrs.append(sched.get_last_lr()[0])
        return lrs

    def ours(make, steps, metrics=None):
        sched = make(sgd(0.5))
        lrs = [sched.get_last_lr()[0]]
        for k in range(steps):
            sched.step(*([metrics[k]] if metrics else []))
            lrs.append(sched.get_last_lr()[0])
        return lrs

    pairs = [
        (lambda o: lr_scheduler.StepLR(o, 3, 0.3), lambda o: StepLR(o, 3, 0.3)),
        (lambda o: lr_scheduler.ExponentialLR(o, 0.9), lambda o: ExponentialLR(o, 0.9)),
        (lambda o: lr_scheduler.CosineAnnealingLR(o, 7, 0.01), lambda o: CosineAnnealingLR(o, 7, 0.01)),
        (lambda o: lr_scheduler.LinearLR(o, 0.25, 1.0, 5), lambda o: LinearWarmup(o, 5, start_factor=0.25)),
    ]
    for make_theirs, make_ours in pairs:
        np.testing.assert_allclose(ours(make_ours, 10), theirs(make_theirs, 10), rtol=1e-9)
    metrics = [5, 4, 4, 4, 4, 4, 3.9999, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    plateau_kwargs = {"factor": 0.5, "patience": 2, "cooldown": 2, "min_lr": 0.1}
    assert ours(lambda o: ReduceLROnPlateau(o, **plateau_kwargs), 16, metrics) == theirs(
        lambda o: lr_scheduler.ReduceLROnPlateau(o, **plateau_kwargs), 16, metrics
    )


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(k).standard_normal(shape).astype(np.float32) for k, shape in enumerate(SHAPES)]
    for norm_type in (2.0, 1.0, 3.0, math.inf):
        ours = [tz.zeros(*g.shape, requires_grad=True) for g in grads]
        theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for o, t, g in zip(ours, theirs, grads):
            o.grad, t.grad = tz.tensor(g), torch.from_numpy(g.copy())
        total = clip_grad_norm_(ours, 0.5, norm_type=norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type)
        assert total.item() == pytest.approx(float(expected), rel=1e-6)
        for o, t in zip(ours, theirs):
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)


# ----- GPU ------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize(("cls", "kwargs"), RESUME_CASES, ids=[c.__name__ for c, _ in RESUME_CASES])
def test_gpu_step_matches_cpu_without_host_copies(cls, kwargs):
    if not tz.gpu_available():
        pytest.skip("needs a CUDA GPU and CuPy")
    cupy = pytest.importorskip("cupy")
    start = initial_arrays(np.float32)
    cpu = make_params(start)
    gpu = [tz.tensor(a, requires_grad=True, device="cuda") for a in start]
    cpu_opt, gpu_opt = cls(cpu, **kwargs), cls(gpu, **kwargs)
    for t in range(4):
        for i, (c, g) in enumerate(zip(cpu, gpu)):
            c.grad = tz.Tensor(gradient(c.data, i, t))
            g.grad = tz.Tensor(cupy.asarray(c.grad.data))
        cpu_opt.step()
        transfers = backend.host_transfers()
        gpu_opt.step()
        assert backend.host_transfers() == transfers
    for c, g in zip(cpu, gpu):
        assert isinstance(g.data, cupy.ndarray)
        np.testing.assert_allclose(g.numpy(), c.numpy(), rtol=1e-5, atol=1e-6)
    saved = gpu_opt.state_dict()
    on_host = {
        key: {n: backend.to_host(v) if hasattr(v, "shape") else v for n, v in entry.items()}
        for key, entry in saved["state"].items()
    }
    resumed = cls(gpu, **kwargs)
    resumed.load_state_dict(through_json_and_npz({"state": on_host, "param_groups": saved["param_groups"]}))
    assert all(isinstance(v, cupy.ndarray) for s in resumed.state.values() for n, v in s.items() if n != "step")

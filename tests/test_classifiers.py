"""The image classifiers (MLP, SimpleCNN, ResNet-18) and their examples.

Gradcheck of tiny float64 instances, output shapes, ResNet-18's known parameter counts, short training
runs that lower the loss, clear errors for wrong inputs, exact resume of the MLP example, and smoke
runs of the three examples. Nothing here downloads MNIST: the examples get a fabricated MNIST built
from the 8×8 digits that ship with tinyzoo (upscaled to 28×28).
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzoo as tz
from tinyzoo import optim
from tinyzoo.data import MNIST, load_digits
from tinyzoo.errors import ShapeError
from tinyzoo.models.cnn import SimpleCNN, pooled_size
from tinyzoo.models.mlp import MLP
from tinyzoo.models.resnet import BasicBlock, ResNet, resnet18
from tinyzoo.nn import functional as F
from tinyzoo.testing import training_losses
from tinyzoo.train import run_main
from tinyzoo.train.tasks import image_classifiers


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The products here are tiny: a second BLAS thread only adds waiting (seconds per test on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a test dependency; without it the tests are only slower
        yield
        return
    with threadpool_limits(1):
        yield


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 digits as float32 images [1797, 1, 8, 8] and their labels."""
    digits = load_digits()
    return digits.x.reshape(-1, 1, 8, 8), digits.y


def fake_mnist() -> MNIST:
    """A small MNIST look-alike: the 8×8 digits upscaled 3× and padded to 28×28 (1500 train, 297 test)."""
    images, labels = digits_images()
    big = np.pad(np.kron(images[:, 0], np.ones((3, 3), np.float32)), ((0, 0), (2, 2), (2, 2)))  # [N, 28, 28]
    x = big.reshape(len(big), 784)
    return MNIST(x[:1500], labels[:1500], x[1500:], labels[1500:], "8x8 digits upscaled to 28x28 (test data)")


def train_losses(model: tz.nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float = 1e-2) -> list[float]:
    """Full-batch Adam on the cross entropy; the loss at every step."""
    optimizer = optim.Adam(model.parameters(), lr=lr)
    return training_losses(lambda _: F.cross_entropy(model(tz.tensor(x)), y), optimizer, steps)


def gradcheck_model(model: tz.nn.Module, x: np.ndarray) -> None:
    """Gradcheck a float64 copy of the model with respect to its input and every parameter (raises on a mismatch)."""
    model.double()
    params = list(model.parameters())
    inputs = [tz.tensor(x.astype(np.float64), requires_grad=True), *params]
    tz.gradcheck(lambda x, *_: model(x), inputs)


# ----------------------------------------------------------------------------------------- gradcheck
def test_mlp_gradcheck() -> None:
    tz.manual_seed(0)
    model = MLP([6, 5, 4, 3], dropout=0.5).eval()  # dropout would draw a new mask per call
    gradcheck_model(model, np.random.default_rng(0).normal(size=(3, 6)))


def test_cnn_gradcheck_on_8x8() -> None:
    tz.manual_seed(0)
    model = SimpleCNN(1, 3, channels=(2, 3), kernel_size=3, padding=1, hidden=4, image_size=8)
    gradcheck_model(model, np.random.default_rng(1).normal(size=(2, 1, 8, 8)))


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_resnet_gradcheck_tiny(stem: str) -> None:
    """Two stages of one BasicBlock each (the second with a projection shortcut), width 2, BatchNorm training."""
    tz.manual_seed(0)
    model = ResNet((1, 1), num_classes=3, in_channels=1, stem=stem, width=2)
    assert isinstance(model.stages[1][0].shortcut, tz.nn.Sequential)  # 2 → 4 channels, stride 2: projected
    gradcheck_model(model, np.random.default_rng(2).normal(size=(3, 1, 8, 8)))


# -------------------------------------------------------------------------------------------- shapes
def test_output_shapes() -> None:
    assert MLP([784, 32, 10])(tz.zeros(5, 784)).shape == (5, 10)
    assert MLP([784, 32, 10])(tz.zeros(5, 1, 28, 28)).shape == (5, 10)  # images are flattened
    assert SimpleCNN()(tz.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert SimpleCNN(3, 10, (4, 8), 5, padding=2, hidden=8, image_size=32)(tz.zeros(2, 3, 32, 32)).shape == (2, 10)
    for stem, side in (("cifar", 4), ("imagenet", 1)):
        model = resnet18(num_classes=7, in_channels=3, stem=stem, width=4)
        assert model.stages(model.stem(tz.zeros(2, 3, 32, 32))).shape == (2, 32, side, side)  # 8w channels
        assert model(tz.zeros(2, 3, 32, 32)).shape == (2, 7)


@settings(max_examples=20, deadline=None)
@given(size=st.integers(8, 20), kernel=st.sampled_from([1, 3, 5]), padding=st.integers(0, 2))
def test_cnn_feature_map_size(size: int, kernel: int, padding: int) -> None:
    """The classifier's input size follows ⌊(n - k + 2p + 1) / 2⌋ applied twice, for any image size."""
    side = pooled_size(pooled_size(size, kernel, padding), kernel, padding)
    if side < 1:
        with pytest.raises(ValueError, match="too small"):
            SimpleCNN(1, 2, (2, 2), kernel, padding, 3, image_size=size)
        return
    model = SimpleCNN(1, 2, (2, 2), kernel, padding, 3, image_size=size)
    assert model.features(tz.zeros(1, 1, size, size)).shape == (1, 2, side, side)
    assert model(tz.zeros(1, 1, size, size)).shape == (1, 2)


# --------------------------------------------------------------------------------- parameter counts
def test_resnet18_parameter_counts() -> None:
    assert resnet18().num_parameters() == 11_689_512  # torchvision's resnet18: ImageNet stem, 1000 classes
    assert resnet18(num_classes=10, stem="cifar").num_parameters() == 11_173_962
    assert resnet18(num_classes=10, in_channels=1, stem="cifar").num_parameters() == 11_172_810
    blocks = [m for m in resnet18().modules() if isinstance(m, BasicBlock)]
    projections = [b for b in blocks if not isinstance(b.shortcut, tz.nn.Identity)]
    assert (len(blocks), len(projections)) == (8, 3)  # the first block of stages 2, 3, 4 projects


def test_simple_cnn_parameter_count() -> None:
    # conv 1→16 5×5: 416, conv 16→32 5×5: 12,832, Linear 512→128: 65,664, Linear 128→10: 1,290
    assert SimpleCNN().num_parameters() == 416 + 12_832 + 65_664 + 1_290


def test_resnet_matches_torch() -> None:
    """The same weights give the same logits as the network written in torch (both stems, train and eval mode)."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    def conv_bn(i: int, o: int, k: int, s: int = 1, relu: bool = False):
        return tnn.Sequential(tnn.Conv2d(i, o, k, s, k // 2, bias=False), tnn.BatchNorm2d(o), *[tnn.ReLU()] * relu)

    class Block(tnn.Module):
        def __init__(self, i: int, o: int, s: int) -> None:
            super().__init__()
            self.residual = tnn.Sequential(conv_bn(i, o, 3, s, relu=True), conv_bn(o, o, 3))
            self.shortcut = conv_bn(i, o, 1, s) if s != 1 or i != o else tnn.Identity()

        def forward(self, x):
            return torch.relu(self.residual(x) + self.shortcut(x))

    class TorchResNet(tnn.Module):
        def __init__(self, stem: str, w: int) -> None:
            super().__init__()
            pool = [tnn.MaxPool2d(3, 2, 1)] if stem == "imagenet" else []
            self.stem = tnn.Sequential(conv_bn(3, w, 7 if stem == "imagenet" else 3, 2 if pool else 1, relu=True),
                                       *pool)  # fmt: skip
            widths = [w, 2 * w, 4 * w, 8 * w]
            self.stages = tnn.Sequential(*[tnn.Sequential(Block(widths[max(i - 1, 0)], c, 1 if i == 0 else 2),
                                                          Block(c, c, 1)) for i, c in enumerate(widths)])  # fmt: skip
            self.fc = tnn.Linear(8 * w, 5)

        def forward(self, x):
            return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))

    # Batch statistics of the last stage's 2×2 maps over 4 images: over fewer values BatchNorm would blow
    # rounding differences up (two values normalise to ±1 whatever their gap).
    for stem, side in (("cifar", 16), ("imagenet", 64)):
        x = np.random.default_rng(3).normal(size=(4, 3, side, side)).astype(np.float32)
        ours = resnet18(num_classes=5, stem=stem, width=4)
        theirs = TorchResNet(stem, 4)
        theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
        for mode in ("train", "eval"):  # batch statistics, then the running ones the first pass updated
            expected = getattr(theirs, mode)()(torch.from_numpy(x)).detach().numpy()
            np.testing.assert_allclose(getattr(ours, mode)()(tz.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------- training lowers loss
def test_short_training_lowers_the_loss() -> None:
    tz.manual_seed(0)
    images, labels = digits_images()
    x, y = (images[:32] - images.mean()) / images.std(), labels[:32]
    for model in (MLP([64, 32, 10], dropout=0.1), SimpleCNN(1, 10, (4, 8), 3, 1, 16, image_size=8),
                  ResNet((1, 1), num_classes=10, in_channels=1, stem="cifar", width=4)):  # fmt: skip
        losses = train_losses(model, x, y, steps=20)
        assert losses[-1] < 0.7 * losses[0], (type(model).__name__, losses)


def test_precise_batch_norm_uses_the_batch_statistics() -> None:
    """Re-estimated on one batch, BatchNorm's running statistics are that batch's: eval output = train output."""
    trainer = image_classifiers
    tz.manual_seed(0)
    model = ResNet((1, 1), num_classes=3, in_channels=1, stem="cifar", width=4)
    x = np.random.default_rng(4).normal(1.0, 2.0, size=(16, 1, 8, 8)).astype(np.float32)
    with tz.no_grad():
        batch_stats = model(tz.tensor(x)).numpy()  # training mode: normalised with the batch's statistics
        moving = model.eval()(tz.tensor(x)).numpy()
        trainer.precise_batch_norm(model, x, "cpu", batch_size=16, batches=1)
        precise = model.eval()(tz.tensor(x)).numpy()
    assert not np.allclose(moving, batch_stats, atol=1e-2)
    np.testing.assert_allclose(precise, batch_stats, atol=1e-2)  # running_var is unbiased: n/(n-1) apart
    norms = [m for m in model.modules() if isinstance(m, tz.nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 and int(m.num_batches_tracked.data) == 1 for m in norms)


# ----------------------------------------------------------------------------------------- bad input
def test_wrong_input_channels_name_the_layer() -> None:
    with pytest.raises(ShapeError, match=r"Conv2d\(1→16, k=5\).*expected 1 input channels"):
        SimpleCNN()(tz.zeros(2, 3, 28, 28))
    with pytest.raises(ShapeError, match=r"Conv2d\(3→4, k=3\).*expected 3 input channels"):
        resnet18(num_classes=10, stem="cifar", width=4)(tz.zeros(2, 1, 32, 32))
    with pytest.raises(ShapeError, match=r"Linear\(784→32\).*must be 784"):
        MLP([784, 32, 10])(tz.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="stem must be one of"):
        resnet18(stem="tiny")


# ------------------------------------------------------------------------------------------ examples
@pytest.fixture
def example(load_example, monkeypatch):
    """Load an example with the shared trainer's load_mnist replaced by the fabricated MNIST."""

    def load(name: str):
        module = load_example(name)
        monkeypatch.setattr(image_classifiers, "load_mnist", fake_mnist)
        return module

    return load


def losses_after(path, step: int) -> list[dict]:
    """The metrics-log records after `step`."""
    return [r for r in map(json.loads, open(path).read().splitlines()) if r["step"] > step]


@pytest.mark.parametrize("first_run", [["--epochs", "1"], ["--epochs", "2", "--max-minutes", "1e-9"]],
                         ids=["at-epoch-end", "mid-epoch"])  # fmt: skip
def test_mlp_resume_is_exact(example, tmp_path, first_run: list[str], capsys) -> None:
    """Train N steps, save, resume to N + M: the same losses and test accuracies as N + M steps in one go."""
    mlp = example("mlp_mnist")
    common = ["--hidden", "32", "--dropout", "0.3", "--lr-decay", "0.5", "--train-size", "256", "--batch-size", "64",
              "--log-every", "1"]  # fmt: skip
    assert mlp.main([*common, "--epochs", "2", "--log", str(tmp_path / "straight.jsonl")]) == 0
    assert mlp.main([*common, *first_run, "--save", str(tmp_path / "ck.npz")]) == 0
    saved_step = 4 if first_run[1] == "1" else 1  # --max-minutes 1e-9 stops after the first step
    assert mlp.main([*common, "--epochs", "2", "--resume", str(tmp_path / "ck.npz"),
                     "--log", str(tmp_path / "resumed.jsonl")]) == 0  # fmt: skip
    straight = losses_after(tmp_path / "straight.jsonl", saved_step)
    resumed = losses_after(tmp_path / "resumed.jsonl", saved_step)
    assert len([r for r in straight if "loss" in r]) == 8 - saved_step  # a loss per step
    assert [r["step"] for r in straight if "test_acc" in r] == [4, 8][saved_step // 4 :]  # and after each epoch
    assert resumed == straight  # bit-identical floats
    assert "stopped by --max-minutes" in capsys.readouterr().out or saved_step == 4


def test_mlp_example_trains_and_plots(example, tmp_path, capsys) -> None:
    figure = tmp_path / "curves.png"
    assert example("mlp_mnist").main(["--epochs", "2", "--hidden", "64", "--plot", str(figure)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[-1].split("%")[0])
    assert accuracy > 80  # 1500 upscaled digits, 2 epochs
    assert figure.stat().st_size > 10_000


def test_cnn_example_on_mnist_and_cifar10(example, tmp_path, capsys) -> None:
    cnn = example("cnn_mnist")
    small = ["--epochs", "1", "--channels", "4,8", "--batch-size", "32"]
    assert cnn.main([*small, "--train-size", "256", "--test-size", "64"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:  # a fabricated CIFAR-10 folder
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 20))}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    assert cnn.main([*small, "--data", "cifar10", "--data-path", str(tmp_path)]) == 0
    assert "CIFAR-10, 100 training and 20 test images" in capsys.readouterr().out


def test_cifar10_without_a_path_is_one_error_line(example, capsys) -> None:
    assert run_main(example("cnn_mnist").main, ["--data", "cifar10"]) == 2
    assert "--data-path" in capsys.readouterr().err


def test_resnet_example_runs(example, capsys) -> None:
    resnet = example("resnet_mnist")
    assert resnet.main(["--width", "4", "--train-size", "32", "--batch-size", "8", "--test-size", "16",
                        "--max-minutes", "0"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "MNIST padded to 32×32" in out and "test accuracy" in out

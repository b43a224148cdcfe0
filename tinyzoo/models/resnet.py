"""ResNet-18: Deep Residual Learning for Image Recognition (He, Zhang, Ren & Sun, 2015).

Stacking more layers should never hurt — a deeper net could copy a shallower one and set the extra
layers to the identity — yet plain deep nets train *worse* than shallow ones: the solver struggles to
learn an identity through a stack of non-linear layers. A residual block asks the layers for the
difference from the identity instead,

    y = ReLU( F(x) + shortcut(x) ),       F(x) = BN(conv3×3(ReLU(BN(conv3×3(x)))))

so "do nothing" is F = 0 (weights near zero), and the gradient flows to early layers through the
shortcut's identity, ∂y/∂x = ∂F/∂x + I (before the ReLU), whatever F does.

BasicBlock (the two-conv block of ResNet-18/34). The first conv may have stride 2, halving the
resolution while the channels double; then x and F(x) differ in shape, and the shortcut becomes a
projection (option B of the paper): a 1×1 conv with the same stride, then BatchNorm,

    shortcut(x) = x                            when shapes agree
                = BN(conv1×1, stride s (x))    otherwise.

Convolutions followed by BatchNorm carry no bias (BN's β does that job). BatchNorm (Ioffe & Szegedy,
2015) normalises each channel with the batch's mean and variance while training, and with running
averages of them at evaluation — so call `model.eval()` before testing.

The network, for width w = 64 (ImageNet, 224×224 in):

    stem   ImageNet: conv 7×7/2 (C→w) → BN → ReLU → maxpool 3×3/2      [N, w, 56, 56]
           CIFAR:    conv 3×3/1 (C→w) → BN → ReLU (no pool)             [N, w, 32, 32] for 32×32 in
    layer1 2 BasicBlocks, w channels,   stride 1                         [N, w,  H,   W  ]
    layer2 2 BasicBlocks, 2w channels,  first stride 2                   [N, 2w, H/2, W/2]
    layer3 2 BasicBlocks, 4w channels,  first stride 2                   [N, 4w, H/4, W/4]
    layer4 2 BasicBlocks, 8w channels,  first stride 2                   [N, 8w, H/8, W/8]
    head   global average pool → Linear(8w → classes)                   [N, classes]

1 + 2·2·4 + 1 = 18 weighted layers. Parameter counts (w = 64):

    ImageNet stem, 3 channels in, 1000 classes (torchvision's resnet18):  11,689,512
    CIFAR stem,    3 channels in,   10 classes:                            11,173,962
    CIFAR stem,    1 channel in,    10 classes (MNIST padded to 32×32):    11,172,810

The CIFAR stem (used by the paper's CIFAR experiments and most CIFAR ResNet-18 code) keeps the
32×32 resolution into layer1; the ImageNet stem would shrink a 32×32 image to 8×8 before any block.
Weights are initialised as torchvision does: convs He-normal (fan_out, ReLU gain), BN γ = 1, β = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.nn import init
from tinyzoo.nn.conv import AdaptiveAvgPool2d, Conv2d, MaxPool2d

STEMS = ("imagenet", "cifar")


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
            relu: bool = False) -> nn.Sequential:  # fmt: skip
    """conv k×k (no bias, 'same' padding for stride 1) followed by BatchNorm2d (and ReLU, fused into the BatchNorm)."""
    return nn.Sequential(
        Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNormReLU2d(out_channels) if relu else nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """y = ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x)), shortcut a 1×1 projection when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            conv_bn(in_channels, out_channels, 3, stride, relu=True),  # [N, out, H/s, W/s]
            conv_bn(out_channels, out_channels, 3),  # [N, out, H/s, W/s]
        )  # fmt: skip
        projection = stride != 1 or in_channels != out_channels
        self.shortcut = conv_bn(in_channels, out_channels, 1, stride) if projection else nn.Identity()

    def forward(self, x: tz.Tensor) -> tz.Tensor:
        """x [N, in, H, W] → [N, out, H/stride, W/stride]."""
        return (self.residual(x) + self.shortcut(x)).relu()


def build_stem(kind: str, in_channels: int, width: int) -> nn.Sequential:
    """The layers before the first block: ImageNet's 7×7/2 conv + 3×3/2 max-pool, or CIFAR's single 3×3 conv."""
    if kind == "imagenet":
        return nn.Sequential(conv_bn(in_channels, width, 7, stride=2, relu=True), MaxPool2d(3, stride=2, padding=1))
    if kind == "cifar":
        return nn.Sequential(conv_bn(in_channels, width, 3, relu=True))
    raise ValueError(f"ResNet: stem must be one of {STEMS}, got {kind!r}")


class ResNet(nn.Module):
    """A ResNet of BasicBlocks: stem, one stage per entry of blocks_per_stage (widths w, 2w, 4w, ...), pool, Linear."""

    def __init__(
        self,
        blocks_per_stage: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        width: int = 64,
    ) -> None:
        super().__init__()
        self.stem = build_stem(stem, in_channels, width)
        stages, channels = [], width
        for i, blocks in enumerate(blocks_per_stage):
            out_channels = width * 2**i
            stride = 1 if i == 0 else 2
            stage = [BasicBlock(channels, out_channels, stride)]
            stage += [BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation: convs He-normal with fan_out, BatchNorm γ = 1 and β = 0."""
        for module in self.modules():
            if isinstance(module, Conv2d):
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                init.ones_(module.weight)
                init.zeros_(module.bias)

    def forward(self, x: tz.Tensor) -> tz.Tensor:
        """Images x [N, in_channels, H, W] → logits [N, num_classes]."""
        h = self.stages(self.stem(x))  # ResNet-18: [N, 8w, H/8, W/8] (CIFAR stem) or [N, 8w, H/32, W/32] (ImageNet)
        return self.fc(self.pool(h).flatten(1))  # [N, 8w, 1, 1] → [N, 8w] → [N, classes]


def resnet18(num_classes: int = 1000, in_channels: int = 3, stem: str = "imagenet", width: int = 64) -> ResNet:
    """ResNet-18: two BasicBlocks in each of the four stages."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, stem, width)


def demo() -> tuple[ResNet, tz.Tensor]:
    """ResNet-18 as examples/resnet_mnist.py trains it (CIFAR stem, one channel) and two padded digits
    (for `python -m tinyzoo explain resnet18`)."""
    return resnet18(num_classes=10, in_channels=1, stem="cifar"), tz.randn(2, 1, 32, 32)

"""ResNet-18 on MNIST padded to 32×32, for a fixed wall-time budget (see tinyzoo/models/resnet.py).

    python examples/resnet_mnist.py --device cpu [--max-minutes 10] [--width 64] [--stem cifar]
    python examples/resnet_mnist.py --data cifar10 --data-path DIR --device gpu --epochs 30 --max-minutes 0 \
                                    --test-size 10000 --batch-size 128 --lr-decay 0.9

There is no offline CIFAR-10 here, so by default the real ResNet-18 (BasicBlocks, BatchNorm,
projection shortcuts, the CIFAR stem: one 3×3 conv, no max-pool; 11.2 M parameters) trains on MNIST
digits zero-padded to 32×32, one channel. A CPU does only a few images a second through it, so the
default run stops after --max-minutes 10 of training and reports the accuracy reached on the first
--test-size 1000 test images. Before testing, BatchNorm's running statistics are re-estimated on 10
training batches (--precise-bn 10): after a hundred-odd Adam steps the moving averages lag behind the
fast-changing weights and cost several points of test accuracy (see tinyzoo/train/tasks/image_classifiers.py).
`--width 16` is the same 18-layer network at a quarter of the width
(16× fewer multiply-adds); `--stem imagenet` uses the 7×7/2 conv and 3×3/2 max-pool stem.
`--data cifar10 --data-path DIR` trains on CIFAR-10 batches you downloaded (`--max-minutes 0` for no
budget). The flags of tinyzoo/train/tasks/image_classifiers.py apply (--log, --save, --resume, --plot, ...).
"""

from __future__ import annotations

import sys

from tinyzoo.models.resnet import STEMS, resnet18
from tinyzoo.train import example_parser, run_main
from tinyzoo.train.tasks import image_classifiers


def parse_args(argv: list[str] | None):
    """The example's flags: the shared ones, the classifier ones (with a time budget) and the ResNet's."""
    parser = example_parser(__doc__.splitlines()[0], epochs=1, lr=1e-3, batch_size=32)
    image_classifiers.add_flags(parser, test_size=1000, max_minutes=10, precise_bn=10)
    parser.add_argument("--width", type=int, default=64, help="channels of the first stage (64 is ResNet-18)")
    parser.add_argument("--stem", choices=STEMS, default="cifar", help="cifar: 3×3 conv; imagenet: 7×7/2 + max-pool")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train ResNet-18 within the budget and report the test accuracy."""
    args = parse_args(argv)
    device, images = image_classifiers.prepare(args, pad_to=32)
    model = resnet18(num_classes=10, in_channels=images.shape[0], stem=args.stem, width=args.width)
    image_classifiers.run("resnet18", model, images, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""A simple CNN on MNIST: (conv → ReLU → max-pool) × 2, then a classifier (see tinyzoo/models/cnn.py).

    python examples/cnn_mnist.py --device cpu [--epochs 6] [--channels 16,32] [--kernel-size 5]
                                 [--hidden 128] [--plot cnn.png]
    python examples/cnn_mnist.py --data cifar10 --data-path DIR --channels 32,64 --padding 2 --device gpu

Two 5×5 convolutions without padding (16 and 32 channels; 28 → 24 → 12 → 8 → 4), a 128-unit hidden
layer, Adam (lr 1e-3, multiplied by 0.7 after each epoch; batches of 128), 6 epochs. Prints the test
accuracy after every epoch and at the end.

`--data cifar10 --data-path DIR` reads the CIFAR-10 python batches from a folder you downloaded
(tinyzoo never downloads them). The flags of tinyzoo/train/tasks/image_classifiers.py apply (--log, --save,
--resume, --max-minutes, --batch-size, ...).
"""

from __future__ import annotations

import sys

from tinyzoo.models.cnn import SimpleCNN
from tinyzoo.train import example_parser, run_main
from tinyzoo.train.tasks import image_classifiers


def parse_args(argv: list[str] | None):
    """The example's flags: the shared ones, the classifier ones and the CNN's shape."""
    parser = example_parser(__doc__.splitlines()[0], epochs=6, lr=1e-3, batch_size=128)
    image_classifiers.add_flags(parser, lr_decay=0.7)
    parser.add_argument("--channels", default="16,32", help="output channels of the two convolutions")
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument("--padding", type=int, default=0, help="zero padding of each convolution")
    parser.add_argument("--hidden", type=int, default=128, help="units of the hidden classifier layer")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout before the last layer")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train the CNN and report the test accuracy."""
    args = parse_args(argv)
    device, images = image_classifiers.prepare(args)
    in_channels, size, _ = images.shape
    model = SimpleCNN(in_channels, 10, [int(c) for c in args.channels.split(",")], args.kernel_size,
                      args.padding, args.hidden, args.dropout, image_size=size)  # fmt: skip
    image_classifiers.run("cnn", model, images, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""Vision Transformer (ViT): "An Image is Worth 16x16 Words" (Dosovitskiy et al., 2021).

A Transformer reads a sequence of vectors; ViT turns an image into one by cutting it into patches.
An image [C, H, W] with patch size p becomes N = (H/p)(W/p) patches, each flattened to C·p·p numbers
and mapped linearly to a d-dimensional token. A learned class token is put in front, learned
position embeddings are added (the Transformer itself is blind to order), and a stack of pre-norm
Transformer encoder blocks lets every patch attend to every other. The class token's final state,
which has gathered what it needs from all patches, is classified by an MLP head:

    x_p  = patchify(image)                        [N, C·p·p]        N = (H/p)(W/p)
    z⁰   = [x_class; x_p W_E + b_E] + P            [N + 1, d]        P: learned positions
    zˡ   = Blockˡ(zˡ⁻¹),  l = 1 … L                 pre-norm: z = z + MSA(LN(z)); z = z + MLP(LN(z))
    y    = Head(LN(zᴸ_0))                         [classes]         from the class token only

The patch embedding is the paper's linear projection of flattened patches, done with reshape and
permute (no convolution needed; a Conv2d with kernel = stride = p computes the same map):

    [C, H, W] → [C, H/p, p, W/p, p] → [H/p, W/p, C, p, p] → [N, C·p·p]

so patch n = i·(W/p) + j is the p×p block at row i, column j, read channel by channel, row by row.
`unpatchify` undoes it. The paper's head is an MLP with one hidden layer (tanh) when pre-training
from scratch and a single linear layer when fine-tuning; `head_hidden` picks between them.

With no convolutional prior (locality, translation equivariance) ViT needs more data than a CNN to
do as well; MNIST's 28×28 digits in 7×7 patches (16 tokens) are small enough to train on a CPU.
"""

from __future__ import annotations

import numpy as np

import tinyzoo as tz
from tinyzoo import nn
from tinyzoo.errors import ShapeError
from tinyzoo.nn import init


def patchify(images: tz.Tensor, patch_size: int) -> tz.Tensor:
    """images [B, C, H, W] → patches [B, N, C·p·p], N = (H/p)(W/p), in row-major patch order."""
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ShapeError(f"patchify: image size {H}×{W} is not divisible by the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)  # [B, C, rows, p, cols, p]
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, p, p]
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def unpatchify(patches: tz.Tensor, patch_size: int, channels: int, height: int, width: int) -> tz.Tensor:
    """patches [B, N, C·p·p] → images [B, C, H, W]: the inverse of `patchify`."""
    B = patches.shape[0]
    p = patch_size
    x = patches.reshape(B, height // p, width // p, channels, p, p)  # [B, rows, cols, C, p, p]
    x = x.permute(0, 3, 1, 4, 2, 5)  # [B, C, rows, p, cols, p]
    return x.reshape(B, channels, height, width)


class ViT(nn.Module):
    """Vision Transformer classifier: images [B, C, H, W] → class logits [B, num_classes]."""

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 7,
        channels: int = 1,
        num_classes: int = 10,
        d_model: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        d_ff: int | None = None,
        dropout: float = 0.0,
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT: image_size {image_size} is not divisible by patch_size {patch_size}")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Linear(channels * patch_size**2, d_model)  # W_E, b_E
        self.class_token = init.normal_(nn.Parameter(np.zeros((1, 1, d_model), np.float32)), std=0.02)
        self.positions = init.normal_(nn.Parameter(np.zeros((1, self.num_patches + 1, d_model), np.float32)), std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerBlock(d_model, num_heads, d_ff or 4 * d_model, dropout, norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        if head_hidden:
            self.head = nn.Sequential(nn.Linear(d_model, head_hidden), nn.Tanh(), nn.Linear(head_hidden, num_classes))
        else:
            self.head = nn.Linear(d_model, num_classes)

    def tokens(self, images: tz.Tensor) -> tz.Tensor:
        """images [B, C, H, W] → z⁰ [B, N + 1, d]: the class token, then the embedded patches, plus positions."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ShapeError(f"ViT: expected images [batch, {', '.join(map(str, expected))}], got {images.shape}")
        patches = self.patch_embed(patchify(images, self.patch_size))  # [B, N, d]
        cls = tz.broadcast_to(self.class_token, (images.shape[0], 1, patches.shape[-1]))  # [B, 1, d]
        return tz.concat([cls, patches], axis=1) + self.positions  # [B, N + 1, d]

    def forward(self, images: tz.Tensor) -> tz.Tensor:
        """images [B, C, H, W] → logits [B, num_classes]."""
        z = self.dropout(self.tokens(images))
        for block in self.blocks:
            z = block(z)  # [B, N + 1, d]
        return self.head(self.norm(z[:, 0]))  # the class token → [B, num_classes]


def demo() -> tuple[ViT, tz.Tensor]:
    """The ViT of examples/vit_mnist.py and a batch of MNIST-sized images (for `python -m tinyzoo explain vit`)."""
    model = ViT(28, 7, 1, 10, d_model=64, num_layers=4, num_heads=4, d_ff=128, head_hidden=64)
    return model, tz.randn(4, 1, 28, 28)

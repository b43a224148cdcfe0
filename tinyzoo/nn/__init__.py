"""tinyzoo.nn — Module/Parameter, layers, and (in `tinyzoo.nn.functional`) the ops layers are built from."""

from tinyzoo.nn import functional, init
from tinyzoo.nn.attention import MultiheadAttention, TransformerBlock, scaled_dot_product_attention
from tinyzoo.nn.conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, MaxPool2d
from tinyzoo.nn.inference import InferencePlan
from tinyzoo.nn.layers import *  # noqa: F403
from tinyzoo.nn.layers import __all__ as _layers
from tinyzoo.nn.losses import *  # noqa: F403
from tinyzoo.nn.losses import __all__ as _losses
from tinyzoo.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from tinyzoo.nn.recurrent import *  # noqa: F403
from tinyzoo.nn.recurrent import __all__ as _recurrent

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose2d",
    "InferencePlan",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "MultiheadAttention",
    "Parameter",
    "Sequential",
    "TransformerBlock",
    "functional",
    "init",
    "scaled_dot_product_attention",
    *_layers,
    *_recurrent,
    *_losses,
]

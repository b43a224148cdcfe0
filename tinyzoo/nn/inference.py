"""A fixed-shape inference path for dense networks that allocates nothing per call but its output.

`model(x)` under `no_grad()` is already cheap, but every op still makes a new array and a Tensor
around it. When a trained MLP answers one request at a time (an embedded device, a serverless
function), those allocations and the Python around them are most of the cost. `InferencePlan` walks
a `Sequential` of Linear layers and element-wise activations once, allocates one buffer per layer
for a fixed batch size, and then replays the forward pass as NumPy (or CuPy) calls that write into
those buffers:

    Linear:     matmul(h, Wᵀ, out=buffer); add(buffer, b, out=buffer)
    ReLU:       maximum(buffer, 0, out=buffer)          (in place)
    Flatten:    a reshaped view of the buffer, made once at build time

    plan = nn.InferencePlan(mlp.layers, input_shape=(784,))   # batch size 1 by default
    logits = plan(image)                                      # a new [1, 10] array; nothing else is allocated
    plan(image, out=logits)                                   # or fill the caller's array: no allocation at all

The plan reads the weights' arrays when it is built: build it after loading a checkpoint (in-place
updates of those arrays are seen; arrays replaced later are not). Float16 models run in float16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tinyzoo.autograd.tensor import Tensor
from tinyzoo.backend import xp_of
from tinyzoo.errors import ShapeError
from tinyzoo.nn.layers import Dropout, Flatten, Identity, LeakyReLU, Linear, ReLU, Tanh
from tinyzoo.nn.module import Module, Sequential

Step = Callable[[], None]


def _layers(model: Module) -> Iterator[Module]:
    """The layers of a Sequential in order, nested Sequentials opened up."""
    for layer in model._modules.values():
        if isinstance(layer, Sequential):
            yield from _layers(layer)
        else:
            yield layer


def _linear_step(source: Any, layer: Linear, target: Any) -> Step:
    """target = source Wᵀ + b, written into target."""
    xp, weight_t = xp_of(target), layer.weight.data.T  # a transposed view: BLAS reads it without a copy
    bias = None if layer.bias is None else layer.bias.data

    def step() -> None:
        xp.matmul(source, weight_t, out=target)
        if bias is not None:
            xp.add(target, bias, out=target)

    return step


def _activation_step(layer: Module, buffer: Any) -> Step:
    """The activation applied to buffer in place."""
    xp = xp_of(buffer)
    if isinstance(layer, ReLU):
        return lambda: xp.maximum(buffer, 0, out=buffer)
    if isinstance(layer, Tanh):
        return lambda: xp.tanh(buffer, out=buffer)
    slope = buffer.dtype.type(layer.negative_slope)  # LeakyReLU: max(x, slope·x) for 0 ≤ slope ≤ 1
    scaled = xp.empty_like(buffer)

    def leaky() -> None:
        xp.multiply(buffer, slope, out=scaled)
        xp.maximum(buffer, scaled, out=buffer)

    return leaky


class InferencePlan:
    """A Sequential of Linear/ReLU/LeakyReLU/Tanh/Flatten/Dropout/Identity layers, replayed into fixed buffers."""

    def __init__(self, model: Sequential, input_shape: tuple[int, ...], batch_size: int = 1) -> None:
        if not isinstance(model, Sequential):
            raise TypeError(
                f"InferencePlan needs an nn.Sequential, got {type(model).__name__} (for an MLP: mlp.layers)"
            )
        parameters = list(model.parameters())
        if not parameters:
            raise ValueError("InferencePlan: the model has no parameters to take a dtype and device from")
        xp, dtype = xp_of(parameters[0].data), parameters[0].data.dtype
        self.input = xp.zeros((batch_size, *input_shape), dtype=dtype)  # [batch, *input_shape]
        self.steps: list[Step] = []
        current = self.input
        for index, layer in enumerate(_layers(model)):
            current = self._add(layer, current, index)
        self.output = current

    def _add(self, layer: Module, current: Any, index: int) -> Any:
        """Plan one layer; returns the buffer that holds its output."""
        if isinstance(layer, (Identity, Dropout)):  # the plan is for evaluation: dropout is the identity
            return current
        if isinstance(layer, Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
            return current.reshape(current.shape[0], -1)  # a view: no copy, no step
        if isinstance(layer, Linear):
            if current.ndim != 2 or current.shape[1] != layer.in_features:
                raise ShapeError(f"InferencePlan: layer {index} ({layer.short_name()}) gets rows of shape "
                                 f"{current.shape[1:]}; add a Flatten or fix input_shape")  # fmt: skip
            target = xp_of(current).empty((current.shape[0], layer.out_features), dtype=current.dtype)
            self.steps.append(_linear_step(current, layer, target))
            return target
        if isinstance(layer, (ReLU, Tanh)) or (isinstance(layer, LeakyReLU) and 0 <= layer.negative_slope <= 1):
            self.steps.append(_activation_step(layer, current))
            return current
        raise TypeError(
            f"InferencePlan: layer {index} ({type(layer).__name__}) is not supported; it plans Linear, ReLU, "
            "LeakyReLU (slope in [0, 1]), Tanh, Flatten (of all but the batch axis), Dropout and Identity — run "
            "other models with model(x)"
        )

    def __call__(self, x: Any, out: Any = None) -> Any:
        """The network's output for x (shape [batch, *input_shape]): a new array, or written into `out`."""
        data = x.data if isinstance(x, Tensor) else x
        if data.shape != self.input.shape:
            raise ShapeError(f"InferencePlan: input of shape {data.shape}, the plan was built for {self.input.shape}")
        self.input[...] = data
        for step in self.steps:
            step()
        if out is None:
            return self.output.copy()
        out[...] = self.output
        return out

    def __repr__(self) -> str:
        return f"InferencePlan(input {self.input.shape} → output {self.output.shape}, {len(self.steps)} steps)"


__all__ = ["InferencePlan"]

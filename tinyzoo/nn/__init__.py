"""tinyzoo.nn — Module/Parameter, layers, and (in `tinyzoo.nn.functional`) the ops layers are built from."""

from tinyzoo.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential

__all__ = ["Module", "ModuleDict", "ModuleList", "Parameter", "Sequential"]

"""Hand-written kernels for the hot loops of the zoo: graph attention and capsule routing.

    from tinyzoo.kernels import edge_softmax, edge_aggregate, dynamic_routing, squash

Each kernel is one tinyzoo op with three implementations: a reference written with tinyzoo ops
(the definition), a Numba CPU kernel and a numba.cuda GPU kernel. The input's device picks one;
TINYZOO_KERNELS=reference (or impl="reference") forces the reference. Numba is imported on the
first kernel call, never at import time; without it the reference is used, with one warning.

The function `edge_softmax` shadows its submodule here; reach the module (its kernels, `segments`)
with importlib.import_module("tinyzoo.kernels.edge_softmax").
"""

from __future__ import annotations

from tinyzoo.kernels.edge_softmax import edge_aggregate, edge_softmax
from tinyzoo.kernels.routing import dynamic_routing, squash

__all__ = ["dynamic_routing", "edge_aggregate", "edge_softmax", "squash"]

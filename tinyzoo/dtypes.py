"""Dtypes: PyTorch's names for NumPy dtypes, and PyTorch's promotion rules.

`tinyzoo.float32`, `tinyzoo.long`, ... are NumPy dtype objects, so they compare equal to NumPy's
dtypes and to their strings (`tz.float32 == np.float32 == "float32"`). Strings are read PyTorch's
way where the two libraries disagree: "float" is float32 (NumPy: float64), "int" is int32, "long"
is int64, "double" float64, "half" float16.

Promotion follows PyTorch, not NumPy, so a float32 model stays float32:
- the *category* (bool < integer < floating) of the result is the highest of all operands';
- within the winning category, tensors with at least one axis decide the dtype; 0-d tensors and
  Python numbers only take part when their category is higher than every dimensioned operand's
  (`float32 tensor * float64 0-d tensor` is float32, `int64 tensor * 0.5` is float32);
- a Python float counts as the default float dtype (float32), a Python int as int64;
- across categories the higher one wins whole (`int64 tensor + float32 tensor` is float32 —
  NumPy would say float64);
- dividing integers gives the default float dtype (`int / int` is float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
uint8 = np.dtype(np.uint8)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

# PyTorch's short names (exported as tinyzoo.float, tinyzoo.long, ...; they would shadow builtins here)
TORCH_NAMES = {"float": float32, "double": float64, "half": float16, "int": int32, "long": int64,
               "short": int16, "bool": bool_}  # fmt: skip
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # bool < integer < floating


def as_dtype(spec: Any) -> np.dtype:
    """A NumPy dtype from a dtype, a NumPy type, or a string (PyTorch's spellings first)."""
    if isinstance(spec, str):
        name = spec.removeprefix("torch.")
        return TORCH_NAMES.get(name) or np.dtype(name)
    return np.dtype(spec)


def category(dtype: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for floating point."""
    return _CATEGORY.get(dtype.kind, 3)


def promote(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's promote_types: the higher category wins whole; within one category, NumPy's rule."""
    if a == b:
        return a
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def scalar_dtype(value: Any) -> np.dtype:
    """The dtype a Python number counts as: bool, int64, or the default float dtype."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return DEFAULT_FLOAT


def _combine(higher: np.dtype | None, lower: np.dtype | None) -> np.dtype | None:
    """PyTorch's combine_categories: `higher` (the more specific group) wins unless `lower` has a higher category."""
    if higher is None:
        return lower
    if lower is None or category(higher) >= category(lower):
        return higher
    return promote(higher, lower)


def result_type(*operands: tuple[np.dtype, int | None]) -> np.dtype:
    """The dtype of an op's result from (dtype, ndim) pairs; ndim None marks a Python number."""
    groups: list[np.dtype | None] = [None, None, None]  # dimensioned tensors, 0-d tensors, Python numbers
    for dtype, ndim in operands:
        slot = 2 if ndim is None else (1 if ndim == 0 else 0)
        groups[slot] = dtype if groups[slot] is None else promote(groups[slot], dtype)
    return _combine(groups[0], _combine(groups[1], groups[2]))


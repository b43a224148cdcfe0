"""Helpers for testing: hypothesis strategies for ops (`strategies`, needs the `test` extra) and a strict
stand-in GPU that refuses every implicit copy to the host (`strict_device`, NumPy only)."""

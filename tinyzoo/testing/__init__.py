"""Helpers for testing ops: hypothesis strategies (needs the `test` extra)."""

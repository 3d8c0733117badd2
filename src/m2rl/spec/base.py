"""Shared pydantic base for every spec section: unknown keys are errors (the registry's StrictModel)."""

from m2rl.registry import StrictModel

__all__ = ["StrictModel"]

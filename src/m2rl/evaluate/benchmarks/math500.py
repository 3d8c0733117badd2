"""MATH-500: the 500-problem subset of MATH (HuggingFaceH4/MATH-500: problem, answer, unique_id, ...)."""

from __future__ import annotations

from m2rl.evaluate.benchmarks._math import load_math
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "HuggingFaceH4/MATH-500"


@register_benchmark("math500", domain="math", hub_id=HUB_ID, k=4, votable=True)
def load_math500(spec: BenchmarkSpec) -> list[dict]:
    """MATH-500 (Avg@4), answer as `Answer: \\boxed{...}`."""
    return load_math("math500", spec, HUB_ID, split="test")

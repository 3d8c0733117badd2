"""AIME 2025: 30 competition problems with integer answers (math-ai/aime25: problem, answer, id)."""

from __future__ import annotations

from m2rl.evaluate.benchmarks._math import load_math
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "math-ai/aime25"


@register_benchmark("aime25", domain="math", hub_id=HUB_ID, k=16, votable=True)
def load_aime25(spec: BenchmarkSpec) -> list[dict]:
    """AIME 2025 (Avg@16), answer as `Answer: \\boxed{...}`."""
    return load_math("aime25", spec, HUB_ID, split="test")

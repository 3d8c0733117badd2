"""AIME 2024: 30 competition problems with integer answers (HuggingFaceH4/aime_2024: id, problem, answer)."""

from __future__ import annotations

from m2rl.evaluate.benchmarks._math import load_math
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "HuggingFaceH4/aime_2024"


@register_benchmark("aime24", domain="math", hub_id=HUB_ID, k=16, votable=True)
def load_aime24(spec: BenchmarkSpec) -> list[dict]:
    """AIME 2024 (Avg@16), answer as `Answer: \\boxed{...}`."""
    return load_math("aime24", spec, HUB_ID, split="train")

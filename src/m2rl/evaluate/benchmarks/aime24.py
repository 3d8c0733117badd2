"""AIME 2024: 30 competition problems with integer answers.

The hub dataset is math-ai/aime24 (split test: `id, problem, solution, url`, `solution` being the
`\\boxed{}` answer), the one the paper's `download_aime.py` reads; a local copy may also be
HuggingFaceH4/aime_2024 (`id, problem, solution, answer, url, year`) or the paper's processed
`val/aime-2024.parquet` (see m2rl.evaluate.benchmarks._math for how each layout is read).
"""

from __future__ import annotations

from m2rl.evaluate.benchmarks._math import load_math
from m2rl.evaluate.registry import register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "math-ai/aime24"


@register_benchmark("aime24", domain="math", hub_id=HUB_ID, k=16, votable=True)
def load_aime24(spec: BenchmarkSpec) -> list[dict]:
    """AIME 2024 (Avg@16), answer as `Answer: \\boxed{...}`."""
    return load_math("aime24", spec, HUB_ID, split="test")

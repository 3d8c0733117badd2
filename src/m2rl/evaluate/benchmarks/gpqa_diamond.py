"""GPQA Diamond: 198 graduate-level science questions, four options (Idavidrein/gpqa, config gpqa_diamond).

Columns: `Question`, `Correct Answer`, `Incorrect Answer 1..3`, `Record ID`. The prompt is
simple-evals' multiple-choice prompt; the options are shuffled per question by an RNG seeded from
(`options.shuffle_seed`, the record id), so every model sees the same order and the gold letter
is spread over A-D.
"""

from __future__ import annotations

import random

from pydantic import Field

from m2rl.evaluate.loading import (
    LETTERS,
    column,
    load_rows,
    make_record,
    multichoice_prompt,
    text_id,
    unique_ids,
)
from m2rl.evaluate.registry import register_benchmark
from m2rl.registry import StrictModel
from m2rl.spec.evaluate import BenchmarkSpec


class GpqaOptions(StrictModel):
    """Options of GPQA Diamond."""

    shuffle_seed: int = Field(default=0, description="Seed of the per-question option order (same for every model).")

HUB_ID = "Idavidrein/gpqa"
NAME = "gpqa_diamond"


def shuffled_options(correct: str, incorrect: list[str], seed: int, rid: str) -> tuple[list[str], str]:
    """The four options in a seeded order and the gold letter."""
    options = [correct, *incorrect]
    order = list(range(len(options)))
    random.Random(f"gpqa:{seed}:{rid}").shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[order.index(0)]


@register_benchmark(NAME, domain="science", hub_id=HUB_ID, k=4, votable=True, params=GpqaOptions)
def load_gpqa_diamond(spec: BenchmarkSpec) -> list[dict]:
    """GPQA Diamond (Avg@4), simple-evals prompt with seeded option shuffling."""
    seed = int(spec.options.get("shuffle_seed", 0))
    rows = load_rows(NAME, spec.path, HUB_ID, split="train", config="gpqa_diamond")
    recs = []
    for i, row in enumerate(rows):
        where = f"{NAME}: {spec.path or HUB_ID} row {i}"
        question = str(column(row, "Question", where=where)).strip()
        correct = str(column(row, "Correct Answer", where=where)).strip()
        incorrect = [str(column(row, f"Incorrect Answer {j}", where=where)).strip() for j in (1, 2, 3)]
        rid = str(column(row, "Record ID", required=False) or text_id(question))
        options, gold = shuffled_options(correct, incorrect, seed, rid)
        recs.append(make_record(
            NAME, "science", f"{NAME}-{rid}", multichoice_prompt(question, options), gold,
            {"type": "mcqa", "options": options},
        ))
    return unique_ids(NAME, recs)

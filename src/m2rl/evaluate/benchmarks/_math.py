"""Shared loader of answer-only math benchmarks (AIME, MATH-500): problem + answer -> `math` verifier."""

from __future__ import annotations

from typing import Any

from m2rl.evaluate.loading import MATH_TEMPLATE, column, load_rows, make_record, unique_ids
from m2rl.spec.evaluate import BenchmarkSpec


def load_math(
    name: str, spec: BenchmarkSpec, hub_id: str, split: str, config: str | None = None
) -> list[dict[str, Any]]:
    rows = load_rows(name, spec.path, hub_id, split=split, config=config)
    recs = []
    for i, row in enumerate(rows):
        where = f"{name}: {spec.path or hub_id} row {i}"
        rid = column(row, "id", "unique_id", "ID", required=False)
        problem = column(row, "problem", "question", where=where)
        answer = column(row, "answer", where=where)
        recs.append(make_record(
            name, "math", f"{name}-{rid if rid is not None else i}", MATH_TEMPLATE.format(problem=str(problem).strip()),
            str(answer).strip(), {"type": "math"},
        ))
    return unique_ids(name, recs)

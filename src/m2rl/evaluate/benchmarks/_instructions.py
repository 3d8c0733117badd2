"""Shared loader of instruction-following benchmarks (IFEval, IFBench): the `ifeval` verifier.

Columns: `key`, `prompt`, `instruction_id_list`, `kwargs` (one dict per instruction; the hub's
arrow form fills unset arguments with null, which are dropped here).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from m2rl.evaluate.loading import column, load_rows, make_record, unique_ids
from m2rl.evaluate.registry import EvalError
from m2rl.registry import StrictModel
from m2rl.spec.evaluate import BenchmarkSpec


class InstructionOptions(StrictModel):
    """Options of the instruction-following benchmarks."""

    mode: Literal["strict", "loose"] = Field(
        default="strict", description="Prompt-level strict accuracy, or IFEval's loose variant."
    )


def _kwargs(value: Any, n: int, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        value = json.loads(value)
    if value is None:
        value = [{}] * n
    if not isinstance(value, list) or len(value) != n:
        raise EvalError(f"{where}: kwargs must be a list of {n} dicts (one per instruction)")
    return [{k: v for k, v in (kw or {}).items() if v is not None} for kw in value]


def load_instructions(name: str, spec: BenchmarkSpec, hub_id: str, split: str) -> list[dict[str, Any]]:
    mode = spec.options.get("mode", "strict")
    if mode not in ("strict", "loose"):
        raise EvalError(f"{name}: options.mode must be strict or loose, got {mode!r}")
    rows = load_rows(name, spec.path, hub_id, split=split)
    recs = []
    for i, row in enumerate(rows):
        where = f"{name}: {spec.path or hub_id} row {i}"
        ids = list(column(row, "instruction_id_list", where=where))
        verifier = {"type": "ifeval", "instruction_id_list": ids,
                    "kwargs": _kwargs(column(row, "kwargs", required=False), len(ids), where), "mode": mode}
        key = column(row, "key", "id", required=False)
        recs.append(make_record(
            name, "if", f"{name}-{key if key is not None else i}", str(column(row, "prompt", where=where)), "",
            verifier,
        ))
    return unique_ids(name, recs)

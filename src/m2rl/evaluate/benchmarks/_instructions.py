"""Shared loader of instruction-following benchmarks (IFEval, IFBench): the `ifeval` verifier.

Two column layouts, recognised by a table's columns:

- the datasets' own: `key`, `prompt`, `instruction_id_list`, `kwargs` (one dict per instruction; the
  hub's arrow form fills unset arguments with null, which are dropped here);
- the `val/IFBench_test.parquet` the paper's `download_ifbench.py` writes: `prompt`, `label` (null) and
  `metadata` {`prompt_text`, `rm_type`, `instruction_id_list`, `kwargs`}; the prompt is used as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from m2rl.evaluate.loading import column, columns, load_rows, make_record, parse_rows, prompt_messages
from m2rl.evaluate.registry import BenchmarkCard, BenchmarkOptions, EvalError, Problems
from m2rl.spec.evaluate import BenchmarkSpec

LAYOUT_DATASET = "key, prompt, instruction_id_list, kwargs"
LAYOUT_PAPER = "paper parquet: prompt + metadata{instruction_id_list, kwargs} (download_ifbench.py)"


class InstructionOptions(BenchmarkOptions):
    """Options of the instruction-following benchmarks."""

    mode: Literal["strict", "loose"] = Field(
        default="strict", description="Prompt-level strict accuracy, or IFEval's loose variant."
    )


def _kwargs(value: Any, n: int, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: kwargs is not JSON: {exc}") from None
    if value is None:
        value = [{}] * n
    if not isinstance(value, list) or len(value) != n or not all(kw is None or isinstance(kw, Mapping) for kw in value):
        raise EvalError(f"{where}: kwargs must be a list of {n} dicts (one per instruction)")
    return [{k: v for k, v in (kw or {}).items() if v is not None} for kw in value]


def _metadata(row: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    meta = column(row, "metadata", where=where)
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: metadata is not JSON: {exc}") from None
    if not isinstance(meta, Mapping):
        raise EvalError(f"{where}: metadata must be a mapping, got {type(meta).__name__}")
    return meta


def load_instructions(name: str, spec: BenchmarkSpec, hub_id: str, split: str) -> Problems:
    mode = spec.options.get("mode", "strict")
    if mode not in ("strict", "loose"):
        raise EvalError(f"{name}: options.mode must be strict or loose, got {mode!r}")
    rows = load_rows(name, spec.path, hub_id, split=split)
    cols = columns(rows)
    layout = LAYOUT_PAPER if "metadata" in cols and "instruction_id_list" not in cols else LAYOUT_DATASET

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any]:
        source = _metadata(row, where) if layout == LAYOUT_PAPER else row
        ids = column(source, "instruction_id_list", where=where)
        if isinstance(ids, str) or not isinstance(ids, (list, tuple)) or not ids:
            raise EvalError(f"{where}: instruction_id_list must be a non-empty list of instruction ids")
        ids = [str(x) for x in ids]
        verifier = {"type": "ifeval", "instruction_id_list": ids,
                    "kwargs": _kwargs(column(source, "kwargs", required=False), len(ids), where), "mode": mode}
        key = column(row, "key", "id", required=False)
        return make_record(name, "if", f"{name}-{key if key is not None else i}",
                           prompt_messages(column(row, "prompt", where=where), where), "", verifier)

    return parse_rows(name, spec, rows, parse, source=spec.path or hub_id, layout=layout)

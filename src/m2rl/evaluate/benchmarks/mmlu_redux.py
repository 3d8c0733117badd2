"""MMLU-Redux 2.0: MMLU questions re-annotated for errors (edinburgh-dawg/mmlu-redux-2.0, one config per subject).

Columns: `question`, `choices` (list of 4), `answer` (index of the correct choice), `error_type`
(`ok` for a sound question). Questions whose `error_type` is not `ok` are left out unless
`options.keep_errors` is true. A local file may carry a `subject` column; hub loading reads every
subject config (`options.subjects` picks some).
"""

from __future__ import annotations

from typing import Any

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
from m2rl.evaluate.registry import EvalError, register_benchmark
from m2rl.registry import StrictModel
from m2rl.spec.evaluate import BenchmarkSpec


class MmluReduxOptions(StrictModel):
    """Options of MMLU-Redux."""

    subjects: list[str] | None = Field(default=None, description="Subject configs to read (default every one).")
    keep_errors: bool = Field(default=False, description="Keep the questions annotated as erroneous.")

HUB_ID = "edinburgh-dawg/mmlu-redux-2.0"
NAME = "mmlu_redux"


def _hub_rows(spec: BenchmarkSpec) -> list[dict[str, Any]]:
    subjects = spec.options.get("subjects")
    if not subjects:
        import datasets

        try:
            subjects = datasets.get_dataset_config_names(HUB_ID)
        except Exception as exc:
            raise EvalError(f"{NAME}: cannot list the subjects of {HUB_ID}: {exc}; set `path` to a local copy") from None
    rows = []
    for subject in subjects:
        for row in load_rows(NAME, None, HUB_ID, split="test", config=subject):
            rows.append({**row, "subject": subject})
    return rows


def _answer_index(value: Any, n: int, where: str) -> int:
    if isinstance(value, str) and value.strip().upper() in LETTERS[:n]:
        return LETTERS.index(value.strip().upper())
    try:
        idx = int(value)
    except (TypeError, ValueError):
        raise EvalError(f"{where}: answer {value!r} is neither an index nor a letter") from None
    if not 0 <= idx < n:
        raise EvalError(f"{where}: answer index {idx} out of range for {n} choices")
    return idx


@register_benchmark(NAME, domain="science", hub_id=HUB_ID, k=1, votable=True, params=MmluReduxOptions)
def load_mmlu_redux(spec: BenchmarkSpec) -> list[dict]:
    """MMLU-Redux 2.0 (Avg@1), simple-evals multiple-choice prompt, sound questions only."""
    keep_errors = bool(spec.options.get("keep_errors", False))
    rows = load_rows(NAME, spec.path, HUB_ID) if spec.path else _hub_rows(spec)
    recs = []
    for i, row in enumerate(rows):
        where = f"{NAME}: {spec.path or HUB_ID} row {i}"
        error_type = column(row, "error_type", required=False)
        if not keep_errors and error_type is not None and str(error_type) != "ok":
            continue
        question = str(column(row, "question", where=where))
        choices = [str(c) for c in column(row, "choices", where=where)]
        if len(choices) < 2:
            raise EvalError(f"{where}: needs at least two choices, got {len(choices)}")
        gold = LETTERS[_answer_index(column(row, "answer", where=where), len(choices), where)]
        subject = column(row, "subject", required=False) or "all"
        rid = f"{NAME}-{subject}-{i:05d}-{text_id(question)[:6]}"
        recs.append(make_record(
            NAME, "science", rid, multichoice_prompt(question, choices), gold, {"type": "mcqa", "options": choices},
        ))
    return unique_ids(NAME, recs)

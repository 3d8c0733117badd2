"""MMLU-Redux 2.0: MMLU questions re-annotated for errors (edinburgh-dawg/mmlu-redux-2.0, one config per subject).

Columns: `question`, `choices` (list of 4), `answer` (0-based index of MMLU's answer), `error_type`,
`source`, `correct_answer`, `potential_reason`. `error_type` is `ok` or one of the taxonomy's errors
(`bad_question_clarity`, `bad_options_clarity`, `no_correct_answer`, `multiple_correct_answers`,
`wrong_groundtruth`) or `expert`; the annotators' own spellings (`Wrong Groundtruth`) are read the same.
How each is treated (the card's `error_types` counts them):

- `ok`: kept, with MMLU's answer;
- `wrong_groundtruth`: relabelled with `correct_answer` where it names one option (a letter, a 0-based
  index as in `answer`, or an option's exact text); dropped where it names none;
- every other error type: dropped (its question or options are unsound, or no single option is right).

`options.keep_errors` keeps the dropped ones too, with MMLU's answer. An unknown `error_type` is a
malformed row. A local file may carry a `subject` column; hub loading reads every subject config
(`options.subjects` picks some).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from m2rl.evaluate.loading import (
    LETTERS,
    column,
    load_rows,
    make_record,
    multichoice_prompt,
    parse_rows,
    text_id,
)
from m2rl.evaluate.registry import BenchmarkCard, BenchmarkOptions, EvalError, Problems, register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec


class MmluReduxOptions(BenchmarkOptions):
    """Options of MMLU-Redux."""

    subjects: list[str] | None = Field(default=None, description="Subject configs to read (default every one).")
    keep_errors: bool = Field(default=False, description="Keep the questions annotated as erroneous (MMLU's answer).")


HUB_ID = "edinburgh-dawg/mmlu-redux-2.0"
NAME = "mmlu_redux"
ERROR_TYPES = ("ok", "wrong_groundtruth", "no_correct_answer", "multiple_correct_answers", "bad_question_clarity",
               "bad_options_clarity", "expert")
POLICY = ("ok: kept; wrong_groundtruth: relabelled with correct_answer where it names an option, else dropped; "
          "bad_question_clarity, bad_options_clarity, no_correct_answer, multiple_correct_answers, expert: dropped "
          "(options.keep_errors keeps them with MMLU's answer)")


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


def corrected_index(value: Any, choices: list[str]) -> int | None:
    """The option an annotator's `correct_answer` names: a letter, a 0-based index (as `answer`), or an
    option's exact text (case and outer spaces aside); None when it names none (free text, empty)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):  # a CSV column of indices with gaps reads as floats (3.0, nan)
        if not value.is_integer():
            return None
        value = int(value)
    text = str(value).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
        return LETTERS.index(text.upper())
    if text.isdigit() and int(text) < len(choices):
        return int(text)
    matches = [j for j, c in enumerate(choices) if c.strip().lower() == text.lower()] if text else []
    return matches[0] if len(matches) == 1 else None


def error_type(value: Any) -> str:
    """`error_type` in the taxonomy's spelling (`Wrong Groundtruth` -> `wrong_groundtruth`); `ok` when unset."""
    return "ok" if value is None or str(value).strip() == "" else "_".join(str(value).strip().lower().split())


def _choices(value: Any, where: str) -> list[str]:
    if isinstance(value, str):  # a CSV export: the list's repr or JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise EvalError(f"{where}: choices {value[:60]!r} is not a list") from None
    if not isinstance(value, (list, tuple)):
        raise EvalError(f"{where}: choices must be a list, got {type(value).__name__}")
    choices = [str(c) for c in value]
    if len(choices) < 2:
        raise EvalError(f"{where}: needs at least two choices, got {len(choices)}")
    return choices


@register_benchmark(NAME, domain="science", hub_id=HUB_ID, k=1, votable=True, params=MmluReduxOptions)
def load_mmlu_redux(spec: BenchmarkSpec) -> Problems:
    """MMLU-Redux 2.0 (Avg@1), simple-evals multiple-choice prompt, sound or corrected questions."""
    keep_errors = bool(spec.options.get("keep_errors", False))
    rows = load_rows(NAME, spec.path, HUB_ID) if spec.path else _hub_rows(spec)
    table: dict[str, dict[str, int]] = {}

    def count(kind: str, treatment: str) -> None:
        entry = table.setdefault(kind, {"rows": 0})
        entry["rows"] += 1
        entry[treatment] = entry.get(treatment, 0) + 1

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any] | None:
        kind = error_type(column(row, "error_type", required=False))
        if kind not in ERROR_TYPES:
            raise EvalError(f"{where}: unknown error_type {kind!r} (known: {', '.join(ERROR_TYPES)})")
        question = str(column(row, "question", where=where)).strip()
        if not question:
            raise EvalError(f"{where}: empty question")
        choices = _choices(column(row, "choices", where=where), where)
        gold = _answer_index(column(row, "answer", where=where), len(choices), where)
        treatment = "kept"
        if kind == "wrong_groundtruth":
            fixed = corrected_index(column(row, "correct_answer", required=False), choices)
            if fixed is not None:
                gold, treatment = fixed, "relabelled"
            else:
                treatment = "dropped"
        elif kind != "ok":
            treatment = "dropped"
        if treatment == "dropped" and keep_errors:
            treatment = "kept (keep_errors)"
        if treatment == "dropped":
            count(kind, treatment)
            card.exclude(f"error_type {kind}" + (" without a usable correct_answer" if kind == "wrong_groundtruth" else ""))
            return None
        subject = column(row, "subject", required=False) or "all"
        rid = f"{NAME}-{subject}-{i:05d}-{text_id(question)[:6]}"
        rec = make_record(NAME, "science", rid, multichoice_prompt(question, choices), LETTERS[gold],
                          {"type": "mcqa", "options": choices})
        count(kind, treatment)
        return rec

    card = BenchmarkCard(NAME, spec.path or HUB_ID, layout="question, choices, answer, error_type, correct_answer")
    card.details = {"error_policy": POLICY, "error_types": table}
    return parse_rows(NAME, spec, rows, parse, source=spec.path or HUB_ID, card=card)

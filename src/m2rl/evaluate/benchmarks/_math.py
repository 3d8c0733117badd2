"""Shared loader of answer-only math benchmarks (AIME, MATH-500) -> the `math` verifier.

Three column layouts, recognised by a table's columns:

- `problem` (or `question`) + `answer` (HuggingFaceH4/aime_2024, math-ai/aime25, HuggingFaceH4/MATH-500):
  the label is `answer`, the prompt M2RL's math template around the problem;
- `problem` + `solution` without `answer` (math-ai/aime24: `id, problem, solution, url`, the dataset the
  paper's `download_aime.py` reads): the label is the `\\boxed{}` of `solution` (the paper takes
  `solution[7:-1]`; here braces are balanced), a solution without one is a malformed row;
- `prompt` + `label` (the `val/aime-2024.parquet` the paper's `download_aime.py` writes: `prompt` as chat
  messages, `label`, `data_source`, `metadata`): the prompt is used as the paper wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from m2rl.evaluate.loading import (
    MATH_TEMPLATE,
    boxed_answer,
    column,
    columns,
    load_rows,
    make_record,
    parse_rows,
    problem_text,
    prompt_messages,
)
from m2rl.evaluate.registry import BenchmarkCard, EvalError, Problems
from m2rl.spec.evaluate import BenchmarkSpec

LAYOUT_ANSWER = "problem + answer"
LAYOUT_BOXED = "problem + \\boxed{} solution (math-ai/aime24)"
LAYOUT_PAPER = "paper parquet: prompt + label (download_aime.py)"


def math_layout(cols: set[str]) -> str:
    """Which math layout a table's (lower-cased) columns are."""
    has_problem = bool({"problem", "question"} & cols)
    if not has_problem and {"prompt", "label"} <= cols:
        return LAYOUT_PAPER
    if has_problem and "answer" not in cols and "solution" in cols:
        return LAYOUT_BOXED
    return LAYOUT_ANSWER


def load_math(
    name: str, spec: BenchmarkSpec, hub_id: str, split: str, config: str | None = None
) -> Problems:
    rows = load_rows(name, spec.path, hub_id, split=split, config=config)
    layout = math_layout(columns(rows))

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any]:
        rid = column(row, "id", "unique_id", "ID", required=False)
        rid = f"{name}-{rid if rid is not None else i}"
        if layout == LAYOUT_PAPER:
            prompt: Any = prompt_messages(column(row, "prompt", where=where), where)
            problem = problem_text(prompt)
            answer = str(column(row, "label", where=where)).strip()
        else:
            problem = str(column(row, "problem", "question", where=where)).strip()
            prompt = MATH_TEMPLATE.format(problem=problem)
            if layout == LAYOUT_BOXED:
                got = boxed_answer(str(column(row, "solution", where=where)))
                if got is None:
                    raise EvalError(f"{where}: no \\boxed{{}} answer in solution")
                answer = got
            else:
                answer = str(column(row, "answer", where=where)).strip()
        if not problem:
            raise EvalError(f"{where}: empty problem")
        if not answer:
            raise EvalError(f"{where}: empty answer")
        return make_record(name, "math", rid, prompt, answer, {"type": "math"})

    return parse_rows(name, spec, rows, parse, source=spec.path or hub_id, layout=layout)

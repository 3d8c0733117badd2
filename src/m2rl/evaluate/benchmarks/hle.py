"""Humanity's Last Exam, text-only questions (cais/hle, split test: id, question, answer, answer_type, image).

Questions with an image (`image` not empty) are left out. `exactMatch` answers are scored by the
`math` verifier (symbolic/numeric equivalence; HLE's own grader is an LLM judge, so free-text answers
that are not math may be under-credited) and `multipleChoice` answers by the `mcqa` verifier with the
options parsed from the question's `Answer Choices:` block. The system prompt is HLE's, asking for the
final answer on an `Answer:` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from m2rl.evaluate.loading import LETTERS, column, load_rows, make_record, parse_rows
from m2rl.evaluate.registry import BenchmarkCard, EvalError, Problems, register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

HUB_ID = "cais/hle"
NAME = "hle"
SYSTEM_PROMPT = (
    "Your response should be in the following format:\n"
    "Explanation: {your explanation for your answer}\n"
    "Answer: {your succinct, final answer}"
)
_CHOICE = re.compile(r"^\s*([A-Z])[.)]\s+(.*\S)\s*$")


def parse_choices(question: str) -> list[str]:
    """Option texts of a multiple-choice question: the `A. ...` lines after `Answer Choices:` (or anywhere)."""
    text = question.split("Answer Choices:", 1)[1] if "Answer Choices:" in question else question
    options: list[str] = []
    for line in text.splitlines():
        m = _CHOICE.match(line)
        if m and m.group(1) == LETTERS[len(options)]:
            options.append(m.group(2))
    return options


@register_benchmark(NAME, domain="science", hub_id=HUB_ID, k=1, votable=True)
def load_hle(spec: BenchmarkSpec) -> Problems:
    """HLE text-only (Avg@1): exact answers by the math verifier, choices by the mcqa verifier."""
    rows = load_rows(NAME, spec.path, HUB_ID, split="test")

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any] | None:
        if column(row, "image", required=False):
            card.exclude("question with an image")
            return None
        question = str(column(row, "question", where=where))
        answer = str(column(row, "answer", where=where)).strip()
        answer_type = str(column(row, "answer_type", required=False) or "exactMatch")
        rid = column(row, "id", required=False) or i
        if answer_type == "multipleChoice":
            options = parse_choices(question)
            letter = answer.strip("() .").upper()
            if len(options) < 2 or letter not in LETTERS[: len(options)]:
                raise EvalError(f"{where}: multiple-choice answer {answer!r} does not match the parsed options")
            verifier = {"type": "mcqa", "options": options}
            label = letter
        elif answer_type == "exactMatch":
            verifier, label = {"type": "math"}, answer
        else:
            raise EvalError(f"{where}: unknown answer_type {answer_type!r} (expected exactMatch or multipleChoice)")
        return make_record(NAME, "science", f"{NAME}-{rid}", question, label, verifier, system=SYSTEM_PROMPT)

    return parse_rows(NAME, spec, rows, parse, source=spec.path or HUB_ID, layout="cais/hle columns")

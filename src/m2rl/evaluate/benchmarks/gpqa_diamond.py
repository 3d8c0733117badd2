"""GPQA Diamond: 198 graduate-level science questions, four options (Idavidrein/gpqa, config gpqa_diamond).

Two column layouts, recognised by a table's columns:

- the dataset's own (`Question`, `Correct Answer`, `Incorrect Answer 1..3`, `Record ID`): the prompt is
  simple-evals' multiple-choice prompt; the options are shuffled per question by an RNG seeded from
  (`options.shuffle_seed`, the record id), so every model sees the same order and the gold letter is
  spread over A-D;
- the `val/gpqa.parquet` the paper's `download_gpqa.py` writes (`prompt`: the instruction, the question
  and `A) ..` to `D) ..` in one string; `label`: the gold letter; `data_source`; `metadata`): the prompt
  is used as written and its letter kept as the label (that script shuffles with an unseeded RNG, so
  each download has its own order); the options are read back from the prompt's `A) .. D)` lines.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from m2rl.evaluate.loading import (
    LETTERS,
    column,
    columns,
    load_rows,
    make_record,
    multichoice_prompt,
    parse_options,
    parse_rows,
    problem_text,
    prompt_messages,
    text_id,
)
from m2rl.evaluate.registry import BenchmarkCard, BenchmarkOptions, EvalError, Problems, register_benchmark
from m2rl.spec.evaluate import BenchmarkSpec

LAYOUT_DATASET = "Idavidrein/gpqa columns"
LAYOUT_PAPER = "paper parquet: prompt with A)..D) + label letter (download_gpqa.py)"


class GpqaOptions(BenchmarkOptions):
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


def _paper_row(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A row of the paper's processed GPQA parquet: its prompt, its letter, the options read from the prompt."""
    prompt = prompt_messages(column(row, "prompt", where=where), where)
    text = problem_text(prompt)
    options, start = parse_options(text)
    if len(options) < 2:
        raise EvalError(f"{where}: no 'A) ..' option lines at the end of the prompt")
    label = str(column(row, "label", where=where)).strip().upper()
    if label not in LETTERS[: len(options)]:
        raise EvalError(f"{where}: label {label!r} is not one of the {len(options)} options' letters")
    meta = column(row, "metadata", required=False)
    correct = meta.get("correct_letter") if isinstance(meta, Mapping) else None
    if correct is not None and str(correct).strip().upper() != label:
        raise EvalError(f"{where}: label {label!r} differs from metadata.correct_letter {correct!r}")
    # the id hashes the instruction and question only: the option order differs between downloads
    return make_record(NAME, "science", f"{NAME}-{text_id(text[:start])}", prompt, label,
                       {"type": "mcqa", "options": options})


@register_benchmark(NAME, domain="science", hub_id=HUB_ID, k=4, votable=True, params=GpqaOptions)
def load_gpqa_diamond(spec: BenchmarkSpec) -> Problems:
    """GPQA Diamond (Avg@4), simple-evals prompt with seeded option shuffling."""
    seed = int(spec.options.get("shuffle_seed", 0))
    rows = load_rows(NAME, spec.path, HUB_ID, split="train", config="gpqa_diamond")
    cols = columns(rows)
    layout = LAYOUT_PAPER if "question" not in cols and {"prompt", "label"} <= cols else LAYOUT_DATASET

    def parse(i: int, row: Mapping[str, Any], where: str, card: BenchmarkCard) -> dict[str, Any]:
        if layout == LAYOUT_PAPER:
            return _paper_row(row, where)
        question = str(column(row, "Question", where=where)).strip()
        correct = str(column(row, "Correct Answer", where=where)).strip()
        incorrect = [str(column(row, f"Incorrect Answer {j}", where=where)).strip() for j in (1, 2, 3)]
        if not question or not correct or not all(incorrect):
            raise EvalError(f"{where}: empty question or answer")
        rid = str(column(row, "Record ID", required=False) or text_id(question))
        options, gold = shuffled_options(correct, incorrect, seed, rid)
        return make_record(NAME, "science", f"{NAME}-{rid}", multichoice_prompt(question, options), gold,
                           {"type": "mcqa", "options": options})

    return parse_rows(NAME, spec, rows, parse, source=spec.path or HUB_ID, layout=layout)

"""mcqa against openai/simple-evals (`ANSWER_PATTERN_MULTICHOICE`, common.py) and lm-evaluation-harness GPQA
(`lm_eval/tasks/gpqa/.../utils.py`, "The answer is (X)" and the flexible `(X)` filter): where those read
the first letter after "Answer:", a hedged answer naming several letters scores 0 here; an answer given
as one option's text maps to its letter; "Option D is correct" is D; the final conclusion wins.
"""

from __future__ import annotations

import pytest

from m2rl.verifiers import score

CAPITALS = ["Berlin", "Madrid", "Paris", "Rome"]


def rec(label: str, options=None) -> dict:
    v = {"type": "mcqa"}
    if options is not None:
        v["options"] = options
    return {"id": "q", "domain": "science", "label": label, "verifier": v}


@pytest.mark.parametrize("response", [
    "Answer: A and B",
    "Answer: B or C",
    "It could be A, B or C",
    "The answer is either A or B.",
    "Answer: A/B",
    "I think it is B and C",
])
def test_hedged_answers_score_zero(response):
    s = score(rec("B"), response)
    assert s.value == 0.0, (response, s.details)
    assert s.details["extraction"] == "hedged"


@pytest.mark.parametrize("response,letter", [
    ("Answer: C because A fails", "C"),  # a letter later in the reasoning is not a hedge
    ("Answer: B. A is wrong since it ignores friction.", "B"),
    ("A is tempting, but the answer is B", "B"),
])
def test_single_answers_are_not_hedges(response, letter):
    assert score(rec(letter), response).value == 1.0


@pytest.mark.parametrize("response,gold", [
    ("Answer: Madrid", "B"),
    ("The answer is **Paris**.", "C"),
    ("answer: rome", "D"),
    ("Madrid", "B"),
])
def test_answer_as_option_text(response, gold):
    s = score(rec(gold, CAPITALS), response)
    assert s.value == 1.0, (response, s.details)


def test_option_text_must_match_exactly_one_option():
    assert score(rec("A", ["yes", "yes", "no", "maybe"]), "Answer: yes").value == 0.0
    assert score(rec("B", CAPITALS), "Answer: Madrid is a city").value == 0.0  # not exactly an option


@pytest.mark.parametrize("response,gold", [
    ("Option D is correct.", "D"),
    ("So the best option is C, Berlin.", "C"),
    ("Option A is wrong. Option B is not it either. Option D is correct.", "D"),
    ("Let us check: A gives 3, B gives 4, so (B) looks right. Recomputing, the answer is C.", "C"),
    ("The answer is A. Wait, that is wrong. Choice (C) is the correct one.", "C"),
    ("Option C is correct. Double-checking the units, Answer: B", "B"),
])
def test_final_conclusion_wins(response, gold):
    s = score(rec(gold, CAPITALS), response)
    assert s.value == 1.0, (response, s.details)

"""The mcqa verifier: letter extraction never takes a letter out of a word."""

from __future__ import annotations

import pytest

from m2rl.verifiers import score
from m2rl.verifiers.types.mcqa import extract_letter


def rec(label: str, options=None) -> dict:
    v = {"type": "mcqa"}
    if options is not None:
        v["options"] = options
    return {"id": "q", "domain": "science", "label": label, "verifier": v}


@pytest.mark.parametrize(
    "response",
    [
        "Answer: C",
        "The answer is (C)",
        "so the answer is \\boxed{C}",
        "\\boxed{\\text{C}}",
        "I pick (C).",
        "My choice: **C**",
        "After all that, C",
        "The answer is definitely C",
        "Option A is wrong; B too. Answer: C",
        "<think>Answer: A</think>Answer: C",
        "Answer: c",
        "answer: **C**.",
        "The correct option is C because the others fail.",
        "C. 70 m/s^2",
        "(C) because the field is uniform",
    ],
)
def test_accepted_forms(response):
    s = score(rec("C"), response)
    assert s.value == 1.0, (response, s.details)
    assert s.details["answer"] == "C"


@pytest.mark.parametrize(
    "response",
    [
        "Clearly the Answer: B",
        "Because of Cats and Dogs",  # capitals inside words are never letters
        "I think the answer depends",
        "",
        "Answer: E",  # not a valid letter with four options
        "<think>Answer: C</think>",  # the answer is inside the reasoning only
    ],
)
def test_rejected_forms(response):
    assert score(rec("C"), response).value == 0.0


def test_letters_follow_the_options():
    five = ["1", "2", "3", "4", "5"]
    assert score(rec("E", five), "Answer: E").value == 1.0
    assert score(rec("B", ["x", "y"]), "Answer: C").value == 0.0
    assert extract_letter("Answer: C", "AB") == (None, "none")


def test_gold_given_as_option_text():
    assert score(rec("368.15 K", ["-178.15 K", "468.15 K", "368.15 K"]), "Answer: C").value == 1.0


def test_bad_gold_scores_zero_with_reason():
    s = score(rec("not a letter"), "Answer: A")
    assert s.value == 0.0 and "gold" in s.details["reason"]

"""The math verifier: every case named in the issue, extraction order, and the guards."""

from __future__ import annotations

import pytest

from m2rl.verifiers import score
from m2rl.verifiers.types.math import equivalent, extract_answer


def rec(label: str, **meta) -> dict:
    return {"id": "m", "domain": "math", "label": label, "verifier": {"type": "math", **meta}}


@pytest.mark.parametrize(
    ("response", "gold", "expected"),
    [
        ("Answer: 42", "42", 1.0),  # the reference gives 0 because it demands a box
        ("Answer: \\frac{2}{4}", "1/2", 1.0),
        ("Answer: $\\frac{2}{4}$", "1/2", 1.0),
        ("Answer: \\{3,2,1\\}", "\\{1,2,3\\}", 1.0),
        ("Answer: {3,2,1}", "{1,2,3}", 1.0),
        ("Answer: 50\\%", "50", 1.0),
        ("Answer: 5 cm", "5", 1.0),
        ("Answer: [0,1)", "(0,1]", 0.0),
        ("Answer: 42", "43", 0.0),
        ("First I guessed \\boxed{41}, but that was wrong.\nAnswer: 42", "42", 1.0),
        ("Answer: (1, 2)", "(1,2)", 1.0),
        ("Answer: (2, 1)", "(1, 2)", 0.0),  # a gold pair stays a pair: order matters
        ("The result is \\boxed{\\frac{1}{2}}.", "0.5", 1.0),
        ("Answer: \\boxed{7}", "7", 1.0),
        ("**Answer:** $x = 5$", "5", 1.0),
        ("Answer: -9/10", "-9/10", 1.0),
        ("Answer: 1,000", "1000", 1.0),
        ("Answer: \\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", 1.0),
        ("Answer: 0.333", "1/3", 0.0),
    ],
)
def test_issue_cases(response, gold, expected):
    s = score(rec(gold), response)
    assert s.value == expected, s.details


def test_answer_marker_beats_box_and_box_beats_nothing():
    assert extract_answer("\\boxed{41} then Answer: 42") == ("42", "answer_marker")
    assert extract_answer("so \\boxed{1} and finally \\boxed{\\frac{3}{4}}") == ("\\frac{3}{4}", "boxed")
    assert extract_answer("Answer: \\boxed{\\{1, 2\\}}.") == ("\\{1, 2\\}", "answer_marker")
    assert extract_answer("no final answer here, 17 apples") == (None, "none")
    assert extract_answer("no final answer here, 17 apples", allow_last_number=True) == ("17", "last_number")


def test_last_number_only_when_the_record_allows_it():
    assert score(rec("17"), "we get 3 then 17").value == 0.0
    assert score(rec("17", allow_last_number=True), "we get 3 then 17").value == 1.0
    assert score(rec("17", allow_last_number=True), "we get 17 then 3").value == 0.0


def test_reasoning_block_is_stripped_and_close_can_be_required():
    resp = "<think>maybe Answer: 41</think>Answer: 42"
    assert score(rec("42"), resp).value == 1.0
    assert score(rec("41"), resp).value == 0.0
    assert score(rec("42"), "<think>Answer: 42").value == 1.0  # missing </think>: scored as is by default
    s = score(rec("42"), "<think>Answer: 42", require_think_close=True)
    assert s.value == 0.0 and "think" in s.details["reason"]
    assert score(rec("42"), "<think>x</think>Answer: 42", require_think_close=True).value == 1.0


def test_gold_in_box_or_dollars_is_unwrapped():
    assert score(rec("\\boxed{12}"), "Answer: 12").value == 1.0
    assert score(rec("$\\frac{1}{3}$"), "Answer: 1/3").value == 1.0


def test_power_towers_compare_as_text_without_evaluating():
    tower = "10^{10^{10^{10}}}"
    ok, how = equivalent(tower, tower)
    assert ok and how == "text"
    assert equivalent("1", tower) == (False, "text")
    assert score(rec("1"), "\\boxed{9^{9^{9}}}").value == 0.0


def test_details_name_the_answer_and_reason():
    s = score(rec("42"), "Answer: 43")
    assert s.details["answer"] == "43" and s.details["gold"] == "42" and s.details["reason"]
    s = score(rec("42"), "I do not know")
    assert s.value == 0.0 and s.details["reason"] == "no final answer found"

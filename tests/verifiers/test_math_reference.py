"""math against huggingface/Math-Verify (and the Qwen2.5-Math grader's reading of the final answer):
the answer expression of a prose `Answer:` line, the final stated answer winning between `Answer:` and
`\\boxed{}`, e-notation, repeating decimals, inequalities as intervals, and the strict rounding policy.
"""

from __future__ import annotations

import pytest

from m2rl.verifiers import score
from m2rl.verifiers.types.math import equivalent, extract_answer


def rec(label: str) -> dict:
    return {"id": "m", "domain": "math", "label": label, "verifier": {"type": "math"}}


@pytest.mark.parametrize("response", [
    "Answer: 12 because 3 times 4 is 12",
    "Answer: The total is 12.",
    "Answer: 12, since each box holds 4",
    "Answer: the number of apples is $12$.",
    "**Answer:** There are 12 apples in total.",
])
def test_answer_expression_from_a_prose_line(response):
    s = score(rec("12"), response)
    assert s.value == 1.0, (response, s.details)
    assert score(rec("13"), response).value == 0.0


def test_prose_free_lines_are_kept_whole():
    assert extract_answer("Answer: x = 5")[0] == "x = 5"
    assert extract_answer("Answer: \\frac{3}{4}")[0] == "\\frac{3}{4}"
    assert extract_answer("Answer: \\text{Monday}")[0] == "\\text{Monday}"
    assert extract_answer("Answer: 1/2 of the cake")[0] == "1/2"
    assert extract_answer("Answer: 3 or 4")[0] == "3 or 4"  # not cut to a single number


def test_final_stated_answer_wins_both_orders():
    assert extract_answer("Answer: 12\nWait, recheck: the total is \\boxed{13}.") == ("13", "boxed")
    assert extract_answer("I first got \\boxed{13}.\nRechecking the sum,\nAnswer: 12") == ("12", "answer_marker")
    assert score(rec("13"), "Answer: 12\nActually \\boxed{13}").value == 1.0
    assert score(rec("12"), "Answer: 12\nActually \\boxed{13}").value == 0.0
    assert score(rec("12"), "\\boxed{13} was a slip.\nAnswer: 12").value == 1.0
    assert score(rec("7"), "Answer: \\boxed{7}").value == 1.0  # a box inside the Answer: line is that answer


@pytest.mark.parametrize(("gold", "pred"), [
    ("300000", "3e5"),
    ("6.02\\times 10^{23}", "6.02e23"),
    ("0.0015", "1.5e-3"),
    ("\\frac{2}{3}", "0.\\overline{6}"),
    ("1/3", "0.\\overline{3}"),
    ("[2,5)", "2 \\le x < 5"),
    ("[2, 5)", "5 > x \\geq 2"),
    ("(3,\\infty)", "x > 3"),
    ("(-\\infty, 4]", "x \\leq 4"),
    ("0.33", "1/3"),  # the gold is a decimal of that precision
])
def test_equivalent_forms(gold, pred):
    assert equivalent(gold, pred)[0], (gold, pred)


@pytest.mark.parametrize(("gold", "pred"), [
    ("1/3", "0.3333333"),  # only rounds to the gold
    ("\\frac{1}{3}", "0.3333333"),
    ("\\frac{\\sqrt{2}}{2}", "0.7071"),
    ("[2,5)", "2 < x \\le 5"),
    ("(3,\\infty)", "x \\ge 3"),
    ("300000", "3e6"),
    ("\\frac{2}{3}", "0.\\overline{3}"),
    ("3.14", "3.15"),
    ("3.14", "3.14159"),  # a decimal must equal a decimal gold exactly
    ("180.5", "180.51"),
])
def test_not_equivalent(gold, pred):
    assert not equivalent(gold, pred)[0], (gold, pred)

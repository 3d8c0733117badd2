"""Hostile text for the text verifiers (math, mcqa, tool_calls, ifeval) and the adapters.

1 MB responses, backtracking bait for every pattern, power towers, deep nesting, lone surrogates:
every item returns a score in [0, 1] within the timeout plus a small slack, in `score_batch` (hard
limit) and in-process (`score` must never raise). Hypothesis checks `score` on arbitrary text.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2rl.verifiers import ScoringPool, score, score_batch
from m2rl.verifiers.adapters import response_of
from m2rl.verifiers.service import ServiceConfig, score_request

MB = 1_000_000
TIMEOUT = 5.0
SLACK = 3.0

RECORDS = {
    "math": {"id": "m", "label": "42", "verifier": {"type": "math", "allow_last_number": True}},
    "mcqa": {"id": "s", "label": "C", "verifier": {"type": "mcqa", "options": ["a", "b", "c", "d"]}},
    "tool_calls": {"id": "t", "label": "", "verifier": {"type": "tool_calls", "mode": "f1",
                                                        "ground_truth": [{"name": "f", "arguments": {"x": 1}}]}},
    "ifeval": {"id": "i", "label": "", "verifier": {
        "type": "ifeval", "instruction_id_list": ["length_constraints:number_words", "keywords:forbidden_words",
                                                  "detectable_format:number_bullet_lists"],
        "kwargs": [{"num_words": 60, "relation": "less than"}, {"forbidden_words": ["thing"]}, {"num_bullets": 3}]}},
}

NEST = 5000
HOSTILE = {
    "1mb_words": "lorem ipsum " * (MB // 12),
    "1mb_answer_tail": "x " * (MB // 2) + "Answer: 42",
    "1mb_after_answer": "Answer: " + "9" * MB,
    "answer_no_colon": "answer " * (MB // 7),
    "answer_spaces": "answer" + " " * MB + "is",
    "boxed_open": "\\boxed{" * (MB // 7),
    "boxed_unclosed_deep": "\\boxed{" + "{" * MB,
    "braces": "{" * (MB // 2) + "}" * (MB // 2),
    "brackets": "[" * MB,
    "parens_letters": "(A" * (MB // 2),
    "stars": "**" * (MB // 2),
    "digits_commas": "1," * (MB // 2),
    "digits_dots": "1." * (MB // 2),
    "slashes": "1/" * (MB // 2),
    "tool_call_tags": "<tool_call>" * (MB // 11),
    "tool_call_bodies": '<tool_call>{"name": "f", "arguments": {' * 20000,
    "json_starts": '{"name": ' * (MB // 9),
    "special_tokens": "<|" * (MB // 2),
    "im_end_run": "<|im_end|>" * (MB // 10),
    "tower": "\\boxed{10^{10^{10^{10}}}}",
    "tower_answer": "Answer: 9^{9^{9^{9}}}",
    "factorial": "Answer: 100000000!",
    "nested_frac": "Answer: " + "\\frac{1}{" * NEST + "2" + "}" * NEST,
    "nested_sqrt": "\\boxed{" + "\\sqrt{" * NEST + "2" + "}" * NEST + "}",
    "nested_parens": "Answer: " + "(" * NEST + "1" + ")" * NEST,
    "surrogates": "Answer: \ud800 42 \udfff (C) <tool_call>\udc80</tool_call>",
    "lone_surrogate": "\udcff",
    "nul_bytes": "\x00" * 1000 + "Answer: 42",
    "think_bait": "<think>" * 100000 + "</think>" * 100000 + "Answer: C",
    "empty": "",
}


@pytest.fixture(scope="module")
def pool():
    p = ScoringPool(2)
    yield p
    p.close()


@pytest.mark.timeout(300)
def test_hostile_text_in_score_batch(pool):
    names = list(HOSTILE)
    recs = [RECORDS[v] for v in RECORDS for _ in names]
    resps = [HOSTILE[n] for _ in RECORDS for n in names]
    t0 = time.monotonic()
    got = score_batch(recs, resps, pool=pool, timeout=TIMEOUT)
    wall = time.monotonic() - t0
    assert len(got) == len(recs)
    assert all(0.0 <= s.value <= 1.0 for s in got)
    slow = [(r["verifier"]["type"], n, s.details) for r, n, s in zip(recs, names * len(RECORDS), got, strict=True)
            if s.details.get("timeout")]
    assert not slow, slow  # the guards keep every hostile text well inside the limit
    # 120 items on 2 workers: even serially each stays under TIMEOUT + SLACK
    assert wall < len(recs) * (TIMEOUT + SLACK) / 2


@pytest.mark.timeout(300)
@pytest.mark.parametrize("vtype", list(RECORDS))
def test_hostile_text_in_process(vtype):
    for name, text in HOSTILE.items():
        t0 = time.monotonic()
        s = score(RECORDS[vtype], text)
        took = time.monotonic() - t0
        assert 0.0 <= s.value <= 1.0
        assert took < TIMEOUT + SLACK, (vtype, name, took)


def test_hostile_text_known_answers():
    assert score(RECORDS["math"], HOSTILE["1mb_answer_tail"]).value == 1.0
    assert score(RECORDS["mcqa"], HOSTILE["think_bait"]).value == 1.0
    assert score({"label": "10^{10^{10^{10}}}", "verifier": {"type": "math"}}, HOSTILE["tower"]).value == 1.0
    s = score(RECORDS["math"], HOSTILE["surrogates"])  # lone surrogates become "?" before any verifier
    assert s.details["answer"].startswith("? 42 ?")
    json.dumps(s.details)


@pytest.mark.timeout(120)
def test_adapters_on_hostile_queries():
    for text in HOSTILE.values():
        t0 = time.monotonic()
        response_of("<|im_start|>assistant\n" + text + "<|im_end|>", "<|im_start|>assistant\n")
        response_of(text, "prompt that is not there" * 3)
        assert time.monotonic() - t0 < 2
    from m2rl.verifiers import encode_label

    cfg = ServiceConfig(workers=2, timeout=TIMEOUT)
    queries = [HOSTILE["1mb_words"], HOSTILE["surrogates"], HOSTILE["braces"]]
    out = score_request(queries, ["", "", ""], [encode_label(RECORDS["math"])] * 3, cfg)
    assert len(out["rewards"]) == 3 and all(0 <= v <= 1 for v in out["rewards"])
    json.dumps(out)  # the reply is valid JSON


FRAGMENTS = ["Answer:", "answer is", "\\boxed{", "\\fbox{", "}", "{", "(", ")", "[", "]", "$", "**", "(C)", "C",
             "\\frac{", "^{", "10", "42", "-", "/", ",", ".", "%", "<think>", "</think>", "<tool_call>",
             "</tool_call>", '{"name": "f", "arguments": ', '"x": 1', "\\text{", "\n", " ", "\ud800", "\\sqrt"]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=60).map("".join),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, vtype=st.sampled_from(sorted(RECORDS)))
def test_score_never_raises(text, vtype):
    s = score(RECORDS[vtype], text)
    assert 0.0 <= s.value <= 1.0
    json.dumps(s.details, default=str)


@settings(max_examples=60, deadline=None)
@given(gold=st.lists(st.sampled_from(FRAGMENTS[8:25]), min_size=1, max_size=8).map("".join), text=TEXT)
def test_math_never_raises_for_any_gold(gold, text):
    s = score({"label": gold, "verifier": {"type": "math"}}, text)
    assert 0.0 <= s.value <= 1.0

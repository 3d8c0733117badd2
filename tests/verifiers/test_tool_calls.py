"""The tool_calls verifier: parsing (Hermes tags, OpenAI JSON), JSON normalisation, the three modes."""

from __future__ import annotations

import json

import pytest

from m2rl.verifiers import score
from m2rl.verifiers.types.tool_calls import parse_calls

GT = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
      {"name": "add_todo", "arguments": {"task": "buy milk", "priority": "low"}}]


def rec(gt=GT, **meta) -> dict:
    return {"id": "t", "domain": "agent", "label": "", "verifier": {"type": "tool_calls", "ground_truth": gt, **meta}}


def tagged(*calls) -> str:
    return "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>\n" for c in calls)


def test_hermes_tags_exact_match():
    assert score(rec(), tagged(*GT)).value == 1.0


def test_normalisation_key_order_numbers_and_json_text():
    reordered = {"name": "get_weather", "arguments": {"days": 3, "city": "Paris"}}
    as_text = {"name": "add_todo", "arguments": '{ "priority" : "low",\n "task":"buy milk" }'}
    assert score(rec(), tagged(reordered, as_text)).value == 1.0
    gt_text = [{"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in GT]
    assert score(rec(gt_text), tagged(*GT)).value == 1.0


def test_values_still_matter():
    wrong = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 4}}, GT[1]]
    assert score(rec(), tagged(*wrong)).value == 0.0
    assert score(rec([{"name": "f", "arguments": {"x": True}}]), tagged({"name": "f", "arguments": {"x": 1}})).value == 0.0
    assert score(rec(), tagged(GT[0])).value == 0.0  # a missing call


def test_openai_style_json():
    openai = {"tool_calls": [{"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                             for c in GT]}
    assert score(rec(), json.dumps(openai)).value == 1.0
    assert score(rec(), "```json\n" + json.dumps(GT) + "\n```").value == 1.0
    assert score(rec(), "I will call these: " + json.dumps(GT) + " now.").value == 1.0
    assert score(rec(GT[:1]), json.dumps(GT[0])).value == 1.0


def test_modes():
    swapped = tagged(GT[1], GT[0])
    assert score(rec(mode="exact"), swapped).value == 0.0
    assert score(rec(category="multi_turn_base"), swapped).value == 0.0
    assert score(rec(), swapped).value == 1.0  # unordered by default, as BFCL scores parallel calls
    assert score(rec(mode="unordered"), swapped).value == 1.0
    assert score(rec(mode="f1"), swapped).value == 1.0
    half = score(rec(mode="f1"), tagged(GT[0]))
    assert half.value == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert score(rec(reward="fraction"), tagged(GT[0], {"name": "x", "arguments": {}})).value == pytest.approx(0.5)
    assert score(rec(mode="f1"), "no calls").value == 0.0
    assert score(rec(gt=[], mode="f1"), "no calls").value == 1.0
    bad = score(rec(mode="sideways"), tagged(*GT))
    assert bad.value == 0.0 and "mode" in bad.details["reason"]


def test_unparsable_block_counts_as_a_wrong_call_and_unclosed_block_counts():
    assert parse_calls("<tool_call>{not json}</tool_call>")[0][0] == "<unparsable>"
    assert score(rec(GT[:1]), "<tool_call>" + json.dumps(GT[0])).value == 1.0
    assert score(rec(), "<think>" + tagged(*GT) + "</think>nothing").value == 0.0
    assert score(rec(GT[:1]), "<tool_call>```json\n" + json.dumps(GT[0]) + "\n```</tool_call>").value == 1.0


def test_bad_ground_truth_is_a_zero_with_reason():
    s = score(rec(gt="not json"), tagged(*GT))
    assert s.value == 0.0 and "ground_truth" in s.details["reason"]

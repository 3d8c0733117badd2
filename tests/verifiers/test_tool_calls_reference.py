"""tool_calls against BFCL's AST checker (ShishirPatil/gorilla, berkeley-function-call-leaderboard/bfcl/
eval_checker/ast_eval/ast_checker.py): possible_answer alternatives, optional "", standardize_string,
int->float but not float->int, booleans, nested dicts/lists, parallel calls in any order.

The ground-truth rows are copied in BFCL's data format (bfcl/data/possible_answer/BFCL_v3_*.json: one
row per line, `{"id": ..., "ground_truth": [{func: {arg: [accepted, ...]}}]}`).
"""

from __future__ import annotations

import json

import pytest

from m2rl.verifiers import score
from m2rl.verifiers.types.tool_calls import standardize_string

# BFCL_v3_simple.json, possible_answer row "simple_0" (format as in the BFCL repository)
SIMPLE_0 = {"id": "simple_0", "ground_truth": [
    {"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]}
# BFCL_v3_parallel.json style row: two calls, accepted in any order
PARALLEL_0 = {"id": "parallel_0", "ground_truth": [
    {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
    {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}}]}
# a float parameter, a string with alternatives, a boolean and an optional list
FLOATS = [{"calc_binomial_probability": {"n": [20], "k": [5], "p": [0.6], "exact": [True, ""]}}]
# a nested dict parameter (BFCL dict_checker: the nested values are again lists of accepted values)
NESTED = [{"book_hotel": {"location": ["New York, NY", "NYC"], "room": [{"type": ["double"], "beds": [2, ""]}],
                          "dates": [["2024-04-01", "2024-04-03"]]}}]


def rec(gt, **meta) -> dict:
    return {"id": "t", "domain": "agent", "label": "", "verifier": {"type": "tool_calls", "ground_truth": gt, **meta}}


def call(name, **args) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>\n"


def test_bfcl_row_loads_unchanged_and_optional_argument():
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10, height=5)).value == 1.0
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10, height=5, unit="units")).value == 1.0
    assert score(rec(SIMPLE_0["ground_truth"]), call("calculate_triangle_area", base=10, height=5)).value == 1.0
    assert score(rec(json.dumps(SIMPLE_0)), call("calculate_triangle_area", base=10, height=5)).value == 1.0
    # missing a required argument, an unexpected one, a wrong value, a wrong name
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10)).value == 0.0
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10, height=5, color="red")).value == 0.0
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10, height=6)).value == 0.0
    assert score(rec(SIMPLE_0), call("triangle_area", base=10, height=5)).value == 0.0


def test_bfcl_string_standardisation():
    assert standardize_string("April 1, 2024") == standardize_string("april 1 2024") == "april12024"
    gt = [{"get_weather": {"city": ["San Francisco, CA"]}}]
    for ok in ("san francisco, ca", "San Francisco CA", "San-Francisco,CA", "SAN_FRANCISCO. CA"):
        assert score(rec(gt), call("get_weather", city=ok)).value == 1.0, ok
    assert score(rec(gt), call("get_weather", city="San Francisco, California")).value == 0.0
    assert score(rec(NESTED), call("book_hotel", location="nyc", room={"type": "Double"},
                                   dates=["2024-04-01", "2024 04 03"])).value == 1.0


def test_int_for_float_yes_float_for_int_no_booleans_are_not_numbers():
    args = {"n": 20, "k": 5, "p": 0.6}
    assert score(rec(FLOATS), call("calc_binomial_probability", **args)).value == 1.0
    gt_float = [{"f": {"x": [7.0]}}]
    assert score(rec(gt_float), call("f", x=7)).value == 1.0  # int accepted for a float (BFCL)
    gt_int = [{"f": {"x": [7]}}]
    assert score(rec(gt_int), call("f", x=7.0)).value == 0.0  # 7.0 for an integer: BFCL's type error
    assert score(rec(gt_int), call("f", x="7")).value == 0.0
    assert score(rec(FLOATS), call("calc_binomial_probability", **args, exact=True)).value == 1.0
    assert score(rec(FLOATS), call("calc_binomial_probability", **args, exact=1)).value == 0.0
    assert score(rec([{"f": {"x": [1]}}]), call("f", x=True)).value == 0.0
    # JSON text arguments parse the same way
    text = '<tool_call>{"name": "f", "arguments": "{\\"x\\": 7.0}"}</tool_call>'
    assert score(rec(gt_float), text).value == 1.0 and score(rec(gt_int), text).value == 0.0


def test_nested_dicts_and_lists_element_wise():
    ok = dict(location="New York, NY", room={"type": "double", "beds": 2}, dates=["2024-04-01", "2024-04-03"])
    assert score(rec(NESTED), call("book_hotel", **ok)).value == 1.0
    assert score(rec(NESTED), call("book_hotel", **{**ok, "dates": ["2024-04-03", "2024-04-01"]})).value == 0.0
    assert score(rec(NESTED), call("book_hotel", **{**ok, "room": {"type": "double", "beds": 3}})).value == 0.0
    assert score(rec(NESTED), call("book_hotel", **{**ok, "room": {"type": "double", "view": "sea"}})).value == 0.0
    assert score(rec(NESTED), call("book_hotel", **{**ok, "room": {"beds": 2}})).value == 0.0


def test_parallel_calls_any_order_exact_when_asked():
    a = call("spotify.play", artist="Taylor Swift", duration=20)
    b = call("spotify.play", artist="Maroon 5", duration=15)
    assert score(rec(PARALLEL_0), a + b).value == 1.0
    assert score(rec(PARALLEL_0), b + a).value == 1.0
    assert score(rec(PARALLEL_0, category="parallel"), b + a).value == 1.0
    assert score(rec(PARALLEL_0, mode="exact"), b + a).value == 0.0
    assert score(rec(PARALLEL_0, category="multi_turn_base"), a + b).value == 1.0
    assert score(rec(PARALLEL_0, category="multi_turn_base"), b + a).value == 0.0
    assert score(rec(PARALLEL_0), a + a).value == 0.0  # each response call is used once
    assert score(rec(PARALLEL_0), a).value == 0.0
    assert score(rec(PARALLEL_0, mode="f1"), a).value == pytest.approx(2 / 3)
    # OpenAI-style names cannot hold dots: spotify_play is spotify.play (BFCL converts the same way)
    openai = {"tool_calls": [{"type": "function", "function": {"name": "spotify_play", "arguments": json.dumps(
        {"artist": "Maroon 5", "duration": 15})}}, {"type": "function", "function": {"name": "spotify_play",
        "arguments": json.dumps({"artist": "Taylor Swift", "duration": 20})}}]}
    assert score(rec(PARALLEL_0), json.dumps(openai)).value == 1.0


def test_alternatives_need_a_maximal_matching():
    gt = [{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}]
    assert score(rec(gt), call("f", x=1) + call("f", x=2)).value == 1.0  # greedy would pair x=1 first


def test_bfcl_decoded_form_in_the_response():
    assert score(rec(SIMPLE_0), '[{"calculate_triangle_area": {"base": 10, "height": 5}}]').value == 1.0


def test_declared_types_from_the_function_doc_decide_numbers():
    # BFCL function doc (bfcl/data/BFCL_v3_simple.json "function" field layout)
    doc = [{"name": "calculate_triangle_area", "description": "Calculate the area of a triangle.",
            "parameters": {"type": "dict", "properties": {
                "base": {"type": "float", "description": "The base."},
                "height": {"type": "integer", "description": "The height."},
                "unit": {"type": "string", "description": "The unit."}}, "required": ["base", "height"]}}]
    assert score(rec(SIMPLE_0, tools=doc), call("calculate_triangle_area", base=10.0, height=5)).value == 1.0
    assert score(rec(SIMPLE_0), call("calculate_triangle_area", base=10.0, height=5)).value == 0.0  # no doc: int gold
    assert score(rec(SIMPLE_0, tools=doc), call("calculate_triangle_area", base=10, height=5.0)).value == 0.0
    openai = [{"type": "function", "function": {**doc[0], "parameters": {**doc[0]["parameters"], "type": "object"}}}]
    assert score(rec(SIMPLE_0, tools=openai), call("calculate_triangle_area", base=10.0, height=5)).value == 1.0

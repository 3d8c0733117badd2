"""The opt-in "learnable" builtin kinds (short problems a ~135M model solves part of the time, so that GRPO sees
reward variance from its first step): drawn by name through the builtin source's `options.kinds`, valid
records, the gold answer recomputed here another way and scored 1 by the domain's verifier, a wrong answer
scored 0; the default mix is unchanged (pinned), and unknown kind names are errors that name options.kinds."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from m2rl.data import builtin
from m2rl.data.builtin import code
from m2rl.data.registry import get_source
from m2rl.records import validate_record
from m2rl.spec.data import SourceSpec
from m2rl.verifiers import score

LEARNABLE = {"math": ["mental"], "science": ["element_compare", "unit_pick"], "if": ["single_constraint"],
             "code": ["echo_transform"], "agent": ["tool_single", "tool_brief"]}
COUNT = 400  # the builtin default: every learnable kind must fill it with unique prompts


def _draw(domain: str, kind: str, count: int = COUNT) -> list[dict]:
    fn = get_source("builtin")
    return list(fn(SourceSpec(type="builtin", options={"kinds": [kind], "count": count}), domain))


@pytest.mark.parametrize("domain, kind", [(d, k) for d, ks in LEARNABLE.items() for k in ks])
def test_learnable_kind_is_opt_in_drawn_by_name_and_valid(domain, kind):
    recs = _draw(domain, kind)
    assert len(recs) == COUNT
    assert [r["id"] for r in recs[:2]] == [f"builtin-{domain}-{kind}-{i:05d}" for i in range(2)]
    for r in recs:
        validate_record(r)
        assert r["domain"] == domain
    assert kind in builtin.kinds_of(domain)
    default = {tuple(m["content"] for m in r["prompt"]) for r in builtin.generate(domain)}
    assert not default & {tuple(m["content"] for m in r["prompt"]) for r in recs}


# --- the default mix is byte-identical to the one before the learnable kinds ------------------------

DEFAULT_SHA256 = {
    "math": "0a0c15f9c6605aa9e5357922d67e3161b59c415ce7122b1797519023c02d5404",
    "code": "fa4b4907d199c4d6a9e8c9b8bcbdb90d61494d2bb71521a6857104f670db1cfe",
    "science": "3e781694a96d64476696a843a974f2b12d63db14693eb48d74ff1490ef65b9ea",
    "if": "4e7531ad4472526cd6c14ef0fb70bed7e38776ccafa231a3d58f3240454c5348",
    "agent": "59f812fea90715a928914a3400dd2c7ac1adde1df7057364304468b69649d25f",
}


@pytest.mark.parametrize("domain", sorted(DEFAULT_SHA256))
def test_default_mix_is_unchanged(domain):
    recs = builtin.generate(domain)
    assert hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest() == DEFAULT_SHA256[domain]


def test_code_and_if_standard_kinds_named_and_equal_to_the_default():
    # code's standard kinds are its families, by name, in the default's order; asking for all of them by name
    # draws the same problems as the default
    assert list(builtin.kinds_of("code"))[:len(code.FAMILIES)] == [f.name for f in code.FAMILIES]
    names = [f.name for f in code.FAMILIES]
    assert builtin.generate_problems("code", count=60, kinds=names) == builtin.generate_problems("code", count=60)
    assert builtin.generate_problems("if", count=60, kinds=["instruction_problem"]) == \
        builtin.generate_problems("if", count=60)
    assert {p.family for p in builtin.generate_problems("code")} <= set(names)


@pytest.mark.parametrize("domain, bad", [("code", "nope"), ("if", "shout"), ("agent", "tools"),
                                         ("science", "element_pick")])
def test_unknown_kind_names_options_kinds(domain, bad):
    fn = get_source("builtin")
    with pytest.raises(ValueError, match=re.escape(f"options.kinds: unknown {domain} kind {bad!r}")):
        list(fn(SourceSpec(type="builtin", options={"kinds": [bad]}), domain))


# --- science: the gold option recomputed from independent facts --------------------------------------

ATOMIC_NUMBERS = {"H": 1, "He": 2, "Li": 3, "Be": 4, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Ne": 10, "Na": 11,
                  "Mg": 12, "Al": 13, "Si": 14, "P": 15, "S": 16, "Cl": 17, "Ar": 18, "K": 19, "Ca": 20, "Ti": 22,
                  "Cr": 24, "Mn": 25, "Fe": 26, "Co": 27, "Ni": 28, "Cu": 29, "Zn": 30, "Br": 35, "Kr": 36,
                  "Ag": 47, "Sn": 50, "I": 53, "Xe": 54, "Pt": 78, "Au": 79, "Hg": 80, "Pb": 82, "U": 92}
FACTORS = {("kilometers", "meters"): 1000, ("meters", "centimeters"): 100, ("meters", "millimeters"): 1000,
           ("centimeters", "millimeters"): 10, ("kilograms", "grams"): 1000, ("grams", "milligrams"): 1000,
           ("liters", "milliliters"): 1000, ("kilowatts", "watts"): 1000, ("kilojoules", "joules"): 1000,
           ("decimeters", "centimeters"): 10, ("liters", "deciliters"): 10, ("tonnes", "kilograms"): 1000}


def _mcqa_gold_and_wrong(rec: dict) -> None:
    letters = "ABCD"[: len(rec["verifier"]["options"])]
    assert score(rec, f"Answer: {rec['label']}").value == 1.0
    for other in letters.replace(rec["label"], ""):
        assert score(rec, f"Answer: {other}").value == 0.0


def test_element_compare_gold_from_atomic_numbers():
    from m2rl.data.builtin.science import BY_SYMBOL

    probs = builtin.generate_problems("science", count=120, kinds=["element_compare"])
    recs = builtin.generate("science", count=120, variant=builtin.Variant(("element_compare",)))
    checked = 0
    for p, rec in zip(probs, recs, strict=True):
        _, a, b, which = p.fact
        assert len(p.options) == 2 and {BY_SYMBOL[a][2], BY_SYMBOL[b][2]} == set(p.options)
        assert f"{BY_SYMBOL[a][2]} or {BY_SYMBOL[b][2]}" in p.question
        assert ("larger" in p.question or "more" in p.question) == (which == "max")
        if a in ATOMIC_NUMBERS and b in ATOMIC_NUMBERS:
            pick = (max if which == "max" else min)((a, b), key=ATOMIC_NUMBERS.get)
            assert rec["verifier"]["options"]["AB".index(rec["label"])] == BY_SYMBOL[pick][2]
            checked += 1
        _mcqa_gold_and_wrong(rec)
    assert checked >= 20


def test_unit_pick_gold_from_conversion_factors():
    probs = builtin.generate_problems("science", count=120, kinds=["unit_pick"])
    recs = builtin.generate("science", count=120, variant=builtin.Variant(("unit_pick",)))
    for p, rec in zip(probs, recs, strict=True):
        _, amount, big, small = p.fact
        assert f"{amount} {big}" in p.question and small in p.question
        assert len(p.options) == 3 and len(set(p.options)) == 3
        assert rec["verifier"]["options"]["ABC".index(rec["label"])] == f"{amount * FACTORS[big, small]} {small}"
        _mcqa_gold_and_wrong(rec)


# --- if: a response that follows the one constraint passes, one that breaks it fails -----------------

def _if_responses(iid: str, kw: dict, prompt: str) -> tuple[str, str]:
    if iid == "keywords:existence":
        (word,) = kw["keywords"]
        assert f"Include the word {word}." in prompt
        return f"Here is a sentence about the {word} today.", "Here is a sentence about it."
    if iid == "punctuation:no_comma":
        return "Gardens feed the city and calm the mind.", "Gardens feed the city, and calm the mind."
    if iid == "change_case:english_lowercase":
        return "gardens feed the city and calm the mind.", "Gardens feed the city and calm the mind."
    if iid == "startend:quotation":
        return '"Gardens feed the city."', "Gardens feed the city."
    if iid == "startend:end_checker":
        phrase = kw["end_phrase"]
        assert f'"{phrase}"' in prompt
        return f"Gardens feed the city. {phrase}", f"{phrase} Gardens feed the city."
    raise AssertionError(iid)


def test_single_constraint_one_easy_ifeval_instruction():
    recs = _draw("if", "single_constraint", 150)
    seen = set()
    for rec in recs:
        ids, kwargs = rec["verifier"]["instruction_id_list"], rec["verifier"]["kwargs"]
        assert len(ids) == 1 and len(kwargs) == 1
        good, bad = _if_responses(ids[0], kwargs[0], rec["prompt"][-1]["content"])
        assert score(rec, good).value == 1.0, (ids, good)
        assert score(rec, bad).value == 0.0, (ids, bad)
        seen.add(ids[0])
    assert len(seen) == 5


# --- code: the stored outputs recomputed here; the reference program passes, a wrong one fails --------

def _expected(family: str, p: dict, stdin: str) -> str:
    line = stdin.rstrip("\n")
    if family == "shift_number":
        n = int(line)
        return f"{ {'plus': n + p['k'], 'minus': n - p['k'], 'times': n * p['k']}[p['op']] }\n"
    if family == "two_numbers":
        a, b = (int(x) for x in line.split())
        return f"{ {'sum': a + b, 'difference': a - b, 'product': a * b, 'larger': max(a, b), 'smaller': min(a, b)}[p['what']] }\n"
    if family == "text_case":
        return f"{ {'upper': line.upper(), 'reversed': line[::-1], 'length': len(line), 'words': len(line.split())}[p['how']] }\n"
    if family == "greet":
        return f"{p['greeting']}, {line}{p['mark']}\n"
    if family == "repeat_word":
        return (" ".join([line] * p["k"]) + "\n") if p["sep"] == "space" else (line + "\n") * p["k"]
    raise AssertionError(family)


def test_echo_transform_outputs_recomputed_and_programs_scored():
    probs = builtin.generate_problems("code", kinds=["echo_transform"])
    recs = builtin.generate("code", variant=builtin.Variant(("echo_transform",)))
    first: dict[str, int] = {}
    for i, p in enumerate(probs):
        params = dict(p.params)
        assert p.outputs == tuple(_expected(p.family, params, s) for s in p.inputs)
        assert p.statement.startswith("Here is a Python program that") and len(p.inputs) >= 3
        assert p.solution not in p.statement  # the example program is a sibling task's, never the answer
        first.setdefault(p.family, i)
    assert set(first) == {"shift_number", "two_numbers", "text_case", "greet", "repeat_word"}
    for i in first.values():  # one reference program per family through the sandboxed verifier
        rec, p = recs[i], probs[i]
        assert score(rec, f"Here it is:\n```python\n{p.solution}```").value == 1.0, p.family
        assert score(rec, "```python\nprint('no')\n```").value == 0.0


# --- agent: one tool, arguments copied from the request ---------------------------------------------

def test_tool_single_one_call_arguments_stated_in_the_request():
    recs = _draw("agent", "tool_single", 200)
    names, same = set(), 0
    for rec in recs:
        (call,) = rec["verifier"]["ground_truth"]
        tools = {t["function"]["name"]: t for t in rec["verifier"]["tools"]}
        tool = tools[call["name"]]
        assert 1 <= len(call["arguments"]) <= 2
        assert sorted(tool["function"]["parameters"]["required"]) == sorted(call["arguments"])
        assert [m["role"] for m in rec["prompt"]] == ["system", "user", "assistant", "user"]
        example = json.loads(rec["prompt"][2]["content"].removeprefix("<tool_call>\n").removesuffix("\n</tool_call>"))
        # the worked example calls one of the two tools shown, never with the answer's values
        assert len(tools) == 2 and example["name"] in tools
        assert all(example["arguments"].get(k) != v for k, v in call["arguments"].items())
        same += example["name"] == call["name"]
        user = rec["prompt"][-1]["content"]
        for v in call["arguments"].values():
            assert str(v) in user, (v, user)
        good = f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
        assert score(rec, good).value == 1.0
        wrong_args = {k: (v + 1 if isinstance(v, int) else f"{v}x") for k, v in call["arguments"].items()}
        assert score(rec, f"<tool_call>\n{json.dumps({'name': call['name'], 'arguments': wrong_args})}\n"
                          "</tool_call>").value == 0.0
        names.add(call["name"])
    assert len(names) >= 8 and 120 <= same <= 180


def test_tool_brief_is_tool_single_in_a_shorter_prompt():
    from m2rl.data.builtin import agent
    single, brief = _draw("agent", "tool_single", 100), _draw("agent", "tool_brief", 100)
    for s, b in zip(single, brief, strict=True):
        # the same task and worked example; the tools shown are the same functions, as brief schemas
        assert s["verifier"]["ground_truth"] == b["verifier"]["ground_truth"]
        assert [m["content"] for m in s["prompt"][1:]] == [m["content"] for m in b["prompt"][1:]]
        assert b["verifier"]["tools"] == [agent.brief_schema(t) for t in s["verifier"]["tools"]]
        for t in b["verifier"]["tools"]:
            assert json.dumps(t) in b["prompt"][0]["content"]
            assert set(t["parameters"]["required"]) == set(t["parameters"]["properties"])
            assert all(set(v) == {"type", "description"} for v in t["parameters"]["properties"].values())
        assert len(b["prompt"][0]["content"]) < 0.6 * len(s["prompt"][0]["content"])
        (call,) = b["verifier"]["ground_truth"]
        assert score(b, f"<tool_call>\n{json.dumps(call)}\n</tool_call>").value == 1.0
        # the declared types still decide: an integer argument given as a string is wrong
        ints = {k for k, v in call["arguments"].items() if isinstance(v, int)}
        if ints:
            bad = {k: (str(v) if k in ints else v) for k, v in call["arguments"].items()}
            assert score(b, f"<tool_call>\n{json.dumps({'name': call['name'], 'arguments': bad})}\n</tool_call>").value == 0.0

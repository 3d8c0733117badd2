"""Prompt templates on every source type (the paper's two by name) and the natural-proportion mix."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from m2rl.data import run_data_stage
from m2rl.records import read_records
from m2rl.spec import SpecError, spec_from_dict
from m2rl.spec.data import PAPER_MATH_PREFIX, PROMPT_TEMPLATES

FIX = Path(__file__).parent / "fixtures" / "nemotron_blend"


def spec(domains, **data):
    return spec_from_dict({"data": {"eval_fraction": 0, "domains": domains, **data}})


def builtin(count, **extra):
    return {"type": "builtin", "options": {"count": count}, **extra}


def test_paper_templates_are_the_papers_strings():
    # Mosi-AI/M2RL M2RL/data/process_rl_data.py
    assert PAPER_MATH_PREFIX == ("Solve the following math problem step by step. The last line of your response "
                                 "should be of the form Answer: $Answer (without quotes) where $Answer is the "
                                 "answer to the problem.\n\n")
    sci = PROMPT_TEMPLATES["paper_science"]
    text = "Answer the following multiple choice question. The last line of your response should be ..."
    assert sci.apply(text) == ("Answer the following multiple choice question step by step. The last line of your "
                               "response should be ...")
    assert sci.apply("Which of these is a gas?") is None


@pytest.mark.parametrize(("template", "match"), [
    ("paper_maths", "did you mean 'paper_math'"),
    ("Q: {question}", "unknown placeholder {question}"),
    ("{prompt} and {prompt}", "exactly once, got 2"),
    ("\\boxed{} {prompt}", "unknown placeholder {}"),
    ("a } {prompt}", "not a valid format string"),
    ("{prompt!r}", "no conversion or format spec"),
    ({"prefx": "x"}, "prefx: unknown key; known: prefix, reword_from, reword_to, suffix; did you mean 'prefix'"),
    ({}, "set prefix, suffix or reword_from"),
    (3, "got int"),
])
def test_bad_templates_name_the_field(template, match):
    for src in (builtin(5), {"type": "hf", "path": "x.jsonl", "columns": {"prompt": "q"}, "verifier": {"type": "math"}},
                {"type": "nemotron_rl_blend", "path": "x.jsonl"}):
        with pytest.raises(SpecError) as err:
            spec({"math": {"sources": [src | {"prompt_template": template}]}})
        (line,) = [e for e in err.value.errors if "prompt_template" in e]
        assert line.startswith("data.domains.math.sources[0].prompt_template: ") and match in line, line


def test_templates_apply_to_the_last_user_message_of_every_source_type(tmp_path):
    hf = tmp_path / "q.jsonl"
    hf.write_text("\n".join(json.dumps({"q": f"What is {i}+{i}?", "a": str(2 * i)}) for i in range(6)))
    domains = {
        "math": {"sources": [builtin(8, prompt_template="paper_math"),
                             {"type": "hf", "path": str(hf), "columns": {"prompt": "q", "label": "a"},
                              "verifier": {"type": "math"}, "prompt_template": "Q: {prompt}\n{{think}}"}]},
        "agent": {"sources": [builtin(5, prompt_template={"suffix": " (use the tools)"})]},
        "code": {"sources": [builtin(5)]},
    }
    res = run_data_stage(spec(domains), str(tmp_path / "d"))
    math = read_records(res.train_paths["math"])
    built = [r for r in math if r["source"] == "builtin"]
    from_hf = [r for r in math if r["source"].startswith("hf:")]
    assert len(built) == 8 and len(from_hf) == 6
    assert all(r["prompt"][-1]["content"].startswith(PAPER_MATH_PREFIX) for r in built)
    assert sorted(r["prompt"][-1]["content"] for r in from_hf)[0] == "Q: What is 0+0?\n{think}"
    agent = read_records(res.train_paths["agent"])
    assert all(r["prompt"][0]["role"] == "system" and "(use the tools)" not in r["prompt"][0]["content"]
               and r["prompt"][-1]["content"].endswith(" (use the tools)") for r in agent)
    assert not any(r["prompt"][-1]["content"].startswith(PAPER_MATH_PREFIX)
                   for r in read_records(res.train_paths["code"]))
    card = res.card["domains"]
    assert card["math"]["prompt_template"] == {"templates": ["paper_math", "Q: {prompt}\n{{think}}"],
                                               "applied": 14, "unmatched": 0}
    assert "prompt_template" not in card["code"]


def test_unmatched_rewording_is_counted_in_the_card(tmp_path):
    src = {"type": "nemotron_rl_blend", "path": str(FIX / "train.jsonl"), "prompt_template": "paper_science"}
    res = run_data_stage(spec({"science": {"sources": [src]}}), str(tmp_path / "d"))
    card = json.loads((tmp_path / "d" / "data_card.json").read_text())
    assert card["domains"]["science"]["prompt_template"] == {"templates": ["paper_science"], "applied": 1,
                                                             "unmatched": 1}
    texts = sorted(r["prompt"][-1]["content"] for r in read_records(res.train_paths["science"]))
    assert texts[0].startswith("Answer the following multiple choice question step by step. The last line")
    assert texts[1].startswith("You should output your final response letter")  # left as it was


def test_a_blend_listed_under_two_templates_is_read_once(tmp_path, monkeypatch):
    from m2rl.data.sources import nemotron_rl_blend as blend

    opened = []
    real = blend.storage.iter_lines
    monkeypatch.setattr(blend.storage, "iter_lines", lambda f: opened.append(f) or real(f))
    base = {"type": "nemotron_rl_blend", "path": str(FIX / "train.jsonl")}
    res = run_data_stage(spec({"science": {"sources": [base | {"prompt_template": "paper_science"}]},
                               "code": {"sources": [base]}}), str(tmp_path / "d"))
    assert res.counts["science"]["train"] == 2 and res.counts["code"]["train"] == 1
    assert len(opened) == 1  # no math wanted: no placeholder pass either


def natural_spec(seed, batch_rows=8192):
    return spec({"math": {"sources": [builtin(30)]}, "code": {"sources": [builtin(12)]},
                 "if": {"sources": [builtin(6)]}}, balance="natural", seed=seed, batch_rows=batch_rows)


@pytest.mark.parametrize("batch_rows", [8192, 2])  # one shuffle bucket; three (2 x 8 rows per bucket)
def test_natural_mix_has_every_train_record_exactly_once(tmp_path, batch_rows):
    res = run_data_stage(natural_spec(3, batch_rows), str(tmp_path / "a"))
    assert sorted(p.name for p in (tmp_path / "a" / "train").iterdir()) == [
        "code.parquet", "if.parquet", "math.parquet", "mix.parquet"]
    mix = read_records(res.train_paths["mix"])
    train = [r for d in ("math", "code", "if") for r in read_records(res.train_paths[d])]
    assert sorted(json.dumps(r, sort_keys=True) for r in mix) == sorted(json.dumps(r, sort_keys=True) for r in train)
    assert len({r["id"] for r in mix}) == len(mix) == 48
    assert res.card["mix"] == {"balance": "natural", "counts": {"math": 30, "code": 12, "if": 6}, "total": 48,
                               "shares": {"math": 0.625, "code": 0.25, "if": 0.125}}
    # shuffled: not the domains one after the other, nor each domain in its file order
    ids = [r["id"] for r in mix]
    assert ids != [r["id"] for r in train]
    math_ids = [i for i in ids if "-math-" in i]
    assert math_ids != sorted(math_ids)


def test_natural_mix_is_deterministic_for_a_seed(tmp_path):
    order = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        res = run_data_stage(natural_spec(seed, batch_rows=2), str(tmp_path / name))
        order[name] = [r["id"] for r in read_records(res.train_paths["mix"])]
    assert order["a"] == order["b"] and order["a"] != order["c"]
    assert Counter(order["a"]) == Counter(order["c"])


def test_drawn_mixes_state_their_shares_too(tmp_path):
    res = run_data_stage(spec({"math": {"sources": [builtin(30)]}, "code": {"sources": [builtin(10)]}},
                              balance="proportional"), str(tmp_path / "d"))
    mix = res.card["mix"]
    assert mix["total"] == 40 and sum(mix["counts"].values()) == 40
    assert mix["shares"] == {d: round(c / 40, 4) for d, c in mix["counts"].items()}

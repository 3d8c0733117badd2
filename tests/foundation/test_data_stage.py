from __future__ import annotations

import json
from collections import Counter

import pytest

from m2rl import storage
from m2rl.data import DataStageError, run_data_stage
from m2rl.data.sources.nemotron_rl_blend import adapt_row
from m2rl.data.synthetic import write_nemotron_jsonl
from m2rl.records import read_records
from m2rl.spec import spec_from_dict

DOMAINS = ("math", "code", "science", "if", "agent")


def nemotron_spec(path, **data):
    src = {"type": "nemotron_rl_blend", "path": str(path)}
    return spec_from_dict({"data": {"domains": {d: {"sources": [src]} for d in DOMAINS}, **data}})


def test_nemotron_blend_end_to_end(tmp_path):
    jsonl = write_nemotron_jsonl(tmp_path / "blend.jsonl", 700)
    res = run_data_stage(nemotron_spec(jsonl, eval_fraction=0.2), str(tmp_path / "data"))
    # 700 rows cycle 7 kinds: math twice, one of each other domain, structured_outputs dropped
    totals = {d: res.counts[d]["train"] + res.counts[d]["eval"] for d in DOMAINS}
    assert totals == {"math": 200, "code": 100, "science": 100, "if": 100, "agent": 100}
    assert res.rejects == 0
    assert 0.1 < sum(res.counts[d]["eval"] for d in DOMAINS) / 600 < 0.3
    code = read_records(res.train_paths["code"])
    assert code[0]["verifier"]["type"] == "unit_test" and code[0]["verifier"]["unit_tests"]["inputs"]
    agent = read_records(res.train_paths["agent"])[0]
    assert agent["verifier"]["ground_truth"][0]["arguments"] == {"query": agent["id"].replace("row-", "q")}
    sci = read_records(res.train_paths["science"])[0]
    assert sci["verifier"]["options"] == [f"option {c}" for c in "ABCD"] and sci["label"] in "ABCD"
    # equal blend: every domain drawn about equally often, all train records counted
    mix = Counter(r["domain"] for r in read_records(res.train_paths["mix"]))
    assert sum(mix.values()) == sum(res.counts[d]["train"] for d in DOMAINS)
    assert min(mix.values()) > 0.6 * max(mix.values())
    card = json.loads((tmp_path / "data" / "data_card.json").read_text())
    assert card["domains"]["math"]["prompt_chars"]["p50"] > 0 and card["sources"]["nemotron_rl_blend"] == 600


def test_split_is_deterministic_and_disjoint(tmp_path):
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 140)
    a = run_data_stage(nemotron_spec(jsonl), str(tmp_path / "a"))
    b = run_data_stage(nemotron_spec(jsonl), str(tmp_path / "b"))
    for d in DOMAINS:
        tr = {r["id"] for r in read_records(a.train_paths[d])}
        ev = {r["id"] for r in read_records(a.eval_paths[d])} if d in a.eval_paths else set()
        assert not tr & ev
        assert tr == {r["id"] for r in read_records(b.train_paths[d])}


def test_dedup_by_normalised_prompt(tmp_path):
    rows = [{"id": f"x{i}", "domain": "math", "prompt": [{"role": "user", "content": c}], "label": "1",
             "verifier": {"type": "math"}, "source": "t"}
            for i, c in enumerate(["What is 1?", "what  is 1?", "WHAT IS 1?", "What is 2?"])]
    f = tmp_path / "r.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows))
    spec = spec_from_dict({"data": {"domains": {"math": {"sources": [{"type": "records", "path": str(f)}]}},
                                    "eval_fraction": 0}})
    res = run_data_stage(spec, str(tmp_path / "out"))
    assert res.counts["math"]["train"] == 2 and res.counts["math"]["duplicates"] == 2


def test_bad_rows_go_to_rejects_with_file_line_reason(tmp_path):
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 70)
    with open(jsonl, "a") as f:
        f.write('{"dataset": "nvidia/unknown_thing", "responses_create_params": {"input": "x"}}\n')
        f.write("not json\n")
        f.write('{"dataset": "x-dapo17k", "responses_create_params": {"input": "q"}}\n')
    res = run_data_stage(nemotron_spec(jsonl, max_reject_fraction=0.1), str(tmp_path / "out"))
    assert res.rejects == 3
    rej = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rej] == [71, 72, 73]
    assert "unknown dataset" in rej[0]["reason"] and rej[0]["file"] == str(jsonl)
    assert "missing expected_answer" in rej[2]["reason"]


def test_too_many_rejects_fails_and_leaves_nothing(tmp_path):
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 14)
    with open(jsonl, "a") as f:
        f.write("garbage\n" * 5)
    with pytest.raises(DataStageError, match="max_reject_fraction"):
        run_data_stage(nemotron_spec(jsonl), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["b.jsonl"]


def test_missing_source_file_is_clear(tmp_path):
    with pytest.raises(DataStageError, match="nope.jsonl"):
        run_data_stage(nemotron_spec(tmp_path / "nope.jsonl"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_hf_source_on_local_files(tmp_path):
    f = tmp_path / "gsm.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"What is {i}+{i}?", "answer": str(2 * i), "qid": i})
                           for i in range(20)))
    spec = spec_from_dict({"data": {"eval_fraction": 0, "domains": {"math": {"sources": [{
        "type": "hf", "path": str(f), "columns": {"prompt": "question", "label": "answer", "id": "qid"},
        "verifier": {"type": "math"}}]}}}})
    res = run_data_stage(spec, str(tmp_path / "out"))
    recs = read_records(res.train_paths["math"])
    assert len(recs) == 20 and recs[3]["label"] == "6" and recs[3]["prompt"][0]["content"] == "What is 3+3?"


def test_output_to_s3(tmp_path, s3_env):
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 70)
    out = f"{s3_env}/study/data"
    res = run_data_stage(nemotron_spec(jsonl), out)
    files = storage.list_files(out)
    assert {"data_card.json", "train/math.parquet", "train/mix.parquet", storage.COMPLETE_MARKER} <= set(files)
    assert res.train_paths["math"] == f"{out}/train/math.parquet"


@pytest.mark.parametrize(
    ("row", "reason"),
    [({"dataset": "a-workbench", "responses_create_params": {"input": "x"}, "ground_truth": "{bad"},
      "ground_truth is not valid JSON"),
     ({"dataset": "a-comp_coding_50tests", "responses_create_params": {"input": "x"},
       "verifier_metadata": {"unit_tests": {"inputs": ["1"], "outputs": []}}}, "differ in length"),
     ({"dataset": "a-instruction_following", "responses_create_params": {"input": "x"},
       "instruction_id_list": ["a", "b"], "kwargs": [{}]}, "one entry per instruction id"),
     ({"responses_create_params": {"input": "x"}}, "missing dataset")],
)
def test_adapt_row_reasons(row, reason):
    from m2rl.data.sources.nemotron_rl_blend import RowError

    with pytest.raises(RowError, match=reason):
        adapt_row(row, "r")


def test_structured_outputs_dropped():
    assert adapt_row({"dataset": "x-structured_outputs", "responses_create_params": {"input": "x"}}, "r") is None


def test_nemotron_input_from_s3(tmp_path, s3_env):
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 70)
    storage.upload_file(jsonl, f"{s3_env}/raw/blend/part-0.jsonl")
    res = run_data_stage(nemotron_spec(f"{s3_env}/raw/blend/"), str(tmp_path / "out"))
    assert res.counts["math"]["train"] + res.counts["math"]["eval"] == 20 and res.rejects == 0


def test_bfcl_possible_answer_ground_truth_is_kept_and_scores():
    """A tool-call row whose ground truth is in BFCL's possible_answer layout loads unchanged (issue 16)."""
    from m2rl import verifiers

    gt = [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""]}}]
    rec = adapt_row({"dataset": "bfcl-workbench", "responses_create_params": {"input": "Area of a 10 x 5 triangle?"},
                     "ground_truth": json.dumps(gt)}, "r", "tool_calls")  # single-turn, as the option asks
    assert rec["domain"] == "agent" and rec["verifier"]["ground_truth"] == gt
    call = '<tool_call>\n{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}\n</tool_call>'
    assert verifiers.score(rec, call).value == 1.0
    assert verifiers.score(rec, call.replace("10", "11")).value == 0.0


def test_a_source_listed_twice_for_one_domain_is_refused(tmp_path):
    src = {"type": "builtin", "options": {"count": 5}}
    spec = spec_from_dict({"data": {"domains": {"math": {"sources": [src, src | {"prompt_template": "paper_math"}]}}}})
    with pytest.raises(DataStageError, match=r"data.domains.math.sources\[1\]: the same source is listed twice"):
        run_data_stage(spec, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()

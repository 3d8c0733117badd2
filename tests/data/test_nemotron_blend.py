"""The Nemotron blend as downloaded: placeholder rows resolved from local copies of their source datasets,
workbench tools kept, stem_mcqa options as texts (fixtures in tests/data/fixtures/nemotron_blend)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m2rl.data import DataStageError, SourceOptionError, run_data_stage
from m2rl.data.registry import Reject, get_source
from m2rl.data.sources import nemotron_rl_blend as blend
from m2rl.records import read_records, render_chat
from m2rl.spec import SpecError, spec_from_dict
from m2rl.spec.data import SourceSpec

FIX = Path(__file__).parent / "fixtures" / "nemotron_blend"
WORKBENCH_DATA = Path(__file__).parents[1] / "envs" / "fixtures" / "workbench"  # WorkBench sandbox CSVs (trimmed)
DAPO, SKYWORK = "nano_v3_sft_profiled_dapo17k", "nano_v3_sft_profiled_skywork_no_omni"
DOMAINS = ("math", "science", "if", "code", "agent")
LOCAL = {DAPO: str(FIX / "DAPO-Math-17k"), SKYWORK: str(FIX / "Skywork-OR1-RL-Data")}
BOXED = "\n\nPlease reason step by step, and put your final answer within \\boxed{}."


def blend_source(path=FIX / "train.jsonl", sources=None, **extra):
    return {"type": "nemotron_rl_blend", "path": str(path),
            "options": {"placeholder_sources": LOCAL if sources is None else sources}, **extra}


def blend_spec(src=None, domains=DOMAINS, **data):
    src = src or blend_source()
    return spec_from_dict({"data": {"eval_fraction": 0, "domains": {d: {"sources": [src]} for d in domains}, **data}})


def by_domain(res):
    return {d: read_records(res.train_paths[d]) for d in res.train_paths if d != "mix"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("blend") / "data"
    res = run_data_stage(blend_spec(), str(out))
    return res, by_domain(res), out


def test_raw_blend_builds_with_zero_rejects(built):
    res, recs, out = built
    assert res.rejects == 0
    assert {d: len(recs[d]) for d in DOMAINS} == {"math": 4, "science": 2, "if": 1, "code": 1, "agent": 1}
    assert (out / "rejects.jsonl").read_text() == ""


def test_placeholders_resolved_as_nvidia_does(built):
    math = {r["label"]: r for r in built[1]["math"]}
    # DAPO rows 0 and 1: DAPO's own instruction wrapper stripped, the blend's {prefix, suffix} put around
    dapo = math["32"]["prompt"]
    assert dapo == [{"role": "user", "content": "Determine how many 1000 digit numbers \\( A \\) have the property that "
                     "when any digit of \\( A \\), aside from the first, is deleted to form a 999 digit number "
                     "\\( B \\), then \\( B \\) divides \\( A \\)." + BOXED}]
    assert math["-3"]["prompt"][0]["content"].startswith("Solve the equation $|...|||x^2-x|-1|-1|...-1|=x^2-2x-14$")
    for label in ("32", "-3"):
        text = math[label]["prompt"][0]["content"]
        assert "Remember to put your answer" not in text and "The last line of your response" not in text
    # Skywork rows 0 and 2: `{question}` replaced; the answer is the first element of the JSON list text
    sky = math["\\sqrt{2}"]["prompt"][0]["content"]
    assert sky.startswith("Let \\(ABC\\) be an isosceles right-angled triangle") and sky.endswith(BOXED)
    assert "\\frac{(3-\\sqrt{3})(2-\\sqrt{3})^{2016}+(3+\\sqrt{3})(2+\\sqrt{3})^{2016}}{6}" in math
    assert all(r["verifier"] == {"type": "math"} and r["source"].startswith("nemotron_rl_blend:nano_v3")
               for r in math.values())


def test_workbench_rows_keep_their_tools_to_the_rendered_prompt(built):
    from m2rl.models import build_tokenizer

    (agent,) = built[1]["agent"]
    names = [t["name"] for t in agent["tools"]]
    assert len(names) == 27 and names[0] == "company_directory_find_email_address" and "email_reply_email" in names
    assert agent["verifier"]["type"] == "env" and agent["verifier"]["env"] == "workplace_assistant"
    assert agent["verifier"]["sandbox"] == "workbench"
    assert agent["verifier"]["ground_truth"] == [{"name": "email_reply_email", "arguments": {
        "email_id": "00000057", "body": "Thanks for the update - I will get back to you tomorrow."}}]
    assert [m["role"] for m in agent["prompt"]] == ["system", "user"]
    tok = build_tokenizer(300)
    tok.chat_template = ("{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n{% endif %}"
                         "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}<|im_start|>assistant\n")
    text = render_chat(tok, agent["prompt"], agent["tools"])
    assert text.count('"type": "function"') == 27 and '"name": "email_reply_email"' in text
    assert "Reply to carlos's last email" in text.split("</tools>")[1]
    from m2rl import verifiers
    from m2rl.envs import configure_environments

    # the episode's end state decides (the `env` verifier replays a transcript on WorkBench's sandbox data)
    configure_environments({"workplace_assistant": {"data": str(WORKBENCH_DATA)}})
    try:
        call = {"name": "email_reply_email", "arguments": agent["verifier"]["ground_truth"][0]["arguments"]}
        assert verifiers.score(agent, f"<tool_call>\n{json.dumps(call)}\n</tool_call>").value == 1.0
        call["arguments"] = {**call["arguments"], "email_id": "00000058"}
        assert verifiers.score(agent, f"<tool_call>\n{json.dumps(call)}\n</tool_call>").value == 0.0
    finally:
        configure_environments(None)


def test_workbench_rows_as_single_turn_tool_calls_when_asked():
    from m2rl.data.sources.nemotron_rl_blend import adapt_row

    row = next(json.loads(line) for line in (FIX / "train.jsonl").read_text().splitlines() if "workbench" in line)
    rec = adapt_row(row, "r", "tool_calls")
    assert rec["verifier"]["type"] == "tool_calls" and rec["verifier"]["tools"] == rec["tools"]
    assert len(rec["tools"]) == 27


def test_stem_mcqa_options_are_texts_in_letter_order(built):
    sci = {r["label"]: r for r in built[1]["science"]}
    assert sci["B"]["verifier"]["options"][:3] == ["Karyotyping", "Polymerase Chain Reaction (PCR)",
                                                   "Whole-genome sequencing"]
    assert len(sci["B"]["verifier"]["options"]) == 10 and len(sci["I"]["verifier"]["options"]) == 10
    assert not any("{" in o for r in sci.values() for o in r["verifier"]["options"])


def test_other_domains_from_the_blend(built):
    (ifr,) = built[1]["if"]
    assert ifr["verifier"]["instruction_id_list"] == ["length_constraints:nth_paragraph_first_word",
                                                      "last_word:last_word_answer"]
    assert ifr["verifier"]["kwargs"][0] == {"num_paragraphs": 4, "nth_paragraph": 3, "first_word": "crash"}
    (code,) = built[1]["code"]
    assert code["verifier"]["unit_tests"]["outputs"] == ["1\n3 \n-1\n0\n\n2\n1 2 \n"]


def test_options_check_and_option_order_rejects():
    assert blend._options([{"B": "second"}, {"A": "first"}]) == ["first", "second"]
    assert blend._options({"A": "x", "B": "y"}) == ["x", "y"]
    assert blend._options(["x", "y"]) == ["x", "y"]
    for bad, reason in [([{"A": "x"}, {"C": "y"}], "without gaps"), ([{"A": "x", "B": "y"}], "one-key"),
                        ([{"A": "x"}, {"A": "y"}], "not a new option letter"), ([], "non-empty")]:
        with pytest.raises(blend.RowError, match=reason):
            blend._options(bad)


def test_missing_placeholder_source_fails_before_any_row(tmp_path):
    # the first row of this blend is not a placeholder: nothing may come out before the source check
    rows = (FIX / "train.jsonl").read_text().splitlines()
    first = tmp_path / "train.jsonl"
    first.write_text("\n".join(rows[4:] + rows[:4]) + "\n")
    sources = {**LOCAL, DAPO: str(tmp_path / "missing" / "DAPO-Math-17k")}
    gen = get_source("nemotron_rl_blend")(SourceSpec(**blend_source(first, sources)), None)
    with pytest.raises(SourceOptionError, match=DAPO) as err:
        next(gen)
    assert err.value.option == f"options.placeholder_sources.{DAPO}"
    out = tmp_path / "out"
    with pytest.raises(DataStageError) as err:
        run_data_stage(blend_spec(blend_source(first, sources)), str(out))
    msg = str(err.value)
    assert msg.startswith(f"data.domains.math.sources[0].options.placeholder_sources.{DAPO}: ")
    assert "missing/DAPO-Math-17k" in msg and "2 placeholder rows" in msg
    assert not out.exists()


def test_placeholder_sources_are_needed_only_for_math(tmp_path):
    nowhere = {DAPO: str(tmp_path / "no-dapo"), SKYWORK: str(tmp_path / "no-skywork")}
    res = run_data_stage(blend_spec(blend_source(sources=nowhere), domains=("science", "agent")), str(tmp_path / "d"))
    assert res.rejects == 0 and res.counts["science"]["train"] == 2 and res.counts["agent"]["train"] == 1


def test_row_out_of_range_is_a_reject_naming_file_line_dataset(tmp_path):
    f = tmp_path / "train.jsonl"
    shutil.copy(FIX / "train.jsonl", f)
    with open(f, "a") as fh:
        fh.write(json.dumps({"dataset": DAPO, "_hf_placeholder": {"row": 7, "question_template": {"prefix": "Q: "}}}) + "\n")
        fh.write(json.dumps({"dataset": SKYWORK, "_hf_placeholder": {"row": "x"}}) + "\n")
        fh.write(json.dumps({"dataset": SKYWORK, "_hf_placeholder": "row 1"}) + "\n")
        fh.write(json.dumps({"dataset": "other_dapo17k", "_hf_placeholder": {"row": 1}}) + "\n")
    rows = list(get_source("nemotron_rl_blend")(SourceSpec(**blend_source(f)), None))
    rejects = [r for r in rows if isinstance(r, Reject)]
    assert [(r.file, r.line) for r in rejects] == [(str(f), n) for n in (10, 11, 12, 13)]
    assert f"_hf_placeholder.row 7 of dataset '{DAPO}' is out of range" in rejects[0].reason
    assert "has 3 rows" in rejects[0].reason
    assert "_hf_placeholder.row must be a row index" in rejects[1].reason
    assert "_hf_placeholder must be an object" in rejects[2].reason
    assert "dataset 'other_dapo17k': no placeholder source is known" in rejects[3].reason
    assert sum(not isinstance(r, Reject) for r in rows) == 9


def test_each_source_is_read_once_and_only_up_to_the_last_needed_row(monkeypatch):
    calls, seen = [], []
    real = blend.load_rows

    def counting(path, split, **kw):
        calls.append((Path(path).name, split))
        for row in real(path, split, **kw):
            seen.append(Path(path).name)
            yield row

    monkeypatch.setattr(blend, "load_rows", counting)
    recs = [r for r in get_source("nemotron_rl_blend")(SourceSpec(**blend_source()), None)
            if not isinstance(r, Reject) and r["domain"] == "math"]
    assert len(recs) == 4
    # two placeholder rows each, one read per dataset; DAPO's rows 0 and 1 need only 2 of its 3 rows
    assert sorted(calls) == [("DAPO-Math-17k", "train"), ("Skywork-OR1-RL-Data", "math")]
    assert seen.count("DAPO-Math-17k") == 2 and seen.count("Skywork-OR1-RL-Data") == 3


def test_a_snapshot_folder_with_several_splits_reads_the_split():
    from m2rl.data.sources.hf import local_files

    folder = FIX / "Skywork-OR1-RL-Data"
    assert [Path(f).name for f in local_files(str(folder), "math")] == ["math-00000-of-00001.jsonl"]
    assert [Path(f).name for f in local_files(str(folder), "code")] == ["code-00000-of-00001.jsonl"]
    assert [Path(f).name for f in local_files(str(FIX / "DAPO-Math-17k"), "train")] == ["dapo-math-17k.jsonl"]


def test_source_dataset_as_parquet_in_its_own_columns(tmp_path):
    rows = [json.loads(x) for x in (FIX / "DAPO-Math-17k" / "data" / "dapo-math-17k.jsonl").read_text().splitlines()]
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("data_source", pa.string()), ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()), ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
        ("extra_info", pa.struct([("index", pa.string())]))]))
    (tmp_path / "dapo" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "dapo" / "data" / "dapo-math-17k.parquet")
    src = blend_source(sources={**LOCAL, DAPO: str(tmp_path / "dapo")})
    res = run_data_stage(blend_spec(src, domains=("math",)), str(tmp_path / "d"))
    assert res.rejects == 0
    assert sorted(r["label"] for r in read_records(res.train_paths["math"]))[:2] == ["-3", "32"]


def test_resolver_units():
    dapo = blend.PLACEHOLDER_DATASETS[DAPO]
    src_row = {"prompt": [{"content": "Solve it.\n\nWhat is 2+2?\n\nRemember.", "role": "user"}],
               "reward_model": {"ground_truth": "4", "style": "rule"}}
    out = blend.resolve_placeholder({"dataset": DAPO, "uuid": "u1", "_hf_placeholder": {
        "row": 0, "question_template": {"prefix": "Q: ", "suffix": "\n\n"}}}, src_row, dapo)
    assert out == {"dataset": DAPO, "uuid": "u1", "question": "Q: What is 2+2?", "expected_answer": "4",
                   "responses_create_params": {"input": [{"role": "user", "content": "Q: What is 2+2?"}]}}
    # no dict template: the source question as it is (NVIDIA's fallback)
    keep = blend.resolve_placeholder({"dataset": DAPO, "_hf_placeholder": {"row": 0}}, src_row, dapo)
    assert keep["question"] == src_row["prompt"][0]["content"]
    sky = blend.resolve_placeholder({"dataset": SKYWORK, "_hf_placeholder": {"row": 0, "question_template": "> {question}"}},
                                    {"prompt": [{"content": "1+1?"}], "reward_model": {"ground_truth": '["2", "two"]'}},
                                    blend.PLACEHOLDER_DATASETS[SKYWORK])
    assert sky["question"] == "1+1?" and sky["expected_answer"] == "2"
    assert sky["responses_create_params"]["input"][0]["content"] == "> 1+1?"
    assert blend.source_answer("1.50") == "1.50" and blend.source_answer('{"a": "7"}') == "7"
    with pytest.raises(blend.RowError, match="prompt.0.content"):
        blend.resolve_placeholder({"dataset": DAPO, "_hf_placeholder": {"row": 0}}, {"prompt": []}, dapo)


def test_placeholder_sources_option():
    opts = blend.NemotronOptions()
    assert {k: (v.path, v.split) for k, v in opts.placeholder_sources.items()} == {
        DAPO: ("BytedTsinghua-SIA/DAPO-Math-17k", "train"), SKYWORK: ("Skywork/Skywork-OR1-RL-Data", "math")}
    # a string is the path, with the dataset's own split; unset names keep NVIDIA's defaults
    opts = blend.NemotronOptions(placeholder_sources={SKYWORK: "/data/skywork"})
    assert (opts.placeholder_sources[SKYWORK].path, opts.placeholder_sources[SKYWORK].split) == ("/data/skywork", "math")
    assert opts.placeholder_sources[DAPO].path == "BytedTsinghua-SIA/DAPO-Math-17k"
    opts = blend.NemotronOptions(placeholder_sources={DAPO: {"path": "org/dapo", "split": "x", "revision": "v1"}})
    assert opts.placeholder_sources[DAPO].revision == "v1"
    for bad, match in [({"nano_v3_sft_profiled_dapo17": "x"}, "unknown placeholder dataset.*did you mean"),
                       ({DAPO: {"pth": "x"}}, f"{DAPO}.pth: unknown key"), ({DAPO: ""}, "at least 1 character")]:
        with pytest.raises(SpecError, match=match) as err:
            blend_spec(blend_source(sources=bad))
        assert "data.domains.math.sources[0].options.placeholder_sources" in str(err.value)


def test_m2rl_data_cli_on_the_blend_as_downloaded(tmp_path, monkeypatch):
    """`m2rl data` with the paper's settings on the raw blend: placeholders from local copies, zero rejects."""
    from typer.testing import CliRunner

    from m2rl.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    src = blend_source()
    domains = {d: {"sources": [src | ({"prompt_template": "paper_math"} if d == "math" else
                                      {"prompt_template": "paper_science"} if d == "science" else {})]}
               for d in DOMAINS}
    spec = tmp_path / "paper-data.yaml"
    spec.write_text(json.dumps({"name": "blend", "work_dir": str(tmp_path / "w"), "artifact_root": str(tmp_path / "a"),
                                "data": {"balance": "natural", "eval_fraction": 0, "domains": domains}}))
    res = CliRunner().invoke(app, ["data", str(spec)])
    assert res.exit_code == 0, res.output
    data = tmp_path / "a" / "data"
    card = json.loads((data / "data_card.json").read_text())
    assert card["rejects"] == 0 and card["rows_read"] == 9
    assert card["mix"]["counts"] == {"math": 4, "science": 2, "if": 1, "code": 1, "agent": 1}
    assert card["mix"]["shares"]["math"] == round(4 / 9, 4)
    assert card["domains"]["math"]["prompt_template"]["applied"] == 4
    mix = read_records(data / "train" / "mix.parquet")
    assert len({r["id"] for r in mix}) == 9
    math = [r for r in mix if r["domain"] == "math"]
    assert all(r["prompt"][0]["content"].startswith("Solve the following math problem step by step.")
               and r["prompt"][0]["content"].count("Solve the following") == 1 for r in math)
    assert next(r for r in mix if r["domain"] == "agent")["tools"][0]["type"] == "function"

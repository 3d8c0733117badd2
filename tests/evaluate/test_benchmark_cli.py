"""`m2rl benchmark NAME`: a benchmark's problems as unified records and its card, before any model runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2rl.cli import app
from m2rl.records import validate_record

FIXTURES = Path(__file__).parent / "fixtures"
IFBENCH = str(FIXTURES / "IFBench_test.jsonl")


@pytest.fixture
def runner():
    return CliRunner()


def test_json_lines_are_unified_records_and_the_card_goes_to_stderr(runner):
    r = runner.invoke(app, ["benchmark", "ifbench", "--path", IFBENCH, "--json"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    recs = [json.loads(line) for line in lines]
    assert [x["id"] for x in recs] == ["ifbench-54", "ifbench-70", "ifbench-280", "ifbench-298"]
    assert all(validate_record(x) == x for x in recs)
    card = json.loads(r.stderr.strip().splitlines()[-1])["card"]
    assert (card["benchmark"], card["rows"], card["problems"], card["skipped_total"]) == ("ifbench", 4, 4, 0)
    r = runner.invoke(app, ["benchmark", "ifbench", "--path", IFBENCH, "--json", "--limit", "2"])
    assert len(r.stdout.splitlines()) == 2
    assert json.loads(r.stderr.strip().splitlines()[-1])["card"]["problems"] == 4  # the card counts the whole load


def test_readable_form_shows_id_label_prompt_head_and_card(runner, tmp_path):
    rows = [{"problem": f"Synthetic problem {i}: compute {i} + {i}.", "answer": str(2 * i), "id": i} for i in range(3)]
    rows.append({"problem": "Synthetic problem without an answer.", "id": 3})
    path = tmp_path / "aime25.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = runner.invoke(app, ["benchmark", "aime25", "-p", str(path), "-n", "2", "--option", "max_bad_fraction=0.5"])
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    assert out[0] == ("aime25-0  [math: 0]  Synthetic problem 0: compute 0 + 0. Please reason step by step, and put "
                      "your final answer on the ...")
    assert out[1].startswith("aime25-1  [math: 2]  ") and out[2] == "... 1 more"
    text = r.stdout
    assert f"aime25: 3 problems from 4 rows of {path}" in text
    assert "skipped 1 malformed row(s) (at most 0.5 of the rows may be): missing column 'answer'" in text
    assert "  row 3: missing column 'answer'" in text
    r = runner.invoke(app, ["benchmark", "aime25", "-p", str(path)])  # 1 of 4 is more than the default 5%
    assert r.exit_code == 2 and "1 of 4 rows are malformed" in r.stderr and "row 3: missing column" in r.stderr


def test_mmlu_card_in_the_readable_form(runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.evaluate.test_benchmark_cards import MMLU_ROWS

    path = tmp_path / "mmlu.parquet"
    pq.write_table(pa.Table.from_pylist(MMLU_ROWS), path)
    r = runner.invoke(app, ["benchmark", "mmlu_redux", "--path", str(path)])
    assert r.exit_code == 0, r.output
    assert "mmlu_redux-anatomy-00001-" in r.stdout and "[mcqa: D]" in r.stdout
    assert "error_policy: ok: kept; wrong_groundtruth: relabelled" in r.stdout
    assert "'wrong_groundtruth': {'rows': 3, 'relabelled': 2, 'dropped': 1}" in r.stdout
    assert "left out by the benchmark's rules: error_type wrong_groundtruth without a usable correct_answer: 1" in r.stdout


def test_errors_exit_2_with_the_registry_message(runner, tmp_path):
    r = runner.invoke(app, ["benchmark", "aime2024", "--path", IFBENCH])
    assert r.exit_code == 2
    assert "unknown benchmark 'aime2024'; known: agent, aime24, aime25," in r.stderr and "did you mean 'aime24'?" in r.stderr
    r = runner.invoke(app, ["benchmark", "aime24", "--path", str(tmp_path / "missing.parquet")])
    assert r.exit_code == 2 and f"aime24: dataset file {tmp_path / 'missing.parquet'} not found" in r.stderr
    r = runner.invoke(app, ["benchmark", "ifbench", "--path", IFBENCH, "--option", "mode=lose"])
    assert r.exit_code == 2 and "ifbench: options.mode: Input should be 'strict' or 'loose'" in r.stderr
    r = runner.invoke(app, ["benchmark", "ifbench", "--path", IFBENCH, "--option", "mode"])
    assert r.exit_code == 2 and "--option 'mode': expected KEY=VALUE" in r.stderr


def test_options_and_spec_entry(runner, tmp_path):
    r = runner.invoke(app, ["benchmark", "ifbench", "--path", IFBENCH, "--json", "-O", "mode=loose"])
    assert {json.loads(x)["verifier"]["mode"] for x in r.stdout.splitlines()} == {"loose"}
    spec = tmp_path / "study.yaml"
    spec.write_text(f"evaluate:\n  benchmarks:\n    - {{name: ifbench, path: {IFBENCH}, options: {{mode: loose}}}}\n")
    r = runner.invoke(app, ["benchmark", "ifbench", "--spec", str(spec), "--json"])
    assert r.exit_code == 0, r.output
    assert {json.loads(x)["verifier"]["mode"] for x in r.stdout.splitlines()} == {"loose"}
    r = runner.invoke(app, ["benchmark", "ifbench", "--spec", str(spec), "--json", "-O", "mode=strict"])
    assert {json.loads(x)["verifier"]["mode"] for x in r.stdout.splitlines()} == {"strict"}  # the flag wins

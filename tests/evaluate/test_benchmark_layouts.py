"""The paper's evaluation data loads as the paper's scripts read and write it.

math-ai/aime24 (the dataset `download_aime.py` reads: `id, problem, solution, url`, no `answer`), and the
three parquet files the paper's `M2RL/data/download_{aime,gpqa,ifbench}.py` write (`val/aime-2024.parquet`,
`val/gpqa.parquet`, `val/IFBench_test.parquet`), built here by the scripts' own `process` steps with
`datasets` from literal rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m2rl.evaluate import EvalError
from m2rl.evaluate.loading import MATH_TEMPLATE, parse_options
from m2rl.evaluate.registry import get_benchmark, load_benchmark
from m2rl.spec.evaluate import BenchmarkSpec
from m2rl.verifiers import check_record

FIXTURES = Path(__file__).parent / "fixtures"

# math-ai/aime24 row 0 as its dataset card shows it (datasets-server first-rows, config default, split test).
AIME24_ROW0 = {
    "id": 60,
    "problem": "Every morning Aya goes for a $9$-kilometer-long walk and stops at a coffee shop afterwards. When she "
               "walks at a constant speed of $s$ kilometers per hour, the walk takes her 4 hours, including $t$ minutes "
               "spent in the coffee shop. When she walks $s+2$ kilometers per hour, the walk takes her 2 hours and 24 "
               "minutes, including $t$ minutes spent in the coffee shop. Suppose Aya walks at $s+\\frac{1}{2}$ "
               "kilometers per hour. Find the number of minutes the walk takes her, including the $t$ minutes spent "
               "in the coffee shop.",
    "solution": "\\boxed{204}",
    "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_1",
}
# Synthetic rows in the same layout: a nested-brace answer, and one whose box is not the whole solution.
AIME24_SYNTHETIC = [
    {"id": 9001, "problem": "Synthetic: what is one half, as a fraction?", "solution": "\\boxed{\\frac{1}{2}}",
     "url": ""},
    {"id": 9002, "problem": "Synthetic: what is three quarters?", "solution": "So it is $\\boxed{\\dfrac{3}{4}}$.",
     "url": ""},
]

# Idavidrein/gpqa (config gpqa_diamond) is gated: synthetic, clearly not GPQA, question text in its real columns.
GPQA_ROWS = [
    {"Pre-Revision Question": "", "Question": f"Synthetic question {i} (not from GPQA): which option is right?",
     "Correct Answer": f"right answer {i}", "Incorrect Answer 1": f"wrong one {i}",
     "Incorrect Answer 2": f"wrong two {i}\nwith a second line", "Incorrect Answer 3": f"wrong three {i}",
     "Explanation": "synthetic", "Record ID": f"recSYN{i:04d}", "High-level domain": "Physics",
     "Subdomain": "Synthetic"}
    for i in range(6)
]


def quiet_datasets():
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def load(name, path, **kw):
    return load_benchmark(BenchmarkSpec(name=name, path=str(path), **kw))


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- the paper's M2RL/data/download_*.py `process` steps, applied to a `datasets.Dataset` -----------------

def paper_aime_parquet(rows, out):
    """download_aime.py on `rows` of math-ai/aime24."""
    data = quiet_datasets().Dataset.from_list(rows)

    def process(example):
        example["data_source"] = "aime-2024"
        example["metadata"] = {"rm_type": "deepscaler"}
        example["prompt"] = [{
            "role": "user",
            "content": "Solve the following math problem step by step. The last line of your response should be of "
                       "the form Answer: \\boxed{$Answer} (without quotes) where $Answer is the answer to the "
                       "problem.\n\n" + example["problem"],
        }]
        example["label"] = example["solution"][7:-1]
        return example

    data = data.map(process, remove_columns=[x for x in data.column_names if x not in ["prompt", "label", "data_source"]])
    data.to_parquet(str(out))
    return out


def paper_gpqa_parquet(rows, out, rng):
    """download_gpqa.py on `rows` of Idavidrein/gpqa (`rng` stands in for its unseeded `random`)."""
    data = quiet_datasets().Dataset.from_list(rows)

    def process(x):
        gold_index = rng.randint(0, 3)
        choices = [x["Incorrect Answer 1"], x["Incorrect Answer 2"], x["Incorrect Answer 3"]]
        choices.insert(gold_index, x["Correct Answer"])
        instruction = ("Answer the following multiple choice question. The last line of your response should be of "
                       "the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think "
                       "step by step before answering.")
        query_template = "{Instruction}\n\n{Question}\n\nA) {A}\nB) {B}\nC) {C}\nD) {D}"
        query = query_template.format(A=choices[0].strip(), B=choices[1].strip(), C=choices[2].strip(),
                                      D=choices[3].strip(), Question=x["Question"].strip(), Instruction=instruction)
        x["data_source"] = "gpqa"
        x["prompt"] = query
        x["label"] = "ABCD"[gold_index]
        x["metadata"] = {"rm_type": "gpqa", "valid_letters": "ABCD", "correct_letter": x["label"]}
        return x

    data = data.map(process, remove_columns=[x for x in data.column_names if x not in ["prompt", "label", "data_source"]])
    data.to_parquet(str(out))
    return out


def paper_ifbench_parquet(jsonl, out):
    """download_ifbench.py on a local copy of allenai/IFBench_test."""
    ds = quiet_datasets()
    data = ds.load_dataset("json", data_files=str(jsonl), split="train")

    def process(example):
        example["label"] = None
        example["metadata"] = {"rm_type": "ifbench", "prompt_text": example["prompt"],
                               "instruction_id_list": example["instruction_id_list"], "kwargs": example["kwargs"]}
        return example

    old_features = data.features
    data = data.map(
        process, remove_columns=[x for x in data.column_names if x not in ["prompt", "label", "data_source"]],
        features=ds.Features({
            "prompt": old_features["prompt"], "label": ds.Value("null"),
            "metadata": {"prompt_text": ds.Value("string"), "rm_type": ds.Value("string"),
                         "instruction_id_list": old_features["instruction_id_list"], "kwargs": old_features["kwargs"]},
        }),
    )
    data.to_parquet(str(out))
    return out


# --- aime24 -----------------------------------------------------------------------------------------------

def test_aime24_is_math_ai_aime24_by_default():
    assert get_benchmark("aime24").hub_id == "math-ai/aime24"


def test_aime24_math_ai_layout_takes_the_boxed_answer(tmp_path):
    path = write_parquet(tmp_path / "test-00000-of-00001.parquet", [AIME24_ROW0, *AIME24_SYNTHETIC])
    recs = load("aime24", path)
    assert [(r["id"], r["label"]) for r in recs] == [("aime24-60", "204"), ("aime24-9001", "\\frac{1}{2}"),
                                                     ("aime24-9002", "\\dfrac{3}{4}")]
    assert recs[0]["prompt"] == [{"role": "user", "content": MATH_TEMPLATE.format(problem=AIME24_ROW0["problem"])}]
    assert recs.card.layout.startswith("problem + \\boxed{} solution") and recs.card.problems == 3
    for r in recs:
        check_record(r)


def test_aime24_row_without_a_boxed_answer_is_malformed(tmp_path):
    bad = {"id": 9003, "problem": "Synthetic: no box.", "solution": "The answer is 7.", "url": ""}
    path = write_parquet(tmp_path / "aime.parquet", [AIME24_ROW0, *AIME24_SYNTHETIC, bad])
    with pytest.raises(EvalError, match=r"aime24: .*aime.parquet: 1 of 4 rows are malformed .*max_bad_fraction=0.05.*"
                                         r"row 3: no \\boxed\{\} answer in solution"):
        load("aime24", path)
    recs = load("aime24", path, options={"max_bad_fraction": 0.25})
    assert [r["id"] for r in recs] == ["aime24-60", "aime24-9001", "aime24-9002"]
    assert recs.card.skipped == {"no \\boxed{} answer in solution": 1}
    assert recs.card.bad_rows == ["row 3: no \\boxed{} answer in solution"] and recs.card.rows == 4


def test_aime24_h4_layout_still_reads_its_answer_column(tmp_path):
    # HuggingFaceH4/aime_2024: id, problem, solution (worked), answer, url, year
    row = {**AIME24_ROW0, "solution": "... so $\\frac{9}{3} + 0.4 = 3.4$ hours, or $\\framebox{204}$ minutes",
           "answer": "204", "year": "2024"}
    recs = load("aime24", write_parquet(tmp_path / "h4.parquet", [row]))
    assert recs[0]["label"] == "204" and recs.card.layout == "problem + answer"


def test_paper_aime_parquet_loads_with_the_paper_prompt(tmp_path):
    path = paper_aime_parquet([AIME24_ROW0, AIME24_SYNTHETIC[0]], tmp_path / "aime-2024.parquet")
    assert set(pq.read_schema(path).names) == {"prompt", "label", "data_source", "metadata"}
    recs = load("aime24", path)
    assert [(r["id"], r["label"]) for r in recs] == [("aime24-0", "204"), ("aime24-1", "\\frac{1}{2}")]
    prompt = recs[0]["prompt"]
    assert len(prompt) == 1 and prompt[0]["role"] == "user"
    assert prompt[0]["content"].startswith("Solve the following math problem step by step. The last line")
    assert prompt[0]["content"].endswith(AIME24_ROW0["problem"])
    assert recs.card.layout.startswith("paper parquet") and recs.card.rows == 2
    for r in recs:
        check_record(r)


# --- gpqa_diamond -----------------------------------------------------------------------------------------

def test_paper_gpqa_parquet_keeps_its_prompt_and_letter(tmp_path):
    path = paper_gpqa_parquet(GPQA_ROWS, tmp_path / "gpqa.parquet", random.Random(1))
    assert set(pq.read_schema(path).names) == {"prompt", "label", "data_source", "metadata"}
    raw = pq.read_table(path).to_pylist()
    recs = load("gpqa_diamond", path)
    assert len(recs) == len(GPQA_ROWS) and recs.card.layout.startswith("paper parquet")
    for i, (rec, row) in enumerate(zip(recs, raw, strict=True)):
        assert rec["prompt"] == [{"role": "user", "content": row["prompt"]}]  # the paper's text, untouched
        assert rec["label"] == row["label"]
        options = rec["verifier"]["options"]
        assert rec["verifier"]["type"] == "mcqa" and len(options) == 4
        assert options["ABCD".index(rec["label"])] == f"right answer {i}"
        assert f"wrong two {i}\nwith a second line" in options  # an option's own line break stays in it
        check_record(rec)
    # each download shuffles anew (unseeded in the paper); the problem ids do not move with the options
    again = load("gpqa_diamond", paper_gpqa_parquet(GPQA_ROWS, tmp_path / "gpqa2.parquet", random.Random(7)))
    assert [r["id"] for r in again] == [r["id"] for r in recs]
    assert [r["label"] for r in again] != [r["label"] for r in recs]


def test_paper_gpqa_row_with_a_bad_letter_is_malformed(tmp_path):
    path = paper_gpqa_parquet(GPQA_ROWS[:4], tmp_path / "gpqa.parquet", random.Random(0))
    rows = pq.read_table(path).to_pylist()
    rows[1]["label"] = "E"
    rows[2]["prompt"] = rows[2]["prompt"].split("\n\nA) ")[0]  # the options cut off
    bad = write_parquet(tmp_path / "bad.parquet", rows)
    recs = load("gpqa_diamond", bad, options={"max_bad_fraction": 0.5})
    assert len(recs) == 2
    assert recs.card.bad_rows == ["row 1: label 'E' is not one of the 4 options' letters",
                                  "row 2: no 'A) ..' option lines at the end of the prompt"]
    with pytest.raises(EvalError, match=r"gpqa_diamond: .*bad.parquet: 2 of 4 rows are malformed"):
        load("gpqa_diamond", bad)


def test_parse_options_reads_what_multichoice_prompt_writes():
    from m2rl.evaluate.loading import multichoice_prompt

    text = multichoice_prompt("Which?\n\nA) is not an option here", ["x", "y\nz", "w"])
    assert parse_options(text)[0] == ["x", "y\nz", "w"]
    assert parse_options("no options") == ([], -1)


# --- ifbench ----------------------------------------------------------------------------------------------

def test_ifbench_test_rows_load_in_both_layouts(tmp_path):
    raw = load("ifbench", FIXTURES / "IFBench_test.jsonl")
    source = [json.loads(line) for line in (FIXTURES / "IFBench_test.jsonl").read_text().splitlines()]
    assert [r["id"] for r in raw] == [f"ifbench-{row['key']}" for row in source]
    assert raw[0]["verifier"]["kwargs"] == [{"N": 85.0}]  # the nulls of the padded kwargs are dropped
    path = paper_ifbench_parquet(FIXTURES / "IFBench_test.jsonl", tmp_path / "IFBench_test.parquet")
    assert set(pq.read_schema(path).names) == {"prompt", "label", "metadata"}
    paper = load("ifbench", path)
    assert paper.card.layout.startswith("paper parquet") and len(paper) == len(raw)
    for a, b in zip(raw, paper, strict=True):
        assert a["prompt"] == b["prompt"] and a["verifier"] == b["verifier"]
        check_record(b)


def test_ifbench_paper_row_without_instructions_is_malformed(tmp_path):
    path = paper_ifbench_parquet(FIXTURES / "IFBench_test.jsonl", tmp_path / "IFBench_test.parquet")
    rows = pq.read_table(path).to_pylist()
    rows[3]["metadata"]["instruction_id_list"] = []
    bad = write_parquet(tmp_path / "bad.parquet", rows)
    recs = load("ifbench", bad, options={"max_bad_fraction": 0.25})
    assert len(recs) == 3
    assert recs.card.skipped == {"instruction_id_list must be a non-empty list of instruction ids": 1}

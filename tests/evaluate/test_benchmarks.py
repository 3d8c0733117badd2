"""Every benchmark is registered, and each loader reads small local files in its dataset's real column layout."""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m2rl.evaluate import EvalError, benchmark_names, get_benchmark
from m2rl.evaluate.benchmarks.gpqa_diamond import shuffled_options
from m2rl.evaluate.benchmarks.hle import parse_choices
from m2rl.evaluate.benchmarks.livecodebench import decode_tests
from m2rl.registry import RegistryError
from m2rl.spec.evaluate import BenchmarkSpec

PAPER = {"aime24": 16, "aime25": 16, "math500": 4, "gpqa_diamond": 4, "livecodebench_v5": 4, "livecodebench_v6": 4,
         "livecodebench": 4, "ifeval": 1, "ifbench": 1, "mmlu_redux": 1, "hle": 1}
BUILTIN = {f"builtin_{d}" for d in ("math", "code", "science", "if", "agent")}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def load(name, path, **kw):
    return get_benchmark(name).loader(BenchmarkSpec(name=name, path=str(path), **kw))


def test_every_benchmark_registered_with_paper_defaults():
    names = set(benchmark_names())
    assert set(PAPER) | BUILTIN <= names
    for name, k in PAPER.items():
        b = get_benchmark(name)
        assert b.k == k, name
        assert (b.sampling.temperature, b.sampling.top_p, b.sampling.max_new_tokens) == (1.0, 0.7, 32768), name
        assert b.hub_id, name
    assert {get_benchmark(n).domain for n in BUILTIN} == {"math", "code", "science", "if", "agent"}
    k, sampling = get_benchmark("aime24").resolve(BenchmarkSpec(name="aime24", k=2, top_p=0.9))
    assert k == 2 and sampling.top_p == 0.9 and sampling.temperature == 1.0
    with pytest.raises(RegistryError, match="unknown benchmark 'aime23'.*aime24.*did you mean 'aime2[45]'"):
        get_benchmark("aime23")


def test_aime24_parquet_layout(tmp_path):
    # HuggingFaceH4/aime_2024: id, problem, solution, answer, url, year
    rows = [{"id": 60 + i, "problem": f"Find x if x = {i}.", "solution": "...", "answer": str(i), "url": "u",
             "year": "2024"} for i in range(3)]
    recs = load("aime24", write_parquet(tmp_path / "train.parquet", rows))
    assert [r["id"] for r in recs] == ["aime24-60", "aime24-61", "aime24-62"]
    r = recs[1]
    assert r["domain"] == "math" and r["label"] == "1" and r["verifier"]["type"] == "math"
    assert r["prompt"] == [{"role": "user", "content": r["prompt"][0]["content"]}]
    assert r["prompt"][0]["content"].startswith("Find x if x = 1.")
    assert "Answer: \\boxed{<answer>}" in r["prompt"][0]["content"]


def test_aime25_and_math500_jsonl_layouts(tmp_path):
    # math-ai/aime25: problem, answer, id
    a25 = load("aime25", write_jsonl(tmp_path / "aime25.jsonl",
                                     [{"problem": "P1", "answer": "70", "id": "0"}, {"problem": "P2", "answer": "588",
                                                                                      "id": "1"}]))
    assert [(r["id"], r["label"]) for r in a25] == [("aime25-0", "70"), ("aime25-1", "588")]
    # HuggingFaceH4/MATH-500: problem, solution, answer, subject, level, unique_id
    rows = [{"problem": "Compute $1+1$.", "solution": "2", "answer": "2", "subject": "Algebra", "level": 1,
             "unique_id": "test/algebra/1.json"},
            {"problem": "Simplify $\\frac{2}{4}$.", "solution": "", "answer": "\\frac{1}{2}", "subject": "Algebra",
             "level": 2, "unique_id": "test/algebra/2.json"}]
    m500 = load("math500", write_jsonl(tmp_path / "m500.jsonl", rows))
    assert m500[0]["id"] == "math500-test/algebra/1.json" and m500[1]["label"] == "\\frac{1}{2}"


def test_gpqa_csv_layout_and_seeded_shuffle(tmp_path):
    # Idavidrein/gpqa (gpqa_diamond): Question, Correct Answer, Incorrect Answer 1..3, Record ID, ...
    import csv

    path = tmp_path / "gpqa_diamond.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1",
                               "Incorrect Answer 2", "Incorrect Answer 3", "Record ID", "High-level domain"])
        w.writeheader()
        for i in range(40):
            w.writerow({"Pre-Revision Question": "", "Question": f"Which is right #{i}?", "Correct Answer": f"right{i}",
                        "Incorrect Answer 1": f"w1-{i}", "Incorrect Answer 2": f"w2-{i}",
                        "Incorrect Answer 3": f"w3-{i}", "Record ID": f"rec{i:02d}", "High-level domain": "Physics"})
    recs = load("gpqa_diamond", path)
    assert len(recs) == 40
    for i, r in enumerate(recs):
        opts = r["verifier"]["options"]
        assert r["verifier"]["type"] == "mcqa" and sorted(opts) == sorted([f"right{i}", f"w1-{i}", f"w2-{i}", f"w3-{i}"])
        assert opts["ABCD".index(r["label"])] == f"right{i}"
        text = r["prompt"][0]["content"]
        assert text.startswith("Answer the following multiple choice question.") and "'Answer: $LETTER'" in text
        assert f"{r['label']}) right{i}" in text
    # seeded per question: same order on every load, the gold letter spread over A-D
    assert [r["label"] for r in load("gpqa_diamond", path)] == [r["label"] for r in recs]
    assert len(Counter(r["label"] for r in recs)) == 4
    other = load("gpqa_diamond", path, options={"shuffle_seed": 1})
    assert [r["label"] for r in other] != [r["label"] for r in recs]
    assert shuffled_options("c", ["x", "y", "z"], 0, "rec00") == shuffled_options("c", ["x", "y", "z"], 0, "rec00")


def _lcb_private(tests):
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def lcb_rows():
    stdin = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]
    functional = [{"input": "[1, 2]\n3", "output": "[0, 1]", "testtype": "functional"}]
    return [
        {"question_title": "A", "question_content": "Add two numbers.", "platform": "atcoder", "question_id": "abc1",
         "contest_id": "abc", "contest_date": "2024-09-10T00:00:00", "starter_code": "", "difficulty": "easy",
         "public_test_cases": json.dumps(stdin), "private_test_cases": _lcb_private(
             [{"input": "5 5\n", "output": "10\n", "testtype": "stdin"}]), "metadata": "{}"},
        {"question_title": "B", "question_content": "Two sum.", "platform": "leetcode", "question_id": "lc2",
         "contest_id": "w1", "contest_date": "2025-03-02T00:00:00",
         "starter_code": "class Solution:\n    def twoSum(self, nums, target):\n        ",
         "difficulty": "medium", "public_test_cases": json.dumps(functional), "private_test_cases": "",
         "metadata": json.dumps({"func_name": "twoSum"})},
        {"question_title": "C", "question_content": "Old.", "platform": "codeforces", "question_id": "cf3",
         "contest_id": "1", "contest_date": "2023-05-01T00:00:00", "starter_code": "", "difficulty": "hard",
         "public_test_cases": json.dumps(stdin), "private_test_cases": "", "metadata": "{}"},
    ]


def test_livecodebench_windows_and_tests(tmp_path):
    path = write_jsonl(tmp_path / "test6.jsonl", lcb_rows())
    v5, v6 = load("livecodebench_v5", path), load("livecodebench_v6", path)
    assert [r["id"] for r in v5] == ["lcb-abc1"] and [r["id"] for r in v6] == ["lcb-lc2"]
    assert [r["id"] for r in load("livecodebench", path)] == ["lcb-lc2"]  # v6 by default
    window = load("livecodebench", path, options={"date_from": "2023-01-01", "date_to": "2026-01-01"})
    assert len(window) == 3
    stdin = v5[0]["verifier"]
    assert stdin["type"] == "unit_test" and stdin["unit_tests"] == {"inputs": ["1 2\n", "5 5\n"],
                                                                     "outputs": ["3\n", "10\n"]}
    assert "fn_name" not in stdin
    fn = v6[0]["verifier"]
    assert fn["fn_name"] == "twoSum" and fn["unit_tests"]["fn_name"] == "twoSum"
    assert v6[0]["prompt"][0]["role"] == "system"
    user = v6[0]["prompt"][1]["content"]
    assert user.startswith("### Question:\nTwo sum.") and "def twoSum" in user and user.endswith("backticks)\n\n")
    assert "# YOUR CODE HERE" in v5[0]["prompt"][1]["content"]
    with pytest.raises(EvalError, match="date_from"):
        load("livecodebench", path, options={"date_from": "March"})


def test_livecodebench_refuses_code_in_pickled_tests():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(EvalError, match="cannot decode test cases"):
        decode_tests(bad, "row 0")
    assert decode_tests(_lcb_private([{"input": "1", "output": "1"}]), "row") == [{"input": "1", "output": "1"}]


def test_ifeval_and_ifbench_layouts(tmp_path):
    # google/IFEval: key, prompt, instruction_id_list, kwargs (arrow fills unset kwargs with null)
    rows = [{"key": 1000, "prompt": "Write a poem in all lowercase.",
             "instruction_id_list": ["change_case:english_lowercase", "length_constraints:number_words"],
             "kwargs": [{"num_words": None, "relation": None},
                        {"num_words": 50, "relation": "at least"}]},
            {"key": 1001, "prompt": "Say hi.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}]
    recs = load("ifeval", write_parquet(tmp_path / "ifeval.parquet", rows))
    assert [r["id"] for r in recs] == ["ifeval-1000", "ifeval-1001"]
    v = recs[0]["verifier"]
    assert v["type"] == "ifeval" and v["instruction_id_list"] == rows[0]["instruction_id_list"]
    assert v["kwargs"] == [{}, {"num_words": 50, "relation": "at least"}] and v["mode"] == "strict"
    assert recs[0]["prompt"] == [{"role": "user", "content": "Write a poem in all lowercase."}]
    assert load("ifeval", tmp_path / "ifeval.parquet", options={"mode": "loose"})[0]["verifier"]["mode"] == "loose"
    # allenai/IFBench_test: the same columns
    ifb = load("ifbench", write_jsonl(tmp_path / "ifbench.jsonl", [
        {"key": "b1", "prompt": "Answer in 3 words.", "instruction_id_list": ["count:word_count_range"],
         "kwargs": [{"min_words": 3, "max_words": 3}]}]))
    assert ifb[0]["id"] == "ifbench-b1" and ifb[0]["domain"] == "if"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"key": 1, "prompt": "x", "instruction_id_list": ["a", "b"],
                                                 "kwargs": [{}]}])
    with pytest.raises(EvalError, match="kwargs must be a list of 2"):
        load("ifeval", bad)


def test_mmlu_redux_layout_relabels_wrong_groundtruth(tmp_path):
    # edinburgh-dawg/mmlu-redux-2.0 (per subject config): question, choices, answer, error_type, source, ...
    rows = [{"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1, "error_type": "ok", "source": "s",
             "correct_answer": None, "potential_reason": None, "subject": "elementary_mathematics"},
            {"question": "Bad?", "choices": ["a", "b", "c", "d"], "answer": 0, "error_type": "wrong_groundtruth",
             "source": "s", "correct_answer": "B", "potential_reason": "x", "subject": "virology"},
            {"question": "Sky?", "choices": ["blue", "red", "green", "black"], "answer": 0, "error_type": "ok",
             "source": "s", "correct_answer": None, "potential_reason": None, "subject": "astronomy"}]
    path = write_parquet(tmp_path / "mmlu.parquet", rows)
    recs = load("mmlu_redux", path)
    assert [r["label"] for r in recs] == ["B", "B", "A"]  # the wrong_groundtruth row takes its correct_answer
    assert recs[0]["verifier"] == {"type": "mcqa", "options": ["3", "4", "5", "6"]}
    assert "B) 4" in recs[0]["prompt"][0]["content"]
    assert len(load("mmlu_redux", path, options={"keep_errors": True})) == 3


def test_hle_text_only_and_answer_types(tmp_path):
    # cais/hle: id, question, image, image_preview, answer, answer_type, author_name, rationale, raw_subject, category
    base = {"image_preview": None, "author_name": "a", "rationale": "r", "raw_subject": "s", "category": "Math"}
    rows = [
        {**base, "id": "h1", "question": "What is 6*7?", "image": "", "answer": "42", "answer_type": "exactMatch"},
        {**base, "id": "h2", "question": "Which colour?\n\nAnswer Choices:\nA. red\nB. blue\nC. green", "image": "",
         "answer": "B", "answer_type": "multipleChoice"},
        {**base, "id": "h3", "question": "What is in the picture?", "image": "data:image/png;base64,AAAA",
         "answer": "cat", "answer_type": "exactMatch"},
    ]
    recs = load("hle", write_parquet(tmp_path / "hle.parquet", rows))
    assert [r["id"] for r in recs] == ["hle-h1", "hle-h2"]  # the question with an image is left out
    assert recs[0]["verifier"] == {"type": "math"} and recs[0]["label"] == "42"
    assert recs[1]["verifier"] == {"type": "mcqa", "options": ["red", "blue", "green"]} and recs[1]["label"] == "B"
    assert recs[0]["prompt"][0]["role"] == "system" and "Answer:" in recs[0]["prompt"][0]["content"]
    assert parse_choices("Q\nAnswer Choices:\nA. x\nB. y\nD. z") == ["x", "y"]


def test_loader_errors_name_file_and_row(tmp_path):
    with pytest.raises(EvalError, match=r"aime24: dataset file .*nope.parquet not found"):
        load("aime24", tmp_path / "nope.parquet")
    path = write_jsonl(tmp_path / "a.jsonl", [{"problem": "p", "id": 1}])
    with pytest.raises(EvalError, match=r"aime25: .*a.jsonl: 1 of 1 rows are malformed.* row 0: missing column 'answer'"):
        load("aime25", path)
    dup = write_jsonl(tmp_path / "d.jsonl", [{"problem": "p", "answer": "1", "id": 1}] * 2)
    with pytest.raises(EvalError, match="problem id 'aime25-1' appears twice"):
        load("aime25", dup)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EvalError, match="expected files of one format"):
        load("aime25", tmp_path / "x.txt")
    folder = tmp_path / "shards"
    folder.mkdir()
    write_jsonl(folder / "part-0.jsonl", [{"problem": "p0", "answer": "0", "id": 0}])
    write_jsonl(folder / "part-1.jsonl", [{"problem": "p1", "answer": "1", "id": 1}])
    assert [r["id"] for r in load("aime25", folder)] == ["aime25-0", "aime25-1"]  # a folder of shards


def test_builtin_split_follows_the_data_stage_rule(tmp_path):
    from m2rl.data import builtin
    from m2rl.data.split import is_eval
    from m2rl.records import write_records

    recs = load_builtin("builtin_math", options={"count": 60})
    expected = [r for r in builtin.generate("math", 0, 60) if is_eval(r["id"], 0.2, seed=0)]
    assert [r["id"] for r in recs] == [r["id"] for r in expected] and recs
    assert all(r["verifier"] == e["verifier"] and r["label"] == e["label"] for r, e in zip(recs, expected, strict=True))
    other = load_builtin("builtin_math", options={"count": 60, "eval_fraction": 0.5, "split_seed": 3, "max_eval": 4})
    assert [r["id"] for r in other] == [r["id"] for r in builtin.generate("math", 0, 60)
                                         if is_eval(r["id"], 0.5, seed=3)][:4]
    with pytest.raises(RegistryError, match="builtin_math: options.colour: unknown parameter"):
        load_builtin("builtin_math", options={"colour": 1})
    # a variant of the source (its kinds, the last-number fallback) is held out the same way
    opts = {"count": 60, "kinds": ["mental"], "allow_last_number": True}
    mental = load_builtin("builtin_math", options=opts)
    variant = builtin.Variant(("mental",), True)
    assert [r["id"] for r in mental] == [r["id"] for r in builtin.generate("math", 0, 60, variant)
                                          if is_eval(r["id"], 0.2, seed=0)] and mental
    assert all(r["verifier"] == {"type": "math", "allow_last_number": True} for r in mental)
    with pytest.raises(EvalError, match="builtin_math: options.kinds: unknown math kind 'poetry'"):
        load_builtin("builtin_math", options={"kinds": ["poetry"]})
    # with a path: the data stage's eval parquet, this domain's rows only
    write_records(tmp_path / "eval.parquet", builtin.generate("code", 0, 5) + builtin.generate("math", 0, 3))
    assert [r["domain"] for r in load("builtin_code", tmp_path / "eval.parquet")] == ["code"] * 5
    with pytest.raises(EvalError, match="no agent records"):
        load("builtin_agent", tmp_path / "eval.parquet")


def load_builtin(name, **kw):
    return get_benchmark(name).loader(BenchmarkSpec(name=name, **kw))


def test_study_benchmarks_tie_builtin_to_the_study_split(tmp_path):
    from m2rl.evaluate.stage import study_benchmarks
    from m2rl.records import write_records
    from m2rl.spec import StudySpec

    study = StudySpec.model_validate({
        "artifact_root": str(tmp_path / "art"),
        "data": {"eval_fraction": 0.3, "seed": 5,
                 "domains": {"math": {"sources": [{"type": "builtin", "options": {"seed": 2, "count": 50,
                                                                                   "kinds": ["mental"]}}],
                                      "max_eval": 7},
                             "code": {}}},
        "evaluate": {"benchmarks": [{"name": "builtin_math"}, {"name": "builtin_code", "options": {"count": 9}},
                                    {"name": "aime24", "path": "x.parquet"}]},
    })
    math, code, aime = study_benchmarks(study)
    assert math.options == {"eval_fraction": 0.3, "split_seed": 5, "max_eval": 7, "seed": 2, "count": 50,
                            "kinds": ["mental"]}
    assert code.options["count"] == 9 and code.options["split_seed"] == 5 and code.path is None
    assert aime.path == "x.parquet"
    from m2rl.data import builtin

    write_records(tmp_path / "art" / "data" / "eval" / "math.parquet", builtin.generate("math", 0, 2))
    math, code, _ = study_benchmarks(study)
    assert math.path == str(tmp_path / "art" / "data" / "eval" / "math.parquet") and code.path is None

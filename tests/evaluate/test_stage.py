"""The evaluate stage end to end with the hf backend on a tiny random model: generation, scoring by the
real verifiers, metrics, caching, resume, bad input, MLflow logging and the `m2rl eval` command."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from m2rl.evaluate import EvalError, evaluate, get_benchmark, summarize
from m2rl.evaluate.backends import hf as hf_backend
from m2rl.registry import RegistryError
from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

SETTINGS = EvaluateSpec(batch_size=2, bootstrap=100, score_workers=1)


def benches(k_math=2, limit=3):
    return [BenchmarkSpec(name="builtin_math", k=k_math, limit=limit, max_new_tokens=6),
            BenchmarkSpec(name="builtin_if", k=1, limit=2, max_new_tokens=6)]


def samples(out, bench):
    return pq.read_table(f"{out}/{bench}/samples.parquet").to_pylist()


def test_hf_end_to_end_generates_scores_and_summarises(tiny_model, tmp_path):
    from m2rl.verifiers import score_batch

    out = tmp_path / "eval" / "base"
    res = evaluate(tiny_model, benches(), str(out), settings=SETTINGS, model_name="base", track=False)
    assert res.generated_samples == 3 * 2 + 2 and res.reused_samples == 0 and res.generated_tokens > 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["model"] == "base" and doc["backend"] == "hf" and set(doc["benchmarks"]) == {"builtin_math", "builtin_if"}
    for bench, k in (("builtin_math", 2), ("builtin_if", 1)):
        rows = samples(out, bench)
        records = get_benchmark(bench).loader(BenchmarkSpec(name=bench))[: 3 if k == 2 else 2]
        assert [(r["problem_id"], r["sample_index"]) for r in rows] == [(rec["id"], i) for rec in records
                                                                          for i in range(k)]
        assert all(r["prompt"].startswith("<|im_start|>") and r["prompt"].endswith("<|im_start|>assistant\n")
                   for r in rows)
        # the stored scores are the verifiers' scores of the stored responses
        rescored = score_batch([rec for rec in records for _ in range(k)], [r["response"] for r in rows], workers=1)
        assert [r["score"] for r in rows] == [s.value for s in rescored]
        table = [[r["score"] for r in rows[i * k:(i + 1) * k]] for i in range(len(records))]
        answers = [[r["answer"] for r in rows[i * k:(i + 1) * k]] for i in range(len(records))] \
            if bench == "builtin_math" else None
        expected = summarize(table, answers, resamples=100, seed=0)
        assert res.metrics[bench] == expected
        assert {k2: doc["benchmarks"][bench][k2] for k2 in expected} == expected
    assert "maj_at_k" in res.metrics["builtin_math"] and "maj_at_k" not in res.metrics["builtin_if"]
    assert res.domain_metrics == {"if": {"avg_at_k": res.metrics["builtin_if"]["avg_at_k"], "n_benchmarks": 1.0},
                                  "math": {"avg_at_k": res.metrics["builtin_math"]["avg_at_k"], "n_benchmarks": 1.0}}
    assert not (out / "builtin_math" / ".partial").exists()
    # the analysis stage reads this folder as written (the eval-folder contract)
    from m2rl.analysis.inputs import EvalFolder

    folder = EvalFolder.load("base", str(out))
    assert folder.accuracy("builtin_math") == res.metrics["builtin_math"]["avg_at_k"]
    scores = folder.problem_scores("builtin_math")
    assert sum(scores.values()) / len(scores) == pytest.approx(res.metrics["builtin_math"]["avg_at_k"])
    # the same seed gives the same samples (no reuse: a fresh generation elsewhere)
    again = tmp_path / "again"
    evaluate(tiny_model, benches(), str(again), settings=SETTINGS.model_copy(update={"reuse_samples": False}),
             track=False)
    assert [r["response"] for r in samples(again, "builtin_math")] == [r["response"] for r in samples(out, "builtin_math")]


class Planted:
    """A generator that answers the first problem of each batch correctly and the rest wrongly."""

    name = "hf"
    built = 0

    def __init__(self, folder, options=None):
        type(self).built += 1
        self.generated_tokens = 0
        self.calls = 0

    def render(self, messages):
        return json.dumps(messages)

    def generate(self, prompts, n, sampling, seed):
        self.calls += 1
        out = []
        for p in prompts:
            rec = self.by_prompt[p]
            right = rec["id"] in self.correct
            if rec["verifier"]["type"] == "mcqa":
                text = f"Answer: {rec['label'] if right else self.wrong_letter(rec)}"
            else:
                text = f"Answer: \\boxed{{{rec['label'] if right else 'no answer here'}}}"
            out.append([text] * n)
        return out

    @staticmethod
    def wrong_letter(rec):
        return next(c for c in "ABCD" if c != rec["label"])

    def close(self):
        pass


@pytest.fixture
def planted(monkeypatch):
    import m2rl.evaluate.stage as stage

    Planted.built = 0
    recs = {}
    for bench in ("builtin_math", "builtin_science"):
        for r in get_benchmark(bench).loader(BenchmarkSpec(name=bench))[:4]:
            recs[json.dumps(r["prompt"])] = r
    Planted.by_prompt = recs
    Planted.correct = {r["id"] for i, r in enumerate(recs.values()) if i % 4 == 0}  # problem 0 of each benchmark
    monkeypatch.setattr(stage, "get_backend", lambda name: Planted)
    return Planted


def test_planted_answers_scored_by_the_real_verifiers(planted, tiny_model, tmp_path):
    specs = [BenchmarkSpec(name=b, k=2, limit=4) for b in ("builtin_math", "builtin_science")]
    res = evaluate(tiny_model, specs, str(tmp_path / "e"), settings=SETTINGS, track=False)
    for bench in ("builtin_math", "builtin_science"):
        m = res.metrics[bench]
        # one problem in four answered right in both samples: every metric is exactly 1/4
        assert (m["avg_at_k"], m["pass_at_1"], m["pass_at_2"], m["maj_at_k"]) == (0.25, 0.25, 0.25, 0.25), bench
        rows = samples(tmp_path / "e", bench)
        assert [r["score"] for r in rows] == [1.0, 1.0] + [0.0] * 6
        assert rows[0]["answer"] is not None  # the verifier's extracted answer is what maj@K votes on
    assert planted.built == 1  # one model load for every benchmark


def test_cache_reuses_samples_and_only_rescores(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "e"
    first = evaluate(tiny_model, benches(), str(out), settings=SETTINGS, track=False)
    path = out / "builtin_math" / "samples.parquet"
    table = pq.read_table(path)
    before = table.to_pylist()
    # tamper with the stored scores: a second call must rescore, not trust them
    meta = table.schema.metadata
    tampered = table.set_column(table.schema.get_field_index("score"), "score",
                                __import__("pyarrow").array([0.5] * table.num_rows))
    pq.write_table(tampered.replace_schema_metadata(meta), path)

    def boom(*a, **k):
        raise AssertionError("the model must not be loaded when every sample is cached")

    monkeypatch.setattr(hf_backend.HFGenerator, "__init__", boom)
    second = evaluate(tiny_model, benches(), str(out), settings=SETTINGS, track=False)
    assert second.generated_samples == 0 and second.reused_samples == first.generated_samples
    assert samples(out, "builtin_math") == before and second.metrics == first.metrics
    # a different K (or sampling, or seed) is another generation: nothing reused
    monkeypatch.undo()
    third = evaluate(tiny_model, benches(k_math=1), str(out), settings=SETTINGS, track=False)
    assert third.generated_samples == 3 + 2 - 2 and third.reused_samples == 2  # builtin_if unchanged


def test_resume_after_interruption(tiny_model, tmp_path, monkeypatch):
    out = tmp_path / "e"
    spec = [BenchmarkSpec(name="builtin_math", k=2, limit=5, max_new_tokens=4)]
    real = hf_backend.HFGenerator.generate
    calls = {"n": 0}

    def flaky(self, prompts, n, sampling, seed):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the pod is killed during the third batch
        return real(self, prompts, n, sampling, seed)

    monkeypatch.setattr(hf_backend.HFGenerator, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny_model, spec, str(out), settings=SETTINGS, track=False)
    assert not (out / "metrics.json").exists() and not (out / "builtin_math" / "samples.parquet").exists()
    assert len(list((out / "builtin_math" / ".partial").rglob("part-*.parquet"))) == 2
    res = evaluate(tiny_model, spec, str(out), settings=SETTINGS, track=False)
    assert res.reused_samples == 2 * 2 * 2 and res.generated_samples == 1 * 2  # 2 batches kept, 1 problem left
    rows = samples(out, "builtin_math")
    assert len(rows) == 10 and len({(r["problem_id"], r["sample_index"]) for r in rows}) == 10
    assert not (out / "builtin_math" / ".partial").exists()


def test_metrics_json_keeps_other_benchmarks_of_the_same_model(tiny_model, tmp_path):
    out = tmp_path / "e"
    a, b = benches()
    evaluate(tiny_model, [a], str(out), settings=SETTINGS, track=False)
    evaluate(tiny_model, [b], str(out), settings=SETTINGS, track=False)
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["benchmarks"]) == {"builtin_math", "builtin_if"} and set(doc["domains"]) == {"math", "if"}


class Recorder:
    built = 0

    def __init__(self, *a, **k):
        type(self).built += 1
        raise AssertionError("no generation on bad input")


@pytest.mark.parametrize("case", ["unknown benchmark", "missing dataset", "no weights", "unknown backend",
                                  "duplicate", "unknown verifier"])
def test_bad_input_fails_before_generation(case, tiny_model, tmp_path, monkeypatch):
    import m2rl.evaluate.stage as stage

    real_get = stage.get_backend
    monkeypatch.setattr(stage, "get_backend", lambda name: (real_get(name), Recorder)[1])
    model, specs, backend = tiny_model, [BenchmarkSpec(name="builtin_math", limit=1)], None
    empty = tmp_path / "empty-model"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    match = {
        "unknown benchmark": "unknown benchmark 'aime2024'",
        "missing dataset": r"aime24: dataset file .*/missing.parquet not found",
        "no weights": r"model .*empty-model.*no \*.safetensors weights",
        "unknown backend": "evaluate.backend: unknown evaluation backend 'sglang'; known: hf, vllm",
        "duplicate": "benchmark 'builtin_math' listed twice",
        "unknown verifier": r"builtin_math: record 'r1': verifier.type: unknown verifier type 'oracle'",
    }[case]
    if case == "unknown benchmark":
        specs = [specs[0], BenchmarkSpec(name="aime2024")]
    elif case == "missing dataset":
        specs = [specs[0], BenchmarkSpec(name="aime24", path=str(tmp_path / "missing.parquet"))]
    elif case == "no weights":
        model = str(empty)
    elif case == "unknown backend":
        backend = "sglang"
    elif case == "duplicate":
        specs = specs * 2
    else:
        from m2rl.records import write_records

        write_records(tmp_path / "eval.parquet", [{"id": "r1", "domain": "math", "label": "1", "source": "t",
                                                   "prompt": [{"role": "user", "content": "1?"}],
                                                   "verifier": {"type": "oracle"}}])
        specs = [BenchmarkSpec(name="builtin_math", path=str(tmp_path / "eval.parquet"))]
    with pytest.raises((EvalError, RegistryError), match=match):
        evaluate(model, specs, str(tmp_path / "out"), backend=backend, settings=SETTINGS, track=False)
    assert Recorder.built == 0 and not (tmp_path / "out").exists()


def test_logs_eval_metrics_to_mlflow(planted, tiny_model, tmp_path, mlflow_server, monkeypatch):
    import mlflow

    from m2rl import tracking
    from m2rl.spec import StudySpec

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    study = StudySpec(name="eval-log-test")
    parent = tracking.start_study(study)
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    specs = [BenchmarkSpec(name="builtin_math", k=2, limit=4), BenchmarkSpec(name="builtin_science", k=1, limit=4)]
    with tracking.stage_run("evaluate", model="single-math"):  # the caller opens the run (the stage glue, the CLI)
        res = evaluate(tiny_model, specs, str(tmp_path / "e"), settings=SETTINGS, model_name="single-math")
    runs = tracking.child_runs(parent)
    assert len(runs) == 1
    run = runs[0]
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["m2rl.stage"] == "evaluate" and tags["m2rl.paradigm"] == "single" and tags["m2rl.domain"] == "math"
    assert tags["m2rl.model"] == "single-math"
    for bench, m in res.metrics.items():
        for name, value in m.items():
            assert metrics[f"eval/{bench}/{name}"] == pytest.approx(value)
    assert metrics["eval/domain_math/avg_at_k"] == pytest.approx(res.metrics["builtin_math"]["avg_at_k"])
    assert {"eval/builtin_math/pass_at_2", "eval/builtin_math/maj_at_k", "eval/builtin_math/ci_low"} <= set(metrics)
    # inside any active run: logged there, no run of its own
    with mlflow.start_run(run_name="outer") as outer:
        evaluate(tiny_model, specs, str(tmp_path / "e"), settings=SETTINGS, model_name="mix")
    assert "eval/builtin_science/avg_at_k" in mlflow.get_run(outer.info.run_id).data.metrics


def test_eval_command_prints_the_table(tiny_model, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from m2rl.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "cli-eval"
    args = ["eval", tiny_model, "-b", "builtin_math", "-b", "builtin_agent", "--limit", "2", "--k", "2",
            "--max-new-tokens", "4", "--out", str(out), "--name", "base"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "builtin_math" in r.output and "builtin_agent" in r.output and "Avg@K" in r.output
    assert "pass@2" in r.output and "8 samples generated" in r.output.replace("\n", " ")
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["model"] == "base" and doc["benchmarks"]["builtin_agent"]["k"] == 2
    r = CliRunner().invoke(app, ["eval", tiny_model, "-b", "nope", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown benchmark 'nope'" in r.output


def test_eval_folder_on_s3(planted, tiny_model, s3_env, tmp_cache):
    from m2rl import storage

    out = f"{s3_env}/artifacts/eval/mix"
    specs = [BenchmarkSpec(name="builtin_science", k=2, limit=4)]
    first = evaluate(tiny_model, specs, out, settings=SETTINGS, track=False)
    assert storage.exists(f"{out}/metrics.json") and storage.exists(f"{out}/builtin_science/samples.parquet")
    assert json.loads(storage.read_text(f"{out}/metrics.json"))["benchmarks"]["builtin_science"]["avg_at_k"] == 0.25
    again = evaluate(tiny_model, specs, out, settings=SETTINGS, track=False)
    assert again.generated_samples == 0 and again.reused_samples == first.generated_samples == 8


def test_cache_is_keyed_by_the_records_content_not_only_their_ids(tiny_model, tmp_path):
    from m2rl.evaluate.benchmarks.builtin import _regenerate
    from m2rl.records import write_records

    data = tmp_path / "math.parquet"
    recs = _regenerate("builtin_math", "math", BenchmarkSpec(name="builtin_math", max_new_tokens=4))[:3]
    write_records(data, recs)
    spec = [BenchmarkSpec(name="builtin_math", k=2, path=str(data), max_new_tokens=4)]
    out = tmp_path / "e"
    first = evaluate(tiny_model, spec, str(out), settings=SETTINGS, track=False)
    assert first.generated_samples == 6
    assert evaluate(tiny_model, spec, str(out), settings=SETTINGS, track=False).reused_samples == 6
    # the split rebuilt: the same ids now name other problems, so nothing stored may be reused
    changed = [{**r, "prompt": [{**m, "content": m["content"] + " (again)"} for m in r["prompt"]]} for r in recs]
    write_records(data, changed)
    again = evaluate(tiny_model, spec, str(out), settings=SETTINGS, track=False)
    assert again.reused_samples == 0 and again.generated_samples == 6
    assert all(row["prompt"].count("(again)") == 1 for row in samples(out, "builtin_math"))

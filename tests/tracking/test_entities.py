"""MLflow's own entities of a study against a real `mlflow server`: every model an external LoggedModel with its
tags, card params and eval metrics (each on its benchmark's dataset), the data splits as run inputs with digests,
the samples table, the recommended model in the registry (alias moved by a rerun), and `m2rl compare` reading
the models. The stages are the glue's (`StageContext.run`) with small work functions that write the stage
contract's files and log as the real stages do (the real pipeline: tests/orchestration/test_e2e_smoke.py)."""

from __future__ import annotations

import json

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m2rl import progress, storage, tracking
from m2rl.evaluate.samples import SCHEMA
from m2rl.spec import StudySpec
from m2rl.spec.evaluate import BenchmarkSpec
from m2rl.workflow import glue

DOMAINS = ("math", "code")
GPU_HOURS = {"single-math": 0.5, "single-code": 0.7, "mix": 0.9, "distill": 0.2}
ACC = {"base": (0.1, 0.2), "single-math": (0.6, 0.2), "single-code": (0.1, 0.55), "mix": (0.7, 0.5),
       "merge-ties": (0.65, 0.5), "distill": (0.5, 0.4)}


@pytest.fixture
def spec(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    for var in ("M2RL_PARENT_RUN_ID", "MLFLOW_EXPERIMENT_NAME", progress.EVENTS_ENV, glue.NO_CACHE_ENV):
        monkeypatch.delenv(var, raising=False)
    data = {"domains": {d: {"sources": [{"type": "builtin"}]} for d in DOMAINS}}
    return StudySpec.model_validate({
        "name": "entities-test", "artifact_root": str(tmp_path / "art"), "work_dir": str(tmp_path / "work"),
        "data": data, "merge": {"methods": [{"method": "ties", "params": {"density": 0.2}}]},
        "evaluate": {"benchmarks": [BenchmarkSpec(name=f"builtin_{d}").model_dump() for d in DOMAINS]},
        "tracking": {"register": True},
    })


def _parquet(uri: str, n: int, seed: int) -> None:
    table = pa.table({"id": [f"{seed}-{i}" for i in range(n)], "prompt": [f"p{seed}{i}" for i in range(n)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes(uri, sink.getvalue().to_pybytes())


def _data_work(ctx, out):
    def work() -> dict:
        counts = {"math": (6, 3), "code": (4, 2)}
        for i, (d, (n_train, n_eval)) in enumerate(counts.items()):
            _parquet(ctx.layout.train_split(d, out), n_train, i)
            _parquet(ctx.layout.eval_split(d, out), n_eval, 10 + i)
        _parquet(ctx.layout.train_split("mix", out), 8, 99)
        card = {"domains": {d: {"train": t, "eval": e, "duplicates": 0} for d, (t, e) in counts.items()},
                "mix": {"balance": "equal", "counts": {"math": 4, "code": 4}, "total": 8,
                        "shares": {"math": 0.5, "code": 0.5}}}
        storage.write_text(storage.join(out, "data_card.json"), json.dumps(card))
        return card

    return work


def _checkpoint_work(out, card):
    def work() -> dict:
        if "gpu_hours" in card:  # as the train stage logs its cost into its run
            tracking.log_batch(metrics={"cost/gpu_hours": card["gpu_hours"], "train/reward": 0.5})
        storage.write_text(storage.join(out, "card.json"), json.dumps(card))
        return card

    return work


def _eval_work(out, name):
    def work() -> dict:
        benches = {}
        for d, acc in zip(DOMAINS, ACC[name], strict=True):
            bench = f"builtin_{d}"
            benches[bench] = {"avg_at_k": acc, "ci_low": acc - 0.1, "ci_high": acc + 0.1, "domain": d}
            rows = {"problem_id": [f"{d}{i}" for i in range(3)], "sample_index": [0, 0, 0], "domain": [d] * 3,
                    "prompt": ["q"] * 3, "response": [f"answer {i} " * 400 for i in range(3)],
                    "score": [1.0, 0.0, 1.0], "details": [json.dumps({"reason": "wrong answer"}), "{}", "{}"],
                    "answer": ["1", None, "3"]}
            sink = pa.BufferOutputStream()
            pq.write_table(pa.table(rows, schema=SCHEMA), sink)
            storage.write_bytes(storage.join(out, bench, "samples.parquet"), sink.getvalue().to_pybytes())
        metrics = {f"eval/{b}/{k}": v for b, m in benches.items() for k, v in m.items() if k != "domain"}
        metrics.update({f"eval/domain_{d}/avg_at_k": a for d, a in zip(DOMAINS, ACC[name], strict=True)})
        tracking.log_batch(metrics=metrics)  # as the evaluate stage does, into the active run
        doc = {"model": name, "benchmarks": benches}
        storage.write_text(storage.join(out, "metrics.json"), json.dumps(doc))
        return doc

    return work


def _report_work(out, winner):
    def work() -> dict:
        verdict = {"a": {"label": "mix", "model": "mix"}, "b": {"label": "merge", "model": "merge-ties"},
                   "rows": [{"scope": "average", "winner": winner, "delta": 0.03, "delta_ci": [-0.02, 0.08]}]}
        storage.write_text(storage.join(out, "analysis.json"), json.dumps({"verdict": verdict}))
        storage.write_text(storage.join(out, "report.html"), "<!DOCTYPE html><p>report</p>")
        storage.write_text(storage.join(out, "report.md"), "# report")
        return {"verdict": [f"the verdict: {winner}"]}

    return work


def _study(ctx) -> dict[str, str]:
    """Run every stage of the fake study through the glue; model name -> its evaluate run id."""
    lay = ctx.layout
    ctx.run("data", "data", lay.data, key={}, inputs=[], work=_data_work(ctx, lay.data), done=["data_card.json"])
    for run in (*DOMAINS, "mix"):
        name = "mix" if run == "mix" else f"single-{run}"
        card = {"run": run, "data": lay.train_split(run), "records": 6, "steps": 2, "device": "cpu",
                "gpu_hours": GPU_HOURS[name], "reward_curve": [[1, 0.5]], "domain_counts": {run: 6}}
        ctx.run("train", name, lay.model(name), key={}, inputs=[lay.data], work=_checkpoint_work(lay.model(name), card),
                done=["card.json"])
    experts = [lay.model(f"single-{d}") for d in DOMAINS]
    card = {"method": "ties", "label": "ties", "params": {"density": 0.2}, "dtype": "base", "models": experts}
    ctx.run("merge", "merge-ties", lay.model("merge-ties"), key={}, inputs=experts,
            work=_checkpoint_work(lay.model("merge-ties"), card), done=["card.json"])
    # a synthetic distilled model (issue 19's paradigm): nothing of it is special here
    dcard = {"teachers": "single-math,single-code", "gpu_hours": GPU_HOURS["distill"], "device": "cpu"}
    ctx.run("distill", "distill", lay.model("distill"), key={}, inputs=experts,
            work=_checkpoint_work(lay.model("distill"), dcard), done=["card.json"])
    evals = {}
    for name in ACC:
        ref = ctx.spec.base_model if name == "base" else lay.model(name)
        evals[name] = ctx.run("evaluate", name, lay.eval(name), key={}, inputs=[ref, lay.data],
                              work=_eval_work(lay.eval(name), name), done=["metrics.json"]).mlflow_run_id
    return evals


def test_study_entities_registry_and_compare(spec, mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    from m2rl.analysis.compare import compare

    parent, _ = tracking.open_parent(spec)
    ctx = glue.StageContext(spec.model_dump_json(), parent)
    evals = _study(ctx)
    client = MlflowClient()
    exp = mlflow.get_run(parent).info.experiment_id

    # one READY external LoggedModel per study model, tagged, with its card's figures and its metrics
    models = mlflow.search_logged_models(experiment_ids=[exp], output_format="list",
                                         filter_string=f"tags.`{tracking.TAG_STUDY_RUN}` = '{parent}'")
    by_name = {m.name: m for m in models}
    assert sorted(by_name) == sorted(ACC) and len(models) == len(ACC)
    for name, m in by_name.items():
        assert str(m.status) == "READY" and m.tags["mlflow.model.isExternal"] == "true", name
        assert m.tags[tracking.TAG_STUDY] == "entities-test" and m.tags[tracking.TAG_MODEL] == name
        paradigm = "base" if name == "base" else name.split("-")[0]
        assert m.tags[tracking.TAG_PARADIGM] == paradigm
    assert by_name["single-math"].tags[tracking.TAG_DOMAIN] == "math"
    merge = by_name["merge-ties"]
    assert merge.tags[tracking.TAG_METHOD] == "ties" and merge.tags[tracking.TAG_PARENTS] == "single-math,single-code"
    assert merge.tags[tracking.TAG_CHECKPOINT] == ctx.layout.model("merge-ties")
    assert merge.params["method"] == "ties" and merge.params["params.density"] == "0.2"
    assert by_name["distill"].tags[tracking.TAG_PARENTS] == "single-math,single-code"
    assert by_name["base"].tags[tracking.TAG_CHECKPOINT] == spec.base_model
    assert by_name["base"].source_run_id == parent
    mix = by_name["mix"]
    assert mix.params["steps"] == "2" and mix.params["gpu_hours"] == "0.9" and "reward_curve" not in mix.params
    assert mix.source_run_id != parent and mlflow.get_run(mix.source_run_id).data.tags[tracking.TAG_STAGE] == "train"

    # the data stage's splits as inputs of its run, and the same datasets (name and digest) on the train and
    # evaluate runs and on the eval metrics of every model
    children = {(r.data.tags[tracking.TAG_STAGE], r.data.tags.get(tracking.TAG_MODEL, "")): r
                for r in tracking.child_runs(parent)}
    data_in = {i.dataset.name: i.dataset for i in children[("data", "")].inputs.dataset_inputs}
    assert set(data_in) == {"train/math", "train/code", "train/mix", "eval/math", "eval/code"}
    assert json.loads(data_in["train/mix"].profile)["num_rows"] == 8
    assert json.loads(data_in["eval/math"].source)["uri"] == ctx.layout.eval_split("math")
    assert all(len(d.digest) == 16 for d in data_in.values())
    for run, name in (("math", "single-math"), ("code", "single-code"), ("mix", "mix")):
        ins = children[("train", name)].inputs.dataset_inputs
        assert [(i.dataset.name, i.dataset.digest) for i in ins] == [(f"train/{run}", data_in[f"train/{run}"].digest)]
        assert [t.value for t in ins[0].tags if t.key == "mlflow.data.context"] == ["training"]
    for name, run_id in evals.items():
        run = client.get_run(run_id)
        assert {(i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs} == {
            (f"eval/{d}", data_in[f"eval/{d}"].digest) for d in DOMAINS}
        assert [i.model_id for i in run.inputs.model_inputs] == [by_name[name].model_id]
        on_model = {(m.key, m.dataset_name): m.value for m in by_name[name].metrics}
        for d, acc in zip(DOMAINS, ACC[name], strict=True):
            assert on_model[(f"eval/builtin_{d}/avg_at_k", f"eval/{d}")] == pytest.approx(acc)
            assert on_model[(f"eval/domain_{d}/avg_at_k", None)] == pytest.approx(acc)
        assert run.data.metrics["eval/builtin_math/avg_at_k"] == pytest.approx(ACC[name][0])  # the run's too
        # the samples as a table artifact, capped, read back as a DataFrame
        table = tracking.load_samples_table(run_id)
        assert len(table) == 6 and set(table["benchmark"]) == {"builtin_math", "builtin_code"}
        assert {"problem_id", "response", "score", "reason"} <= set(table.columns)
        assert table["response"].str.len().max() == tracking.datasets.MAX_TEXT_CHARS
        assert "wrong answer" in set(table["reason"])
    # costs: own GPU-hours on the trained models, the parents' on a merge
    metric = lambda m, k: next(x.value for x in m.metrics if x.key == k)  # noqa: E731
    assert metric(mix, "cost/gpu_hours") == pytest.approx(0.9)
    assert metric(merge, "cost/total_gpu_hours") == pytest.approx(1.2)
    assert metric(by_name["distill"], "cost/total_gpu_hours") == pytest.approx(1.4)
    assert not [x for x in by_name["base"].metrics if x.key.startswith("cost/")]

    # the report: mix and merge-ties tie, so the cheaper (mix: 0.9 GPU-hours against 1.2) is recommended
    rep = ctx.run("report", "report", ctx.layout.report, key={}, inputs=[], work=_report_work(ctx.layout.report, "tie"),
                  done=["report.html"])
    assert not rep.cached
    v1 = client.get_model_version_by_alias("entities-test", "recommended")
    assert v1.source == f"models:/{mix.model_id}" and "cheaper" in v1.description
    linked = json.loads(client.get_logged_model(mix.model_id).tags["mlflow.modelVersions"])
    assert [(v["name"], str(v["version"])) for v in linked] == [("entities-test", v1.version)]  # "Registered models"
    assert {a.path for a in client.list_logged_model_artifacts(mix.model_id, "report")} == {
        "report/report.html", "report/report.md"}
    note = mlflow.get_run(parent).data.tags["mlflow.note.content"]
    assert f"tags.`m2rl.study_run` = '{parent}'" in note and "Recommended: **mix**" in note
    assert "the verdict: tie" in note and "report/report.html" in note
    # a rerun of the report with merge winning moves the alias; the earlier version stays
    monkeypatch.setenv(glue.NO_CACHE_ENV, "1")
    ctx.run("report", "report", ctx.layout.report, key={}, inputs=[], work=_report_work(ctx.layout.report, "merge"),
            done=["report.html"])
    monkeypatch.delenv(glue.NO_CACHE_ENV)
    v2 = client.get_model_version_by_alias("entities-test", "recommended")
    assert v2.source == f"models:/{merge.model_id}" and int(v2.version) == int(v1.version) + 1
    versions = client.search_model_versions("name = 'entities-test'")
    assert sorted(int(v.version) for v in versions) == [1, 2]

    # `m2rl compare` reads the models: accuracy per model and benchmark, cost of the training runs
    res = compare(spec.name, tracking_uri=mlflow_server)
    study = next(s for s in res.studies if s.run_id == parent)
    assert study.source == "models"
    assert [m[0] for m in study.layout["models"]] == ["base", "single-math", "single-code", "mix", "merge-ties",
                                                       "distill"]
    assert study.metrics["acc/merge-ties/builtin_code"] == pytest.approx(0.5)
    assert study.metrics["cost/mix_over_singles"] == pytest.approx(0.9 / 1.2)
    assert study.table("accuracy") is not None

    # a rerun of a stage replaces its model (one model per study and name)
    out = ctx.layout.model("mix")
    card = {"run": "mix", "gpu_hours": 0.9}
    ctx.run("train", "mix", out, key={"changed": 1}, inputs=[], work=_checkpoint_work(out, card), done=["card.json"])
    (model,) = tracking.study_models(parent, name="mix")
    assert str(model.status) == "READY" and model.model_id != mix.model_id

    # a failing stage leaves its model FAILED
    def boom() -> dict:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        ctx.run("train", "mix", out, key={"changed": 2}, inputs=[], work=boom, done=["card.json"])
    (failed,) = tracking.study_models(parent, name="mix")
    assert str(failed.status) == "FAILED" and tracking.find_model(parent, "mix") is None

    # the cached stage under another parent run: the copied run is the source of the new study's model
    ctx.run("train", "mix", out, key={"changed": 3}, inputs=[], work=_checkpoint_work(out, card), done=["card.json"])
    other, _ = tracking.open_parent(spec, resume=False)
    ctx2 = glue.StageContext(spec.model_dump_json(), other)
    cached = ctx2.run("train", "mix", out, key={"changed": 3}, inputs=[], work=_checkpoint_work(out, card),
                      done=["card.json"])
    assert cached.cached
    copy = tracking.find_model(other, "mix")
    assert copy is not None and copy.source_run_id == cached.mlflow_run_id
    assert tracking.model_metrics(copy)["cost/total_gpu_hours"] == pytest.approx(0.9)
    assert tracking.find_model(parent, "mix").model_id != copy.model_id


def test_recommend_prefers_the_paradigm_ranking():
    """With the analysis' ranking of the paradigms (best on average, those within its interval, the cheapest of
    them) the recommendation is that cheapest paradigm's model; without it, the a-against-b verdict decides."""
    ab = {"a": {"label": "mix", "model": "mix"}, "b": {"label": "merge", "model": "merge-ties"},
          "rows": [{"scope": "average", "winner": "merge", "delta": -0.1, "delta_ci": [-0.2, -0.05]}]}
    assert tracking.recommend(ab, {})[0] == "merge-ties"
    ranked = {**ab, "paradigms": {"models": {"mix": "mix", "merge": "merge-ties", "distill": "distill"},
                                  "cost": {"mix": 0.9, "merge": 1.2, "distill": 0.3},
                                  "rows": [{"scope": "average", "best": "merge", "within_ci_of_best": ["merge", "distill"],
                                            "cheapest_within_ci": "distill"}]}}
    name, why = tracking.recommend(ranked, {})
    assert name == "distill" and "cheapest" in why and "0.3 GPU-hours" in why
    assert tracking.recommend({"rows": []}, {}) is None

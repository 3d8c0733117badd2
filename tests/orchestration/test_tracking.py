"""MLflow side of the stage glue against a real MLflow server: child runs, supersede, copy under a new parent."""

from __future__ import annotations

import mlflow
import pytest

from m2rl import progress, storage, tracking
from m2rl.spec import StudySpec
from m2rl.workflow import glue


@pytest.fixture
def spec(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv(progress.EVENTS_ENV, raising=False)
    monkeypatch.delenv(glue.NO_CACHE_ENV, raising=False)
    return StudySpec(name="track-test", artifact_root=str(tmp_path / "art"), work_dir=str(tmp_path / "work"))


def _work(out: str):
    def work() -> dict:
        mlflow.log_metric("train/reward", 0.25, step=1)
        mlflow.log_metric("train/reward", 0.5, step=2)
        mlflow.log_param("steps", 2)
        with storage.output_dir(out) as tmp:
            (tmp / "card.json").write_text("{}")
        return {"ok": True}

    return work


def test_child_runs_resume_and_copy(spec, monkeypatch):
    parent, resumed = tracking.open_parent(spec)
    assert not resumed and mlflow.get_run(parent).info.status == "RUNNING"
    tracking.finish_run(parent)
    assert tracking.open_parent(spec) == (parent, True)  # same spec: the same parent run is resumed

    ctx = glue.StageContext(spec.model_dump_json(), parent)
    out = ctx.layout.model("mix")
    first = ctx.run("train", "mix", out, key={}, inputs=[], work=_work(out), done=["card.json"])
    run = mlflow.get_run(first.mlflow_run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags[tracking.TAG_PARADIGM] == "mix"
    again = ctx.run("train", "mix", out, key={}, inputs=[], work=_work(out), done=["card.json"])
    assert again.mlflow_run_id == first.mlflow_run_id  # cached, same parent: same child run

    # A rerun of the same stage under the same parent replaces its child run.
    monkeypatch.setenv(glue.NO_CACHE_ENV, "1")
    rerun = ctx.run("train", "mix", out, key={}, inputs=[], work=_work(out), done=["card.json"])
    monkeypatch.delenv(glue.NO_CACHE_ENV)
    assert [r.info.run_id for r in tracking.child_runs(parent)] == [rerun.mlflow_run_id]
    assert mlflow.get_run(first.mlflow_run_id).info.lifecycle_stage == "deleted"

    # Under a new parent run the cached stage gets a copy of its child run.
    other, resumed = tracking.open_parent(spec, resume=False)
    assert not resumed and other != parent
    ctx2 = glue.StageContext(spec.model_dump_json(), other)
    cached = ctx2.run("train", "mix", out, key={}, inputs=[], work=_work(out), done=["card.json"])
    assert cached.cached and cached.mlflow_run_id != rerun.mlflow_run_id
    copy = mlflow.get_run(cached.mlflow_run_id)
    assert copy.data.tags["mlflow.parentRunId"] == other and copy.data.tags["m2rl.cached_from"] == rerun.mlflow_run_id
    assert copy.data.tags[tracking.TAG_PARADIGM] == "mix" and copy.data.params == {"steps": "2"}
    history = mlflow.MlflowClient().get_metric_history(cached.mlflow_run_id, "train/reward")
    assert [(m.step, m.value) for m in history] == [(1, 0.25), (2, 0.5)]
    again = ctx2.run("train", "mix", out, key={}, inputs=[], work=_work(out), done=["card.json"])
    assert again.mlflow_run_id == cached.mlflow_run_id  # the copy is reused, not copied again
    assert [r.info.run_id for r in tracking.child_runs(other)] == [cached.mlflow_run_id]
    tracking.finish_run(other)
    assert mlflow.get_run(other).info.status == "FINISHED"

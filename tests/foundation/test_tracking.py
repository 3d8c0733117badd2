"""Tracking against a real `mlflow server` on 127.0.0.1 with its artifacts on the local S3 server."""

from __future__ import annotations

import pytest

from m2rl import tracking
from m2rl.data import run_data_stage
from m2rl.data.synthetic import write_nemotron_jsonl
from m2rl.spec import spec_from_dict


@pytest.fixture
def server_spec(mlflow_server, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    jsonl = write_nemotron_jsonl(tmp_path / "b.jsonl", 70)
    src = {"type": "nemotron_rl_blend", "path": str(jsonl)}
    return spec_from_dict({"name": "track-test", "work_dir": str(tmp_path / "work"),
                           "data": {"domains": {d: {"sources": [src]} for d in ("math", "code")}}})


def test_parent_child_runs_tags_metrics_artifacts(server_spec, monkeypatch, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    parent = tracking.start_study(server_spec)
    monkeypatch.setenv(tracking.PARENT_ENV, parent)
    with tracking.stage_run("data"):
        run_data_stage(server_spec, str(tmp_path / "data"))
    with tracking.stage_run("train", paradigm="single", domain="math", model="single-math"):
        for step in range(3):
            mlflow.log_metric("train/math/reward", 0.1 * step, step=step)
        mlflow.log_metric("cost/gpu_hours", 0.5)
    with tracking.stage_run("merge", paradigm="merge", merge_method="ties", model="merge-ties"):
        mlflow.log_metric("eval/builtin_math/avg_at_k", 0.25)

    client = MlflowClient(server_spec.tracking.uri or mlflow.get_tracking_uri())
    children = {r.data.tags["m2rl.stage"]: r for r in tracking.child_runs(parent)}
    assert set(children) == {"data", "train", "merge"}
    train = children["train"]
    assert train.data.tags["m2rl.paradigm"] == "single" and train.data.tags["m2rl.domain"] == "math"
    assert train.data.tags["m2rl.study"] == "track-test"
    hist = client.get_metric_history(train.info.run_id, "train/math/reward")
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == pytest.approx([0.0, 0.1, 0.2])
    assert children["merge"].data.tags["m2rl.merge_method"] == "ties"
    assert children["merge"].data.metrics["eval/builtin_math/avg_at_k"] == 0.25
    data_run = children["data"]
    assert data_run.data.metrics["data/math/train"] > 0
    # artifacts travel through the server's proxy into the S3 bucket
    card = mlflow.artifacts.load_dict(f"runs:/{data_run.info.run_id}/data_card.json")
    assert card["domains"]["math"]["train"] == data_run.data.metrics["data/math/train"]
    spec_art = mlflow.artifacts.load_dict(f"runs:/{parent}/spec.json")
    assert spec_art["name"] == "track-test"
    assert client.get_run(parent).data.params["train.lr"] == "2e-06"


def test_default_is_sqlite_under_work_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = spec_from_dict({"work_dir": str(tmp_path / "w")})
    assert tracking.tracking_uri(spec) == f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking.tracking_uri(spec) == "http://127.0.0.1:1"


def test_bad_paradigm_rejected():
    with pytest.raises(ValueError, match="paradigm"):
        with tracking.stage_run("train", paradigm="mixed"):
            pass


# -- a run never stays RUNNING after its process is gone ---------------------------------------------------
@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    """A SQLite MLflow store of this test's own; yields a client on it."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    tracking.configure(None)
    yield MlflowClient()
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_runs_of_dead_owners_are_marked_killed(sqlite_store):
    import mlflow

    from m2rl import storage

    client = sqlite_store
    exp = mlflow.get_experiment_by_name("m2rl").experiment_id
    me = storage.current_owner()

    def left_running(stage, pid, start="", host=me.host, model=None):
        tags = {tracking.TAG_STAGE: stage, tracking.TAG_OWNER_HOST: host, tracking.TAG_OWNER_PID: str(pid),
                tracking.TAG_OWNER_START: start}
        if model:
            tags[tracking.TAG_MODEL] = model
        return client.create_run(exp, tags=tags).info.run_id

    dead = left_running("merge", _dead_pid(), model="merge-ties")
    reused = left_running("merge", me.pid, start=me.start + "9", model="merge-ties")  # our pid, another process
    live = left_running("merge", me.pid, start=me.start, model="merge-ties")  # this process: alive
    elsewhere = left_running("merge", 1, host=me.host + "-other", model="merge-ties")  # cannot tell: kept
    other_item = left_running("merge", _dead_pid(), model="merge-sce")  # another item: its own rerun's business
    no_owner = client.create_run(exp, tags={tracking.TAG_STAGE: "merge", tracking.TAG_MODEL: "merge-ties"}).info.run_id
    with tracking.stage_run("merge", model="merge-ties") as run:
        assert run.data.tags[tracking.TAG_OWNER_PID] == str(me.pid)
    status = {r: client.get_run(r).info.status for r in (dead, reused, live, elsewhere, other_item, no_owner)}
    assert status == {dead: "KILLED", reused: "KILLED", live: "RUNNING", elsewhere: "RUNNING",
                      other_item: "RUNNING", no_owner: "RUNNING"}
    assert client.get_run(dead).data.tags[tracking.TAG_END_REASON].startswith("stale: its owner, pid ")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_signals_and_errors_end_the_run(sqlite_store):
    import os
    import signal
    import threading
    import time

    client = sqlite_store
    with pytest.raises(RuntimeError):
        with tracking.stage_run("data") as failed:
            raise RuntimeError("source unreadable")
    run = client.get_run(failed.info.run_id)
    assert run.info.status == "FAILED" and run.data.tags[tracking.TAG_END_REASON] == "RuntimeError: source unreadable"
    with pytest.raises(KeyboardInterrupt):
        with tracking.stage_run("data") as interrupted:
            raise KeyboardInterrupt
    assert client.get_run(interrupted.info.run_id).info.status == "KILLED"
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("SIGTERM is handled by the test runner here")
    with pytest.raises(tracking.StageTerminated) as exc:
        with tracking.stage_run("data") as terminated:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler raises in the main thread at once, interrupting the sleep
    assert exc.value.code == 128 + signal.SIGTERM
    run = client.get_run(terminated.info.run_id)
    assert run.info.status == "KILLED" and run.data.tags[tracking.TAG_END_REASON] == "SIGTERM received"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

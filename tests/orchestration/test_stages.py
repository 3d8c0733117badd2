"""Stage records: a finished stage is skipped when its inputs' fingerprints match; events; published artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from m2rl import progress, storage
from m2rl.spec import StudySpec
from m2rl.workflow import glue


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite MLflow store for the module (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def ctx(tmp_path, monkeypatch, store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv(glue.NO_CACHE_ENV, raising=False)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv(progress.EVENTS_ENV, str(tmp_path / "events.jsonl"))
    spec = StudySpec(name="t", artifact_root=str(tmp_path / "art"), work_dir=str(tmp_path / "work"))
    return glue.StageContext(spec.model_dump_json(), "")


def _writer(out: str, calls: list[int], text: str = "x"):
    def work() -> dict:
        calls.append(1)
        with storage.output_dir(out) as tmp:
            (tmp / "result.txt").write_text(text)
        return {"n": len(calls)}

    return work


def _events(tmp_path: Path) -> list[tuple[str, str]]:
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return [(json.loads(x)["event"], json.loads(x)["item"]) for x in lines]


def test_second_run_is_cached(ctx, tmp_path):
    out, calls = ctx.layout.model("single-math"), []
    first = ctx.run("train", "single-math", out, key={"lr": 1}, inputs=[], work=_writer(out, calls), done=["result.txt"])
    second = ctx.run("train", "single-math", out, key={"lr": 1}, inputs=[], work=_writer(out, calls), done=["result.txt"])
    assert calls == [1] and not first.cached and second.cached
    assert second.fingerprint == first.fingerprint and second.summary == {"n": 1}
    assert glue.read_record(out)["summary"] == {"n": 1}
    assert _events(tmp_path) == [("start", "single-math"), ("done", "single-math"), ("cached", "single-math")]


def test_changed_key_missing_output_or_no_cache_reruns(ctx, monkeypatch):
    out, calls = ctx.layout.model("mix"), []
    run = lambda key: ctx.run("train", "mix", out, key=key, inputs=[], work=_writer(out, calls), done=["result.txt"])  # noqa: E731
    run({"lr": 1})
    assert run({"lr": 2}).cached is False and len(calls) == 2
    Path(out, "result.txt").unlink()
    assert run({"lr": 2}).cached is False and len(calls) == 3
    monkeypatch.setenv(glue.NO_CACHE_ENV, "1")
    assert run({"lr": 2}).cached is False and len(calls) == 4


def test_fingerprint_follows_inputs(ctx):
    """A consumer reruns when its producer reran with other inputs, not when the producer was only skipped."""
    data, model, calls = ctx.layout.data, ctx.layout.model("mix"), []
    produce = lambda seed: ctx.run("data", "data", data, key={"seed": seed}, inputs=[],  # noqa: E731
                                   work=_writer(data, []), done=["result.txt"])
    consume = lambda: ctx.run("train", "mix", model, key={}, inputs=[data], work=_writer(model, calls),  # noqa: E731
                              done=["result.txt"])
    produce(0)
    consume()
    produce(0)
    assert consume().cached and calls == [1]
    produce(1)
    assert not consume().cached and len(calls) == 2
    assert glue.input_fingerprint("random:tiny") == "ref:random:tiny"


def test_failure_leaves_no_record(ctx, tmp_path):
    out = ctx.layout.analysis

    def boom() -> dict:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        ctx.run("analyze", "analyze", out, key={}, inputs=[], work=boom, done=[])
    assert glue.read_record(out) is None
    assert _events(tmp_path) == [("start", "analyze"), ("failed", "analyze")]


def test_publish_and_artifact_uri(tmp_path):
    art = SimpleNamespace(path=str(tmp_path / "kfp" / "model"), metadata={})
    outcome = glue.StageOutcome("train", "mix", "s3://b/models/mix", "f" * 64, False, {"steps": 2}, "run1")
    glue.publish(outcome, art)
    assert json.loads(Path(art.path).read_text()) == {"steps": 2}
    assert art.metadata["uri"] == "s3://b/models/mix" and art.metadata["mlflow_run_id"] == "run1"
    assert glue.artifact_uri(art, "model") == "s3://b/models/mix"
    with pytest.raises(glue.StageError, match="dataset: the input artifact carries no `uri`"):
        glue.artifact_uri(SimpleNamespace(metadata={}), "dataset")


def test_bad_spec_json_and_label(ctx):
    with pytest.raises(glue.StageError, match="spec_json: not JSON"):
        glue.spec_from_json("{")
    with pytest.raises(ValueError, match="train.lr"):
        glue.spec_from_json(json.dumps({"train": {"lr": -1}}))
    with pytest.raises(glue.StageError, match="'nope' is not a merge of the spec"):
        ctx.merge_method("nope")


def test_the_glue_names_the_running_task(ctx, tmp_path):
    """While a stage works `$M2RL_TASK` names it, so the stage's own progress reports land on its row."""
    import os

    seen = []

    def work() -> dict:
        seen.append(os.environ.get(progress.TASK_ENV))
        progress.report("halfway", done=1, total=2)
        return {}

    ctx.run("analyze", "analyze", str(tmp_path / "art" / "analysis"), key={}, inputs=[], work=work, done=[])
    assert seen == ["analyze/analyze"] and progress.TASK_ENV not in os.environ
    assert _events(tmp_path) == [("start", "analyze"), ("progress", "analyze"), ("done", "analyze")]

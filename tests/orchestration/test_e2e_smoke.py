"""End to end: examples/smoke.yaml through kfp.local, then again with one stage's output removed."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from m2rl import tracking
from m2rl.orchestration.local import run_local
from m2rl.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def _children(parent: str) -> dict[tuple[str, str], object]:
    runs = tracking.child_runs(parent)
    out: dict[tuple[str, str], object] = {}
    for r in runs:
        key = (r.data.tags[tracking.TAG_STAGE], r.data.tags.get(tracking.TAG_MODEL, ""))
        assert key not in out, f"two child runs for {key}"
        out[key] = r
    return out


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_smoke_study_end_to_end(tmp_path, monkeypatch):
    import mlflow

    for var in ("MLFLOW_TRACKING_URI", "M2RL_PARENT_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    spec = load_spec(REPO / "examples" / "smoke.yaml").model_copy(
        update={"artifact_root": str(tmp_path / "artifacts"), "work_dir": str(tmp_path / "work")})
    log = io.StringIO()
    t0 = time.monotonic()
    first = run_local(spec, console=Console(file=log, width=200))
    wall = time.monotonic() - t0
    print(f"smoke study: {wall:.0f}s wall, first run")
    assert set(first.statuses.values()) == {"done"} and len(first.statuses) == 22, first.statuses
    html = Path(first.report_html).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "m2rl-smoke" in html
    assert first.mlflow_ui == f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'work' / 'mlflow.db'}"

    mlflow.set_tracking_uri(first.tracking_uri)
    parent = mlflow.get_run(first.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[tracking.TAG_STUDY] == "m2rl-smoke"
    assert any(k.startswith("acc/") for k in parent.data.metrics), sorted(parent.data.metrics)[:10]
    children = _children(first.parent_run_id)
    trained = [f"single-{d}" for d in spec.domains] + ["mix"]
    merged = [f"merge-{m.label}" for m in spec.merge.methods]
    models = ["base", *trained, *merged, "distill"]
    expected = {("data", ""), ("analyze", ""), ("report", ""), ("distill", "distill")}
    expected |= {("train", m) for m in trained} | {("merge", m) for m in merged} | {("evaluate", m) for m in models}
    assert set(children) == expected
    assert all(r.info.status == "FINISHED" for r in children.values())
    for d in spec.domains:
        tags = children[("train", f"single-{d}")].data.tags
        assert (tags[tracking.TAG_PARADIGM], tags[tracking.TAG_DOMAIN]) == ("single", d)
        assert f"train/{d}/reward" in children[("train", f"single-{d}")].data.metrics
    assert children[("train", "mix")].data.tags[tracking.TAG_PARADIGM] == "mix"
    assert children[("distill", "distill")].data.tags[tracking.TAG_PARADIGM] == "distill"
    assert "distill/divergence" in children[("distill", "distill")].data.metrics
    assert "cost/gpu_hours" in children[("distill", "distill")].data.metrics
    assert "table-paradigms" in html and all(f"{p} (" in html for p in ("mix", "merge", "distill"))
    for m in spec.merge.methods:
        tags = children[("merge", f"merge-{m.label}")].data.tags
        assert (tags[tracking.TAG_PARADIGM], tags[tracking.TAG_METHOD]) == ("merge", m.label)
    for name in models:
        run = children[("evaluate", name)]
        paradigm = "base" if name == "base" else name.split("-")[0]
        assert run.data.tags[tracking.TAG_PARADIGM] == paradigm
        for b in spec.evaluate.benchmarks:
            assert f"eval/{b.name}/avg_at_k" in run.data.metrics, (name, b.name)
        assert Path(spec.artifact_root, "eval", name, "metrics.json").is_file()

    # MLflow's entities (issue 21): one LoggedModel per model with its eval metrics, dataset inputs, samples table
    logged = {m.name: m for m in tracking.study_models(first.parent_run_id)}
    assert sorted(logged) == sorted(models) and all(str(m.status) == "READY" for m in logged.values())
    for name, m in logged.items():
        assert {f"eval/{b.name}/avg_at_k" for b in spec.evaluate.benchmarks} <= set(tracking.model_metrics(m)), name
        assert m.tags[tracking.TAG_PARADIGM] == children[("evaluate", name)].data.tags[tracking.TAG_PARADIGM]
        run = mlflow.get_run(children[("evaluate", name)].info.run_id)  # a search leaves the model inputs out
        assert [i.model_id for i in run.inputs.model_inputs] == [m.model_id]
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {f"eval/{d}" for d in spec.domains}
    for name in trained:
        assert [i.dataset.name for i in children[("train", name)].inputs.dataset_inputs] == [
            "train/mix" if name == "mix" else f"train/{name.split('-', 1)[1]}"]
    assert len(tracking.load_samples_table(children[("evaluate", "mix")].info.run_id)) > 0

    # Second run, with one evaluation's output gone: it alone reruns, under the same parent run.
    shutil.rmtree(Path(spec.artifact_root, "eval", "mix"))
    t0 = time.monotonic()
    second = run_local(spec, console=Console(file=log, width=200))
    print(f"smoke study: {time.monotonic() - t0:.0f}s wall, second run")
    assert second.parent_run_id == first.parent_run_id and second.resumed
    assert second.statuses.pop("evaluate/mix") == "done"
    assert set(second.statuses.values()) == {"cached"}
    again = _children(first.parent_run_id)
    assert set(again) == expected
    assert again[("evaluate", "mix")].info.run_id != children[("evaluate", "mix")].info.run_id
    assert again[("train", "mix")].info.run_id == children[("train", "mix")].info.run_id
    assert "cached" in log.getvalue()
    assert [m.model_id for m in tracking.study_models(first.parent_run_id, name="mix")] == [logged["mix"].model_id]

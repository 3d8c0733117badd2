"""The study's MLflow parent run: one per spec, resumed when the same spec is run again."""

from __future__ import annotations

import hashlib
from pathlib import Path

from m2rl import tracking
from m2rl.orchestration.stages import finish_parent
from m2rl.spec import StudySpec

SPEC_HASH_TAG = "m2rl.spec_hash"


def spec_hash(spec: StudySpec) -> str:
    """A fingerprint of the whole (resolved) spec."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def find_parent(spec: StudySpec) -> str | None:
    """The latest parent run of this study with the same spec, if any."""
    import mlflow

    exp_id = tracking.configure(spec)
    name = spec.name.replace("'", "\\'")
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string=f"tags.`{SPEC_HASH_TAG}` = '{spec_hash(spec)}' and tags.`{tracking.TAG_STUDY}` = '{name}'",
        order_by=["attributes.start_time DESC"], max_results=50, output_format="list",
    )
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return top[0].info.run_id if top else None


def open_parent(
    spec: StudySpec, *, spec_path: str | Path | None = None, run_name: str | None = None, resume: bool = True,
) -> tuple[str, bool]:
    """(parent run id, resumed): reuse the last parent run of the same spec, else create one; it is RUNNING."""
    from mlflow import MlflowClient

    tracking.configure(spec)
    client = MlflowClient()  # after configure: a client binds the tracking URI current at its creation
    run_id = find_parent(spec) if resume else None
    resumed = run_id is not None
    if run_id is None:
        run_id = tracking.start_study(spec, run_name=run_name, spec_path=spec_path)
        client.set_tag(run_id, SPEC_HASH_TAG, spec_hash(spec))
    client.update_run(run_id, status="RUNNING")
    return run_id, resumed


def close_parent(run_id: str, status: str = "FINISHED") -> None:
    """End the parent run with `status` (FINISHED, FAILED, KILLED)."""
    finish_parent(run_id, status)

"""The study's parent run: one per spec, resumed when the same spec runs again; and the search for it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m2rl.tracking.config import TAG_PARENT, TAG_SPEC_HASH, TAG_STUDY, configure
from m2rl.tracking.log import log_batch
from m2rl.tracking.models import describe_study, study_note

if TYPE_CHECKING:
    from m2rl.spec import StudySpec


def spec_hash(spec: StudySpec) -> str:
    """A fingerprint of the whole (resolved) spec."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def start_study(spec: StudySpec, run_name: str | None = None, spec_path: str | Path | None = None) -> str:
    """Create the study's parent run (spec logged as params and artifact, tagged with its hash); returns its id."""
    import mlflow

    configure(spec)
    tags = {TAG_STUDY: spec.name, TAG_SPEC_HASH: spec_hash(spec)}
    with mlflow.start_run(run_name=run_name or spec.name, tags=tags) as run:
        log_batch(params=_flat_params(spec))
        mlflow.log_dict(spec.model_dump(mode="json"), "spec.json")
        if spec_path is not None:
            mlflow.log_artifact(str(spec_path))
        describe_study(run.info.run_id, study_note(run.info.run_id, study=spec.name))
        return run.info.run_id


def _flat_params(spec: StudySpec) -> dict[str, Any]:
    d = spec.model_dump(mode="json")
    out: dict[str, Any] = {"base_model": d["base_model"], "paradigms": ",".join(d["paradigms"])}
    out["domains"] = ",".join(d["data"]["domains"])
    for k in ("backend", "lr", "samples_per_prompt", "rollout_batch_size", "steps", "mix_steps", "kl_coef"):
        out[f"train.{k}"] = d["train"][k]
    out["merge.methods"] = ",".join(m["name"] or m["method"] for m in d["merge"]["methods"])
    out["evaluate.benchmarks"] = ",".join(b["name"] for b in d["evaluate"]["benchmarks"])
    return out


def _parents(spec: StudySpec, *, same_spec: bool) -> list[Any]:
    """The study's parent runs (of this very spec with `same_spec`), newest first."""
    import mlflow

    exp_id = configure(spec)
    name = spec.name.replace("'", "\\'")
    query = f"tags.`{TAG_STUDY}` = '{name}'"
    if same_spec:
        query = f"tags.`{TAG_SPEC_HASH}` = '{spec_hash(spec)}' and {query}"
    limit = {"max_results": 50} if same_spec else {}
    runs = mlflow.search_runs(experiment_ids=[exp_id], filter_string=query, order_by=["attributes.start_time DESC"],
                              output_format="list", **limit)
    return [r for r in runs if TAG_PARENT not in r.data.tags]


def find_parent(spec: StudySpec) -> str | None:
    """The latest parent run of this study with the same spec, if any."""
    top = _parents(spec, same_spec=True)
    return top[0].info.run_id if top else None


def latest_parent(spec: StudySpec) -> str | None:
    """The newest parent run of this study, whatever its spec (`m2rl report SPEC` logs to it)."""
    top = _parents(spec, same_spec=False)
    return top[0].info.run_id if top else None


def open_parent(
    spec: StudySpec, *, spec_path: str | Path | None = None, run_name: str | None = None, resume: bool = True,
) -> tuple[str, bool]:
    """(parent run id, resumed): reuse the last parent run of the same spec, else create one; it is RUNNING."""
    from mlflow import MlflowClient

    configure(spec)
    run_id = find_parent(spec) if resume else None
    resumed = run_id is not None
    if run_id is None:
        run_id = start_study(spec, run_name=run_name, spec_path=spec_path)
    MlflowClient().update_run(run_id, status="RUNNING")  # after configure: a client binds the URI at creation
    return run_id, resumed

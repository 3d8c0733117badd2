"""Where runs go: the tracking URI and experiment of a study, and the tag names every run carries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from m2rl.spec import StudySpec

PARENT_ENV = "M2RL_PARENT_RUN_ID"
URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
TAG_PARADIGM, TAG_DOMAIN, TAG_METHOD = "m2rl.paradigm", "m2rl.domain", "m2rl.merge_method"
TAG_STAGE, TAG_MODEL, TAG_STUDY = "m2rl.stage", "m2rl.model", "m2rl.study"
TAG_TASK, TAG_SPEC_HASH = "m2rl.task", "m2rl.spec_hash"
TAG_PARENT, TAG_RUN_NAME = "mlflow.parentRunId", "mlflow.runName"
# The process that owns a stage run (so the next run of the stage can tell a dead one) and why a run ended
# KILLED or FAILED without finishing its body (a signal, or found stale by a later run).
TAG_OWNER_HOST, TAG_OWNER_PID, TAG_OWNER_START = "m2rl.owner.host", "m2rl.owner.pid", "m2rl.owner.start"
TAG_END_REASON = "m2rl.end_reason"
# The MLflow UI's kind of experiment: model training (runs, models, their metrics), not GenAI (traces, agents).
TAG_EXPERIMENT_KIND, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def default_uri(work_dir: str | Path) -> str:
    """The embedded default: a SQLite store under the work folder."""
    return f"sqlite:///{Path(work_dir).resolve() / 'mlflow.db'}"


def tracking_uri(spec: StudySpec | None = None) -> str:
    """$MLFLOW_TRACKING_URI, else the spec's tracking.uri, else SQLite under the spec's work_dir."""
    env = os.environ.get(URI_ENV)
    if env:
        return env
    if spec is not None and spec.tracking.uri:
        return spec.tracking.uri
    return default_uri(spec.work_dir if spec is not None else "work")


def env_configured() -> bool:
    """Whether the environment names a tracking server or a study's parent run (what a CLI command without a
    spec tracks by)."""
    return bool(os.environ.get(URI_ENV) or os.environ.get(PARENT_ENV))


def env_parent() -> str | None:
    """The study's parent run id handed down by the environment (KFP tasks, Ray jobs), if any."""
    return os.environ.get(PARENT_ENV) or None


def configure(spec: StudySpec | None = None) -> str:
    """Point MLflow at the study's store and experiment; returns the experiment id."""
    import mlflow

    uri = tracking_uri(spec)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    name = os.environ.get(EXPERIMENT_ENV) or (
        (spec.tracking.experiment or spec.name) if spec is not None else "m2rl"
    )
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        location = None
        if uri.startswith("sqlite:///") and spec is not None:
            # Local store: artifacts beside the database, not in the current directory.
            location = (Path(spec.work_dir).resolve() / "mlartifacts").as_uri()
        exp_id = mlflow.create_experiment(name, artifact_location=location, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND})
    else:
        exp_id = exp.experiment_id
        if TAG_EXPERIMENT_KIND not in exp.tags:  # the UI shows an experiment of unknown kind as a GenAI one
            mlflow.MlflowClient().set_experiment_tag(exp_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id

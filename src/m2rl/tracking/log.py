"""Logging into a run: one batch logger for metrics, params and tags, and the file loggers.

Everything logs into the run given by id, else into the run active in this process; with neither it does
nothing, so a stage function called by a test or a library user without tracking logs nothing. MLflow is
not even imported then when nothing in the process imported it (there can be no active run without it).
Batches are cut to MLflow's limits (1000 metrics, 100 params, 100 tags per request).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


def active_run_id() -> str | None:
    """The id of the MLflow run active in this process (this thread), if any."""
    if "mlflow" not in sys.modules:
        return None
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def log_batch(
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    step: int = 0,
    history: Iterable[Any] = (),
) -> int:
    """Log `metrics` (name -> value, at `step`), `history` (MLflow `Metric`s, kept with their own steps and
    timestamps), `params` and `tags` into `run_id`, else the active run; returns the number of metric values
    logged (0 when there is no run to log into)."""
    rid = run_id or active_run_id()
    if rid is None:
        return 0
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    values = [Metric(k, float(v), now, step) for k, v in sorted((metrics or {}).items())] + list(history)
    client = MlflowClient()  # a client binds the tracking URI current at its creation
    for chunk in _chunks(values, MAX_METRICS):
        client.log_batch(rid, metrics=chunk)
    for chunk in _chunks([Param(k, str(v)) for k, v in (params or {}).items()], MAX_PARAMS):
        client.log_batch(rid, params=chunk)
    for chunk in _chunks([RunTag(k, str(v)) for k, v in (tags or {}).items()], MAX_TAGS):
        client.log_batch(rid, tags=chunk)
    return len(values)


def log_dict(data: Any, artifact_file: str, *, run_id: str | None = None) -> bool:
    """Log `data` as a JSON/YAML artifact of `run_id`, else the active run; whether there was a run."""
    rid = run_id or active_run_id()
    if rid is None:
        return False
    from mlflow import MlflowClient

    MlflowClient().log_dict(rid, data, artifact_file)
    return True


def log_artifacts(local_dir: str, artifact_path: str | None = None, *, run_id: str | None = None) -> bool:
    """Upload a local folder's files under `artifact_path` of `run_id`, else the active run."""
    rid = run_id or active_run_id()
    if rid is None:
        return False
    from mlflow import MlflowClient

    MlflowClient().log_artifacts(rid, local_dir, artifact_path=artifact_path)
    return True

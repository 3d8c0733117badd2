"""Logging into a run: one batch logger for metrics, params and tags, and the file loggers.

Everything logs into the run given by id, else into the run active in this process; with neither it does
nothing, so a stage function called by a test or a library user without tracking logs nothing. MLflow is
not even imported then when nothing in the process imported it (there can be no active run without it).
Batches are cut to MLflow's limits (1000 metrics, 100 params, 100 tags per request).

While a `model_scope` is open (the stage glue opens one around a stage that builds or evaluates a model), every
metric `log_batch` logs also belongs to that MLflow LoggedModel, and an `eval/<benchmark>/<metric>` metric names
the benchmark's evaluation dataset: the stage logs as before and its numbers land on the model's row of the
experiment's Models tab.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


@dataclass(frozen=True)
class ModelScope:
    """The LoggedModel metrics belong to while the scope is open, and the dataset (an `mlflow.entities.Dataset`)
    of each benchmark, for `eval/<benchmark>/...` metrics."""

    model_id: str
    datasets: Mapping[str, Any] = field(default_factory=dict)

    def dataset_of(self, key: str) -> Any | None:
        parts = key.split("/")
        return self.datasets.get(parts[1]) if len(parts) == 3 and parts[0] == "eval" else None


_SCOPE: contextvars.ContextVar[ModelScope | None] = contextvars.ContextVar("m2rl_model_scope", default=None)


@contextlib.contextmanager
def model_scope(model_id: str | None, datasets: Mapping[str, Any] | None = None) -> Iterator[ModelScope | None]:
    """Metrics logged by `log_batch` while the block runs belong to LoggedModel `model_id` (no-op for None);
    `datasets`: benchmark name -> the dataset its `eval/<benchmark>/<metric>` metrics were measured on."""
    if not model_id:
        yield None
        return
    token = _SCOPE.set(ModelScope(model_id, dict(datasets or {})))
    try:
        yield _SCOPE.get()
    finally:
        _SCOPE.reset(token)


def active_model_id() -> str | None:
    """The LoggedModel of the open `model_scope`, if any."""
    scope = _SCOPE.get()
    return scope.model_id if scope is not None else None


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
    from mlflow.entities import Param, RunTag

    now = int(time.time() * 1000)
    scope = _SCOPE.get()
    values = [scoped_metric(k, float(v), now, step, scope) for k, v in sorted((metrics or {}).items())] + list(history)
    client = MlflowClient()  # a client binds the tracking URI current at its creation
    for chunk in _chunks(values, MAX_METRICS):
        client.log_batch(rid, metrics=chunk)
    for chunk in _chunks([Param(k, str(v)) for k, v in (params or {}).items()], MAX_PARAMS):
        client.log_batch(rid, params=chunk)
    for chunk in _chunks([RunTag(k, str(v)) for k, v in (tags or {}).items()], MAX_TAGS):
        client.log_batch(rid, tags=chunk)
    return len(values)


def scoped_metric(key: str, value: float, timestamp: int, step: int, scope: ModelScope | None) -> Any:
    """An MLflow `Metric`, of the scope's model (and benchmark dataset) when there is a scope."""
    from mlflow.entities import Metric

    if scope is None:
        return Metric(key, value, timestamp, step)
    ds = scope.dataset_of(key)
    return Metric(key, value, timestamp, step, model_id=scope.model_id, dataset_name=ds.name if ds else None,
                  dataset_digest=ds.digest if ds else None)


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

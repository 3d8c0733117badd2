"""Reading a tracking server back: every run of an experiment (`m2rl compare`)."""

from __future__ import annotations

from typing import Any


class TrackingError(LookupError):
    """What was asked of the tracking server is not there; the message names it and the server."""


def experiment_runs(experiment: str, tracking_uri: str | None = None) -> list[Any]:
    """Every run of the MLflow experiment named `experiment` (all pages) at `tracking_uri` (default: MLflow's)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"no MLflow experiment named {experiment!r} at {client.tracking_uri}")
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs

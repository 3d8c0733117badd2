"""The run policy: one MLflow run per stage (and model), opened by the caller of the stage, never by it.

The stage glue (`m2rl.workflow.glue.StageContext.run`) opens the child run of every pipeline task and the
CLI stage commands open theirs with `command_run`; both go through `stage_run`. Stage functions only log
into the active run (`m2rl.tracking.log`). The glue's cached stages keep one child run per stage and model
under the parent: a rerun supersedes the earlier one, a stage reused under another parent gets a copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from m2rl.names import PARADIGMS, model_tags
from m2rl.tracking.config import (
    TAG_DOMAIN,
    TAG_METHOD,
    TAG_MODEL,
    TAG_PARADIGM,
    TAG_PARENT,
    TAG_RUN_NAME,
    TAG_STAGE,
    TAG_STUDY,
    TAG_TASK,
    configure,
    env_configured,
    env_parent,
)
from m2rl.tracking.log import log_batch

if TYPE_CHECKING:
    from m2rl.spec import StudySpec

@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    model: str | None = None,
    paradigm: str | None = None,
    domain: str | None = None,
    merge_method: str | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """An MLflow run for one stage (and model), child of the study's parent run when there is one
    (`parent_run_id`, else $M2RL_PARENT_RUN_ID).

    `model`: a study model name (`base`, `single-<domain>`, `mix`, `merge-<label>`, see `m2rl.names`); its
    paradigm, domain and merge method are the run's tags unless given.
    """
    import mlflow

    derived = model_tags(model) if model else {}
    paradigm = paradigm if paradigm is not None else derived.get("paradigm")
    domain = domain if domain is not None else derived.get("domain")
    merge_method = merge_method if merge_method is not None else derived.get("merge_method")
    if paradigm is not None and paradigm not in PARADIGMS:
        raise ValueError(f"paradigm: must be one of {', '.join(PARADIGMS)}, got {paradigm!r}")
    parent = parent_run_id or env_parent()
    all_tags = {TAG_STAGE: stage, **(tags or {})}
    for key, val in ((TAG_PARADIGM, paradigm), (TAG_DOMAIN, domain), (TAG_METHOD, merge_method), (TAG_MODEL, model)):
        if val is not None:
            all_tags[key] = val
    kwargs: dict[str, Any] = {}
    if parent:
        run = mlflow.get_run(parent)
        all_tags[TAG_PARENT] = parent
        kwargs["experiment_id"] = run.info.experiment_id
        if run.data.tags.get(TAG_STUDY):
            all_tags[TAG_STUDY] = run.data.tags[TAG_STUDY]
    name = run_name or "/".join(x for x in (stage, model or domain or merge_method) if x)
    # Nested under whatever run is active in this process (none in a KFP task; the parent in tests).
    with mlflow.start_run(run_name=name, tags=all_tags, nested=mlflow.active_run() is not None, **kwargs) as run:
        yield run


@contextlib.contextmanager
def command_run(stage: str, spec: StudySpec | None = None, *, model: str | None = None) -> Iterator[Any | None]:
    """The run of a CLI stage command (`m2rl data`, `train`, `merge`, `eval`, `analyze`).

    With a spec, or when the environment names a tracking server or a parent run ($MLFLOW_TRACKING_URI,
    $M2RL_PARENT_RUN_ID), MLflow is pointed at the study's store and a `stage_run` is opened (a child of the
    parent run when there is one); otherwise nothing is tracked and None is yielded.
    """
    if spec is None and not env_configured():
        yield None
        return
    configure(spec)
    with stage_run(stage, model=model) as run:
        yield run


def finish_run(run_id: str | None, status: str = "FINISHED") -> None:
    """End a run (a study's parent run: the last stage does it, on a cluster nobody else would) with `status`
    (FINISHED, FAILED, KILLED); no-op without a run id."""
    if not run_id:
        return
    from mlflow import MlflowClient

    MlflowClient().set_terminated(run_id, status=status)


def child_runs(parent_run_id: str) -> list[Any]:
    """Every (not deleted) child run of a study's parent run."""
    import mlflow

    parent = mlflow.get_run(parent_run_id)
    return mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        output_format="list",
    )


def supersede_children(parent_run_id: str | None, stage: str, item: str) -> None:
    """Earlier child runs of `stage` and `item` under the parent make way for the one about to start: one left
    RUNNING by an interrupted attempt is marked KILLED; each is tagged and soft-deleted (restorable in MLflow),
    so the parent keeps one child run per stage and model."""
    if not parent_run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient()
    for run in child_runs(parent_run_id):
        tags = run.data.tags
        if tags.get(TAG_STAGE) != stage or tags.get(TAG_MODEL, item) != item:
            continue
        log_batch(tags={"m2rl.superseded": "true"}, run_id=run.info.run_id)
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status="KILLED")
        client.delete_run(run.info.run_id)


def copy_child_run(run_id: str | None, parent_run_id: str, stage: str, item: str) -> str:
    """A finished copy of a child run (tags, params, metric histories) under another parent run; returns its id.
    A run that is gone leaves a copy with the stage's tags only."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    tags = {TAG_STAGE: stage, TAG_TASK: f"{stage}/{item}"}
    name, params, history = f"{stage}/{item}", {}, []
    try:
        old = client.get_run(run_id) if run_id else None
    except MlflowException:
        old = None
    if old is not None:
        tags.update({k: v for k, v in old.data.tags.items() if not k.startswith("mlflow.")})
        params = dict(old.data.params)
        name = old.data.tags.get(TAG_RUN_NAME, name)
        for key in old.data.metrics:
            history.extend(client.get_metric_history(run_id, key))
    tags.update({TAG_PARENT: parent_run_id, "m2rl.cached_from": run_id or "",
                 TAG_STUDY: parent.data.tags.get(TAG_STUDY, "")})
    new = client.create_run(parent.info.experiment_id, run_name=name, tags=tags).info.run_id
    log_batch(params=params, history=history, run_id=new)
    client.set_terminated(new, status="FINISHED")
    return new

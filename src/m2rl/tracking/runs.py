"""The run policy: one MLflow run per stage (and model), opened by the caller of the stage, never by it.

The stage glue (`m2rl.workflow.glue.StageContext.run`) opens the child run of every pipeline task and the
CLI stage commands open theirs with `command_run`; both go through `stage_run`. Stage functions only log
into the active run (`m2rl.tracking.log`). The glue's cached stages keep one child run per stage and model
under the parent: a rerun supersedes the earlier one, a stage reused under another parent gets a copy.

A run never stays RUNNING after its process is gone. A stage run records its owner (host, pid, process start
time) as tags; SIGTERM (while the process has no handler of its own) and SIGINT unwind the stage, so its temp
outputs are removed, and end the run KILLED with `m2rl.end_reason`; an exception ends it FAILED. After a
SIGKILL (or an OOM kill) the next `stage_run` of the same stage and item (same stage, model and parent run)
finds the run RUNNING with a dead owner on this host and marks it KILLED, saying why.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from m2rl import storage
from m2rl.names import PARADIGMS, model_tags
from m2rl.tracking.config import (
    TAG_DOMAIN,
    TAG_END_REASON,
    TAG_METHOD,
    TAG_MODEL,
    TAG_OWNER_HOST,
    TAG_OWNER_PID,
    TAG_OWNER_START,
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
from m2rl.tracking.log import ModelScope, log_batch, scoped_metric

if TYPE_CHECKING:
    from m2rl.spec import StudySpec

log = logging.getLogger(__name__)


class StageTerminated(SystemExit):
    """Raised in the main thread when SIGTERM arrives while a stage run is open: the stage unwinds (its temp
    outputs are removed on the way), the run ends KILLED and the process exits with 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises `StageTerminated` while the block runs, where the process has left SIGTERM at its default
    (an outer stage run, or a host that installed its own handler or ignores the signal, keeps it)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not fired:  # once: a second SIGTERM does not interrupt the clean-up of the first
            fired.append(signum)
            raise StageTerminated(signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def owner_tags() -> dict[str, str]:
    """The tags that name this process as the owner of a run."""
    o = storage.current_owner()
    return {TAG_OWNER_HOST: o.host, TAG_OWNER_PID: str(o.pid), TAG_OWNER_START: o.start}


def mark_stale_runs(experiment_id: str, stage: str, *, model: str | None, parent: str | None,
                    exclude: str | None = None) -> list[str]:
    """Runs of `stage` and `model` under `parent` (None: runs without one) left RUNNING by an owner that is gone
    (recorded on this host, no process with its pid and start time) are ended KILLED, tagged with why; returns
    their ids. A run whose owner is on another host, or that records none, is left as it is."""
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG_STAGE}` = '{stage}'",
        max_results=1000,
    )
    marked = []
    for run in found:
        tags, run_id = run.data.tags, run.info.run_id
        if run_id == exclude or tags.get(TAG_MODEL) != model or tags.get(TAG_PARENT) != parent:
            continue
        try:
            owner = storage.Owner(tags[TAG_OWNER_HOST], int(tags[TAG_OWNER_PID]), tags.get(TAG_OWNER_START, ""))
        except (KeyError, ValueError):
            continue
        if storage.owner_alive(owner) is not False:
            continue
        reason = f"stale: its owner, {owner.describe()}, is gone (killed); ended by a later {stage} run"
        log_batch(tags={TAG_END_REASON: reason}, run_id=run_id)
        client.set_terminated(run_id, status="KILLED")
        log.warning("m2rl tracking: run %s (%s) %s; marked KILLED", run_id, tags.get(TAG_RUN_NAME, stage), reason)
        marked.append(run_id)
    return marked


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
    all_tags.update(owner_tags())
    name = run_name or "/".join(x for x in (stage, model or domain or merge_method) if x)
    # Nested under whatever run is active in this process (none in a KFP task; the parent in tests).
    run = mlflow.start_run(run_name=name, tags=all_tags, nested=mlflow.active_run() is not None, **kwargs)
    status, reason = "FINISHED", None
    try:
        try:
            mark_stale_runs(run.info.experiment_id, stage, model=model, parent=parent, exclude=run.info.run_id)
        except Exception as exc:  # a look-up that fails must not fail the stage
            log.warning("m2rl tracking: could not look for stale %s runs: %s", stage, exc)
        with _sigterm_unwinds():
            yield run
    except StageTerminated as exc:
        status, reason = "KILLED", f"{signal.Signals(exc.signum).name} received"
        raise
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted (SIGINT)"
        raise
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status, reason = "FAILED", f"exit status {exc.code}"
        raise
    except BaseException as exc:
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        if reason is not None:
            with contextlib.suppress(Exception):  # the run's end matters more than its reason
                log_batch(tags={TAG_END_REASON: reason}, run_id=run.info.run_id)
        mlflow.end_run(status)


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
            log_batch(tags={TAG_END_REASON: "superseded: a rerun of the stage started while it was RUNNING"},
                      run_id=run.info.run_id)
            client.set_terminated(run.info.run_id, status="KILLED")
        client.delete_run(run.info.run_id)


def copy_child_run(run_id: str | None, parent_run_id: str, stage: str, item: str,
                   model_for: Callable[[str], tuple[str | None, Mapping[str, Any]]] | None = None) -> str:
    """A finished copy of a child run (tags, params, dataset inputs, metric histories) under another parent run;
    returns its id. A run that is gone leaves a copy with the stage's tags only. `model_for(new_run_id)`: the
    LoggedModel (id, benchmark -> dataset) the copied metrics belong to, as in a `model_scope`."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    parent = client.get_run(parent_run_id)
    tags = {TAG_STAGE: stage, TAG_TASK: f"{stage}/{item}"}
    name, params, history, inputs = f"{stage}/{item}", {}, [], []
    try:
        old = client.get_run(run_id) if run_id else None
    except MlflowException:
        old = None
    if old is not None:
        inputs = list(old.inputs.dataset_inputs) if old.inputs else []
        tags.update({k: v for k, v in old.data.tags.items() if not k.startswith(("mlflow.", "m2rl.owner."))})
        params = dict(old.data.params)
        name = old.data.tags.get(TAG_RUN_NAME, name)
        for key in old.data.metrics:
            history.extend(client.get_metric_history(run_id, key))
    tags.update({TAG_PARENT: parent_run_id, "m2rl.cached_from": run_id or "",
                 TAG_STUDY: parent.data.tags.get(TAG_STUDY, "")})
    new = client.create_run(parent.info.experiment_id, run_name=name, tags=tags).info.run_id
    if inputs:
        client.log_inputs(new, datasets=inputs)
    model_id, datasets = model_for(new) if model_for is not None else (None, {})
    if model_id:
        scope = ModelScope(model_id, datasets)
        history = [scoped_metric(m.key, m.value, m.timestamp, m.step, scope) for m in history]
    log_batch(params=params, history=history, run_id=new)
    client.set_terminated(new, status="FINISHED")
    return new

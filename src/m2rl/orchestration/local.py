"""The embedded default: the study pipeline run by kfp.local on this machine (`m2rl run`).

kfp.local's SubprocessRunner runs each task as a subprocess of the current Python environment
(`use_venv=False`: nothing is installed), one task at a time in dependency order. The pipeline root, the
MLflow SQLite store and the task logs live under the spec's work_dir; artifacts under its artifact_root.
kfp.local ignores the cluster settings of the tasks (images, resources, kfp-kubernetes config), so the
same pipeline function runs here and on a cluster. It has its own task cache, keyed by every argument
(the parent run id included); M2RL's stage records are used instead (see `m2rl.workflow.glue`):
a rerun skips every stage whose output holds a record of the same inputs, and an interrupted run resumes
from the last finished stage under the same MLflow parent run.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage, tracking
from m2rl.names import Layout
from m2rl.progress import EVENTS_ENV
from m2rl.spec import StudySpec
from m2rl.workflow import plan
from m2rl.workflow.glue import NO_CACHE_ENV, read_record


class LocalRunError(RuntimeError):
    """The local pipeline failed; the message names the failed step and the log file."""


@dataclass
class LocalRunResult:
    """What `run_local` did and where its outputs are."""

    parent_run_id: str
    resumed: bool
    tracking_uri: str
    report_html: str
    report_md: str
    log: str
    wall_seconds: float
    statuses: dict[str, str] = field(default_factory=dict)  # "stage/item" -> done | cached | failed | pending
    verdict: list[str] = field(default_factory=list)

    @property
    def mlflow_ui(self) -> str:
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri
        return f"mlflow ui --backend-store-uri {self.tracking_uri}"


def resolve_paths(spec: StudySpec, cwd: str | Path | None = None) -> StudySpec:
    """The spec with its relative artifact_root and work_dir made absolute (tasks may run elsewhere)."""
    base = Path(cwd or os.getcwd())
    update: dict[str, Any] = {}
    if not storage.is_s3(spec.artifact_root) and not Path(spec.artifact_root).is_absolute():
        update["artifact_root"] = str((base / spec.artifact_root).resolve())
    if not Path(spec.work_dir).is_absolute():
        update["work_dir"] = str((base / spec.work_dir).resolve())
    return spec.model_copy(update=update) if update else spec


@contextlib.contextmanager
def _env(values: dict[str, str | None]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_kfp() -> Iterator[None]:
    """Hide kfp.local's warnings about cluster-only settings and non-Python image names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*have no effect in the current local runner.*")
        warnings.filterwarnings("ignore", message=r".*custom or non-Python base image.*")
        yield


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run_local(
    spec: StudySpec,
    *,
    spec_path: str | Path | None = None,
    variant: str = "study",
    resume: bool = True,
    use_cache: bool = True,
    verbose: bool = False,
    console: Any = None,
) -> LocalRunResult:
    """Run the study pipeline with kfp.local; returns where the report and the MLflow runs are.

    resume: reuse the last MLflow parent run of the same spec (False: a new parent run).
    use_cache: skip stages whose stage record matches (False: rerun every stage).
    verbose: stream every task's log to the terminal instead of the log file.
    """
    from kfp import local
    from rich.console import Console

    import pipelines

    console = console or Console(stderr=True)
    spec = resolve_paths(spec)
    work = Path(spec.work_dir)
    runs_dir = work / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    events, log = runs_dir / f"{stamp}-events.jsonl", runs_dir / f"{stamp}.log"
    uri = tracking.tracking_uri(spec)
    steps = plan.steps(spec, variant)
    pipeline = pipelines.build_pipeline(spec, variant)
    t0 = time.monotonic()
    env = {tracking.URI_ENV: uri, EVENTS_ENV: str(events), NO_CACHE_ENV: None if use_cache else "1",
           tracking.PARENT_ENV: None}
    with _env(env):
        parent, resumed = tracking.open_parent(spec, spec_path=spec_path, resume=resume)
        console.print(f"study {spec.name!r}: {len(steps)} tasks; MLflow parent run {parent} "
                      f"({'resumed' if resumed else 'new'}); task logs: {log}", highlight=False)
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "kfp"),
                   raise_on_error=True)
        from m2rl.orchestration.progress import ProgressView

        view = ProgressView(steps, events, console)
        try:
            with _quiet_kfp(), view, open(log, "w", encoding="utf-8", buffering=1) as logf, (
                contextlib.nullcontext() if verbose else contextlib.redirect_stdout(logf)
            ):
                pipeline(spec_json=spec.model_dump_json(), parent_run_id=parent)
        except KeyboardInterrupt:
            tracking.finish_run(parent, "KILLED")
            raise
        except Exception as exc:
            tracking.finish_run(parent, "FAILED")
            failed = [f"{r.stage} {r.item}" for r in view.rows.values() if r.status == "failed"]
            running = [f"{r.stage} {r.item}" for r in view.rows.values() if r.status == "running"]
            where = failed or running or ["(before any stage started)"]
            raise LocalRunError(
                f"step {where[0]} failed: {exc}\n--- last lines of {log} ---\n{_tail(log)}\n--- end ---\n"
                f"Fix the cause and run again: finished stages are reused."
            ) from exc
        tracking.finish_run(parent, "FINISHED")
    layout = Layout(spec.artifact_root)
    rec = read_record(layout.report) or {}
    return LocalRunResult(
        parent_run_id=parent, resumed=resumed, tracking_uri=uri,
        report_html=storage.join(layout.report, "report.html"), report_md=storage.join(layout.report, "report.md"),
        log=str(log), wall_seconds=time.monotonic() - t0,
        statuses={f"{r.stage}/{r.item}": r.status for r in view.rows.values()},
        verdict=list((rec.get("summary") or {}).get("verdict") or []),
    )


def headline(report_dir: str) -> Any:
    """The report's headline table (the verdict table, else accuracy) as a rich Table, or None."""
    from rich.table import Table

    from m2rl.analysis import read_analysis
    from m2rl.analysis.summary import flatten
    from m2rl.analysis.tables import build_tables

    try:
        analysis = read_analysis(report_dir)
    except Exception:
        return None
    tables = {t.key: t for t in build_tables(*flatten(analysis))}
    t = tables.get("verdict") or tables.get("accuracy")
    if t is None:
        return None
    out = Table(title=t.title, title_justify="left")
    for i, col in enumerate(t.columns):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in t.rows:
        out.add_row(*row)
    return out

"""What every KFP component does around its stage function: the glue kept out of the components.

- the spec arrives as JSON text (a pipeline parameter) and the study's MLflow parent run id with it;
- the artifact layout (`m2rl.names.Layout`) names where each stage writes under the artifact root;
- the run policy: `StageContext.run` opens the stage's MLflow child run under the parent (tagged with the
  model's paradigm, domain and merge method for train, merge and evaluate); the stage function only logs
  into it;
- stage records: a finished stage leaves `_m2rl_stage.json` in its output folder with a fingerprint of
  its inputs (the spec sections it reads and its inputs' own fingerprints). A stage whose record matches
  is skipped (local caching, and resuming an interrupted run from the last finished stage); its MLflow
  child run is reused, or copied under a new parent run;
- progress events: one JSON line per start / finish / skip, appended to `$M2RL_EVENTS` when set
  (`m2rl run` shows them as its progress view).

Nothing here imports kfp: a component hands in its artifacts; `publish` fills an output's file and
metadata (`uri` of the large output at the artifact root, `fingerprint`, `cached`, `mlflow_run_id`) and
`artifact_uri` reads an input's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage, tracking
from m2rl.names import Layout
from m2rl.spec import StudySpec, spec_from_dict
from m2rl.workflow.plan import MODEL_STAGES

RECORD_FILE = "_m2rl_stage.json"
EVENTS_ENV = "M2RL_EVENTS"
NO_CACHE_ENV = "M2RL_NO_CACHE"


class StageError(RuntimeError):
    """A component could not run its stage (bad parameter, missing input); the message names it."""


def spec_from_json(text: str) -> StudySpec:
    """The study spec from the `spec_json` pipeline parameter (errors name the field)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StageError(f"spec_json: not JSON ({exc})") from None
    return spec_from_dict(data, "spec_json")


def read_record(uri: str) -> dict[str, Any] | None:
    """The stage record of an output folder, or None when there is none (or it is unreadable)."""
    try:
        rec = json.loads(storage.read_text(storage.join(uri, RECORD_FILE)))
    except (storage.StorageError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str) else None


def input_fingerprint(uri: str) -> str:
    """An input's fingerprint: its producer's record fingerprint, else the reference itself (a base model)."""
    rec = read_record(uri) if uri else None
    return rec["fingerprint"] if rec else f"ref:{uri}"


def fingerprint(stage: str, item: str, key: Any, inputs: list[str]) -> str:
    """What a stage's output depends on: its spec sections (`key`), its inputs' fingerprints, the m2rl version."""
    from m2rl import __version__

    doc = {"stage": stage, "item": item, "key": key, "inputs": {u: input_fingerprint(u) for u in inputs},
           "m2rl": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def emit(event: str, stage: str, item: str, **extra: Any) -> None:
    """Append one progress event to $M2RL_EVENTS (no-op when unset)."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    line = json.dumps({"t": time.time(), "event": event, "stage": stage, "item": item, **extra}, default=str)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@dataclass
class StageOutcome:
    """What a component publishes: where its output is and a small JSON summary of it."""

    stage: str
    item: str
    uri: str
    fingerprint: str
    cached: bool
    summary: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    seconds: float = 0.0

    @property
    def metadata(self) -> dict[str, Any]:
        return {"uri": self.uri, "fingerprint": self.fingerprint, "cached": self.cached,
                "mlflow_run_id": self.mlflow_run_id or "", "stage": self.stage, "item": self.item}


class StageContext:
    """One component's view of the study: spec, layout, tracking under the parent run, and `run`."""

    def __init__(self, spec_json: str, parent_run_id: str = "") -> None:
        self.spec = spec_from_json(spec_json)
        self.layout = Layout(self.spec.artifact_root)
        self.parent_run_id = parent_run_id or tracking.env_parent()
        self._tracking = False

    def _configure_tracking(self) -> None:
        """Point MLflow at the study's store (lazily: a stage skipped under the same parent never imports it)."""
        if not self._tracking:
            tracking.configure(self.spec)
            self._tracking = True

    def merge_method(self, label: str):
        for m in self.spec.merge.methods:
            if m.label == label:
                return m
        raise StageError(f"label: {label!r} is not a merge of the spec ({', '.join(m.label for m in self.spec.merge.methods)})")

    def run(
        self,
        stage: str,
        item: str,
        out: str,
        *,
        key: Any,
        inputs: list[str],
        work: Callable[[], dict[str, Any]],
        done: list[str],
    ) -> StageOutcome:
        """Run `work` in the stage's MLflow child run unless `out` holds a record with the same fingerprint and
        every file of `done`. For train, merge and evaluate `item` is the model (`m2rl.names`), whose tags the
        child run carries."""
        fp = fingerprint(stage, item, key, inputs)
        rec = read_record(out)
        if (rec and rec["fingerprint"] == fp and not os.environ.get(NO_CACHE_ENV)
                and all(storage.exists(storage.join(out, f)) for f in done)):
            run_id = self._adopt(rec, out)
            emit("cached", stage, item, uri=out)
            print(f"[m2rl] {stage} {item}: cached ({out}, fingerprint {fp[:12]})", flush=True)
            return StageOutcome(stage, item, out, fp, True, rec.get("summary") or {}, run_id, 0.0)
        emit("start", stage, item, uri=out)
        t0 = time.monotonic()
        try:
            self._configure_tracking()
            tracking.supersede_children(self.parent_run_id, stage, item)
            model = item if stage in MODEL_STAGES else None
            with tracking.stage_run(stage, model=model, parent_run_id=self.parent_run_id,
                                    tags={tracking.TAG_TASK: f"{stage}/{item}"}) as active, self._parent_env():
                summary = work()
            run_id = active.info.run_id
        except BaseException as exc:
            emit("failed", stage, item, error=f"{type(exc).__name__}: {exc}")
            raise
        seconds = time.monotonic() - t0
        record = {"fingerprint": fp, "stage": stage, "item": item, "uri": out, "key": key, "inputs": inputs,
                  "summary": summary, "mlflow_run_id": run_id, "parent_run_id": self.parent_run_id,
                  "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        storage.write_text(storage.join(out, RECORD_FILE), json.dumps(record, indent=1, default=str))
        emit("done", stage, item, uri=out, seconds=round(seconds, 3))
        return StageOutcome(stage, item, out, fp, False, summary, run_id, seconds)

    @contextlib.contextmanager
    def _parent_env(self) -> Iterator[None]:
        """$M2RL_PARENT_RUN_ID set while the stage runs: the processes it starts (Ray jobs, OpenRLHF) inherit it."""
        old = os.environ.get(tracking.PARENT_ENV)
        if self.parent_run_id:
            os.environ[tracking.PARENT_ENV] = self.parent_run_id
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(tracking.PARENT_ENV, None)
            else:
                os.environ[tracking.PARENT_ENV] = old

    def _adopt(self, rec: dict[str, Any], out: str) -> str | None:
        """A cached stage's child run under the current parent: the recorded one, or a copy of it (the
        record then points at the copy, so the next run under this parent reuses it)."""
        old = rec.get("mlflow_run_id")
        if not self.parent_run_id or rec.get("parent_run_id") == self.parent_run_id:
            return old
        self._configure_tracking()
        new = tracking.copy_child_run(old, self.parent_run_id, rec.get("stage", ""), rec.get("item", ""))
        updated = {**rec, "mlflow_run_id": new, "parent_run_id": self.parent_run_id}
        storage.write_text(storage.join(out, RECORD_FILE), json.dumps(updated, indent=1, default=str))
        return new


def publish(outcome: StageOutcome, artifact: Any, text: str | None = None) -> None:
    """Fill a KFP output artifact: a small file (`text`, else the summary as JSON) and metadata carrying
    the URI of the stage's output at the artifact root."""
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(outcome.summary, indent=1, default=str), encoding="utf-8")
    artifact.metadata.update(outcome.metadata)


def artifact_uri(artifact: Any, what: str) -> str:
    """The artifact-root URI an input artifact carries (its metadata `uri`)."""
    uri = (artifact.metadata or {}).get("uri") if artifact is not None else None
    if not uri:
        raise StageError(f"{what}: the input artifact carries no `uri` in its metadata")
    return str(uri)

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
  (`m2rl.progress`; `m2rl run` shows them as its progress view); while the stage works `$M2RL_TASK` names
  it, so the stage's own `m2rl.progress.report` lines (GRPO steps, eval problems) land on its row.

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
from m2rl.progress import TASK_ENV, emit
from m2rl.spec import StudySpec, spec_from_dict
from m2rl.workflow import plan
from m2rl.workflow.plan import MODEL_STAGES

RECORD_FILE = "_m2rl_stage.json"
NO_CACHE_ENV = "M2RL_NO_CACHE"
# Stages of a model (`MODEL_STAGES`) that write its checkpoint: the stage run is its LoggedModel's source run.
CHECKPOINT_STAGES = tuple(s for s in MODEL_STAGES if s != "evaluate")


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
        previous_task = os.environ.get(TASK_ENV)
        os.environ[TASK_ENV] = f"{stage}/{item}"
        try:
            self._configure_tracking()
            tracking.supersede_children(self.parent_run_id, stage, item)
            model = item if stage in MODEL_STAGES else None
            with tracking.stage_run(stage, model=model, parent_run_id=self.parent_run_id,
                                    tags={tracking.TAG_TASK: f"{stage}/{item}"}) as active, self._parent_env(), \
                    self._entities(stage, item, out, inputs, active.info.run_id) as finish:
                summary = work()
                finish(summary)
            run_id = active.info.run_id
        except BaseException as exc:
            emit("failed", stage, item, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if previous_task is None:
                os.environ.pop(TASK_ENV, None)
            else:
                os.environ[TASK_ENV] = previous_task
        seconds = time.monotonic() - t0
        record = {"fingerprint": fp, "stage": stage, "item": item, "uri": out, "key": key, "inputs": inputs,
                  "summary": summary, "mlflow_run_id": run_id, "parent_run_id": self.parent_run_id,
                  "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        storage.write_text(storage.join(out, RECORD_FILE), json.dumps(record, indent=1, default=str))
        emit("done", stage, item, uri=out, seconds=round(seconds, 3))
        return StageOutcome(stage, item, out, fp, False, summary, run_id, seconds)

    @contextlib.contextmanager
    def _entities(self, stage: str, item: str, out: str, inputs: list[str],
                  run_id: str) -> Iterator[Callable[[dict[str, Any]], None]]:
        """MLflow's entities of a stage run (see `m2rl.tracking.models` and `.datasets`): a stage that writes a
        model's checkpoint begins its LoggedModel (PENDING: the metrics the stage logs belong to it) and
        finishes it READY (FAILED when the stage fails) with the card's figures and the dataset it trained on;
        an evaluation's metrics belong to its model and name their benchmark's dataset, its samples become a
        table; the data stage records its splits; the report describes the parent run and, with
        `tracking.register`, registers the recommended model. Yields the call that takes the stage's summary."""
        finished: list[dict[str, Any]] = []
        model_id, datasets = None, {}
        if self.parent_run_id and stage in CHECKPOINT_STAGES:
            model_id = tracking.begin_model(item, out, parent_run_id=self.parent_run_id, run_id=run_id,
                                            parents=self._model_parents(inputs))
        elif self.parent_run_id and stage == "evaluate":
            model_id = self._ensure_model(item, inputs[0] if inputs else self.layout.model(item), run_id)
            datasets = self._eval_datasets(item)
            tracking.log_datasets(run_id, [(d, tracking.CONTEXT_EVAL) for d in datasets.values()], models=[model_id])
        try:
            with tracking.model_scope(model_id, datasets):
                yield finished.append
        except BaseException:
            if model_id and stage in CHECKPOINT_STAGES:
                with contextlib.suppress(Exception):  # the stage's own error is the one to report
                    tracking.finish_model(model_id, run_id=run_id, ok=False)
            raise
        summary = finished[0] if finished else {}
        if stage == "data":
            tracking.log_datasets(run_id, list(tracking.data_datasets(out, summary, self.layout).values()))
        elif model_id and stage in CHECKPOINT_STAGES:
            trained_on = self._train_dataset(summary)
            if trained_on is not None:
                tracking.log_datasets(run_id, [(trained_on, tracking.CONTEXT_TRAIN)])
            tracking.finish_model(model_id, run_id=run_id, card=summary)
        elif stage == "evaluate":
            samples = {b: storage.join(out, b, "samples.parquet") for b in summary.get("benchmarks", {})}
            tracking.log_samples_table(run_id, {b: u for b, u in samples.items() if storage.exists(u)})
        elif stage == "report" and self.parent_run_id:
            self._report_entities(out, summary)

    def _model_parents(self, inputs: list[str]) -> list[str]:
        """The study models whose checkpoints a stage reads (a merge's experts)."""
        by_uri = {self.layout.model(n): n for n in plan.plan(self.spec).models}
        return [by_uri[u] for u in inputs if u in by_uri]

    def _ensure_model(self, name: str, checkpoint: str, run_id: str) -> str:
        """The study's LoggedModel of `name`, created from its checkpoint's stage record when there is none (the
        base model: its source run is the parent run)."""
        rec = (read_record(checkpoint) if checkpoint.startswith(("/", "s3://")) else None) or {}
        return tracking.ensure_model(name, checkpoint, parent_run_id=self.parent_run_id, run_id=run_id,
                                     card=rec.get("summary") or {}, parents=self._model_parents(rec.get("inputs") or []),
                                     source_run_id=None if rec else self.parent_run_id)

    def _data_datasets(self) -> dict[str, Any]:
        """The data stage's datasets (name -> (dataset, context)): those its run recorded (no file is hashed
        again), else from its card; {} before it ran."""
        rec = read_record(self.layout.data)
        recorded = tracking.run_datasets(rec["mlflow_run_id"]) if rec and rec.get("mlflow_run_id") else {}
        if recorded:
            return recorded
        try:
            card = json.loads(storage.read_text(storage.join(self.layout.data, "data_card.json")))
        except (storage.StorageError, json.JSONDecodeError):
            return {}
        return tracking.data_datasets(self.layout.data, card, self.layout)

    def _train_dataset(self, card: dict[str, Any]) -> Any | None:
        """The dataset a training card names (`data`): the data stage's split of that file, else the file."""
        uri = card.get("data")
        if not isinstance(uri, str) or not storage.exists(uri):
            return None
        for ds, _ in self._data_datasets().values():
            if json.loads(ds.source).get("uri") == uri:
                return ds
        return tracking.dataset(Path(uri).stem, uri, {"num_rows": card.get("records")})

    def _eval_datasets(self, model: str | None = None) -> dict[str, Any]:
        """Benchmark -> the dataset it evaluates on (those of `model`, else every benchmark of the study): the
        data stage's eval split it reads, its own file, else (a hub benchmark) its name and source with a
        digest of its settings."""
        from m2rl.evaluate.registry import EvalError, get_benchmark
        from m2rl.evaluate.stage import model_benchmarks, study_benchmarks

        splits = {json.loads(ds.source).get("uri"): ds for ds, _ in self._data_datasets().values()}
        out = {}
        for b in model_benchmarks(self.spec, model) if model else study_benchmarks(self.spec):
            profile = {"benchmark": b.name, "limit": b.limit, "k": b.k}
            if b.path and b.path in splits:
                out[b.name] = splits[b.path]
            elif b.path and (storage.exists(b.path) or _has_files(b.path)):
                out[b.name] = tracking.dataset(b.name, b.path, profile)
            else:
                try:
                    hub = get_benchmark(b.name).hub_id
                except EvalError:
                    hub = None
                out[b.name] = tracking.dataset(b.name, hub or f"m2rl:{b.name}", profile, source_type="hugging_face"
                                               if hub else "code", digest=tracking.spec_digest(b.model_dump()))
        return out

    def _report_entities(self, out: str, summary: dict[str, Any]) -> None:
        """The parent run's description (verdict, how to compare) and, with `tracking.register`, the recommended
        model in the Model Registry with the report attached."""
        parent = self.parent_run_id
        verdict = summary.get("verdict") if isinstance(summary.get("verdict"), list) else None
        recommended = None
        try:
            analysis = json.loads(storage.read_text(storage.join(out, "analysis.json")))
        except (storage.StorageError, json.JSONDecodeError):
            analysis = {}
        models = {m.name: m for m in tracking.study_models(parent) if str(m.status) == "READY"}
        pick = tracking.recommend(analysis.get("verdict") or {}, models)
        if pick is not None and pick[0] in models:
            recommended = pick[0]
            if self.spec.tracking.register:
                with storage.scratch_dir("report-" + parent) as tmp:
                    for f in ("report.html", "report.md"):
                        if storage.exists(storage.join(out, f)):
                            (tmp / f).write_bytes(storage.read_bytes(storage.join(out, f)))
                    tracking.register_recommended(self.spec.tracking.registered_model or self.spec.name,
                                                  models[recommended], why=pick[1], report_dir=str(tmp))
        tracking.describe_study(parent, tracking.study_note(parent, study=self.spec.name, verdict=verdict,
                                                            recommended=recommended))

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
        stage, item = rec.get("stage", ""), rec.get("item", "")

        def model_for(run_id: str) -> tuple[str | None, dict[str, Any]]:
            """The copy's LoggedModel in the new study (created from the stage record for a checkpoint stage)."""
            if stage in CHECKPOINT_STAGES:  # its cost metrics come from the card; the copied history stays the run's
                tracking.ensure_model(item, out, parent_run_id=self.parent_run_id, run_id=run_id,
                                      card=rec.get("summary") or {}, parents=self._model_parents(rec.get("inputs") or []))
                return None, {}
            if stage == "evaluate":
                inputs = rec.get("inputs") or []
                return self._ensure_model(item, inputs[0] if inputs else self.layout.model(item), run_id), \
                    self._eval_datasets(item)
            return None, {}

        new = tracking.copy_child_run(old, self.parent_run_id, stage, item, model_for=model_for)
        updated = {**rec, "mlflow_run_id": new, "parent_run_id": self.parent_run_id}
        storage.write_text(storage.join(out, RECORD_FILE), json.dumps(updated, indent=1, default=str))
        return new


def _has_files(uri: str) -> bool:
    try:
        return bool(storage.list_files(uri))
    except (storage.StorageError, OSError):
        return False


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

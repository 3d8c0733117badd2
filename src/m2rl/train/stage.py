"""The train stage: one GRPO run (a single domain, or the mix of all) from the spec's `train` section.

`train(spec, run, data, base, out)` checks the job, fetches the train records and the base model,
runs the spec's backend (`trl` on the CPU, `openrlhf` on GPU pods), and writes a Hugging Face
checkpoint folder at `out` with `train_card.json` beside the weights. Metrics go live to the active MLflow
run, the caller's (`train/<domain>/reward`, `train/reward`, `train/kl`, ..., `cost/gpu_hours`). Periodic
checkpoints go to `checkpoint_dir` (default `<artifact_root>/checkpoints/<name of out>`); a rerun after
a kill or a preemption resumes from the latest one. The step `merge.expert_steps` names for a
single-domain run, when before its last, is kept at `<checkpoint_dir>/steps/<step>` (listed in the card's
`step_checkpoints`); the rest of the periodic checkpoints is deleted when the run finishes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.names import MIX, Layout
from m2rl.spec import StudySpec
from m2rl.spec.merge import unsaved_step
from m2rl.train import checkpoints
from m2rl.train.job import TrainError, TrainJob
from m2rl.train.registry import get_backend


@dataclass
class TrainResult:
    """What one training run produced."""

    out: str
    run: str
    paradigm: str
    backend: str
    steps: int
    wall_seconds: float
    device: str
    num_devices: int
    gpu_hours: float
    reward_curve: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_step: int = 0
    mlflow_run_id: str | None = None
    card: dict[str, Any] = field(default_factory=dict)


def _basename(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def plan(
    spec: StudySpec,
    run: str,
    data: str,
    base: str,
    out: str,
    *,
    checkpoint_dir: str | None = None,
    scratch: str | Path | None = None,
) -> TrainJob:
    """Check the job's arguments against the spec and lay out its folders (nothing is read or written)."""
    if run != MIX and run not in spec.domains:
        raise TrainError(
            f"run: {run!r} is neither a domain of the spec ({', '.join(spec.domains)}) nor {MIX!r}"
        )
    for name, value in (("data", data), ("base", base), ("out", out)):
        if not value or not str(value).strip():
            raise TrainError(f"{name}: must not be empty")
    steps = spec.train.run_steps(run)
    keep = _kept_steps(spec, run, steps)
    name = _basename(out)
    ckpt = checkpoint_dir or Layout(spec.artifact_root).checkpoints(name)
    work = Path(scratch) if scratch else Path(spec.work_dir) / "train" / name
    return TrainJob(
        spec=spec, run=run, data=str(data), base=str(base), out=str(out), checkpoint_dir=str(ckpt),
        scratch=work, steps=steps, keep_steps=keep,
    )


def _kept_steps(spec: StudySpec, run: str, steps: int) -> tuple[int, ...]:
    """The step before the last that a merge takes from this run (`merge.expert_steps`), checked to be saved."""
    step = spec.merge.expert_steps.get(run) if run != MIX and "merge" in spec.paradigms else None
    if step is None or step == steps:
        return ()
    why = unsaved_step(step, steps, spec.train.save_steps)
    if why:
        raise TrainError(f"merge.expert_steps.{run}: {why}")
    return (step,)


def _fetch_data(job: TrainJob) -> None:
    """Local copy of the train records; checks every record belongs to the run's domains."""
    import pyarrow.parquet as pq

    src = job.data
    if not storage.exists(src):
        raise TrainError(f"data: {src}: train records not found (run the data stage first, or check --data)")
    if storage.is_s3(src):
        local = job.scratch / "data" / _basename(src)
        local.parent.mkdir(parents=True, exist_ok=True)
        storage.download_file(src, local)
    else:
        local = Path(src)
        if local.is_dir():
            raise TrainError(f"data: {src}: is a folder; give the train records parquet file of the run")
    try:
        table = pq.read_table(local, columns=["id", "domain"])
    except Exception as exc:
        raise TrainError(f"data: {src}: not a records parquet file ({exc})") from None
    ids, domains = table.column("id").to_pylist(), table.column("domain").to_pylist()
    if not ids:
        raise TrainError(f"data: {src}: holds no records")
    allowed = set(job.domains)
    for rid, dom in zip(ids, domains, strict=True):
        if dom not in allowed:
            what = f"run {job.run!r} trains on {job.run!r} only" if job.run != MIX else (
                f"the spec's domains are {', '.join(job.domains)}")
            raise TrainError(f"data: {src}: record {rid!r} has domain {dom!r}, but {what}")
    job.data_local = local
    job.num_records = len(ids)
    job.domain_counts = dict(Counter(domains))


def _resolve_base(job: TrainJob, cache: str | Path | None) -> None:
    from m2rl.models import ModelError, resolve_model

    try:
        job.base_local = resolve_model(job.base, cache)
    except (ModelError, storage.StorageError) as exc:
        raise TrainError(f"base: {exc}") from None


def describe(spec: StudySpec, run: str, data: str, base: str, out: str, **kw: Any) -> list[str]:
    """The backend command of a job, without running it (`m2rl train --dry-run`)."""
    job = plan(spec, run, data, base, out, **{k: v for k, v in kw.items() if k in ("checkpoint_dir", "scratch")})
    backend = get_backend(spec.train.backend)
    backend.check(job)
    return backend.describe(job)


def train(
    spec: StudySpec,
    run: str,
    data: str,
    base: str,
    out: str,
    *,
    checkpoint_dir: str | None = None,
    scratch: str | Path | None = None,
    cache: str | Path | None = None,
    keep_checkpoints: bool = False,
) -> TrainResult:
    """Run one training job (see the module doc); returns its TrainResult.

    Bad input (unknown run, missing data, a record of another domain, an unusable base, batch sizes the
    backend cannot split) raises TrainError before anything is launched; nothing is left at `out`.
    """
    from m2rl import tracking
    from m2rl.train.cost import RunCost
    from m2rl.train.metrics import MetricSink

    job = plan(spec, run, data, base, out, checkpoint_dir=checkpoint_dir, scratch=scratch)
    backend = get_backend(spec.train.backend)
    backend.check(job)
    job.scratch.mkdir(parents=True, exist_ok=True)
    _fetch_data(job)
    _resolve_base(job, cache)

    run_id = tracking.active_run_id()  # the caller's run (the stage glue's, the CLI's), if any
    t = spec.train
    tracking.log_batch(
        params={
            "run": run, "backend": backend.name, "steps": job.steps, "base": job.base, "data": job.data,
            "records": job.num_records, "lr": t.lr, "samples_per_prompt": t.samples_per_prompt,
            "rollout_batch_size": t.rollout_batch_size, "kl_coef": t.kl_coef, "clip_low": t.clip_low,
            "clip_high": t.clip_high, "max_new_tokens": t.max_new_tokens, "temperature": t.temperature,
            "weight_decay": t.weight_decay, "adam_betas": t.adam_betas or "backend default",
            "importance_sampling": t.importance_sampling.level,
            "require_think_close": spec.rewards.require_think_close,
        },
        tags={"m2rl.backend": backend.name, "m2rl.domains": ",".join(job.domains)}, run_id=run_id,
    )
    sink = MetricSink(job.domains, samples_per_step=t.rollout_batch_size * t.samples_per_prompt, run_id=run_id)
    started = time.monotonic()
    with storage.output_dir(out) as tmp:
        outcome = backend.run(job, Path(tmp), sink)
        kept = _check_kept(job)
        wall = outcome.prior_wall_seconds + (time.monotonic() - started)
        cost = RunCost(device=backend.device, num_devices=backend.num_devices(job), wall_seconds=wall)
        curve = [p.to_json() for p in outcome.reward_curve]
        card = {
            "run": run,
            "paradigm": job.paradigm,
            "domains": job.domains,
            "steps": outcome.steps,
            "wall_seconds": round(wall, 3),
            "device": cost.device,
            "num_devices": cost.num_devices,
            "gpu_hours": cost.gpu_hours,
            "reward_curve": curve,
            "backend": backend.name,
            "base": job.base,
            "data": job.data,
            "records": job.num_records,
            "domain_counts": job.domain_counts,
            "resumed_from_step": outcome.resumed_from_step,
            "step_checkpoints": kept,
            "mlflow_run_id": run_id,
            **outcome.extra,
        }
        (Path(tmp) / "train_card.json").write_text(json.dumps(card, indent=2))
    resumed = {"m2rl.resumed_from_step": str(outcome.resumed_from_step)} if outcome.resumed_from_step else {}
    tracking.log_batch(metrics=cost.metrics(), tags=resumed, run_id=run_id)
    tracking.log_dict(card, "train_card.json", run_id=run_id)
    if not keep_checkpoints:
        _drop_checkpoints(job.checkpoint_dir)
    return TrainResult(
        out=str(out), run=run, paradigm=job.paradigm, backend=backend.name, steps=outcome.steps,
        wall_seconds=wall, device=cost.device, num_devices=cost.num_devices, gpu_hours=cost.gpu_hours,
        reward_curve=curve, resumed_from_step=outcome.resumed_from_step, mlflow_run_id=run_id, card=card,
    )


def _check_kept(job: TrainJob) -> dict[str, str]:
    """step -> URI of each kept step (`job.keep_steps`); a step the backend did not keep is an error."""
    from m2rl.checkpoint import SIDE_FILES

    kept = {}
    for step in job.keep_steps:
        uri = storage.join(job.checkpoint_dir, checkpoints.STEPS_DIR, str(step))
        if not storage.exists(storage.join(uri, SIDE_FILES[0])):
            raise RuntimeError(f"{job.name}: the weights of step {step} (merge.expert_steps.{job.run}) were not "
                               f"kept at {uri}")
        kept[str(step)] = uri
    return kept


def _drop_checkpoints(uri: str) -> None:
    """The run finished and its checkpoint is at `out`: the periodic ones are no longer needed (the kept
    steps under `steps/` stay)."""
    import shutil

    keep = checkpoints.STEPS_DIR + "/"
    if storage.is_s3(uri):
        bucket, key = storage.parse_s3(uri)
        prefix = key.rstrip("/") + "/"
        client = storage.s3_client()
        try:
            names = [n for n in storage.list_files(uri) if not n.startswith(keep)]
        except storage.StorageError:
            return
        for i in range(0, len(names), 1000):
            chunk = names[i : i + 1000]
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": prefix + r} for r in chunk]})
    else:
        root = Path(uri)
        if not (root / checkpoints.STEPS_DIR).is_dir():
            shutil.rmtree(root, ignore_errors=True)
            return
        for child in root.iterdir():
            if child.name == checkpoints.STEPS_DIR:
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

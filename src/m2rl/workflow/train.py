"""The pipeline's train step: one GRPO run in the step's own pod, or launched as a KubeRay RayJob.

`m2rl.k8s.launches_rayjob(spec)` (`train.nodes > 1` or `kubernetes.rayjob: true`) decides. A launched run
is the RayJob of `m2rl.k8s.build_rayjob` (head and GPU worker groups, images, resources, tolerations and
Secrets from the spec's `kubernetes` section) running `m2rl train` on the same data, base and output;
`RayJobLauncher` creates it, watches it, streams the driver log into the step's log and deletes it when the
step is cancelled (SIGTERM). The driver logs into the step's MLflow child run (`MLFLOW_RUN_ID`), and the step
fails with the launcher's exit code (docs/deploy.md lists them) when the RayJob did not succeed.
"""

from __future__ import annotations

import json
from typing import Any

from m2rl import storage, tracking
from m2rl.k8s import RayJobLauncher, launch_training, launches_rayjob, rayjob_name
from m2rl.spec import StudySpec
from m2rl.workflow.glue import StageContext

CARD = "train_card.json"
RUN_ID_ENV = "MLFLOW_RUN_ID"  # mlflow.start_run() resumes this run: the driver logs into the step's child run


class RayJobStepFailed(SystemExit):
    """The RayJob of a train step did not succeed; the step's process exits with the launcher's code."""

    def __init__(self, name: str, code: int, outcome: str, state: str) -> None:
        super().__init__(code)
        self.name, self.code, self.outcome, self.state = name, code, outcome, state

    def __str__(self) -> str:
        return f"RayJob {self.name} {self.outcome} ({self.state}): exit code {self.code}"


def train_key(spec: StudySpec, run: str) -> dict[str, Any]:
    """What a training run's checkpoint depends on (the stage record's fingerprint key)."""
    key: dict[str, Any] = {"train": spec.train.model_dump(mode="json"), "rewards": spec.rewards.model_dump(mode="json"),
                           "run": run, "base": spec.base_model}
    if run in spec.merge.expert_steps and "merge" in spec.paradigms:
        key["expert_step"] = spec.merge.expert_steps[run]  # the run keeps that step's weights
    return key


def job_name(spec: StudySpec, run: str, parent_run_id: str) -> str:
    """The RayJob of one run of one study submission: a retried step finds (and follows) its own RayJob, a
    resubmitted study (another parent run) makes a new one."""
    return rayjob_name(spec.name, run, parent_run_id)


def train_work(ctx: StageContext, run: str, records: str, out: str,
               launcher: RayJobLauncher | None = None) -> dict[str, Any]:
    """Train `run` on `records` into `out` (inside the step's MLflow child run) and return its train card."""
    spec = ctx.spec
    if not launches_rayjob(spec):
        from m2rl.train import train

        return train(spec, run, records, spec.base_model, out).card
    from m2rl.train import describe

    describe(spec, run, records, spec.base_model, out)  # the backend refuses what it cannot honour, before a RayJob
    run_id = tracking.active_run_id()
    result = launch_training(spec, run=run, data=records, base=spec.base_model, out=out,
                             name=job_name(spec, run, ctx.parent_run_id or ""),
                             env={RUN_ID_ENV: run_id} if run_id else None, launcher=launcher)
    if result.exit_code != 0:
        raise RayJobStepFailed(result.name, result.exit_code, result.outcome, result.state.describe())
    try:
        return json.loads(storage.read_text(storage.join(out, CARD)))
    except (storage.StorageError, json.JSONDecodeError) as exc:
        raise RayJobStepFailed(result.name, 1, "succeeded without a train card", f"{out}: {exc}") from None

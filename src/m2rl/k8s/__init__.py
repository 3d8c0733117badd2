"""KubeRay RayJob launcher: build the RayJob of a training run, submit it, watch it, stream its log.

`build_rayjob(spec, command, name=...)` is a pure function (a dict manifest); `RayJobLauncher` talks to
the cluster with the `kubernetes` client; `launch_training(...)` does both for the training entrypoint
(`m2rl train SPEC --domain --data --base --out`) and returns a `RayJobResult` with the step's exit code.
`launches_rayjob(spec)` says whether the pipeline's train steps go through it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

from m2rl.k8s.launcher import RayJobLauncher, RayJobResult, load_clients
from m2rl.k8s.rayjob import (
    IN_CLUSTER_SPEC,
    RayJobError,
    build_rayjob,
    check_name,
    label_value,
    needs_rayjob,
    rayjob_name,
    to_yaml,
    train_command,
)
from m2rl.k8s.states import RayJobState, exit_code
from m2rl.spec import StudySpec

__all__ = [
    "IN_CLUSTER_SPEC", "RayJobError", "RayJobLauncher", "RayJobResult", "RayJobState", "build_rayjob",
    "check_name", "exit_code", "launch_training", "launches_rayjob", "load_clients", "needs_rayjob", "rayjob_name",
    "to_yaml", "train_command",
]


def launches_rayjob(spec: StudySpec) -> bool:
    """True when the pipeline's train step launches its run as a RayJob: `train.nodes > 1` or `kubernetes.rayjob`."""
    return spec.train.nodes > 1 or spec.kubernetes.rayjob


def launch_training(
    spec: StudySpec,
    *,
    run: str,
    data: str,
    base: str,
    out: str,
    name: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    log: IO[str] | None = None,
    launcher: RayJobLauncher | None = None,
) -> RayJobResult:
    """Run one training job (`run` = a domain or "mix") as a RayJob and wait for it; see RayJobResult.exit_code."""
    job_name = name or rayjob_name(spec.name, run)
    manifest: dict[str, Any] = build_rayjob(
        spec, train_command(run, data, base, out, extra=extra_args), name=job_name, env=env,
        labels={"m2rl.io/run": label_value(run)},
    )
    launcher = launcher or RayJobLauncher(spec.kubernetes.namespace, out=log)
    return launcher.run(manifest, timeout_s=timeout_s)

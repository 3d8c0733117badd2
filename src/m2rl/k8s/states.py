"""RayJob status -> whether it is finished, and the exit code of the step that launched it.

KubeRay reports two fields: `jobDeploymentStatus` (the RayJob's own lifecycle: Initializing,
Running, Complete, Failed, Retrying, Suspended, ...) and `jobStatus` (the Ray job: PENDING,
RUNNING, SUCCEEDED, FAILED, STOPPED). A RayJob is finished only when its deployment status is
Complete or Failed (KubeRay's `IsJobDeploymentTerminal`): with `backoffLimit` > 0 a FAILED Ray job
is retried (deployment status Retrying), so `jobStatus` alone must not end the watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TERMINAL_DEPLOYMENT = ("Complete", "Failed")

# Exit codes of a launcher step (documented in docs/deploy.md).
EXIT_SUCCEEDED = 0
EXIT_JOB_FAILED = 1  # the training command itself failed (Ray job FAILED, KubeRay reason AppFailed)
EXIT_BAD_INPUT = 2  # the CLI's convention for a bad spec or arguments (nothing submitted)
EXIT_SUBMISSION_FAILED = 3  # the cluster never ran the job (SubmissionFailed, grace period exceeded, ...)
EXIT_DELETED = 4  # the RayJob was deleted by someone else before it finished
EXIT_DEADLINE = 124  # activeDeadlineSeconds (KubeRay) or the launcher's own timeout ran out
EXIT_STOPPED = 143  # the Ray job was stopped (`ray job stop`) or the step was cancelled (SIGTERM)
EXIT_INTERRUPTED = 130  # the step was interrupted (SIGINT / Ctrl-C)


@dataclass(frozen=True)
class RayJobState:
    """The part of a RayJob's status that decides what the launcher does."""

    deployment_status: str = ""
    job_status: str = ""
    reason: str = ""
    message: str = ""

    @classmethod
    def from_object(cls, obj: dict[str, Any] | None) -> RayJobState:
        status = (obj or {}).get("status") or {}
        return cls(
            deployment_status=status.get("jobDeploymentStatus") or "",
            job_status=status.get("jobStatus") or "",
            reason=status.get("reason") or "",
            message=status.get("message") or "",
        )

    @property
    def finished(self) -> bool:
        return self.deployment_status in TERMINAL_DEPLOYMENT

    def describe(self) -> str:
        text = f"deployment={self.deployment_status or 'New'} job={self.job_status or '-'}"
        if self.reason:
            text += f" reason={self.reason}"
        if self.message:
            text += f" ({self.message})"
        return text


def exit_code(state: RayJobState) -> int | None:
    """The step's exit code for a finished RayJob, or None while it is still running."""
    if not state.finished:
        return None
    if state.deployment_status == "Complete":
        if state.job_status == "SUCCEEDED":
            return EXIT_SUCCEEDED
        if state.job_status == "STOPPED":
            return EXIT_STOPPED
        return EXIT_JOB_FAILED
    # deployment_status == "Failed"
    if state.reason == "DeadlineExceeded":
        return EXIT_DEADLINE
    if state.reason == "AppFailed" or state.job_status == "FAILED":
        return EXIT_JOB_FAILED
    if state.job_status == "STOPPED":
        return EXIT_STOPPED
    return EXIT_SUBMISSION_FAILED

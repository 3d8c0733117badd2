"""The `kubernetes` section: images and resources of the cluster run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from m2rl.spec.base import StrictModel


class Toleration(StrictModel):
    """A pod toleration, as in the Kubernetes API."""

    key: str | None = Field(default=None, description="Taint key.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Match operator.")
    value: str | None = Field(default=None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate."
    )


class Resources(StrictModel):
    """Requests of one kind of step."""

    cpu: str = Field(default="2", description="CPU request (and limit).")
    memory: str = Field(default="8Gi", description="Memory request (and limit).")
    gpus: int = Field(default=0, ge=0, description="nvidia.com/gpu per pod.")


class KubernetesSpec(StrictModel):
    """Where and how the study's pods run on a cluster."""

    namespace: str = Field(default="m2rl", description="Namespace of the study's pods and RayJobs.")
    cpu_image: str = Field(default="ghcr.io/m2rl/m2rl-cpu:0.1.0", description="Image of data/merge/analysis steps.")
    gpu_image: str = Field(default="ghcr.io/m2rl/m2rl-gpu:0.1.0", description="Image of train/evaluate steps.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Image pull policy of every step."
    )
    cpu_step: Resources = Field(default_factory=Resources, description="Resources of CPU steps.")
    gpu_step: Resources = Field(
        default_factory=lambda: Resources(cpu="32", memory="256Gi", gpus=8), description="Resources of GPU steps."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector of GPU steps.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of GPU steps.")
    shm_size: str = Field(default="64Gi", description="Size of the /dev/shm memory volume of GPU steps.")
    s3_secret: str | None = Field(default="m2rl-s3", description="Secret with AWS_* keys, exposed as env.")
    mlflow_secret: str | None = Field(default=None, description="Secret with MLFLOW_TRACKING_* keys, as env.")
    service_account: str = Field(default="m2rl-launcher", description="Service account of launcher steps.")
    rayjob: bool = Field(
        default=False, description="Run every train step as a KubeRay RayJob (always so when train.nodes > 1)."
    )
    ray_job_ttl_seconds: int = Field(default=3600, ge=0, description="RayJob ttlSecondsAfterFinished.")
    ray_job_deadline_seconds: int | None = Field(default=None, ge=1, description="RayJob activeDeadlineSeconds.")
    ray_job_backoff_limit: int = Field(default=0, ge=0, description="RayJob backoffLimit (retries).")
    ray_version: str = Field(
        default="2.55.0", description="Ray version of the GPU image (OpenRLHF 0.11.2 pins ray 2.55.0); RayCluster rayVersion."
    )
    ray_head: Resources = Field(
        default_factory=lambda: Resources(cpu="8", memory="32Gi", gpus=0),
        description="Resources of the RayJob head pod (runs the driver; no GPUs by default).",
    )
    ray_submitter: Resources = Field(
        default_factory=lambda: Resources(cpu="500m", memory="512Mi", gpus=0),
        description="Resources of the RayJob submitter pod (`ray job submit`, follows the driver log).",
    )
    ray_env: dict[str, str] = Field(
        default_factory=dict, description="Extra non-secret env vars of the RayJob's runtime env and pods."
    )
    run_as_user: int = Field(default=10001, ge=1, description="Non-root UID of every pod (the images' USER).")

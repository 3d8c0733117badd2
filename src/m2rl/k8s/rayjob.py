"""Build a KubeRay `RayJob` (ray.io/v1) that runs one training command on a Ray cluster.

The manifest is a plain dict (what `kubectl apply` or the `kubernetes` client takes). One CPU head
pod runs the driver (the training entrypoint); one GPU worker group holds `train.nodes` pods of
`train.gpus_per_node` GPUs each. The study spec travels with the job (runtime env var
`M2RL_SPEC_YAML`, written to `IN_CLUSTER_SPEC` before the command starts), so the command can name
the spec by that path. Secrets reach the pods only as `envFrom` Secret references, never inline.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from m2rl.spec import StudySpec
from m2rl.spec.kubernetes import KubernetesSpec, Resources

API_VERSION = "ray.io/v1"
KIND = "RayJob"
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
# KubeRay names the RayCluster `<rayjob>-<5 chars>` and its services after that; it rejects longer names.
MAX_NAME_LENGTH = 47
IN_CLUSTER_SPEC = "/tmp/m2rl/spec.yaml"
SPEC_ENV = "M2RL_SPEC_YAML"
PART_OF = {"app.kubernetes.io/part-of": "m2rl"}
# Variables copied from the launcher's environment into the job, so the driver's MLflow runs land
# under the study's parent run.
FORWARDED_ENV = ("M2RL_PARENT_RUN_ID", "MLFLOW_EXPERIMENT_NAME")
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class RayJobError(ValueError):
    """A RayJob that cannot be built from the given spec and command."""


def rayjob_name(*parts: str) -> str:
    """A valid, stable RayJob name from free-form parts (`m2rl-<parts>-<hash>`, at most 47 chars)."""
    raw = "-".join(p for p in parts if p)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    head = f"m2rl-{slug}" if slug else "m2rl"
    head = head[: MAX_NAME_LENGTH - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise RayJobError(
            f"name: {name!r} must be a DNS-1123 label of at most {MAX_NAME_LENGTH} characters "
            "(lowercase letters, digits, '-'; starting with a letter); use m2rl.k8s.rayjob_name()"
        )
    return name


def train_command(
    run: str, data: str, base: str, out: str, spec_path: str = IN_CLUSTER_SPEC, extra: Sequence[str] = ()
) -> list[str]:
    """The training entrypoint: `m2rl train SPEC --run <domain|mix> --data --base --out`."""
    return ["m2rl", "train", spec_path, "--run", run, "--data", data, "--base", base, "--out", out, *extra]


def needs_rayjob(spec: StudySpec) -> bool:
    """True when a training job must run as a RayJob: the OpenRLHF backend on more than one node."""
    return spec.train.backend == "openrlhf" and spec.train.nodes > 1


def _resources(res: Resources, gpus: int | None = None) -> dict[str, Any]:
    amount: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    n_gpus = res.gpus if gpus is None else gpus
    if n_gpus:
        amount["nvidia.com/gpu"] = n_gpus
    return {"requests": dict(amount), "limits": dict(amount)}


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security(k8s: KubernetesSpec) -> dict[str, Any]:
    uid = k8s.run_as_user
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _env_from(k8s: KubernetesSpec) -> list[dict[str, Any]]:
    refs: list[dict[str, Any]] = []
    if k8s.s3_secret:
        refs.append({"secretRef": {"name": k8s.s3_secret}})
    if k8s.mlflow_secret:
        # Optional: an MLflow server without authentication needs no credentials Secret.
        refs.append({"secretRef": {"name": k8s.mlflow_secret, "optional": True}})
    return refs


def job_env(spec: StudySpec, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Non-secret environment of the driver and every Ray process."""
    env: dict[str, str] = {
        "M2RL_CACHE": "/cache/m2rl",
        "HF_HOME": "/cache/huggingface",
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    if spec.tracking.uri:
        env["MLFLOW_TRACKING_URI"] = spec.tracking.uri
    for key in FORWARDED_ENV:
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(spec.kubernetes.ray_env)
    env.update(extra or {})
    return env


def _pod_template(
    spec: StudySpec, *, name: str, role: str, container: str, resources: dict[str, Any],
    env: Mapping[str, str], ports: list[dict[str, Any]] | None = None, gpu: bool,
) -> dict[str, Any]:
    k8s = spec.kubernetes
    volumes: list[dict[str, Any]] = [{"name": "cache", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "cache", "mountPath": "/cache"}]
    if gpu:
        # NCCL and vLLM need a large /dev/shm; the container default is 64 MiB.
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": k8s.shm_size}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    body: dict[str, Any] = {
        "name": container,
        "image": k8s.gpu_image,
        "imagePullPolicy": k8s.image_pull_policy,
        "resources": resources,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "volumeMounts": mounts,
        "securityContext": _container_security(),
    }
    env_from = _env_from(k8s)
    if env_from:
        body["envFrom"] = env_from
    if ports:
        body["ports"] = ports
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(k8s),
        "containers": [body],
        "volumes": volumes,
    }
    if gpu:
        if k8s.node_selector:
            pod["nodeSelector"] = dict(k8s.node_selector)
        if k8s.tolerations:
            pod["tolerations"] = [t.model_dump(exclude_none=True) for t in k8s.tolerations]
    labels = {**PART_OF, "app.kubernetes.io/component": f"rayjob-{role}", "m2rl.io/rayjob": name}
    return {"metadata": {"labels": labels}, "spec": pod}


def _submitter_template(spec: StudySpec, name: str) -> dict[str, Any]:
    """The pod that runs `ray job submit` and then follows the driver log (KubeRay fills in the command)."""
    k8s = spec.kubernetes
    container = {
        "name": "ray-job-submitter",
        "image": k8s.gpu_image,
        "imagePullPolicy": k8s.image_pull_policy,
        "resources": _resources(k8s.ray_submitter, gpus=0),
        "securityContext": _container_security(),
    }
    labels = {**PART_OF, "app.kubernetes.io/component": "rayjob-submitter", "m2rl.io/rayjob": name}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": _pod_security(k8s),
            "containers": [container],
        },
    }


def build_rayjob(
    spec: StudySpec,
    command: Sequence[str],
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The RayJob manifest that runs `command` (an argument list) on a Ray cluster sized by the spec.

    `env` adds non-secret variables to the job (never pass credentials here: the RayJob object is
    readable by anyone who may read RayJobs; credentials come from `kubernetes.s3_secret` and
    `kubernetes.mlflow_secret`).
    """
    check_name(name)
    if not command or not all(isinstance(a, str) and a for a in command):
        raise RayJobError(f"command: must be a non-empty list of non-empty strings, got {list(command)!r}")
    k8s, train = spec.kubernetes, spec.train
    job_vars = job_env(spec, env)
    # JSON is YAML: `load_spec` reads it back into the very same spec.
    runtime_env = {"env_vars": {**job_vars, SPEC_ENV: spec.model_dump_json()}}
    spec_dir = os.path.dirname(IN_CLUSTER_SPEC)
    entrypoint = (
        f'mkdir -p {spec_dir} && printf "%s" "${SPEC_ENV}" > {IN_CLUSTER_SPEC} && exec {shlex.join(command)}'
    )
    head = _pod_template(
        spec, name=name, role="head", container="ray-head", resources=_resources(k8s.ray_head),
        env=job_vars, gpu=k8s.ray_head.gpus > 0,
        ports=[
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
        ],
    )
    worker = _pod_template(
        spec, name=name, role="worker", container="ray-worker",
        resources=_resources(k8s.gpu_step, gpus=train.gpus_per_node), env=job_vars, gpu=True,
    )
    submitter = _submitter_template(spec, name)

    body: dict[str, Any] = {
        "entrypoint": entrypoint,
        "runtimeEnvYAML": yaml.safe_dump(runtime_env, sort_keys=False),
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": k8s.ray_job_ttl_seconds,
        "backoffLimit": k8s.ray_job_backoff_limit,
        "submissionMode": "K8sJobMode",
        "metadata": {"m2rl.study": spec.name},
        "submitterPodTemplate": submitter,
        "rayClusterSpec": {
            "rayVersion": k8s.ray_version,
            "enableInTreeAutoscaling": False,
            "headGroupSpec": {
                # The head only runs the driver: no GPUs are offered to Ray on it unless asked for.
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-gpus": str(k8s.ray_head.gpus)},
                "template": head,
            },
            "workerGroupSpecs": [
                {
                    "groupName": "gpu",
                    "replicas": train.nodes,
                    "minReplicas": train.nodes,
                    "maxReplicas": train.nodes,
                    "rayStartParams": {},
                    "template": worker,
                }
            ],
        },
    }
    if k8s.ray_job_deadline_seconds is not None:
        body["activeDeadlineSeconds"] = k8s.ray_job_deadline_seconds
    meta_labels = {**PART_OF, "m2rl.io/study": label_value(spec.name), **(labels or {})}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": k8s.namespace, "labels": meta_labels},
        "spec": body,
    }


def label_value(text: str) -> str:
    """A label value (<= 63 chars of [-_.a-zA-Z0-9], alphanumeric at both ends)."""
    value = re.sub(r"[^-_.a-zA-Z0-9]+", "-", text)[:63]
    return value.strip("-_.") or "study"


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the runtime env YAML) as literal blocks, so the manifest stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def to_yaml(manifest: Mapping[str, Any]) -> str:
    return yaml.dump(dict(manifest), Dumper=_BlockDumper, sort_keys=False, width=120)

"""Build a KubeRay `RayJob` (ray.io/v1) that runs one training command on a Ray cluster.

The manifest is a plain dict (what `kubectl apply` or the `kubernetes` client takes). One CPU head
pod runs the driver (the training entrypoint); one GPU worker group holds `train.nodes` pods of
`train.gpus_per_node` GPUs each. Secrets reach the pods only as `envFrom` Secret references, never inline.

What KubeRay does with the entrypoint (K8sJobMode, ray-operator v1.4.2, `GetK8sJobCommand` in
`controllers/ray/common/job.go`, reproduced by `kuberay_submitter_command`): it joins
`if ! ray job status ... ; then ray job submit --address ... --no-wait --runtime-env-json "<json>"
--metadata-json "<json>" --submission-id <id> -- <entrypoint> ; fi ; ray job logs ... --follow <id>`
with spaces and runs that string with `/bin/bash -ce --` in the submitter pod. The entrypoint is pasted
in unquoted, so any shell operator in it (`&&`, `;`, `>`) would run in the submitter pod instead of
on the Ray cluster; and the JSON blobs are Go-quoted inside double quotes, where bash still expands
`$` and backquotes. Hence:

- the entrypoint is one plain command whose words are all shell-inert (`SAFE_ARG`), so bash in the
  submitter, `ray job submit` (which re-joins the words with `subprocess.list2cmdline`) and `/bin/sh`
  on the head all give back the same argument list;
- the study spec travels in the runtime env var `M2RL_SPEC_YAML` (its JSON, every `$` and backquote
  written as a `\\u0024` / `\\u0060` escape, which a JSON or YAML reader turns back), and the command
  reads it with `m2rl train --spec-env M2RL_SPEC_YAML`; no file is written before the command starts;
- any other runtime env value (or the study name in the metadata) holding `$` or a backquote is refused,
  naming it, and so is a submitter command longer than Linux's 128 KiB limit on one argument.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
# Where a spec file would live in the pods. The RayJob writes none (the spec travels in SPEC_ENV and
# `m2rl train --spec-env` reads it); kept for callers that pass `train_command(spec_path=...)`.
IN_CLUSTER_SPEC = "/tmp/m2rl/spec.yaml"
SPEC_ENV = "M2RL_SPEC_YAML"
# Words that bash, subprocess.list2cmdline and /bin/sh all leave as they are (no quoting, no expansion).
SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
# The KubeRay release whose submitter command `kuberay_submitter_command` reproduces (the chart docs install it).
KUBERAY_VERSION = "1.4.2"
# Linux MAX_ARG_STRLEN: one argv string (here the submitter's `bash -c` script), NUL included.
MAX_ARG_BYTES = 32 * 4096
# Upper bounds of what KubeRay fills in: the dashboard address `<cluster>-head-svc.<ns>.svc.cluster.local:8265`
# (cluster = name + 6 chars, namespace <= 63) and the job id `<name>-<5 chars>`.
_MAX_DASHBOARD_URL = f"{'x' * (MAX_NAME_LENGTH + 6)}-head-svc.{'n' * 63}.svc.cluster.local:8265"
_MAX_JOB_ID = "x" * (MAX_NAME_LENGTH + 6)
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
    run: str, data: str, base: str, out: str, spec_path: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """The training entrypoint: `m2rl train --spec-env M2RL_SPEC_YAML --run <domain|mix> --data --base --out`
    (the spec the RayJob carries), or `m2rl train SPEC_PATH ...` when a spec file is named."""
    spec_args = [spec_path] if spec_path else ["--spec-env", SPEC_ENV]
    return ["m2rl", "train", *spec_args, "--run", run, "--data", data, "--base", base, "--out", out, *extra]


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
    for i, arg in enumerate(command):
        if not SAFE_ARG.match(arg):
            raise RayJobError(
                f"command[{i}]: {arg!r} has a character KubeRay's submitter would let the shell interpret (it pastes "
                "the entrypoint unquoted into `bash -c`); use only letters, digits and _@%+=:,./- in each argument"
            )
    k8s, train = spec.kubernetes, spec.train
    job_vars = job_env(spec, env)
    for key, value in job_vars.items():
        if _SHELL_ACTIVE.search(value):
            raise RayJobError(
                f"env {key}: {value!r} holds '$' or '`', which bash expands inside the submitter's "
                "--runtime-env-json (from kubernetes.ray_env, tracking.uri, the launcher's environment or env=)"
            )
    if _SHELL_ACTIVE.search(spec.name):
        raise RayJobError(f"name: the study name {spec.name!r} goes into the RayJob metadata; drop its '$' and '`'")
    runtime_env = {"env_vars": {**job_vars, SPEC_ENV: spec_env_value(spec)}}
    entrypoint = " ".join(command)
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
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": k8s.namespace, "labels": meta_labels},
        "spec": body,
    }
    script = kuberay_submitter_command(manifest, dashboard_url=_MAX_DASHBOARD_URL, job_id=_MAX_JOB_ID)[-1]
    size = len(script.encode()) + 1
    if size > MAX_ARG_BYTES:
        raise RayJobError(
            f"runtimeEnvYAML: KubeRay's submitter command would be up to {size} bytes, over Linux's {MAX_ARG_BYTES}-byte "
            "limit on one argument (the spec and env vars travel in it); shorten the spec or kubernetes.ray_env"
        )
    return manifest


_SHELL_ACTIVE = re.compile(r"[$`]")


def spec_env_value(spec: StudySpec) -> str:
    """The spec as the RayJob carries it (`M2RL_SPEC_YAML`): its JSON, with `$` and backquotes written as JSON
    escapes (bash would expand them in the submitter); `json.loads` and `yaml.safe_load` read it back alike."""
    return spec.model_dump_json().replace("$", "\\u0024").replace("`", "\\u0060")


def _go_json(value: Any) -> str:
    """`encoding/json.Marshal` of a decoded YAML value: sorted keys, no spaces, <, >, & and U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's `strconv.Quote`: double quotes, backslash escapes, non-printable runes as \\x / \\u / \\U."""
    out = ['"']
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def kuberay_submitter_command(manifest: Mapping[str, Any], *, dashboard_url: str, job_id: str) -> list[str]:
    """The command KubeRay v1.4.2 gives the submitter container of a K8sJobMode RayJob without its own command.

    A reproduction of ray-operator `GetK8sJobCommand` (controllers/ray/common/job.go) and of
    `getSubmitterTemplate` (rayjob_controller.go: the words joined with spaces, run by
    `utils.GetContainerCommand(["e"])` = `/bin/bash -ce --`). `dashboard_url` is what KubeRay puts in
    `status.dashboardURL` (`<head-svc>.<ns>.svc.cluster.local:8265`), `job_id` its `status.jobId`
    (`<rayjob name>-<5 random chars>`). Returns the container's command + args: `["/bin/bash", "-ce", "--", script]`.
    """
    body = manifest["spec"]
    address = dashboard_url if dashboard_url.startswith("http://") else "http://" + dashboard_url
    words = ["if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then",
             "ray", "job", "submit", "--address", address, "--no-wait"]
    runtime_env_yaml = body.get("runtimeEnvYAML") or ""
    if runtime_env_yaml:
        words += ["--runtime-env-json", go_quote(_go_json(yaml.safe_load(runtime_env_yaml)))]
    if body.get("metadata"):
        words += ["--metadata-json", go_quote(_go_json(body["metadata"]))]
    if job_id:
        words += ["--submission-id", job_id]
    if body.get("entrypointNumCpus", 0) > 0:
        words += ["--entrypoint-num-cpus", f"{float(body['entrypointNumCpus']):f}"]
    if body.get("entrypointNumGpus", 0) > 0:
        words += ["--entrypoint-num-gpus", f"{float(body['entrypointNumGpus']):f}"]
    if body.get("entrypointResources"):
        words += ["--entrypoint-resources", go_quote(body["entrypointResources"])]
    words += ["--", body["entrypoint"].strip(), ";", "fi", ";", "ray", "job", "logs", "--address", address, "--follow",
              job_id]
    return ["/bin/bash", "-ce", "--", " ".join(words)]


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

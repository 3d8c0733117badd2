"""Cluster settings of a task from the spec's `kubernetes` section, with kfp-kubernetes.

CPU steps (data, merge, analyze, report) get the CPU image and `cpu_step` resources; GPU steps (train,
evaluate) the GPU image, `gpu_step` resources with `nvidia.com/gpu`, the node selector, the tolerations
and a memory-backed /dev/shm. A train step that launches a RayJob (`m2rl.k8s.launches_rayjob`) is a CPU
step: it only creates, watches and deletes the RayJob (whose pods get the GPUs), with the API token of the
run's ServiceAccount (KFP sets one per run: `m2rl submit` passes `kubernetes.service_account`, which the
chart binds to the launcher Role in the study's namespace) and the label `m2rl/launcher: rayjob`. Every
step gets the image pull policy, the non-root security context and the S3 / MLflow credentials as env from
their Secrets. kfp.local ignores all of this (it runs subprocesses).
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from m2rl.spec import KubernetesSpec

GPU_RESOURCE = "nvidia.com/gpu"
SHM_VOLUME = "dshm"
# Secret keys exposed under the same env var names; the second group may be absent from the Secret.
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_KEYS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL")
MLFLOW_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


LAUNCHER_LABEL = ("m2rl/launcher", "rayjob")


def apply(task: PipelineTask, k8s: KubernetesSpec, *, stage: str, gpu: bool, launcher: bool = False) -> PipelineTask:
    """Set image, resources, scheduling, volumes, secrets and pull policy of one task (`launcher`: a step that
    launches a RayJob, on the CPU whatever its stage)."""
    gpu = gpu and not launcher
    task.set_container_image(k8s.gpu_image if gpu else k8s.cpu_image)
    kubernetes.set_image_pull_policy(task, k8s.image_pull_policy)
    res = k8s.gpu_step if gpu else k8s.cpu_step
    task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
    task.set_memory_request(res.memory).set_memory_limit(res.memory)
    if res.gpus:
        task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(res.gpus)
    if gpu:
        for key, value in k8s.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for t in k8s.tolerations:
            kubernetes.add_toleration(task, key=t.key, operator=t.operator, value=t.value, effect=t.effect)
        kubernetes.empty_dir_mount(task, volume_name=SHM_VOLUME, mount_path="/dev/shm", medium="Memory",
                                   size_limit=k8s.shm_size)
    if k8s.s3_secret:
        kubernetes.use_secret_as_env(task, secret_name=k8s.s3_secret, secret_key_to_env={k: k for k in S3_KEYS})
        kubernetes.use_secret_as_env(task, secret_name=k8s.s3_secret,
                                     secret_key_to_env={k: k for k in S3_OPTIONAL_KEYS}, optional=True)
    if k8s.mlflow_secret:
        kubernetes.use_secret_as_env(task, secret_name=k8s.mlflow_secret,
                                     secret_key_to_env={k: k for k in MLFLOW_KEYS}, optional=True)
    kubernetes.set_security_context(task, run_as_user=k8s.run_as_user, run_as_non_root=True)
    kubernetes.add_pod_label(task, "app.kubernetes.io/part-of", "m2rl")
    kubernetes.add_pod_label(task, "m2rl/stage", stage)
    if launcher:
        kubernetes.add_pod_label(task, *LAUNCHER_LABEL)
    return task

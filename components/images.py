"""Default images of the components (the spec's `kubernetes.cpu_image` / `gpu_image` override them per task)."""

from m2rl.spec import KubernetesSpec

CPU_IMAGE = KubernetesSpec.model_fields["cpu_image"].default
GPU_IMAGE = KubernetesSpec.model_fields["gpu_image"].default

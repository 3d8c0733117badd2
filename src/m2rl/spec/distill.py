"""The `distill` section: multi-teacher on-policy distillation (MT-OPD) of the base into one model.

The student (the base) samples responses to the prompts of every domain (the mix blend); each response is
scored token by token by the teacher of its record's domain (by default the study's own expert,
`single-<domain>`), and the student minimises the per-token divergence to that teacher (reverse KL by
default). Defaults are the paper's `multi_teacher_opd.sh` (slime): lr 1e-6 constant, 256 prompts x 4
samples, 1024 samples per optimizer step, 2048 prompt / 16384 response tokens, temperature 1, 400 steps.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from m2rl.spec.base import StrictModel

# divergence -> TRL's DistillationConfig.beta (the generalized JSD interpolation: 0 forward KL, 1 reverse KL).
DIVERGENCE_BETA = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": 0.5}


class DistillVllmSpec(StrictModel):
    """vLLM on the GPU backend: the student's rollout engine (colocated) and one teacher server per domain."""

    gpu_memory_utilization: float = Field(default=0.3, gt=0, le=1, description="GPU memory fraction of the colocated student vLLM engine.")
    tensor_parallel_size: int = Field(default=1, ge=1, description="Tensor parallel size of the student vLLM engine.")
    teacher_gpus: int = Field(default=1, ge=1, description="GPUs of each teacher's vLLM server (its tensor parallel size).")
    teacher_gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1, description="GPU memory fraction of each teacher server.")
    teacher_port: int = Field(default=8100, ge=1024, le=65000, description="Port of the first teacher server; the others follow.")
    teacher_urls: dict[str, str] = Field(
        default_factory=dict,
        description="domain -> URL of an already running OpenAI-compatible vLLM server of that teacher (not launched).",
    )
    server_timeout: float = Field(default=1800.0, gt=0, description="Seconds to wait for the teacher servers to come up.")


class DistillSpec(StrictModel):
    """Multi-teacher on-policy distillation settings; field names are backend-neutral."""

    backend: Literal["trl", "vllm"] = Field(
        default="trl", description="trl: TRL on the CPU, teachers in-process; vllm: GPU pods, vLLM student + teacher servers."
    )
    teachers: dict[str, str] = Field(
        default_factory=dict,
        description="domain -> teacher checkpoint (folder, s3://, HF id); a domain not listed uses the study's expert.",
    )
    divergence: Literal["reverse_kl", "forward_kl", "jsd"] = Field(
        default="reverse_kl", description="Per-token divergence from student to teacher: reverse_kl, forward_kl or jsd."
    )
    lr: float = Field(default=1e-6, gt=0, description="Student learning rate.")
    lr_scheduler: str = Field(default="constant", description="LR schedule (constant, cosine, linear, ...).")
    lr_warmup_ratio: float = Field(default=0.0, ge=0, lt=1, description="Fraction of steps used for warmup.")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW weight decay of the student.")
    adam_betas: tuple[float, float] = Field(default=(0.9, 0.98), description="AdamW (beta1, beta2).")
    max_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    prompts_per_step: int = Field(default=256, ge=1, description="Prompts sampled per distillation step.")
    samples_per_prompt: int = Field(default=4, ge=1, description="Responses the student samples per prompt.")
    train_batch_size: int | None = Field(
        default=None, ge=1, description="Samples per optimizer step; default prompts_per_step*samples_per_prompt."
    )
    micro_batch_size: int = Field(default=1, ge=1, description="Samples per forward/backward pass (per device).")
    steps: int = Field(default=400, ge=1, description="Distillation steps (one step: prompts_per_step x samples_per_prompt responses).")
    max_prompt_len: int = Field(default=2048, ge=1, description="Max prompt tokens (longer prompts are left out).")
    max_new_tokens: int = Field(default=16384, ge=1, description="Max response tokens the student samples.")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature, also applied to both distributions in the loss.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus sampling of the student.")
    seed: int = Field(default=42, description="Distillation seed.")
    save_steps: int = Field(default=40, ge=1, description="Save a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(default=2, ge=1, description="Periodic checkpoints kept (oldest deleted).")
    offload_teachers: bool = Field(
        default=True, description="In-process teachers wait in host memory; only those a batch routes to sit on the device."
    )
    gpus: int = Field(default=8, ge=1, description="GPUs of the student trainer (vllm backend).")
    bf16: bool = Field(default=True, description="bf16 training (vllm backend).")
    gradient_checkpointing: bool = Field(default=True, description="Gradient checkpointing of the student (vllm backend).")
    vllm: DistillVllmSpec = Field(default_factory=DistillVllmSpec, description="vLLM student engine and teacher servers.")
    cpu_threads: int | None = Field(default=None, ge=1, description="torch threads of the trl backend; default all cores.")

    @property
    def beta(self) -> float:
        """TRL's generalized-JSD beta of the divergence."""
        return DIVERGENCE_BETA[self.divergence]

    @property
    def samples_per_step(self) -> int:
        return self.prompts_per_step * self.samples_per_prompt

    @model_validator(mode="after")
    def _batches(self) -> DistillSpec:
        tbs = self.train_batch_size or self.samples_per_step
        if self.samples_per_step % tbs:
            raise ValueError(f"train_batch_size: {tbs} must divide prompts_per_step*samples_per_prompt = "
                             f"{self.samples_per_step}")
        if tbs % self.micro_batch_size:
            raise ValueError(f"micro_batch_size: {self.micro_batch_size} must divide the train batch ({tbs})")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas: each beta must be in [0, 1), got {list(self.adam_betas)}")
        return self

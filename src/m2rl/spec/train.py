"""The `train` section: the GRPO recipe shared by the single-domain and mixed runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from m2rl.names import MIX
from m2rl.spec.base import StrictModel

# OpenRLHF 0.11 `--algo.advantage.estimator` choices; the group ones need >= 2 samples per prompt.
ADVANTAGE_ESTIMATORS = ("group_norm", "dr_grpo", "rloo", "reinforce_baseline", "reinforce", "gae", "flash_reinforce")
GROUP_ESTIMATORS = ("group_norm", "dr_grpo", "rloo", "reinforce_baseline")


class VllmSpec(StrictModel):
    """vLLM rollout engines (OpenRLHF backend)."""

    num_engines: int = Field(default=1, ge=1, description="Number of vLLM engines for rollouts.")
    tensor_parallel_size: int = Field(default=1, ge=1, description="Tensor parallel size of each engine.")
    gpu_memory_utilization: float = Field(default=0.6, gt=0, le=1, description="GPU memory fraction for vLLM.")
    colocate: bool = Field(default=True, description="Colocate vLLM with the actor (hybrid engine).")
    enable_sleep: bool = Field(default=True, description="Sleep vLLM while the actor trains (colocated).")


class ImportanceSamplingSpec(StrictModel):
    """Truncated importance sampling between the rollout policy (the vLLM sampler) and the train policy (the
    actor): each token's (or sequence's) policy-gradient term is weighted by pi_train / pi_rollout, clipped
    (or masked) to [low, high]."""

    level: Literal["off", "token", "sequence"] = Field(
        default="off", description="Granularity of the IS weight: off (no correction), token or sequence."
    )
    mode: Literal["clip", "mask"] = Field(
        default="clip", description="clip: truncate the weight into [low, high] (TIS); mask: drop units outside it."
    )
    low: float = Field(default=0.0, ge=0, description="Lower bound of the IS weight.")
    high: float = Field(default=2.0, gt=0, description="Upper bound of the IS weight (C of truncated IS).")

    @model_validator(mode="after")
    def _bounds(self) -> ImportanceSamplingSpec:
        if self.low >= self.high:
            raise ValueError(f"low: must be below high, got low={self.low} >= high={self.high}")
        return self


class TrainSpec(StrictModel):
    """GRPO hyper-parameters; field names are backend-neutral and mapped per backend."""

    backend: str = Field(default="trl", description="Registered training backend: trl (CPU, local) or openrlhf (GPU).")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific options, typed by the backend's Params (m2rl list train_backend)."
    )
    lr: float = Field(default=2e-6, gt=0, description="Actor learning rate.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay of the actor.")
    adam_betas: tuple[float, float] | None = Field(
        default=None, description="AdamW (beta1, beta2); None keeps the backend's own (OpenRLHF 0.9, 0.95; TRL 0.9, 0.999)."
    )
    importance_sampling: ImportanceSamplingSpec = Field(
        default_factory=ImportanceSamplingSpec,
        description="Rollout/train policy mismatch correction (truncated importance sampling).",
    )
    lr_scheduler: str = Field(default="constant", description="LR schedule (constant, cosine, linear, ...).")
    lr_warmup_ratio: float = Field(default=0.0, ge=0, lt=1, description="Fraction of steps used for warmup.")
    samples_per_prompt: int = Field(default=16, ge=1, description="Responses sampled per prompt (GRPO group).")
    rollout_batch_size: int = Field(default=128, ge=1, description="Prompts per rollout step.")
    train_batch_size: int | None = Field(
        default=None, ge=1, description="Samples per optimizer step; default rollout_batch_size*samples."
    )
    micro_train_batch_size: int = Field(default=1, ge=1, description="Per-GPU micro batch for training.")
    micro_rollout_batch_size: int = Field(default=4, ge=1, description="Per-GPU micro batch for rollouts.")
    steps: int = Field(default=200, ge=1, description="GRPO steps of a single-domain run.")
    mix_steps: int | None = Field(default=None, ge=1, description="GRPO steps of the mixed run; default steps.")
    domain_steps: dict[str, int] = Field(
        default_factory=dict, description="GRPO steps of one domain's single-domain run (domain -> steps); default steps."
    )
    max_prompt_len: int = Field(default=1024, ge=1, description="Max prompt tokens.")
    max_new_tokens: int = Field(default=8192, ge=1, description="Max generated tokens per response.")
    temperature: float = Field(default=1.0, gt=0, description="Rollout sampling temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Rollout nucleus sampling.")
    clip_low: float = Field(default=0.2, gt=0, description="PPO ratio clip epsilon (low).")
    clip_high: float = Field(default=0.28, gt=0, description="PPO ratio clip epsilon (high, DAPO clip-higher).")
    kl_coef: float = Field(default=0.0, ge=0, description="KL coefficient (beta); 0 disables the KL term.")
    kl_estimator: Literal["k1", "k2", "k3"] = Field(default="k3", description="KL estimator.")
    use_kl_loss: bool = Field(default=True, description="KL as a loss term (GRPO) instead of in the reward.")
    advantage_estimator: str = Field(default="group_norm", description="Advantage estimator (GRPO: group_norm).")
    seed: int = Field(default=42, description="Training seed.")
    save_steps: int = Field(default=50, ge=1, description="Save a resumable checkpoint every N steps.")
    zero_stage: int = Field(default=3, ge=0, le=3, description="DeepSpeed ZeRO stage (OpenRLHF).")
    bf16: bool = Field(default=True, description="bf16 training (OpenRLHF).")
    gradient_checkpointing: bool = Field(default=True, description="Gradient checkpointing (OpenRLHF).")
    packing_samples: bool = Field(default=True, description="Pack samples without padding (OpenRLHF).")
    nodes: int = Field(default=1, ge=1, description="Nodes of one OpenRLHF training job (`m2rl rayjob` runs it as a RayJob).")
    gpus_per_node: int = Field(default=8, ge=1, description="GPUs per node.")
    vllm: VllmSpec = Field(default_factory=VllmSpec, description="vLLM rollout settings (OpenRLHF).")
    reward_url: str | None = Field(
        default=None, description="Reward service URL; default the in-process reward hook file."
    )
    keep_checkpoints: int = Field(default=2, ge=1, description="Periodic resumable checkpoints kept (oldest deleted).")
    max_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm of the actor.")
    min_lr_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Floor of decaying schedules as a fraction of lr (OpenRLHF)."
    )
    entropy_coef: float | None = Field(
        default=None, description="Entropy bonus coefficient (OpenRLHF); 0 only logs entropy, None turns it off."
    )
    adam_offload: bool = Field(default=False, description="Offload the Adam states to CPU (DeepSpeed).")
    ref_offload: bool = Field(default=False, description="Offload the reference model to CPU (OpenRLHF, KL > 0).")
    attn_implementation: str = Field(
        default="flash_attention_2", description="Attention kernel of the actor (OpenRLHF; packing needs flash)."
    )
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch threads of the TRL backend on the CPU; default all cores."
    )

    @field_validator("domain_steps")
    @classmethod
    def _domain_steps(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [f"{d}: {n!r} is not a positive number of steps" for d, n in v.items() if n < 1]
        if bad:
            raise ValueError("; ".join(bad))
        return v

    def run_steps(self, run: str) -> int:
        """GRPO steps of a training run: `mix_steps` for the mixed run, else the domain's `domain_steps`, else
        `steps`."""
        if run == MIX:
            return self.mix_steps or self.steps
        return self.domain_steps.get(run, self.steps)

    @field_validator("adam_betas")
    @classmethod
    def _betas(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not all(0 <= b < 1 for b in v):
            raise ValueError(f"each beta must be in [0, 1), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _group_needs_samples(self) -> TrainSpec:
        if self.advantage_estimator not in ADVANTAGE_ESTIMATORS:
            raise ValueError(
                f"advantage_estimator: {self.advantage_estimator!r} is not one of {', '.join(ADVANTAGE_ESTIMATORS)}"
            )
        if self.advantage_estimator in GROUP_ESTIMATORS and self.samples_per_prompt < 2:
            raise ValueError(
                f"samples_per_prompt: {self.advantage_estimator} (GRPO) compares samples within a prompt's group "
                f"and needs at least 2, got {self.samples_per_prompt}"
            )
        return self

    @model_validator(mode="after")
    def _batch_divisible(self) -> TrainSpec:
        tbs = self.train_batch_size
        if tbs is not None and (self.rollout_batch_size * self.samples_per_prompt) % tbs:
            raise ValueError(
                f"train_batch_size: {tbs} must divide rollout_batch_size*samples_per_prompt "
                f"= {self.rollout_batch_size * self.samples_per_prompt}"
            )
        return self

"""The `merge` section: which merge methods to run over the single-domain experts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from m2rl.names import DOMAINS
from m2rl.spec.base import StrictModel


def unsaved_step(step: int, steps: int, save_steps: int) -> str | None:
    """Why training step `step` of a run of `steps` steps saving every `save_steps` is not a checkpoint a merge
    can take (None when it is one)."""
    if step > steps:
        return f"step {step} is beyond the {steps} steps of the run (train.steps, or train.domain_steps of its domain)"
    if step != steps and step % save_steps:
        return (f"step {step} is never saved: checkpoints are saved every train.save_steps = {save_steps} steps "
                f"and at the last step ({steps}); saved steps are {save_steps}, {2 * save_steps}, ... and {steps}")
    return None


class MergeMethodSpec(StrictModel):
    """One merge to produce: a registered method and its parameters."""

    method: str = Field(description="Registered merge method (average, task_arithmetic, ties, dare_ties, ...).")
    name: str | None = Field(default=None, description="Output label; default the method name.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Method parameters: scale, density, scope, drop_rate, seed, ..."
    )

    @property
    def label(self) -> str:
        return self.name or self.method


class MergeSpec(StrictModel):
    """Merges of the single-domain experts, one output checkpoint per entry."""

    methods: list[MergeMethodSpec] = Field(
        default_factory=lambda: [MergeMethodSpec(method="task_arithmetic"), MergeMethodSpec(method="ties")],
        description="Merges to produce.",
    )
    dtype: Literal["base", "float32", "bfloat16", "float16"] = Field(
        default="base", description="Output dtype; 'base' keeps the base model's dtype."
    )
    shard_size_mb: int = Field(default=2048, ge=1, description="Max size of one output safetensors shard.")
    expert_steps: dict[str, int] = Field(
        default_factory=dict,
        description="Domain -> the training step of its expert to merge (a saved step); default the final one.",
    )

    @field_validator("expert_steps")
    @classmethod
    def _expert_steps(cls, v: dict[str, int]) -> dict[str, int]:
        for domain, step in v.items():
            if domain not in DOMAINS:
                raise ValueError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
            if not isinstance(step, int) or step < 1:
                raise ValueError(f"{domain}: a training step must be an integer >= 1, got {step!r}")
        return v

    @field_validator("methods")
    @classmethod
    def _unique_labels(cls, v: list[MergeMethodSpec]) -> list[MergeMethodSpec]:
        seen: set[str] = set()
        for m in v:
            if m.label in seen:
                raise ValueError(f"duplicate merge output name {m.label!r}; set a distinct `name`")
            seen.add(m.label)
        return v

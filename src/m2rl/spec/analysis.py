"""The `analysis` section: which analyses explain the mix-vs-merge result."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from m2rl.spec.base import StrictModel


class AnalysisSpec(StrictModel):
    """Analyses run after evaluation, and their settings."""

    analyses: list[str] = Field(
        default_factory=lambda: ["geometry", "divergence", "inheritance", "behaviour", "transfer", "cost"],
        description="Registered analyses to run.",
    )
    projection_dim: int = Field(default=1024, ge=1, description="Random projection size for cosine similarity.")
    footprint_top_percent: float = Field(
        default=1.0, gt=0, le=100, description="Top-k% |tau| positions for update-footprint overlap."
    )
    kl_prompts: int = Field(default=32, ge=1, description="Prompts sampled from eval splits for token KL.")
    kl_max_new_tokens: int = Field(default=64, ge=1, description="Tokens generated per prompt for token KL.")
    seed: int = Field(default=0, description="Seed of projections and prompt sampling.")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-analysis parameters {analysis: {param: value}}, typed by its Params (m2rl list analysis).",
    )

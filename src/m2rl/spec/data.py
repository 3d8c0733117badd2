"""The `data` section: domains, their sources, the blend and the split."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from m2rl.names import DOMAINS
from m2rl.spec.base import StrictModel

__all__ = ["DOMAINS", "DataSpec", "DomainSpec", "SourceSpec"]


class SourceSpec(StrictModel):
    """One data source, adapted into unified records by the source registered under `type`."""

    type: str = Field(description="Registered source name: builtin, nemotron_rl_blend, hf, records.")
    path: str | None = Field(default=None, description="Local path, glob, s3:// URI or HF hub id of the input.")
    split: str = Field(default="train", description="Dataset split to read (hf / builtin sources).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Record field -> source column mapping (hf source)."
    )
    verifier: dict[str, Any] = Field(
        default_factory=dict, description="Verifier block for sources whose rows do not carry one (hf source)."
    )
    limit: int | None = Field(default=None, ge=1, description="Read at most this many rows from the source.")
    options: dict[str, Any] = Field(default_factory=dict, description="Source-specific options.")


class DomainSpec(StrictModel):
    """One training domain: its sources and its weight in the mixed run."""

    sources: list[SourceSpec] = Field(
        default_factory=lambda: [SourceSpec(type="builtin")], description="Sources of this domain's records."
    )
    weight: float = Field(default=1.0, gt=0, description="Blend weight when data.balance is 'weights'.")
    max_train: int | None = Field(default=None, ge=1, description="Cap on this domain's train records.")
    max_eval: int | None = Field(default=None, ge=1, description="Cap on this domain's eval records.")


class DataSpec(StrictModel):
    """How records are gathered, deduplicated, split and blended."""

    domains: dict[str, DomainSpec] = Field(
        default_factory=lambda: {d: DomainSpec() for d in DOMAINS},
        description="Domain name -> its sources; names from math, code, science, if, agent.",
    )
    balance: Literal["equal", "proportional", "weights"] = Field(
        default="equal", description="How the mix blend samples domains: equal shares, by size, or by weight."
    )
    eval_fraction: float = Field(
        default=0.2, ge=0, lt=1, description="Fraction of each domain's records held out for evaluation."
    )
    seed: int = Field(default=0, description="Seed of the deterministic split and blend.")
    dedup: bool = Field(default=True, description="Drop exact duplicates by normalised prompt hash.")
    max_reject_fraction: float = Field(
        default=0.01, ge=0, le=1, description="Fail the stage when rejected rows exceed this fraction."
    )
    batch_rows: int = Field(default=8192, ge=1, description="Rows per streamed batch (bounds memory).")

    @field_validator("domains")
    @classmethod
    def _known_domains(cls, v: dict[str, DomainSpec]) -> dict[str, DomainSpec]:
        bad = sorted(set(v) - set(DOMAINS))
        if bad:
            raise ValueError(f"unknown domain {bad[0]!r}; expected one of {', '.join(DOMAINS)}")
        if not v:
            raise ValueError("at least one domain is required")
        return v


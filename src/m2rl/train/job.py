"""One training job: which run of the study, on which data, from which base, to where."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from m2rl.spec import StudySpec, TrainSpec

from m2rl.names import MIX, run_model


class TrainError(ValueError):
    """A training job that cannot run; the message names the field, file or record."""


@dataclass
class TrainJob:
    """Everything a backend needs; paths are resolved by the stage before the backend runs."""

    spec: StudySpec
    run: str  # a domain name or "mix"
    data: str  # train records URI as given
    base: str  # base model reference as given
    out: str  # checkpoint URI
    checkpoint_dir: str  # periodic resumable checkpoints (local folder or s3:// URI)
    scratch: Path  # local working folder of this job
    steps: int
    keep_steps: tuple[int, ...] = ()  # steps before the last whose weights are kept for a merge (merge.expert_steps)
    data_local: Path | None = None  # local copy of the train records parquet (None in a dry run)
    base_local: Path | None = None  # resolved base checkpoint folder (None in a dry run)
    num_records: int = 0
    domain_counts: dict[str, int] = field(default_factory=dict)

    @property
    def train(self) -> TrainSpec:
        return self.spec.train

    @property
    def paradigm(self) -> str:
        return "mix" if self.run == MIX else "single"

    @property
    def domains(self) -> list[str]:
        """Domains this run trains on: the run's own, or every domain of the spec for the mix."""
        return list(self.spec.domains) if self.run == MIX else [self.run]

    @property
    def name(self) -> str:
        """`single-<domain>` or `mix`, the checkpoint naming of the artifact layout."""
        return run_model(self.run)


@dataclass
class CurvePoint:
    """One GRPO step of the reward curve: overall mean reward and the per-domain means seen in it."""

    step: int
    reward: float
    domains: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "reward": self.reward, "domains": dict(self.domains)}


@dataclass
class BackendRun:
    """What a backend reports after training."""

    steps: int  # GRPO steps done in total (including those before a resume)
    reward_curve: list[CurvePoint]
    resumed_from_step: int = 0  # 0 when the run started from the base model
    prior_wall_seconds: float = 0.0  # wall time spent before the resume (from the checkpoint)
    extra: dict[str, Any] = field(default_factory=dict)

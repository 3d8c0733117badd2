"""The experiment spec: one YAML file describes a whole mix-vs-merge study."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from m2rl.names import STUDY_PARADIGMS
from m2rl.registry import validation_lines
from m2rl.spec.analysis import AnalysisSpec
from m2rl.spec.base import StrictModel
from m2rl.spec.data import DataSpec
from m2rl.spec.distill import DistillSpec
from m2rl.spec.evaluate import EvaluateSpec
from m2rl.spec.kubernetes import KubernetesSpec
from m2rl.spec.merge import MergeSpec, unsaved_step
from m2rl.spec.resolve import name_problems
from m2rl.spec.rewards import RewardsSpec
from m2rl.spec.train import TrainSpec

# `register` is also the name of ABCMeta.register (pydantic warns that the field shadows it); the field works.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class TrackingSpec(StrictModel):
        """Where runs are tracked."""

        uri: str | None = Field(
            default=None, description="MLflow tracking URI; default $MLFLOW_TRACKING_URI or SQLite under work_dir."
        )
        experiment: str | None = Field(default=None, description="MLflow experiment; default the study name.")
        register: bool = Field(
            default=False, description="Register the study's recommended model in the Model Registry (@recommended)."
        )
        registered_model: str | None = Field(
            default=None, min_length=1, description="Registered model name for `register`; default the study name."
        )


class StudySpec(StrictModel):
    """A whole study: base model, data, training, merges, evaluation, analyses, and where it all goes."""

    name: str = Field(default="m2rl-study", min_length=1, description="Study name (MLflow parent run name).")
    base_model: str = Field(
        default="smollm2-135m-instruct",
        description="HF id, local folder, s3:// URI, smollm2-135m-instruct, or random:<preset> (tests).",
    )
    paradigms: list[str] = Field(
        default_factory=lambda: ["mix", "merge"], description="Which paradigms to run: any of mix, merge, distill."
    )
    data: DataSpec = Field(default_factory=DataSpec, description="Domains, sources, split and blend.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="GRPO recipe of every training run.")
    merge: MergeSpec = Field(default_factory=MergeSpec, description="Merges of the single-domain experts.")
    distill: DistillSpec = Field(default_factory=DistillSpec, description="Multi-teacher on-policy distillation.")
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec, description="Benchmarks and sampling.")
    rewards: RewardsSpec = Field(default_factory=RewardsSpec, description="Scoring of responses (train and eval).")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Analyses after evaluation.")
    envs: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Multi-turn environments' params by name (e.g. workplace_assistant: {data: s3://.../csv}).",
    )
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="MLflow tracking.")
    artifact_root: str = Field(
        default="work/artifacts", description="Local folder or s3://bucket/prefix for every artifact."
    )
    work_dir: str = Field(default="work", description="Local scratch: caches, MLflow SQLite, pipeline root.")
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec, description="Cluster images and resources.")

    @field_validator("paradigms")
    @classmethod
    def _paradigms(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in STUDY_PARADIGMS]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"must be a non-empty list of {' / '.join(repr(p) for p in STUDY_PARADIGMS)}, got {v!r}")
        return v

    @field_validator("artifact_root")
    @classmethod
    def _artifact_root(cls, v: str) -> str:
        if v.startswith("s3://") and len(v) <= len("s3://"):
            raise ValueError("s3:// URI needs a bucket")
        return v

    @model_validator(mode="after")
    def _merge_needs_methods(self) -> StudySpec:
        if "merge" in self.paradigms and not self.merge.methods:
            raise ValueError("merge.methods: the merge paradigm needs at least one method")
        return self

    @model_validator(mode="after")
    def _distill_teachers_are_domains(self) -> StudySpec:
        """Every `distill.teachers` / `distill.vllm.teacher_urls` entry names a domain of the study."""
        problems = [f"distill.{where}.{d}: not a domain of this study ({', '.join(self.data.domains)})"
                    for where, given in (("teachers", self.distill.teachers), ("vllm.teacher_urls",
                                                                                self.distill.vllm.teacher_urls))
                    for d in given if d not in self.data.domains]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _expert_steps_are_saved(self) -> StudySpec:
        """Every `merge.expert_steps` entry names a domain of the study and a step its run saves."""
        problems = []
        for domain, step in self.merge.expert_steps.items():
            if domain not in self.data.domains:
                problems.append(f"{domain}: not a domain of this study ({', '.join(self.data.domains)})")
            elif why := unsaved_step(step, self.train.run_steps(domain), self.train.save_steps):
                problems.append(f"{domain}: {why}")
        if problems:
            raise ValueError("\n".join(f"merge.expert_steps.{p}" for p in problems))
        return self

    @model_validator(mode="after")
    def _domain_steps_are_domains(self) -> StudySpec:
        """Every `train.domain_steps` entry names a domain of the study."""
        bad = [d for d in self.train.domain_steps if d not in self.data.domains]
        if bad:
            raise ValueError("\n".join(f"train.domain_steps.{d}: not a domain of this study "
                                       f"({', '.join(self.data.domains)})" for d in bad))
        return self

    @property
    def domains(self) -> list[str]:
        return list(self.data.domains)


class SpecError(ValueError):
    """A spec that cannot be used; `errors` lists `path: reason` lines."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: invalid spec\n" + "\n".join(f"  {e}" for e in errors))


def format_validation_error(exc: ValidationError) -> list[str]:
    """`train.lr: must be > 0` style lines, one per error, by field path (`merge.methods[0].method`)."""
    return validation_lines(exc, model=StudySpec, noun="key")


def spec_from_dict(data: Any, source: str = "<spec>") -> StudySpec:
    """Validate a parsed mapping into a StudySpec with every registered name and its parameters resolved;
    SpecError lists every problem, one line each, by field path."""
    if not isinstance(data, dict):
        raise SpecError(source, [f"top level must be a mapping of sections, got {type(data).__name__}"])
    errors: list[str] = []
    spec = None
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        errors = format_validation_error(exc)
    errors += [e for e in name_problems(data) if e not in errors]
    if errors:
        raise SpecError(source, errors)
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a YAML spec file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), ["file not found"])
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise SpecError(str(p), [f"not valid YAML{at}: {getattr(exc, 'problem', exc)}"]) from None
    except UnicodeDecodeError:
        raise SpecError(str(p), ["not a UTF-8 text file"]) from None
    return spec_from_dict(data, str(p))

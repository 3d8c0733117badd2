"""The plan of a study's DAG: data -> train per domain + mixed -> merge per method and distill (after the
experts it distils) -> evaluate per model -> analyze -> report.

The domains, merge methods and models are known from the spec, so the plan names every task before anything
runs: `pipelines` turns it into one KFP task each, `m2rl run` shows one progress row each. Variants: `study`
(the spec's paradigms), `mix`, `merge` and `distill` (one paradigm only; distill trains the experts it needs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from m2rl.names import BASE, DISTILL, MIX, STUDY_PARADIGMS, merge_name, parse_model_name, run_model
from m2rl.spec import StudySpec

# The paradigms each pipeline variant runs (None: the spec's).
VARIANTS: dict[str, tuple[str, ...] | None] = {"study": None, "mix": ("mix",), "merge": ("merge",),
                                               "distill": ("distill",)}
GPU_STAGES = ("train", "distill", "evaluate")
# Stages whose item is a model name (m2rl.names): their MLflow runs carry the model's tags.
MODEL_STAGES = ("train", "merge", "distill", "evaluate")


@dataclass(frozen=True)
class Step:
    """One task of the pipeline: its stage and the item it works on (`data`, a model, `analyze`, `report`)."""

    stage: str
    item: str

    @property
    def gpu(self) -> bool:
        return self.stage in GPU_STAGES

    @property
    def display_name(self) -> str:
        """`data`, `train math`, `train mix`, `merge ties`, `evaluate single-math`."""
        if self.item == self.stage:
            return self.stage
        parsed = parse_model_name(self.item) if self.stage in ("train", "merge") else None
        label = (parsed.run or parsed.merge_label) if parsed is not None else None
        return f"{self.stage} {label or self.item}"


@dataclass(frozen=True)
class Plan:
    """What a study's pipeline runs: its training runs, merges and evaluated models."""

    paradigms: tuple[str, ...]
    runs: tuple[str, ...]  # training runs: each domain (the experts, for merge), then `mix`
    experts: tuple[str, ...]  # the domains whose experts the merges take
    merges: tuple[str, ...]  # merge labels
    teachers: tuple[str, ...] = ()  # the domains whose expert the distill task takes as teacher
    distill: bool = False  # whether the plan distils the experts into the base (model `distill`)

    @property
    def trained(self) -> list[str]:
        """The models the training runs produce."""
        return [run_model(r) for r in self.runs]

    @property
    def merged(self) -> list[str]:
        return [merge_name(label) for label in self.merges]

    @property
    def distilled(self) -> list[str]:
        return [DISTILL] if self.distill else []

    @property
    def models(self) -> list[str]:
        """Every trained, merged or distilled model (the base excluded), in pipeline order."""
        return [*self.trained, *self.merged, *self.distilled]

    @property
    def steps(self) -> list[Step]:
        """Every task, in a valid run order."""
        return [Step("data", "data"), *(Step("train", m) for m in self.trained),
                *(Step("merge", m) for m in self.merged), *(Step("distill", m) for m in self.distilled),
                *(Step("evaluate", m) for m in [BASE, *self.models]), Step("analyze", "analyze"),
                Step("report", "report")]


def variant_paradigms(spec: StudySpec, variant: str = "study") -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise ValueError(f"variant: {variant!r} is not one of {', '.join(VARIANTS)}")
    return tuple(VARIANTS[variant] or spec.paradigms)


def plan(spec: StudySpec, variant: str = "study") -> Plan:
    """The plan of one pipeline variant of a spec."""
    paradigms = variant_paradigms(spec, variant)
    bad = [p for p in paradigms if p not in STUDY_PARADIGMS]
    if bad or not paradigms:
        raise ValueError(f"paradigms: must be a non-empty list of {' / '.join(STUDY_PARADIGMS)}, got {list(paradigms)!r}")
    experts = tuple(spec.domains) if "merge" in paradigms else ()
    distill = "distill" in paradigms
    teachers = tuple(d for d in spec.domains if d not in spec.distill.teachers) if distill else ()
    trained = tuple(d for d in spec.domains if d in experts or d in teachers)
    runs = trained + ((MIX,) if "mix" in paradigms else ())
    merges = tuple(m.label for m in spec.merge.methods) if "merge" in paradigms else ()
    return Plan(paradigms, runs, experts, merges, teachers, distill)


def steps(spec: StudySpec, variant: str = "study") -> list[Step]:
    """The tasks that variant runs, in order."""
    return plan(spec, variant).steps


def pipeline_name(spec: StudySpec, variant: str = "study") -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", spec.name.lower()).strip("-") or "m2rl"
    return base if variant == "study" else f"{base}-{variant}"


def teacher_input(domain: str) -> str:
    """The distill component's input for the teacher of `domain` (the study's expert; one per domain)."""
    return f"teacher_{domain}"


def expert_input(domain: str) -> str:
    """The merge component's input for the expert of `domain` (one optional input per domain)."""
    return f"expert_{domain}"


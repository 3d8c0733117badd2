"""KFP pipelines of a study: `study` (the spec's paradigms, default mix and merge), `mix` and `merge` only."""

from __future__ import annotations

from collections.abc import Callable

from m2rl.spec import StudySpec
from pipelines import merge, mix, study
from pipelines.study import Step, plan

VARIANTS: dict[str, Callable[[StudySpec], Callable]] = {"study": study.build, "mix": mix.build, "merge": merge.build}


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant: {variant!r} is not one of {', '.join(VARIANTS)}")


def build_pipeline(spec: StudySpec, variant: str = "study") -> Callable:
    """The pipeline function of one variant for a spec."""
    _check(variant)
    return VARIANTS[variant](spec)


def steps(spec: StudySpec, variant: str = "study") -> list[Step]:
    """The tasks that variant runs, in order."""
    _check(variant)
    return plan(spec, {"mix": mix.PARADIGMS, "merge": merge.PARADIGMS}.get(variant))


__all__ = ["VARIANTS", "Step", "build_pipeline", "plan", "steps"]

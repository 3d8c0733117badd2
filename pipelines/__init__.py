"""KFP pipelines of a study, one per variant of `m2rl.workflow.plan`: `study` (the spec's paradigms, default mix
and merge), `mix` and `merge` only. `pipelines.study` builds the DAG, `pipelines.kube` sets each task's cluster
settings."""

from __future__ import annotations

from collections.abc import Callable

from m2rl.spec import StudySpec
from pipelines.study import build


def build_pipeline(spec: StudySpec, variant: str = "study") -> Callable:
    """The pipeline function of one variant for a spec."""
    return build(spec, variant)


__all__ = ["build_pipeline"]

"""The merge-only variant: data -> one GRPO run per domain -> merges -> evaluate (base, experts, merges) -> analyze -> report."""

from __future__ import annotations

from collections.abc import Callable

from m2rl.spec import StudySpec
from pipelines import study

PARADIGMS = ("merge",)


def build(spec: StudySpec) -> Callable:
    return study.build(spec, PARADIGMS, variant="merge")

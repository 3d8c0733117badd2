"""The mix-only variant: data -> one mixed GRPO run -> evaluate (base, mix) -> analyze -> report."""

from __future__ import annotations

from collections.abc import Callable

from m2rl.spec import StudySpec
from pipelines import study

PARADIGMS = ("mix",)


def build(spec: StudySpec) -> Callable:
    return study.build(spec, PARADIGMS, variant="mix")

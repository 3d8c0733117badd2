"""The `rewards` section: how every response is scored, the same at train time (both backends, the
reward service) and at evaluation."""

from __future__ import annotations

from pydantic import Field

from m2rl.spec.base import StrictModel


class RewardsSpec(StrictModel):
    """Scoring settings shared by training rewards and evaluation."""

    require_think_close: bool = Field(
        default=False,
        description="A response without `</think>` (an unclosed reasoning block) scores 0 (the paper's gating).",
    )

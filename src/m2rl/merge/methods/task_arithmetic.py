"""`task_arithmetic`: base + scale * sum_i tau_i (Ilharco et al., 2023), tau_i = theta_i - base.

mergekit: `task_arithmetic` with `weight: scale` on every model (its default `normalize: false`)
gives the same tensors.
"""

from __future__ import annotations

from pydantic import Field

from m2rl.merge.registry import MergeMethod, register_method
from m2rl.registry import StrictModel


class TaskArithmeticParams(StrictModel):
    """Task arithmetic's one parameter."""

    scale: float = Field(default=1.0, description="lambda: multiplier of the summed task vectors.")


@register_method
class TaskArithmetic(MergeMethod):
    name = "task_arithmetic"
    Params = TaskArithmeticParams

    def merge_chunk(self, job, chunk):
        return chunk.base + self.p.scale * chunk.deltas.sum(dim=0)

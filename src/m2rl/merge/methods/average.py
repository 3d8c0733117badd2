"""`average`: the mean of the fine-tuned weights, (1/T) sum_i theta_i, computed as base + mean_i tau_i.

mergekit: `linear` with equal weights (and `normalize: true`) gives the same tensors.
"""

from __future__ import annotations

from m2rl.merge.registry import MergeMethod, register_method
from m2rl.registry import StrictModel


class AverageParams(StrictModel):
    """`average` takes no parameters."""


@register_method
class Average(MergeMethod):
    name = "average"
    Params = AverageParams

    def merge_chunk(self, job, chunk):
        return chunk.base + chunk.deltas.mean(dim=0)

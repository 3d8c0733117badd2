"""`sce`: Select, Calculate, Erase (FuseChat, Wan et al., 2024), per tensor, as mergekit's `sce`.

1. Select: where the deltas' variance across experts (population variance) is among the top
   `select_topk` fraction of the tensor's non-zero variances (k = int(select_topk * nnz), every
   variance >= the k-th largest kept; k = 0 keeps none), keep the deltas, else zero them.
2. Calculate: expert i's weight is the mean of its squared selected deltas over the tensor,
   normalised to sum to 1 (uniform when all are 0).
3. Erase: each position elects the sign of the summed selected deltas (sum >= 0 elects +); deltas of
   the other sign are erased; merged = sum_i w_i d_i [agrees] / sum_i w_i [agrees] (divisor 0 -> 1).
Output: base + scale * merged (mergekit has no scale: scale 1 is its definition).

Differences from mergekit: variance ties at the threshold are all kept (mergekit's topk keeps an
arbitrary k of them); the weights' sums are accumulated in float64 over row chunks.
"""

from __future__ import annotations

import torch
from pydantic import Field

from m2rl.merge.job import TensorJob
from m2rl.merge.registry import MergeMethod, register_method
from m2rl.merge.select import kth_smallest
from m2rl.registry import StrictModel


class SceParams(StrictModel):
    """SCE parameters."""

    select_topk: float = Field(
        default=1.0, gt=0, le=1, description="Fraction of positions (by delta variance) kept; 1 keeps all."
    )
    scale: float = Field(default=1.0, description="lambda: multiplier of the merged task vector.")


def _variance(deltas: torch.Tensor) -> torch.Tensor:
    """Population variance across experts, two-pass (mergekit: `torch.var(unbiased=False)`, equal up to
    rounding; this form is exact when the deltas lie on a binary grid)."""
    return (deltas - deltas.mean(dim=0)).square().mean(dim=0)


@register_method
class Sce(MergeMethod):
    name = "sce"
    Params = SceParams

    def merge_tensor(self, job: TensorJob) -> None:
        n, shape_ones = job.numel, [1] * len(job.ishape)
        thr: float | None = None
        select_none = False
        if self.p.select_topk < 1 and n:
            found: dict[str, int] = {}

            def rank(zeros: list[int]) -> list[int | None]:
                found["k"] = int(self.p.select_topk * (n - zeros[0]))
                return [n - found["k"] + 1 if found["k"] > 0 else None]

            (thr,) = kth_smallest(lambda: (_variance(c.deltas).unsqueeze(0) for c in job.chunks()), 1, rank)
            select_none = found["k"] == 0

        def selected(chunk) -> torch.Tensor:
            if select_none:
                return torch.zeros_like(chunk.deltas)
            if thr is None:
                return chunk.deltas
            return chunk.deltas * (_variance(chunk.deltas) >= thr)

        sq = torch.zeros(self.n_models, dtype=torch.float64)
        for chunk in job.chunks():
            d = selected(chunk)
            sq += (d * d).reshape(self.n_models, -1).sum(dim=1).double()
        w = sq / max(n, 1)
        w = torch.full_like(w, 1.0 / self.n_models) if float(w.sum()) == 0 else w / w.sum()
        w = w.float().reshape(-1, *shape_ones)
        for chunk in job.chunks():
            d = selected(chunk)
            sign = torch.where(d.sum(dim=0) >= 0, 1.0, -1.0)
            ew = w * (torch.sign(d) == sign)
            divisor = ew.sum(dim=0)
            divisor[divisor == 0] = 1
            job.write(chunk, chunk.base + self.p.scale * (d * ew).sum(dim=0) / divisor)

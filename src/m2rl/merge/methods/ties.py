"""`ties`: TIES-Merging (Yadav et al., 2023): trim, elect sign, disjoint mean.

For every expert, tau_i = theta_i - base is trimmed to its largest |tau| entries (fraction `density`),
each position elects the sign of the summed trimmed vectors (sum >= 0 elects +), and the trimmed
entries whose sign agrees with the elected one are averaged (disjoint mean; 0 where none agrees).
Output: base + scale * merged.

Trim scope (`scope`):
- `tensor` (mergekit): each tensor of each expert trimmed alone, keeping k = max(1, int(density * n))
  entries of its n: every |tau| >= the k-th largest |tau| of that tensor.
- `global` (the paper's MergeLM code, `mask_smallest_magnitude_param_values`): one threshold per
  expert over all of its tensors: m = int(N * (1 - density)) of its N entries are masked, keeping every
  |tau| >= the m-th smallest |tau| (MergeLM's `kthvalue`; m = 0 keeps everything). The threshold is
  exact, found by streaming (m2rl.merge.select) before the merge pass, never holding a whole model.

Differences from the reference codes, all on measure-zero ties: entries tied with the threshold are all
kept (mergekit's argsort keeps an arbitrary k of them); a position whose trimmed sum is exactly 0
elects + (as mergekit; MergeLM uses the sign of the whole model's elected signs there).
mergekit `ties` with `weight: 1`, `normalize: true`, `lambda: scale` and `density` is the tensor scope.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from m2rl.merge.job import Chunk, MergeContext, TensorJob
from m2rl.merge.registry import MergeMethod, register_method
from m2rl.merge.select import kth_smallest, kth_value
from m2rl.registry import StrictModel


class TiesParams(StrictModel):
    """TIES parameters."""

    scale: float = Field(default=1.0, description="lambda: multiplier of the merged task vector.")
    density: float = Field(default=0.2, gt=0, le=1, description="Fraction of |tau| entries kept by the trim.")
    scope: Literal["tensor", "global"] = Field(
        default="tensor", description="Trim threshold per tensor (mergekit) or per whole model (MergeLM)."
    )


def elect_sign(deltas: torch.Tensor) -> torch.Tensor:
    """+1 where the sum over models is >= 0, else -1."""
    return torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0)


def disjoint_mean(deltas: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Mean over the models of the entries whose sign agrees with the elected sign (0 where none).

    An entry agrees iff entry * elected > 0; float-only arithmetic (no boolean masks) keeps it fast.
    `inplace`: `deltas` may be overwritten (saves a models x chunk temporary)."""
    elected = elect_sign(deltas)
    agreeing = (deltas.mul_(elected) if inplace else deltas * elected).clamp_(min=0)  # |entry| if agreeing
    total = agreeing.sum(dim=0)
    count = agreeing.sign_().sum(dim=0)
    return total.mul_(elected).div_(count.clamp_(min=1))


def _per_model(values: list[float], ndim: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, *([1] * ndim))


class TrimElectMerge(MergeMethod):
    """TIES on `transform(job, chunk)` of the deltas (the identity here; DARE in dare_ties)."""

    def transform(self, job: TensorJob, chunk: Chunk) -> torch.Tensor:
        return chunk.deltas

    def prepare(self, ctx: MergeContext) -> None:
        self.global_thr: list[float | None] | None = None
        if self.p.scope != "global" or self.p.density >= 1:
            return
        masked = int(ctx.numel * (1 - self.p.density))
        if masked == 0:
            return

        def stream():
            for job in ctx.jobs():
                for chunk in job.chunks():
                    yield self.transform(job, chunk).abs()

        self.global_thr = kth_smallest(stream, self.n_models, [masked] * self.n_models)

    def thresholds(self, job: TensorJob) -> list[float | None] | None:
        if self.p.density >= 1 or job.numel == 0:
            return None
        if self.p.scope == "global":
            return self.global_thr
        k = max(1, int(self.p.density * job.numel))
        rank = job.numel - k + 1
        if job.single:  # in memory; |tau| formed only for a model whose rank is beyond its zeros
            flat = self.transform(job, job.full()).reshape(self.n_models, -1)
            zeros = [job.numel - int(torch.count_nonzero(row)) for row in flat]
            return [0.0 if rank <= z else kth_value(row.abs(), rank, z) for row, z in zip(flat, zeros, strict=True)]
        return kth_smallest(
            lambda: (self.transform(job, c).abs() for c in job.chunks()), self.n_models, [rank] * self.n_models
        )

    def merge_tensor(self, job: TensorJob) -> None:
        thr = self.thresholds(job)
        if thr is not None and all(v == 0 for v in thr):
            thr = None  # |tau| >= 0 keeps every entry
        t = _per_model(thr, len(job.ishape)) if thr is not None else None
        for chunk in job.chunks():
            d = self.transform(job, chunk)
            if t is not None:
                d = torch.where(d.abs() >= t, d, 0.0)
            # the merge pass is the last use of the chunk's (transformed) deltas
            job.write(chunk, chunk.base + self.p.scale * disjoint_mean(d, inplace=True))


@register_method
class Ties(TrimElectMerge):
    name = "ties"
    Params = TiesParams

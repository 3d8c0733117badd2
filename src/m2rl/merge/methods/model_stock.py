"""`model_stock`: Model Stock (Jang et al., 2024), as mergekit's `model_stock`.

Per tensor, with offsets d_i = theta_i - base: cos = the mean over expert pairs i < j of
<d_i, d_j> / max(|d_i| |d_j|, 1e-6), clamped to [-1, 1]; t = T cos / (1 + (T - 1) cos);
output t * mean_i(theta_i) + (1 - t) * base = base + t * mean_i(d_i). The angle is over the whole
flattened tensor, or per row of the last dimension with `filter_wise` (a 1-D tensor is one row).
Needs at least two experts. A new method is this one file.

Difference from mergekit: the dot products are summed over row chunks (float64 accumulation of
float32 chunk sums) instead of in one float32 reduction; mergekit computes in the input dtype.
"""

from __future__ import annotations

import torch
from pydantic import Field

from m2rl.merge.job import TensorJob
from m2rl.merge.registry import MergeMethod, register_method
from m2rl.registry import StrictModel


class ModelStockParams(StrictModel):
    """Model Stock parameters."""

    filter_wise: bool = Field(default=False, description="One angle per row of the last dimension.")


def _ratio(dots: torch.Tensor, t_models: int) -> torch.Tensor:
    """t from pairwise dot products `dots[i, j, ...]` (float64)."""
    norms = torch.stack([dots[i, i] for i in range(t_models)]).sqrt()
    cos = []
    for i in range(t_models):
        for j in range(i + 1, t_models):
            cos.append((dots[i, j] / (norms[i] * norms[j]).clamp(min=1e-6)).clamp(-1, 1))
    c = torch.stack(cos).mean(dim=0)
    return t_models * c / (1 + (t_models - 1) * c)


@register_method
class ModelStock(MergeMethod):
    name = "model_stock"
    Params = ModelStockParams
    min_models = 2

    def merge_tensor(self, job: TensorJob) -> None:
        t_models = self.n_models
        if self.p.filter_wise:
            chunks = [job.full()] if len(job.shape) < 2 else job.chunks()
            for chunk in chunks:
                d = chunk.deltas.reshape(t_models, -1, chunk.deltas.shape[-1])
                dots = torch.einsum("irc,jrc->ijr", d, d).double()
                t = _ratio(dots, t_models).float().unsqueeze(-1)
                merged = (t * d.mean(dim=0)).reshape(chunk.base.shape)
                job.write(chunk, chunk.base + merged)
            return
        dots = torch.zeros(t_models, t_models, dtype=torch.float64)
        for chunk in job.chunks():
            d = chunk.deltas.reshape(t_models, -1)
            dots += (d @ d.T).double()
        t = float(_ratio(dots, t_models))
        for chunk in job.chunks():
            job.write(chunk, chunk.base + t * chunk.deltas.mean(dim=0))

"""`tsv`: Task Singular Vectors merge, TSV-M (Gargiulo et al., CVPR 2025), as its reference code
(`compute_and_sum_svd_mem_reduction`).

For every 2-D tensor: each expert's delta is decomposed, tau_i = U_i S_i V_i^T, and keeps its top k
singular triplets, k = max(1, int(rank_fraction * min(rows, cols))) (default rank_fraction = 1/T:
k = max(1, min(rows, cols) // T)); the kept U's are concatenated (U, rows x Tk), likewise S and V^T;
U and V^T are replaced by their nearest orthogonal matrices (polar factors P Q^T of their SVDs), which
decorrelates the task subspaces; merged = U_orth diag(S) V^T_orth. Other tensors (norms, biases):
the mean of the deltas. Output: base + scale * merged.

The reference code skips CLIP's `text_projection`; every 2-D tensor of an LLM, embeddings included,
is decomposed here. Each 2-D tensor is held whole for its SVDs: O(T x tensor) memory. The SVDs run
in float64 (a float32 SVD's ~1e-6 relative error would show in the merged weights).
"""

from __future__ import annotations

import torch
from pydantic import Field

from m2rl.merge.job import TensorJob
from m2rl.merge.registry import MergeMethod, register_method
from m2rl.registry import StrictModel


class TsvParams(StrictModel):
    """TSV-M parameters."""

    rank_fraction: float | None = Field(
        default=None, gt=0, le=1, description="Fraction of each 2-D delta's rank kept per expert; default 1/T."
    )
    scale: float = Field(default=1.0, description="alpha: multiplier of the merged task vector.")


def polar(x: torch.Tensor) -> torch.Tensor:
    """The orthogonal polar factor P Q^T of x = P S Q^T."""
    p, _, qh = torch.linalg.svd(x, full_matrices=False)
    return p @ qh


@register_method
class Tsv(MergeMethod):
    name = "tsv"
    Params = TsvParams

    def rank(self, rows: int, cols: int) -> int:
        r = min(rows, cols)
        if self.p.rank_fraction is None:
            return max(1, r // self.n_models)
        return max(1, int(self.p.rank_fraction * r))

    def merge_tensor(self, job: TensorJob) -> None:
        if len(job.shape) != 2 or job.numel == 0:
            for chunk in job.chunks():
                job.write(chunk, chunk.base + self.p.scale * chunk.deltas.mean(dim=0))
            return
        chunk = job.full()
        k = self.rank(*job.shape)
        us, ss, vs = [], [], []
        for i in range(self.n_models):
            u, s, vh = torch.linalg.svd(chunk.deltas[i].double(), full_matrices=False)
            us.append(u[:, :k])
            ss.append(s[:k])
            vs.append(vh[:k, :])
        merged = polar(torch.cat(us, dim=1)) @ torch.diag(torch.cat(ss)) @ polar(torch.cat(vs, dim=0))
        job.write(chunk, chunk.base + self.p.scale * merged.float())
        job.release()

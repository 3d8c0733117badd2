"""DARE (Yu et al., 2024): drop each delta entry with probability `drop_rate`, rescale the rest by
1 / (1 - drop_rate); then merge with task arithmetic (`dare_ta`) or TIES (`dare_ties`), as the
paper's TA+DARE and TIES+DARE (MergeLM: DARE on every expert, then the merge on the sparsified
task vectors, TIES trimming to `density` by `scope` as in `ties`).

The drop is seeded and does not depend on chunking or processing order: element j of tensor `name`
of expert i (0-based, in the order given) is kept iff u >= drop_rate, where u is element
j mod 2**20 of `torch.rand(n_b, generator=torch.Generator().manual_seed(s_b))`, b = j // 2**20,
n_b = min(2**20, numel - b * 2**20), and s_b is the first 8 bytes (little-endian, top bit cleared) of
blake2b(f"{seed}/{i}/{name}/{b}", digest_size=8).

mergekit differences: its `dare_ties`/`dare_linear` draw `torch.bernoulli` masks from the global RNG,
call the keep probability `density`, rescale to the tensor's L1 norm instead of by 1/(1 - p), and
`dare_ties` sums the agreeing deltas (`normalize: false`) with no magnitude trim; so its outputs are a
different random draw of a different estimator, not comparable entry by entry.
"""

from __future__ import annotations

import hashlib

import torch
from pydantic import Field

from m2rl.merge.job import Chunk, TensorJob
from m2rl.merge.methods.ties import TiesParams, TrimElectMerge
from m2rl.merge.registry import MergeMethod, register_method
from m2rl.registry import StrictModel

BLOCK = 1 << 20


def block_seed(seed: int, model: int, name: str, block: int) -> int:
    digest = hashlib.blake2b(f"{seed}/{model}/{name}/{block}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _block(seed: int, model: int, name: str, block: int, numel: int) -> torch.Tensor:
    n = min(BLOCK, numel - block * BLOCK)
    return torch.rand(n, generator=torch.Generator().manual_seed(block_seed(seed, model, name, block)))


def uniforms(seed: int, model: int, name: str, numel: int, begin: int, end: int,
             cache: dict | None = None) -> torch.Tensor:
    """The uniform draws u of flattened elements [begin, end) of a tensor of `numel` elements (module doc).

    `cache` keeps the last block drawn per model, so that consecutive chunks draw each block once."""
    first, last = begin // BLOCK, (end - 1) // BLOCK
    out = None if first == last else torch.empty(end - begin, dtype=torch.float32)
    for b in range(first, last + 1):
        lo = b * BLOCK
        key = (seed, model, name, b)
        if cache is not None and cache.get(model, (None,))[0] == key:
            u = cache[model][1]
        else:
            u = _block(seed, model, name, b, numel)
            if cache is not None:
                cache[model] = (key, u)
        a, z = max(begin, lo), min(end, lo + u.numel())
        if out is None:
            return u[a - lo : z - lo]
        out[a - begin : z - begin] = u[a - lo : z - lo]
    return out


def keep_mask(seed: int, model: int, name: str, numel: int, begin: int, end: int, drop_rate: float,
              cache: dict | None = None) -> torch.Tensor:
    """Keep mask (bool) of flattened elements [begin, end) of a tensor of `numel` elements (module doc)."""
    return uniforms(seed, model, name, numel, begin, end, cache) >= drop_rate


class DareParams(StrictModel):
    """DARE with task arithmetic."""

    drop_rate: float = Field(default=0.9, ge=0, lt=1, description="p: probability of dropping a delta entry.")
    rescale: bool = Field(default=True, description="Rescale kept entries by 1/(1 - p).")
    seed: int = Field(default=0, description="Seed of the drop masks.")
    scale: float = Field(default=1.0, description="lambda: multiplier of the merged task vector.")


class DareTiesParams(TiesParams):
    """DARE, then TIES."""

    drop_rate: float = Field(default=0.9, ge=0, lt=1, description="p: probability of dropping a delta entry.")
    rescale: bool = Field(default=True, description="Rescale kept entries by 1/(1 - p).")
    seed: int = Field(default=0, description="Seed of the drop masks.")


def dare(params, job: TensorJob, chunk: Chunk, cache: dict | None = None) -> torch.Tensor:
    """The chunk's deltas with DARE applied, expert by expert, in place (`chunk.deltas` becomes them:
    apply it once per chunk read)."""
    out = chunk.deltas
    if params.drop_rate == 0:
        return out
    begin, end = job.flat_range(chunk)
    zero = torch.zeros((), dtype=out.dtype)
    for i in range(out.shape[0]):
        keep = keep_mask(params.seed, i, job.name, job.numel, begin, end, params.drop_rate, cache)
        torch.where(keep.view(out[i].shape), out[i], zero, out=out[i])
    if params.rescale:
        out /= 1.0 - params.drop_rate
    return out


@register_method
class DareTA(MergeMethod):
    name = "dare_ta"
    Params = DareParams

    def merge_tensor(self, job: TensorJob) -> None:
        cache: dict = {}
        for chunk in job.chunks():
            job.write(chunk, chunk.base + self.p.scale * dare(self.p, job, chunk, cache).sum(dim=0))


@register_method
class DareTies(TrimElectMerge):
    name = "dare_ties"
    Params = DareTiesParams

    def transform(self, job: TensorJob, chunk: Chunk) -> torch.Tensor:
        if job.single:  # a tensor read once is sparsified once
            memo = getattr(job, "_dare", None)
            if memo is None:
                memo = job._dare = dare(self.p, job, chunk)
            return memo
        if getattr(job, "_dare_blocks", None) is None:
            job._dare_blocks = {}
        return dare(self.p, job, chunk, job._dare_blocks)

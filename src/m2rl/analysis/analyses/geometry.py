"""Weight-space geometry of the task vectors tau = theta - theta_base (experts, mix, merges, distill).

Streams tensor by tensor, row chunk by row chunk (at most `CHUNK_ELEMENTS` values per model in memory),
accumulating in one pass: L2 norms per module type, the exact Gram matrix of the task vectors (cosine),
a seeded random projection to `projection_dim` dimensions (a CountSketch: every coordinate is hashed to
one of d buckets with a random sign, an unbiased inner-product sketch computed in O(N) instead of the
O(N d) of a dense Gaussian matrix, which is intractable for 10^8 parameters), sign agreement, and a
log-magnitude histogram of |tau|. A second pass counts the top-k% footprints (threshold per model from
the histogram) and their pairwise intersections (Jaccard).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from m2rl.analysis.inputs import AnalysisError
from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import finite

MODULE_TYPES = ("attention", "mlp", "embeddings", "norms", "other")
CHUNK_ELEMENTS = 1 << 20
HIST_BINS, HIST_LO, HIST_HI = 8192, -12.0, 4.0  # log10 |tau| bins: 0.002 decades (0.45%) wide


def module_type(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("embed", "lm_head", "wte", "wpe")):
        return "embeddings"
    if "norm" in n or re.search(r"(^|\.)ln_?\w*\.", n):
        return "norms"
    if any(k in n for k in ("attn", "attention", "q_proj", "k_proj", "v_proj", "o_proj")):
        return "attention"
    if any(k in n for k in ("mlp", "feed_forward", "ffn", "gate_proj", "up_proj", "down_proj", "experts")):
        return "mlp"
    return "other"


class RowReader:
    """Reads row ranges of one tensor from a checkpoint without materialising the whole tensor."""

    def __init__(self, reader):
        self.reader = reader
        self._handles: dict[Path, Any] = {}

    def rows(self, name: str, start: int, stop: int):
        from safetensors import safe_open

        shard = self.reader.shard_of(name)
        h = self._handles.get(shard)
        if h is None:
            h = self._handles[shard] = safe_open(str(shard), framework="pt")
        sl = h.get_slice(name)
        if len(sl.get_shape()) == 0:
            return sl[...].reshape(1)
        return sl[start:stop]


def row_chunks(shape: list[int], max_elements: int) -> Iterator[tuple[int, int]]:
    if not shape:
        yield 0, 1
        return
    rows = shape[0]
    per_row = max(1, math.prod(shape[1:]))
    step = max(1, max_elements // per_row)
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _chunk_seed(seed: int, name: str, start: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{name}:{start}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 62) - 1)


def _open_all(ctx: AnalysisContext, names: list[str]):
    from m2rl.checkpoint import CheckpointError, CheckpointReader

    try:
        base = CheckpointReader(ctx.model_path(ctx.base.name))
        readers = [CheckpointReader(ctx.model_path(m)) for m in names]
    except CheckpointError as exc:
        raise AnalysisError(f"geometry: {exc}") from None
    tensors = base.names()
    for m, r in zip(names, readers, strict=True):
        own = set(r.names())
        missing = [t for t in tensors if t not in own]
        if missing:
            raise AnalysisError(f"geometry: model {m!r} lacks tensor {missing[0]!r} of the base")
        for t in tensors:
            if r.slice_info(t)[0] != base.slice_info(t)[0]:
                raise AnalysisError(
                    f"geometry: model {m!r} tensor {t!r} has shape {r.slice_info(t)[0]}, "
                    f"base has {base.slice_info(t)[0]}"
                )
    return base, readers, tensors


def task_vector_geometry(
    ctx: AnalysisContext, names: list[str], chunk_elements: int = CHUNK_ELEMENTS
) -> dict[str, Any]:
    """The geometry section for the task vectors of the models `names` (see the module doc)."""
    import torch

    started = time.perf_counter()
    p = ctx.params
    d = p.projection_dim
    base, readers, tensors = _open_all(ctx, names)
    base_rows, model_rows = RowReader(base), [RowReader(r) for r in readers]
    m = len(names)
    gram = torch.zeros(m, m, dtype=torch.float64)
    sign_dot = torch.zeros(m, m, dtype=torch.float64)
    sign_both = torch.zeros(m, m, dtype=torch.float64)
    sumsq = {t: torch.zeros(m, dtype=torch.float64) for t in MODULE_TYPES}
    sketch = torch.zeros(m, d, dtype=torch.float64)
    hist = torch.zeros(m, HIST_BINS, dtype=torch.float64)
    params_by_type = dict.fromkeys(MODULE_TYPES, 0)
    total = 0

    def deltas(name: str, start: int, stop: int) -> torch.Tensor:
        b = base_rows.rows(name, start, stop).to(torch.float32).reshape(-1)
        return torch.stack([r.rows(name, start, stop).to(torch.float32).reshape(-1) - b for r in model_rows])

    for name in tensors:
        kind = module_type(name)
        shape = base.slice_info(name)[0]
        for start, stop in row_chunks(shape, chunk_elements):
            tau = deltas(name, start, stop)
            n = tau.shape[1]
            total += n
            params_by_type[kind] += n
            t64 = tau.to(torch.float64)
            gram += t64 @ t64.T
            sumsq[kind] += (t64 * t64).sum(dim=1)
            s = torch.sign(tau)
            sign_dot += (s @ s.T).to(torch.float64)
            nz = s.abs()
            sign_both += (nz @ nz.T).to(torch.float64)
            g = torch.Generator().manual_seed(_chunk_seed(p.seed, name, start))
            bucket = torch.randint(0, d, (n,), generator=g)
            flip = torch.randint(0, 2, (n,), generator=g).to(torch.float64) * 2 - 1
            for i in range(m):
                sketch[i].index_add_(0, bucket, t64[i] * flip)
            mag = tau.abs()
            logm = torch.log10(mag.clamp_min(10**HIST_LO)).clamp_max(HIST_HI - 1e-4)
            for i in range(m):
                vals = logm[i][mag[i] >= 10**HIST_LO]
                if vals.numel():
                    hist[i] += torch.histc(vals, bins=HIST_BINS, min=HIST_LO, max=HIST_HI).to(torch.float64)
            del tau, t64, s, nz, mag, logm

    # Footprint thresholds: the smallest histogram bin edge keeping the top-k% entries of each model.
    keep = max(1, math.ceil(p.footprint_top_percent / 100.0 * total))
    width = (HIST_HI - HIST_LO) / HIST_BINS
    thresholds = []
    for i in range(m):
        counts = hist[i].numpy()
        cum = np.cumsum(counts[::-1])
        if cum[-1] == 0:
            thresholds.append(math.inf)
            continue
        top = int(np.searchsorted(cum, keep))  # bins from the top needed to reach `keep`
        b = HIST_BINS - 1 - min(top, HIST_BINS - 1)
        thresholds.append(10 ** (HIST_LO + b * width))
    thr = torch.tensor(thresholds, dtype=torch.float32).unsqueeze(1)
    inter = torch.zeros(m, m, dtype=torch.float64)
    for name in tensors:
        for start, stop in row_chunks(base.slice_info(name)[0], chunk_elements):
            mask = (deltas(name, start, stop).abs() >= thr).to(torch.float32)
            inter += (mask @ mask.T).to(torch.float64)

    def cos(mat: torch.Tensor) -> list[list[float | None]]:
        diag = mat.diagonal().clone()
        out = []
        for i in range(m):
            row = []
            for j in range(m):
                den = math.sqrt(float(diag[i]) * float(diag[j]))
                row.append(finite(float(mat[i, j]) / den) if den > 0 else None)
            out.append(row)
        return out

    agree = (sign_both + sign_dot) / 2
    sign_agreement = [
        [finite(float(agree[i, j] / sign_both[i, j])) if sign_both[i, j] > 0 else None for j in range(m)]
        for i in range(m)
    ]
    sel = inter.diagonal()
    overlap = []
    for i in range(m):
        row = []
        for j in range(m):
            union = float(sel[i] + sel[j] - inter[i, j])
            row.append(float(inter[i, j]) / union if union > 0 else None)
        overlap.append(row)
    norms = {}
    for i, name in enumerate(names):
        per = {t: math.sqrt(float(sumsq[t][i])) for t in MODULE_TYPES if params_by_type[t]}
        per["overall"] = math.sqrt(sum(float(sumsq[t][i]) for t in MODULE_TYPES))
        norms[name] = per
    return {
        "models": names,
        "params": total,
        "params_by_type": {t: n for t, n in params_by_type.items() if n},
        "projection": f"CountSketch to {d} dimensions, seed {p.seed}",
        "projection_dim": d,
        "footprint_top_percent": p.footprint_top_percent,
        "norms": norms,
        "cosine": cos(gram),
        "cosine_projected": cos(sketch @ sketch.T),
        "sign_agreement": sign_agreement,
        "overlap": overlap,
        "footprint_fraction": {name: float(sel[i]) / total for i, name in enumerate(names)},
        "seconds": round(time.perf_counter() - started, 3),
    }


@register("geometry")
def geometry(ctx: AnalysisContext) -> dict[str, Any]:
    names = list(ctx.models)
    if not names:
        return {"skipped": "no models besides the base"}
    return task_vector_geometry(ctx, names)

"""Exact order statistics of values streamed in chunks, without holding them.

For non-negative float32 values the IEEE-754 bit pattern, read as an int32, orders exactly as the
values do. A first pass counts exact zeros and the other values by their upper 16 bits (32,768 bins
cover every finite non-negative float32); the bin holding the wanted rank is then refined by a second
pass that counts, within that bin only, the lower 16 bits. The result is the exact k-th smallest
value, the same one `torch.kthvalue` returns over the concatenation, in two streaming passes and
O(bins) memory. A rank within a group's zeros is 0 without the second pass (DARE-sparsified deltas
are mostly zeros), and the second pass is skipped when no group needs it.

When the stream turns out to be a single chunk, each group is selected in memory by `kth_value`: a
strided sample brackets the wanted rank, one counting pass checks the bracket and the values inside it
are selected exactly (`torch.kthvalue` over the whole group when the bracket misses).

Several groups (one per expert model) are selected at once: chunks are `[groups, ...]` tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

_HI_BINS = 1 << 15  # (bits >> 16) of a finite non-negative float32 is at most 0x7F80
_LO_BINS = 1 << 16
_SAMPLE = 1 << 13  # strided sample size of the in-memory selection
_DIRECT = 1 << 16  # below this many values, torch.kthvalue directly


def _bits(values: torch.Tensor) -> torch.Tensor:
    return values.contiguous().view(torch.int32).reshape(values.shape[0], -1)


def _nonzeros(flat: torch.Tensor) -> list[int]:
    """Non-zero count of each row (a per-row count is much faster than a reduction along dim 1)."""
    return [int(torch.count_nonzero(row)) for row in flat]


def kth_value(values: torch.Tensor, rank: int, zeros: int | None = None) -> float:
    """The exact `rank`-th smallest (1-based) of the finite non-negative 1-D float32 `values`,
    whose exact zeros number `zeros` when known (the value `torch.kthvalue` returns)."""
    n = values.numel()
    if not 1 <= rank <= n:
        raise ValueError(f"rank {rank} out of 1..{n}")
    if zeros is None:
        zeros = n - int(torch.count_nonzero(values))
    if rank <= zeros:
        return 0.0
    if n <= _DIRECT:
        return float(torch.kthvalue(values, rank).values)
    if zeros > n // 4:  # select among the non-zeros only
        return kth_value(values[values != 0], rank - zeros, 0)
    sample = values[:: n // _SAMPLE]
    m = sample.numel()
    q = rank / n
    half = 4.0 * math.sqrt(m * q * (1 - q)) + 2
    lo_r, hi_r = math.floor(q * m - half), math.ceil(q * m + half)
    lo = float(torch.kthvalue(sample, lo_r).values) if lo_r >= 1 else None
    hi = float(torch.kthvalue(sample, hi_r).values) if hi_r <= m else None
    if lo is None and hi is None:
        return float(torch.kthvalue(values, rank).values)
    below = int(torch.count_nonzero(values < lo)) if lo is not None else 0
    if rank > below:
        if lo is None:
            inside = values[values <= hi]
        elif hi is None:
            inside = values[values >= lo]
        else:
            inside = values[(values >= lo) & (values <= hi)]
        if rank - below <= inside.numel():
            return float(torch.kthvalue(inside, rank - below).values)
    return float(torch.kthvalue(values, rank).values)  # the sample's bracket missed: select over all


class _Histogram:
    def __init__(self, groups: int):
        self.groups = groups
        self.hi = torch.zeros(groups, _HI_BINS, dtype=torch.int64)

    def feed_hi(self, values: torch.Tensor, zeros: list[int]) -> None:
        """Count the non-zero values by upper bits (`zeros[g]`: group g's exact zeros here)."""
        for g, row in enumerate(_bits(values)):
            if zeros[g] > row.numel() // 4:  # sparse: count the non-zeros only
                self.hi[g] += torch.bincount(row[row != 0] >> 16, minlength=_HI_BINS)
            else:
                self.hi[g] += torch.bincount(row >> 16, minlength=_HI_BINS)
                self.hi[g, 0] -= zeros[g]

    def plan(self, ranks: list[int | None], zeros: list[int]) -> None:
        """For each group's rank (1-based, smallest first): its upper-bits bin and the rank among the
        bin's non-zero values (None when the rank is None or within the group's zeros)."""
        self.bins: list[tuple[int, int] | None] = []
        self.result: list[float | None] = []
        for g, r in enumerate(ranks):
            if r is None or r <= zeros[g]:
                self.bins.append(None)
                self.result.append(None if r is None else 0.0)
                continue
            cum = torch.cumsum(self.hi[g], 0)
            b = int(torch.searchsorted(cum, torch.tensor(r - zeros[g], dtype=torch.int64)))
            below = int(cum[b - 1]) if b > 0 else 0
            self.bins.append((b, r - zeros[g] - below))
            self.result.append(None)
        self.lo = torch.zeros(self.groups, _LO_BINS, dtype=torch.int64)

    @property
    def refine(self) -> bool:
        return any(p is not None for p in self.bins)

    def feed_lo(self, values: torch.Tensor) -> None:
        bits = _bits(values)
        for g, plan in enumerate(self.bins):
            if plan is None:
                continue
            row = bits[g]
            sel = row[(row >> 16) == plan[0]]
            if plan[0] == 0:
                sel = sel[sel != 0]
            if sel.numel():
                self.lo[g] += torch.bincount(sel & 0xFFFF, minlength=_LO_BINS)

    def values(self) -> list[float | None]:
        out: list[float | None] = []
        for g, plan in enumerate(self.bins):
            if plan is None:
                out.append(self.result[g])
                continue
            b, r = plan
            cum = torch.cumsum(self.lo[g], 0)
            lo = int(torch.searchsorted(cum, torch.tensor(r, dtype=torch.int64)))
            out.append(float(torch.tensor([(b << 16) | lo], dtype=torch.int32).view(torch.float32)))
        return out


Ranks = list[int | None] | Callable[[list[int]], list[int | None]]


def kth_smallest(stream: Callable[[], Iterable[torch.Tensor]], groups: int, ranks: Ranks) -> list[float | None]:
    """The `ranks[g]`-th smallest (1-based) value of group g over every chunk `stream()` yields.

    Chunks are float32 tensors `[groups, ...]` of finite non-negative values; `stream` is called
    once, or twice when there is more than one chunk and a rank falls outside its group's zeros.
    `ranks` may be a function of the number of exact zeros in each group (counted in the first
    pass). A rank of None gives None for that group.
    """
    first: torch.Tensor | None = None
    hist: _Histogram | None = None
    zeros = [0] * groups
    first_zeros: list[int] = []
    for chunk in stream():
        flat = chunk.reshape(groups, -1)
        here = [flat.shape[1] - nz for nz in _nonzeros(flat)]
        zeros = [a + b for a, b in zip(zeros, here, strict=True)]
        if first is None and hist is None:
            first, first_zeros = chunk, here
            continue
        if hist is None:
            hist = _Histogram(groups)
            hist.feed_hi(first, first_zeros)
            first = None
        hist.feed_hi(chunk, here)
    wanted = ranks(zeros) if callable(ranks) else ranks
    if hist is None:
        if first is None:
            return [None] * groups
        flat = first.reshape(groups, -1)
        return [None if r is None else kth_value(flat[g], r, zeros[g]) for g, r in enumerate(wanted)]
    hist.plan(wanted, zeros)
    if hist.refine:
        for chunk in stream():
            hist.feed_lo(chunk)
    return hist.values()

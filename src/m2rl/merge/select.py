"""Exact order statistics of values streamed in chunks, without holding them.

For non-negative float32 values the IEEE-754 bit pattern, read as an int32, orders exactly as the
values do. A first pass counts values by their upper 16 bits (32,768 bins cover every finite
non-negative float32); the bin holding the wanted rank is then refined by a second pass that counts,
within that bin only, the lower 16 bits. The result is the exact k-th smallest value, the same one
`torch.kthvalue` returns over the concatenation, in two streaming passes and O(bins) memory.
When the stream turns out to be a single chunk, `torch.kthvalue` is used on it directly.

Several groups (one per expert model) are selected at once: chunks are `[groups, ...]` tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

_HI_BINS = 1 << 15  # (bits >> 16) of a finite non-negative float32 is at most 0x7F80
_LO_BINS = 1 << 16


def _bits(values: torch.Tensor) -> torch.Tensor:
    return values.contiguous().view(torch.int32).reshape(values.shape[0], -1)


class _Histogram:
    def __init__(self, groups: int):
        self.groups = groups
        self.hi = torch.zeros(groups * _HI_BINS, dtype=torch.int64)
        self.offsets = (torch.arange(groups, dtype=torch.int32) * _HI_BINS).unsqueeze(1)

    def feed_hi(self, values: torch.Tensor) -> None:
        idx = (_bits(values) >> 16) + self.offsets
        self.hi += torch.bincount(idx.reshape(-1), minlength=self.groups * _HI_BINS)

    def plan(self, ranks: list[int | None]) -> None:
        """For each group's rank (1-based, smallest first): its upper-bits bin and the rank inside it."""
        self.bins: list[tuple[int, int] | None] = []
        hist = self.hi.view(self.groups, _HI_BINS)
        for g, r in enumerate(ranks):
            if r is None:
                self.bins.append(None)
                continue
            cum = torch.cumsum(hist[g], 0)
            b = int(torch.searchsorted(cum, torch.tensor(r, dtype=torch.int64)))
            below = int(cum[b - 1]) if b > 0 else 0
            self.bins.append((b, r - below))
        self.lo = torch.zeros(self.groups, _LO_BINS, dtype=torch.int64)

    def feed_lo(self, values: torch.Tensor) -> None:
        bits = _bits(values)
        for g, plan in enumerate(self.bins):
            if plan is None:
                continue
            row = bits[g]
            sel = row[(row >> 16) == plan[0]]
            if sel.numel():
                self.lo[g] += torch.bincount(sel & 0xFFFF, minlength=_LO_BINS)

    def values(self) -> list[float | None]:
        out: list[float | None] = []
        for g, plan in enumerate(self.bins):
            if plan is None:
                out.append(None)
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
    once, or twice when there is more than one chunk. `ranks` may be a function of the number of
    exact zeros in each group (counted in the first pass). A rank of None gives None for that group.
    """
    first: torch.Tensor | None = None
    hist: _Histogram | None = None
    zeros = [0] * groups
    for chunk in stream():
        if callable(ranks):
            z = (chunk.reshape(groups, -1) == 0).sum(dim=1).tolist()
            zeros = [a + b for a, b in zip(zeros, z, strict=True)]
        if first is None and hist is None:
            first = chunk
            continue
        if hist is None:
            hist = _Histogram(groups)
            hist.feed_hi(first)
            first = None
        hist.feed_hi(chunk)
    wanted = ranks(zeros) if callable(ranks) else ranks
    if hist is None:
        if first is None:
            return [None] * groups
        flat = first.reshape(groups, -1)
        return [None if r is None else float(torch.kthvalue(flat[g], r).values) for g, r in enumerate(wanted)]
    hist.plan(wanted)
    for chunk in stream():
        hist.feed_lo(chunk)
    return hist.values()

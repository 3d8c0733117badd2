"""What a merge method sees: one output tensor at a time, read in row chunks of every input, in float32.

A `TensorJob` reads rows `[start, stop)` of the base tensor and of the same tensor in every expert,
upcasts them to float32 and hands out `Chunk(base, deltas)` with `deltas[i] = expert_i - base`.
A method may pass over a tensor's chunks several times (each pass re-reads them; a tensor that fits
in one chunk is read once and kept) and must `write` the merged rows, in row order, exactly once.
The first pass over each row checks it for NaN/Inf and names the model and tensor that has one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from m2rl.merge.io import InputError, SafetensorsSource, StreamingShardWriter

DEFAULT_CHUNK_ELEMS = 1 << 20  # elements per model per chunk: 4 MB of float32


@dataclass
class Chunk:
    """Rows [start, stop) of one tensor: the base and every expert's delta, float32."""

    start: int
    stop: int
    base: torch.Tensor  # (rows, *rest)
    deltas: torch.Tensor  # (models, rows, *rest)


class TensorJob:
    """One tensor to merge (see module doc)."""

    def __init__(
        self, name: str, base: SafetensorsSource, experts: list[SafetensorsSource],
        writer: StreamingShardWriter | None, chunk_elems: int = DEFAULT_CHUNK_ELEMS,
    ):
        self.name = name
        self.base_src, self.experts, self.writer = base, experts, writer
        self.shape = base.tensors[name].shape
        self.ishape = self.shape if self.shape else (1,)  # a 0-d tensor is one row of one element
        self.rows = self.ishape[0]
        self.row_len = math.prod(self.ishape[1:])
        self.numel = self.rows * self.row_len
        self.n_models = len(experts)
        self.chunk_rows = max(1, chunk_elems // max(1, self.row_len))
        self.single = self.chunk_rows >= self.rows
        self._cache: Chunk | None = None
        self._checked_to = 0
        self._written_to = 0

    def _load(self, start: int, stop: int) -> Chunk:
        base = self.base_src.read_rows(self.name, start, stop).to(torch.float32)
        deltas = torch.empty((self.n_models, stop - start, *self.ishape[1:]), dtype=torch.float32)
        for i, src in enumerate(self.experts):
            if src.tensors[self.name].dtype == "F32":
                src.read_rows(self.name, start, stop, out=deltas[i])
            else:
                deltas[i].copy_(src.read_rows(self.name, start, stop))
        deltas -= base
        if stop > self._checked_to:
            self._check(base, deltas)
            self._checked_to = stop
        return Chunk(start, stop, base, deltas)

    def _check(self, base: torch.Tensor, deltas: torch.Tensor) -> None:
        """Raise naming the first input with a NaN/Inf here. A sum is finite whenever every term is
        (NaN and Inf propagate), so the element-wise test runs only when the sum is not."""
        if bool(torch.isfinite(deltas.sum())):
            return
        if not bool(torch.isfinite(base).all()):
            raise InputError(f"{self.base_src.label}: tensor {self.name!r} has NaN or Inf values (base)")
        for i, src in enumerate(self.experts):
            if not bool(torch.isfinite(deltas[i]).all()):
                raise InputError(f"{src.label}: tensor {self.name!r} has NaN or Inf values (so has its delta)")

    def chunks(self) -> Iterator[Chunk]:
        """Every row chunk, in order (one chunk, kept, when the tensor fits in one)."""
        if self.single:
            yield self.full()
            return
        for start in range(0, self.rows, self.chunk_rows):
            yield self._load(start, min(self.rows, start + self.chunk_rows))

    def full(self) -> Chunk:
        """The whole tensor as one chunk (O(models x tensor) memory)."""
        if self._cache is not None:
            return self._cache
        chunk = self._load(0, self.rows)
        if self.single:
            self._cache = chunk
        return chunk

    def flat_range(self, chunk: Chunk) -> tuple[int, int]:
        """Element offsets [begin, end) of the chunk in the flattened tensor."""
        return chunk.start * self.row_len, chunk.stop * self.row_len

    def write(self, chunk: Chunk, value: torch.Tensor) -> None:
        """Write the merged rows of `chunk` (float32, the chunk's base shape)."""
        if chunk.start != self._written_to:
            raise RuntimeError(f"{self.name}: rows {chunk.start}.. written out of order")
        if tuple(value.shape) != tuple(chunk.base.shape):
            raise RuntimeError(f"{self.name}: merged rows of shape {list(value.shape)}, expected {list(chunk.base.shape)}")
        self.writer.write(self.name, value)
        self._written_to = chunk.stop

    @property
    def done(self) -> bool:
        return self._written_to == self.rows

    def release(self) -> None:
        self._cache = None


class MergeContext:
    """The whole merge, for methods that need a pass over every tensor first (global thresholds)."""

    def __init__(self, base: SafetensorsSource, experts: list[SafetensorsSource], names: list[str], chunk_elems: int):
        self.base, self.experts, self.names, self.chunk_elems = base, experts, names, chunk_elems
        self.n_models = len(experts)
        self.numel = sum(base.tensors[n].numel for n in names)

    def jobs(self) -> Iterator[TensorJob]:
        """A read-only job per floating-point tensor, in output order."""
        for name in self.names:
            yield TensorJob(name, self.base, self.experts, None, self.chunk_elems)

"""Byte-range access to safetensors checkpoints, and a writer that streams tensors into planned shards.

The merge reads inputs with plain positional reads (no memory maps), so a process's resident memory
holds only the rows it is working on, never pages of whole input files; and it writes each output
shard's header first (every output shape is known before any arithmetic) and then the tensor bytes
as they are computed, so no output tensor or shard is ever held whole.

Safetensors layout: 8-byte little-endian header length N, N bytes of JSON
(`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`), then the data, each
tensor row-major and little-endian, `data_offsets` relative to the end of the header.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

INDEX_NAME = "model.safetensors.index.json"

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
FLOAT_CODES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


class InputError(ValueError):
    """A checkpoint that cannot be merged; the message names the folder, file or tensor."""


def itemsize(code: str) -> int:
    return torch.empty((), dtype=DTYPES[code]).element_size()


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor's bytes lie."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset of the data in `file`
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_CODES


def read_header(path: Path) -> tuple[dict, int]:
    """(header JSON without `__metadata__`, offset of the data) of one safetensors file, validated."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"{path}: truncated safetensors file ({size} bytes, no header)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise InputError(f"{path}: truncated safetensors file (header of {n} bytes, file of {size})")
            raw = f.read(n)
    except FileNotFoundError:
        raise InputError(f"{path}: shard file is missing") from None
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_start = 8 + n
    end = 0
    for name, meta in header.items():
        try:
            code, shape, (b, e) = meta["dtype"], tuple(int(x) for x in meta["shape"]), meta["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{path}: malformed header entry for tensor {name!r}") from None
        if code not in DTYPES:
            raise InputError(f"{path}: tensor {name!r} has unsupported dtype {code}")
        if e - b != math.prod(shape) * itemsize(code):
            raise InputError(f"{path}: tensor {name!r} byte range does not match its shape {list(shape)}")
        end = max(end, e)
    if data_start + end != size:
        what = "truncated" if data_start + end > size else "has trailing bytes after the data"
        raise InputError(
            f"{path}: {what} safetensors file (header says {data_start + end} bytes, file has {size})"
        )
    return header, data_start


class SafetensorsSource:
    """Every tensor of a checkpoint folder (index + shards, or lone `*.safetensors`), read by rows."""

    def __init__(self, folder: str | Path, label: str | None = None):
        self.folder = Path(folder)
        self.label = label or str(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.label}: checkpoint folder not found")
        index = self.folder / INDEX_NAME
        if index.exists():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                files = sorted(set(weight_map.values()))
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(f"{index}: unreadable index ({exc})") from None
            for f in files:
                if not (self.folder / f).is_file():
                    raise InputError(f"{self.folder / f}: shard listed in {INDEX_NAME} is missing")
        else:
            weight_map = None
            files = sorted(p.name for p in self.folder.glob("*.safetensors"))
            if not files:
                raise InputError(f"{self.label}: no *.safetensors weights in {self.folder}")
        self.index_file: Path | None = index if index.exists() else None
        self.tensors: dict[str, TensorInfo] = {}
        for fname in files:
            path = self.folder / fname
            header, data_start = read_header(path)
            for name, meta in header.items():
                if weight_map is not None and weight_map.get(name) != fname:
                    continue  # the index is authoritative about where a tensor lives
                if name in self.tensors:
                    raise InputError(f"{path}: tensor {name!r} also in {self.tensors[name].file.name}")
                b, e = meta["data_offsets"]
                self.tensors[name] = TensorInfo(
                    name, meta["dtype"], tuple(int(x) for x in meta["shape"]), path, data_start + b, e - b
                )
        if weight_map is not None:
            for name in sorted(weight_map):
                if name not in self.tensors:
                    raise InputError(f"{self.folder / weight_map[name]}: no tensor {name!r} (listed in the index)")
        self._fh: dict[Path, object] = {}

    def names(self) -> list[str]:
        return sorted(self.tensors)

    def config(self) -> dict:
        p = self.folder / "config.json"
        if not p.exists():
            return {}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}: unreadable config ({exc})") from None

    def read_rows(self, name: str, start: int, stop: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows [start, stop) along the first dimension, in the stored dtype (a 0-d tensor is one row);
        into `out` (contiguous, of the stored dtype and the rows' size) when given."""
        info = self.tensors[name]
        shape = info.shape if info.shape else (1,)
        row_bytes = info.nbytes // shape[0] if shape[0] else 0
        n = (stop - start) * row_bytes
        if out is not None:
            if out.dtype != DTYPES[info.dtype] or not out.is_contiguous() or out.numel() * out.element_size() != n:
                raise ValueError(f"read_rows: `out` does not fit rows {start}:{stop} of {name!r}")
            buf = out.reshape(-1).view(torch.uint8)
        else:
            buf = torch.empty(n, dtype=torch.uint8)
        if n:
            fh = self._fh.get(info.file)
            if fh is None:
                fh = self._fh[info.file] = open(info.file, "rb", buffering=0)  # noqa: SIM115
            view = memoryview(buf.numpy())
            fh.seek(info.start + start * row_bytes)
            got = 0
            while got < n:
                r = fh.readinto(view[got:])
                if not r:
                    raise InputError(f"{info.file}: truncated while reading tensor {name!r}")
                got += r
        if out is not None:
            return out
        return buf.view(DTYPES[info.dtype]).reshape((stop - start, *shape[1:]))

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()
        self._fh.clear()


@dataclass
class _Planned:
    name: str
    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int  # relative to the shard's data start
    nbytes: int


class StreamingShardWriter:
    """Writes tensors, in a fixed order, into shards of at most `max_shard_bytes` (a bigger tensor gets
    a shard of its own), chunk by chunk, then `model.safetensors.index.json`.

    `plan` is [(name, dtype code, shape)] in write order; `write(name, chunk)` appends the next rows of
    `name`; a tensor's chunks must come in row order and tensors in plan order.
    """

    def __init__(self, folder: str | Path, plan: list[tuple[str, str, tuple[int, ...]]], max_shard_bytes: int):
        self.folder = Path(folder)
        self.entries: list[_Planned] = []
        shard, used = 0, 0
        for name, code, shape in plan:
            nbytes = math.prod(shape) * itemsize(code)
            if used and used + nbytes > max_shard_bytes:
                shard, used = shard + 1, 0
            self.entries.append(_Planned(name, code, tuple(shape), shard, used, nbytes))
            used += nbytes
        self.n_shards = shard + 1 if self.entries else 0
        self.files = [f"model-{i + 1:05d}-of-{self.n_shards:05d}.safetensors" for i in range(self.n_shards)]
        self.total_bytes = sum(e.nbytes for e in self.entries)
        self._pos = 0  # index of the tensor being written
        self._written = 0  # bytes of it written so far
        self._fh = None
        self._open_shard = -1

    def _header(self, shard: int) -> bytes:
        head: dict = {"__metadata__": {"format": "pt"}}
        for e in self.entries:
            if e.shard == shard:
                head[e.name] = {"dtype": e.dtype, "shape": list(e.shape), "data_offsets": [e.offset, e.offset + e.nbytes]}
        raw = json.dumps(head, separators=(",", ":")).encode()
        raw += b" " * (-(8 + len(raw)) % 8)
        return struct.pack("<Q", len(raw)) + raw

    def _advance(self) -> None:
        """Move past finished tensors (including empty ones), opening and closing shard files."""
        while self._pos < len(self.entries):
            e = self.entries[self._pos]
            if e.shard != self._open_shard:
                if self._fh is not None:
                    self._fh.close()
                self._fh = open(self.folder / self.files[e.shard], "wb")  # noqa: SIM115
                self._fh.write(self._header(e.shard))
                self._open_shard = e.shard
            if self._written < e.nbytes:
                return
            self._pos, self._written = self._pos + 1, 0

    def write(self, name: str, chunk: torch.Tensor) -> None:
        self._advance()
        if self._pos >= len(self.entries) or self.entries[self._pos].name != name:
            expected = self.entries[self._pos].name if self._pos < len(self.entries) else "(none)"
            raise RuntimeError(f"writer: got tensor {name!r} while {expected!r} is due")
        e = self.entries[self._pos]
        data = chunk.to(DTYPES[e.dtype]).contiguous().reshape(-1).view(torch.uint8)
        if self._written + data.numel() > e.nbytes:
            raise RuntimeError(f"writer: more bytes than the shape of {name!r} holds")
        self._fh.write(memoryview(data.numpy()))
        self._written += data.numel()

    def finish(self) -> list[str]:
        self._advance()
        if self._pos != len(self.entries):
            raise RuntimeError(f"writer: tensor {self.entries[self._pos].name!r} was not fully written")
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for i in range(self.n_shards):  # shards whose tensors are all empty still need their header
            p = self.folder / self.files[i]
            if not p.exists():
                p.write_bytes(self._header(i))
        index = {
            "metadata": {"total_size": self.total_bytes},
            "weight_map": {e.name: self.files[e.shard] for e in sorted(self.entries, key=lambda e: e.name)},
        }
        (self.folder / INDEX_NAME).write_text(json.dumps(index, indent=2))
        return list(self.files)

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

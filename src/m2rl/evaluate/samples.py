"""Per-sample rows of one benchmark: the `samples.parquet` table, its cache key, and resume chunks.

`<out>/<benchmark>/samples.parquet` holds one row per (problem, sample) with the columns of the
stage contract; its parquet metadata carries the generation key (model fingerprint, benchmark, the
content of its records, K, sampling, seed, backend) so that the file alone says which generation it is (no separate file can
disagree with it). While a benchmark is being generated, each finished batch is written as a chunk
under a `.partial/<key>` folder; an interrupted run resumes from them. Both are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from m2rl import storage

SCHEMA = pa.schema([
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("sample_index", pa.int64(), nullable=False),
    pa.field("domain", pa.string(), nullable=False),
    pa.field("prompt", pa.string(), nullable=False),
    pa.field("response", pa.string(), nullable=False),
    pa.field("score", pa.float64(), nullable=False),
    pa.field("details", pa.string(), nullable=False),
    pa.field("answer", pa.string(), nullable=True),
])
GENERATED = ("problem_id", "sample_index", "domain", "prompt", "response")
PARTIAL_SCHEMA = pa.schema([SCHEMA.field(c) for c in GENERATED])
KEY_META = b"m2rl.generation"


def generation_key(info: dict[str, Any]) -> str:
    """A short hash of what determines the samples (model, benchmark, records, K, sampling, seed, backend)."""
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


def records_digest(records: list[dict[str, Any]]) -> str:
    """Identity of the problems a benchmark generates for: each record's id, prompt, label and verifier, in
    order. Samples are cached by (problem id, sample index), so a rebuilt split whose ids name other prompts
    (another seed, other kinds) must not reuse them."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.get("id"), r.get("prompt"), r.get("label"), r.get("verifier")], sort_keys=True,
                            default=str, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def model_fingerprint(folder: str | Path) -> str:
    """Identity of a checkpoint's content: config, tokenizer files, and each weight file's size plus
    hashes of its first, middle and last MiB (cheap for large models; a retrained model differs there)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        p = folder / name
        if p.exists():
            h.update(name.encode() + p.read_bytes())
    for p in sorted(folder.glob("*.safetensors")):
        size = p.stat().st_size
        h.update(f"{p.name}:{size}".encode())
        with p.open("rb") as f:
            for offset in {0, max(0, size // 2 - 2**19), max(0, size - 2**20)}:
                f.seek(offset)
                h.update(f.read(2**20))
    return h.hexdigest()[:32]


class SampleStore:
    """Where one benchmark's samples live for one model's eval folder."""

    def __init__(self, out: str, benchmark: str, key: str, info: dict[str, Any]):
        self.out, self.benchmark, self.key, self.info = str(out), benchmark, key, info
        self.samples_uri = storage.join(self.out, benchmark, "samples.parquet")
        self.info_uri = storage.join(self.out, benchmark, "generation.json")
        if storage.is_s3(self.out):
            base = storage.cache_dir() / "eval-partial" / hashlib.sha256(self.out.encode()).hexdigest()[:16]
            self.partial_dir = base / benchmark / key
        else:
            self.partial_dir = Path(self.out) / benchmark / ".partial" / key

    # -- reading ---------------------------------------------------------------------------------
    def cached(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Generated rows already stored for this key: the final table if its key matches, plus chunks."""
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        if storage.exists(self.samples_uri):
            table = pq.read_table(io.BytesIO(storage.read_bytes(self.samples_uri)))
            meta = table.schema.metadata or {}
            if meta.get(KEY_META) and json.loads(meta[KEY_META]).get("key") == self.key:
                for r in table.select(list(GENERATED)).to_pylist():
                    rows[(r["problem_id"], r["sample_index"])] = r
        if self.partial_dir.is_dir():
            for chunk in sorted(self.partial_dir.glob("part-*.parquet")):
                for r in pq.read_table(chunk).to_pylist():
                    rows[(r["problem_id"], r["sample_index"])] = r
        return rows

    # -- writing ---------------------------------------------------------------------------------
    def append_partial(self, rows: list[dict[str, Any]]) -> None:
        """Write one finished batch as a resume chunk (temp + rename)."""
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.partial_dir.glob("part-*.parquet")))
        path = self.partial_dir / f"part-{n:06d}.parquet"
        with storage.temp_file(path) as tmp:  # what a killed earlier attempt left is swept first
            pq.write_table(pa.Table.from_pylist([{c: r[c] for c in GENERATED} for r in rows],
                                                schema=PARTIAL_SCHEMA), tmp)
            tmp.replace(path)

    def write_final(self, rows: list[dict[str, Any]]) -> None:
        """Write the scored table atomically, then drop the resume chunks."""
        meta = {KEY_META: json.dumps({"key": self.key, **self.info}, sort_keys=True).encode()}
        table = pa.Table.from_pylist(rows, schema=SCHEMA.with_metadata(meta))
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        storage.write_bytes(self.samples_uri, buf.getvalue())
        storage.write_text(self.info_uri, json.dumps({"key": self.key, **self.info}, indent=2, sort_keys=True))
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        parent = self.partial_dir.parent
        if parent.name == ".partial" and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


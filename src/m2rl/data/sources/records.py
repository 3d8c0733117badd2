"""Records already in the unified form: parquet (this project's schema) or JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from m2rl import records as rec_mod
from m2rl import storage
from m2rl.data.registry import Reject, Row, register_source
from m2rl.spec.data import SourceSpec


def _local(path: str) -> str:
    if storage.is_s3(path):
        local = storage.cache_dir() / "inputs" / Path(storage.parse_s3(path)[1]).name
        storage.download_file(path, local)
        return str(local)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: file not found")
    return path


@register_source("records")
def records(source: SourceSpec, domain: str | None, domains: frozenset[str] | None = None) -> Iterator[Row]:
    if not source.path:
        raise ValueError("records: source.path is required")
    path = _local(source.path)
    n = 0
    if path.endswith(".parquet"):
        rows = ((i + 1, r) for i, r in enumerate(rec_mod.iter_records(path)))
    else:
        def _jsonl():
            with open(path, "rb") as f:
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            yield lineno, json.loads(line)
                        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                            yield lineno, Reject(file=source.path, line=lineno, reason=f"not JSON: {exc}",
                                                 source="records")
        rows = _jsonl()
    for lineno, row in rows:
        if isinstance(row, Reject):
            yield row
            continue
        if not isinstance(row, dict):
            yield Reject(file=source.path, line=lineno, reason="row is not an object", source="records")
            continue
        if domain is not None and row.get("domain") != domain:
            continue
        if domains is not None and row.get("domain") not in domains:
            continue
        yield row
        n += 1
        if source.limit and n >= source.limit:
            return


records.multi_domain = True  # rows carry their own domain: read once, route by domain

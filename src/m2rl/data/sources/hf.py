"""Any Hugging Face dataset (hub id or local files), mapped to records by a column mapping.

`columns` maps record fields to source columns: `prompt` (text or chat messages; required),
`label`, `id`, and `verifier.<key>` for verifier metadata taken from a column (e.g.
`verifier.instruction_id_list: instruction_id_list`). The spec's `verifier` block supplies the rest
(at least its `type`). The loading code is the real `datasets.load_dataset` call, streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from m2rl.data.registry import Reject, Row, register_source
from m2rl.registry import StrictModel
from m2rl.spec.data import SourceSpec

_LOCAL_FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


def looks_local(path: str) -> bool:
    """Whether `path` names local files rather than a hub id (`owner/name` or a bare canonical name)."""
    return (path.startswith(("/", "./", "../", "~")) or path.count("/") > 1
            or Path(path).suffix in _LOCAL_FORMATS)


def local_files(path: str, split: str) -> list[str]:
    """The data files of a local file or folder; in a folder holding several splits (a downloaded hub
    snapshot: `data/math-00000-of-00001.parquet` beside `data/code-...`), only those of `split`, named
    `<split>-*` or under a `<split>/` folder as the hub names them."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return [str(p)]
    files = sorted(f for f in p.rglob("*") if f.suffix in _LOCAL_FORMATS and f.is_file())
    of_split = [f for f in files if f.name.startswith(f"{split}-") or f.name == f"{split}{f.suffix}"
                or split in f.relative_to(p).parts[:-1]]
    return [str(f) for f in (of_split or files)]


def load_rows(path: str, split: str, **options: Any):
    """Stream rows of a hub dataset or local data files with `datasets`; a local-looking path that does not
    exist is a FileNotFoundError (never a hub look-up)."""
    from datasets import load_dataset

    p = Path(path).expanduser()
    if not p.exists() and looks_local(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    if p.exists():
        files = local_files(path, split)
        if not files:
            raise FileNotFoundError(f"{path}: no data files ({', '.join(_LOCAL_FORMATS)})")
        fmt = _LOCAL_FORMATS.get(Path(files[0]).suffix)
        if fmt is None:
            raise ValueError(f"{path}: unsupported file type")
        return load_dataset(fmt, data_files={split: files}, split=split, streaming=True)
    return load_dataset(path, split=split, streaming=True, **options)


def _get(row: dict[str, Any], column: str) -> Any:
    cur: Any = row
    for part in column.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(column)
        cur = cur[part]
    return cur


class HfOptions(StrictModel):
    """Options of the hf source, passed to `datasets.load_dataset`."""

    name: str | None = Field(default=None, description="Dataset configuration name.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    data_dir: str | None = Field(default=None, description="Sub-folder of the dataset to read.")


@register_source("hf", params=HfOptions)
def hf(source: SourceSpec, domain: str | None) -> Iterator[Row]:
    if not source.path:
        raise ValueError("hf: source.path is required (hub id or local files)")
    if domain is None:
        raise ValueError("hf: list the source under one domain")
    if "prompt" not in source.columns:
        raise ValueError("hf: columns.prompt is required (the source column holding the prompt)")
    if "type" not in source.verifier:
        raise ValueError("hf: verifier.type is required for hf sources")
    load_opts = HfOptions.model_validate(source.options).model_dump(exclude_none=True)
    n = 0
    for i, row in enumerate(load_rows(source.path, source.split, **load_opts)):
        try:
            prompt = _get(row, source.columns["prompt"])
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            label = _get(row, source.columns["label"]) if "label" in source.columns else ""
            verifier = dict(source.verifier)
            for field, column in source.columns.items():
                if field.startswith("verifier."):
                    val = _get(row, column)
                    verifier[field[len("verifier.") :]] = json.loads(val) if isinstance(val, str) and val[:1] in "[{" else val
            rid = str(_get(row, source.columns["id"])) if "id" in source.columns else f"{Path(source.path).name}-{i}"
        except KeyError as exc:
            yield Reject(file=source.path, line=i + 1, reason=f"missing column {exc.args[0]!r}", source="hf")
            continue
        yield {"id": rid, "domain": domain, "prompt": prompt, "label": label if label is not None else "",
               "verifier": verifier, "source": f"hf:{source.path}"}
        n += 1
        if source.limit and n >= source.limit:
            return

"""Shared loader code: reading a benchmark's rows with `datasets`, column look-up, prompt templates.

A benchmark reads its usual Hugging Face dataset (`load_dataset(hub_id, config, split=...)`) unless
the spec gives `path`: a local file or folder (parquet, json/jsonl, csv) or an `s3://` URI, read
with `load_dataset("parquet" | "json" | "csv", data_files=...)` after an S3 download.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.evaluate.registry import EvalError
from m2rl.records import RecordError, validate_record

FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}

# The paper's math prompt: reason, then the final answer as `Answer: \boxed{...}` on the last line.
MATH_TEMPLATE = (
    "{problem}\n\nPlease reason step by step, and put your final answer on the last line in the form "
    "`Answer: \\boxed{{<answer>}}`."
)

# openai/simple-evals QUERY_TEMPLATE_MULTICHOICE (GPQA, MMLU-Redux), generalised to N options.
MULTICHOICE_TEMPLATE = (
    "Answer the following multiple choice question. The last line of your response should be of the "
    "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of {letters}. Think step by "
    "step before answering.\n\n{question}\n\n{options}"
)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def multichoice_prompt(question: str, options: list[str]) -> str:
    letters = LETTERS[: len(options)]
    lines = "\n".join(f"{letter}) {text}" for letter, text in zip(letters, options, strict=True))
    return MULTICHOICE_TEMPLATE.format(letters=letters, question=question.strip(), options=lines)


def local_path(name: str, path: str) -> Path:
    """A local file/folder for `path`; an s3:// file or folder is downloaded to the cache first."""
    if storage.is_s3(path):
        try:
            if path.rstrip("/").endswith(tuple(FORMATS)):
                local = storage.cache_dir() / "eval-data" / hashlib.sha256(path.encode()).hexdigest()[:16]
                target = local / path.rstrip("/").rsplit("/", 1)[-1]
                if not target.exists():
                    storage.download_file(path, target)
                return target
            return storage.fetch_dir(path)
        except storage.StorageError as exc:
            raise EvalError(f"{name}: dataset {path} could not be read: {exc}") from None
    p = Path(path).expanduser()
    if not p.exists():
        raise EvalError(f"{name}: dataset file {path} not found")
    return p


def _data_files(name: str, p: Path) -> tuple[str, list[str]]:
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in FORMATS and not f.name.startswith("."))
        if not files:
            raise EvalError(f"{name}: no {'/'.join(FORMATS)} files in folder {p}")
    else:
        files = [p]
    kinds = {FORMATS.get(f.suffix) for f in files}
    if None in kinds or len(kinds) != 1:
        raise EvalError(
            f"{name}: {p}: expected files of one format among {', '.join(FORMATS)}, got "
            f"{', '.join(sorted({f.suffix or f.name for f in files}))}"
        )
    return kinds.pop(), [str(f) for f in files]


def load_rows(
    name: str,
    path: str | None,
    hub_id: str | None,
    *,
    split: str = "test",
    config: str | None = None,
    hub_data_files: str | list[str] | None = None,
    hub_format: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of a benchmark's dataset, from `path` if given, else from the hub.

    `hub_data_files`/`hub_format` read files of a hub dataset repo directly (for datasets whose hub
    form is a loading script that `datasets` no longer runs, e.g. LiveCodeBench).
    """
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if path:
        fmt, files = _data_files(name, local_path(name, path))
        try:
            ds = datasets.load_dataset(fmt, data_files=files, split="train")
        except Exception as exc:
            raise EvalError(f"{name}: cannot read {path} as {fmt}: {exc}") from None
        return [dict(r) for r in ds]
    if not hub_id:
        raise EvalError(f"{name}: no dataset path given and the benchmark has no hub dataset")
    try:
        if hub_data_files is not None:
            ds = datasets.load_dataset(hub_format or "json", data_files=hub_data_files, split="train")
        else:
            ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:
        raise EvalError(
            f"{name}: could not load the Hugging Face dataset {hub_id}"
            f"{f' ({config})' if config else ''} split {split!r}: {exc}; set `path` to a local copy"
        ) from None
    return [dict(r) for r in ds]


def column(row: Mapping[str, Any], *names: str, required: bool = True, where: str = "") -> Any:
    """A row's value under the first of `names` present (case-insensitive); EvalError when required."""
    lower = {str(k).lower(): k for k in row}
    for n in names:
        key = n if n in row else lower.get(n.lower())
        if key is not None and row[key] is not None:
            return row[key]
    if required:
        raise EvalError(f"{where}: missing column {names[0]!r} (columns: {', '.join(map(str, row))})")
    return None


def make_record(
    bench: str, domain: str, rid: str, user: str, label: Any, verifier: dict[str, Any], system: str | None = None
) -> dict[str, Any]:
    """A validated unified record of a benchmark problem."""
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    rec = {"id": str(rid), "domain": domain, "prompt": prompt, "label": "" if label is None else str(label),
           "verifier": verifier, "source": bench}
    try:
        return validate_record(rec)
    except RecordError as exc:
        raise EvalError(f"{bench}: {exc}") from None


def unique_ids(bench: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with unique ids (a duplicate id is a dataset error: samples are keyed by it)."""
    out, seen = [], set()
    for r in records:
        if r["id"] in seen:
            raise EvalError(f"{bench}: problem id {r['id']!r} appears twice")
        seen.add(r["id"])
        out.append(r)
    return out


def text_id(*parts: Any) -> str:
    """A stable id from text (for rows without an id column)."""
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).hexdigest()

"""Shared loader code: reading a benchmark's rows with `datasets`, column look-up, prompt templates,
turning rows into problems with malformed rows skipped and counted.

A benchmark reads its usual Hugging Face dataset (`load_dataset(hub_id, config, split=...)`) unless
the spec gives `path`: a local file or folder (parquet, json/jsonl, csv) or an `s3://` URI, read
with `load_dataset("parquet" | "json" | "csv", data_files=...)` after an S3 download.

`parse_rows` turns rows into problems one row at a time: a row whose parser raises `EvalError` (a missing
column, an answer that names no option, a record that does not validate) is skipped and counted in the
benchmark's card by reason; the load fails only when more than `options.max_bad_fraction` (default
`MAX_BAD_FRACTION`) of the rows are malformed, naming the benchmark, the file and the first bad rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.evaluate.registry import (
    CARD_BAD_ROWS,
    MAX_BAD_FRACTION,
    BenchmarkCard,
    EvalError,
    Problems,
    benchmark_options,
)
from m2rl.records import RecordError, validate_record
from m2rl.spec.evaluate import BenchmarkSpec

# parse(row index, row, `<benchmark>: <source> row <i>`, card) -> a record, or None for a row the
# benchmark's rules leave out (after `card.exclude(rule)`); raises EvalError for a malformed row.
RowParser = Callable[[int, Mapping[str, Any], str, BenchmarkCard], "dict[str, Any] | None"]

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


_OPTION_LINE = re.compile(r"\n([A-Z])\) ")


def parse_options(text: str) -> tuple[list[str], int]:
    """The option texts of a prompt ending in `A) ...\nB) ...` lines (the simple-evals layout, as
    `multichoice_prompt` and the paper's GPQA script write it) and where that block starts; ([], -1) if none.

    The block is the last paragraph that opens with `A) `; each option runs to the next `\n<letter>) `
    of the next letter, so an option's own line breaks stay in its text.
    """
    start = text.rfind("\n\nA) ")
    if start < 0:
        return [], -1
    block = text[start + 1 :]  # "\nA) ...\nB) ..."
    options: list[str] = []
    pos = 0
    while len(options) < len(LETTERS):
        marker = f"\n{LETTERS[len(options)]}) "
        if not block.startswith(marker, pos):
            break
        body = pos + len(marker)
        nxt = block.find(f"\n{LETTERS[len(options) + 1]}) ", body) if len(options) + 1 < len(LETTERS) else -1
        options.append(block[body : nxt if nxt >= 0 else len(block)].strip())
        if nxt < 0:
            break
        pos = nxt
    return options, start


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`) of `text`, braces balanced; None if none.

    The math verifier's own extraction, so a label is read exactly as a response's answer is.
    """
    from m2rl.verifiers.types.math import _last_box

    got = _last_box(text)
    return got.strip() if got is not None and got.strip() else None


def prompt_messages(value: Any, where: str) -> list[dict[str, str]]:
    """A prompt column as chat messages: a string is one user message; a list of {role, content} is kept."""
    if isinstance(value, str):
        if not value.strip():
            raise EvalError(f"{where}: empty prompt")
        return [{"role": "user", "content": value}]
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, Mapping) for m in value):
        return [{"role": str(m.get("role")), "content": m.get("content")} for m in value]
    raise EvalError(f"{where}: prompt must be text or a list of chat messages, got {type(value).__name__}")


def problem_text(prompt: str | list[dict[str, str]]) -> str:
    """The text of a prompt (the last user turn of chat messages)."""
    if isinstance(prompt, str):
        return prompt.strip()
    users = [m.get("content") or "" for m in prompt if m.get("role") == "user"]
    return str(users[-1]).strip() if users else ""


def columns(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """The (lower-cased) column names of a table's rows (every row of a `datasets` table has them all)."""
    return {str(k).lower() for k in rows[0]} if rows else set()


def max_bad_fraction(spec: BenchmarkSpec) -> float:
    """The benchmark's `options.max_bad_fraction` (validated), else MAX_BAD_FRACTION."""
    return float(getattr(benchmark_options(spec), "max_bad_fraction", MAX_BAD_FRACTION))


def parse_rows(
    name: str, spec: BenchmarkSpec, rows: Sequence[Mapping[str, Any]], parse: RowParser, *, source: str,
    layout: str = "", card: BenchmarkCard | None = None,
) -> Problems:
    """Problems from `rows` by `parse`, each malformed row skipped and counted in the card.

    Fails (EvalError naming the benchmark, `source` and the first bad rows with their reasons) when more
    than the benchmark's `max_bad_fraction` of the rows are malformed; a duplicate problem id always fails.
    """
    limit = max_bad_fraction(spec)
    card = card or BenchmarkCard(name, source)
    card.layout, card.max_bad_fraction, card.rows = card.layout or layout, limit, len(rows)
    recs = []
    for i, row in enumerate(rows):
        where = f"{name}: {source} row {i}"
        try:
            rec = parse(i, row, where, card)
        except EvalError as exc:
            msg = str(exc)
            card.skip(i, msg[len(where) + 2 :] if msg.startswith(f"{where}: ") else msg)
            continue
        if rec is not None:
            recs.append(rec)
    if card.n_skipped > limit * len(rows):
        raise EvalError(
            f"{name}: {source}: {card.n_skipped} of {len(rows)} rows are malformed (more than "
            f"options.max_bad_fraction={limit:g} allows); first: {'; '.join(card.bad_rows[:CARD_BAD_ROWS])}"
        )
    out = unique_ids(name, recs)
    card.problems = len(out)
    return Problems(out, card)


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
    """A row's value under the first of `names` present and not null (case-insensitive); EvalError when required."""
    lower = {str(k).lower(): k for k in row}
    for n in names:
        key = n if n in row else lower.get(n.lower())
        if key is not None and row[key] is not None:
            return row[key]
    if required:
        raise EvalError(f"{where}: missing column {names[0]!r} (columns: {', '.join(map(str, row))})")
    return None


def make_record(
    bench: str, domain: str, rid: str, user: str | list[dict[str, str]], label: Any, verifier: dict[str, Any],
    system: str | None = None,
) -> dict[str, Any]:
    """A validated unified record of a benchmark problem; `user` is the user turn's text, or the chat
    messages a file already holds (kept as they are)."""
    turns = list(user) if isinstance(user, list) else [{"role": "user", "content": user}]
    prompt = ([{"role": "system", "content": system}] if system else []) + turns
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

"""The data stage: sources -> validated, deduplicated records, split per domain, plus the mix blend.

Memory stays bounded whatever the input size: rows stream from the sources straight into parquet
writers (one row group at a time); what is held per row is a 16-byte prompt hash for dedup and a
4-byte prompt length for the percentiles. The whole output folder is written to a temp location and
renamed (or uploaded) only when complete, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import random
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.data.registry import Reject, get_source
from m2rl.data.split import is_eval, prompt_key
from m2rl.names import MIX, Layout
from m2rl.records import RecordError, RecordWriter, iter_records, validate_record
from m2rl.spec import StudySpec
from m2rl.spec.data import DataSpec, SourceSpec


class DataStageError(RuntimeError):
    """The data stage refused its input (too many rejects, a source that cannot be read)."""


@dataclass
class DataResult:
    """Where the data stage wrote its outputs and how many records each split holds."""

    out: str
    counts: dict[str, dict[str, int]]
    train_paths: dict[str, str]
    eval_paths: dict[str, str]
    rejects: int
    card: dict[str, Any] = field(repr=False, default_factory=dict)


def _percentiles(lengths: array) -> dict[str, int]:
    if not lengths:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    s = sorted(lengths)

    def q(p: float) -> int:
        return int(s[min(len(s) - 1, int(p * (len(s) - 1) + 0.5))])

    return {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": int(s[-1])}


def _source_key(src: SourceSpec) -> str:
    return json.dumps(src.model_dump(mode="json"), sort_keys=True)


def _iter_domain_rows(spec: DataSpec) -> Iterator[tuple[str, str, Any]]:
    """(domain, source label, row) for every source row; multi-domain sources are read once."""
    groups: dict[str, tuple[SourceSpec, list[str]]] = {}
    for domain, dspec in spec.domains.items():
        for src in dspec.sources:
            groups.setdefault(_source_key(src), (src, []))[1].append(domain)
    for src, domains in groups.values():
        fn = get_source(src.type)
        label = f"{src.type}:{src.path}" if src.path else src.type
        try:
            if getattr(fn, "multi_domain", False):
                wanted = set(domains)
                for row in fn(src, None):
                    if isinstance(row, Reject):
                        yield "", label, row
                    elif row.get("domain") in wanted:
                        yield row["domain"], label, row
            else:
                for domain in domains:
                    for row in fn(src, domain):
                        yield domain, label, row
        except (FileNotFoundError, ValueError, storage.StorageError) as exc:
            raise DataStageError(f"data source {label}: {exc}") from None


def _blend(train_files: dict[str, Path], counts: dict[str, int], spec: DataSpec, out: Path) -> dict[str, int]:
    """Write the mix blend: each slot draws a domain by the spec's proportions (seeded), cycling a domain
    that runs out, so the balanced run sees every domain equally often."""
    domains = [d for d in train_files if counts.get(d)]
    if not domains:
        return {}
    if spec.balance == "equal":
        weights = [1.0] * len(domains)
    elif spec.balance == "proportional":
        weights = [float(counts[d]) for d in domains]
    else:
        weights = [spec.domains[d].weight for d in domains]
    total = sum(counts[d] for d in domains)
    rng = random.Random(spec.seed)

    def cycle(path: Path) -> Iterator[dict[str, Any]]:
        while True:
            yield from iter_records(path, batch_rows=min(spec.batch_rows, 1024))

    streams = {d: cycle(train_files[d]) for d in domains}
    drawn: Counter[str] = Counter()
    with RecordWriter(out, row_group_rows=spec.batch_rows) as w:
        for _ in range(total):
            d = rng.choices(domains, weights)[0]
            w.write(next(streams[d]), validated=True)
            drawn[d] += 1
    return dict(drawn)


def run_data_stage(
    spec: StudySpec | DataSpec, out: str, progress: Callable[[str, int], None] | None = None
) -> DataResult:
    """Build the study's data folder at `out` (local folder or s3:// URI).

    Writes `train/<domain>.parquet`, `eval/<domain>.parquet`, `train/mix.parquet`, `data_card.json`
    and `rejects.jsonl`; logs the data card to the active MLflow run if there is one.
    """
    dspec = spec.data if isinstance(spec, StudySpec) else spec
    with storage.output_dir(out) as tmp:
        writers: dict[tuple[str, str], RecordWriter] = {}
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        per_source: Counter[str] = Counter()
        lengths: dict[str, array] = defaultdict(lambda: array("I"))
        seen: set[bytes] = set()
        n_rows = n_rejects = 0
        reject_reasons: Counter[str] = Counter()
        rejects_tmp = tmp / "rejects.jsonl"
        try:
            with open(rejects_tmp, "w", encoding="utf-8") as rej:
                for domain, label, row in _iter_domain_rows(dspec):
                    n_rows += 1
                    if progress and n_rows % 10000 == 0:
                        progress("rows", n_rows)
                    if isinstance(row, Reject):
                        n_rejects += 1
                        reject_reasons[row.reason.split(":")[0][:60]] += 1
                        rej.write(json.dumps({"file": row.file, "line": row.line, "reason": row.reason,
                                              "source": row.source or label}) + "\n")
                        continue
                    try:
                        rec = validate_record(row)
                    except RecordError as exc:
                        n_rejects += 1
                        reject_reasons[f"{exc.field}: {exc.reason}"[:60]] += 1
                        rej.write(json.dumps({"file": label, "line": n_rows, "id": exc.record_id,
                                              "reason": str(exc), "source": label}) + "\n")
                        continue
                    if dspec.dedup:
                        key = bytes.fromhex(prompt_key(rec))
                        if key in seen:
                            counts[domain]["duplicates"] += 1
                            continue
                        seen.add(key)
                    split = "eval" if is_eval(rec["id"], dspec.eval_fraction, dspec.seed) else "train"
                    cap = dspec.domains[domain].max_eval if split == "eval" else dspec.domains[domain].max_train
                    if cap is not None and counts[domain][split] >= cap:
                        counts[domain][f"{split}_capped"] += 1
                        continue
                    w = writers.get((split, domain))
                    if w is None:
                        w = writers[(split, domain)] = RecordWriter(tmp / split / f"{domain}.parquet",
                                                                    row_group_rows=dspec.batch_rows)
                    w.write(rec, validated=True)
                    counts[domain][split] += 1
                    per_source[rec["source"].split(":")[0] if ":" in rec["source"] else rec["source"]] += 1
                    lengths[domain].append(sum(len(m["content"]) for m in rec["prompt"]))
            if n_rows and n_rejects / n_rows > dspec.max_reject_fraction:
                top = ", ".join(f"{r} ({c})" for r, c in reject_reasons.most_common(3))
                raise DataStageError(
                    f"{n_rejects} of {n_rows} rows rejected ({n_rejects / n_rows:.1%} > "
                    f"data.max_reject_fraction {dspec.max_reject_fraction:.1%}); most common: {top}"
                )
            for w in writers.values():
                w.close()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        empty = [d for d in dspec.domains if not counts[d]["train"]]
        if empty:
            raise DataStageError(f"data.domains.{empty[0]}: no train records after filtering")
        train_files = {d: tmp / "train" / f"{d}.parquet" for d in dspec.domains}
        mix_counts = _blend(train_files, {d: counts[d]["train"] for d in dspec.domains}, dspec,
                            tmp / "train" / f"{MIX}.parquet")
        card = {
            "domains": {d: dict(counts[d]) | {"prompt_chars": _percentiles(lengths[d])} for d in dspec.domains},
            "sources": dict(per_source),
            "rows_read": n_rows,
            "rejects": n_rejects,
            "reject_reasons": dict(reject_reasons.most_common(20)),
            "mix": {"balance": dspec.balance, "counts": mix_counts, "total": sum(mix_counts.values())},
            "eval_fraction": dspec.eval_fraction,
            "seed": dspec.seed,
        }
        (tmp / "data_card.json").write_text(json.dumps(card, indent=2))
    _log_card(card)
    layout = Layout(str(out))
    train_paths = {d: layout.train_split(d, data=str(out)) for d in [*dspec.domains, MIX]}
    eval_paths = {d: layout.eval_split(d, data=str(out)) for d in dspec.domains if counts[d]["eval"]}
    return DataResult(
        out=str(out), counts={d: dict(counts[d]) for d in dspec.domains} | {MIX: mix_counts},
        train_paths=train_paths, eval_paths=eval_paths, rejects=n_rejects, card=card,
    )


def _log_card(card: dict[str, Any]) -> None:
    """The card and its counts into the active MLflow run, if any."""
    from m2rl import tracking

    if not tracking.log_dict(card, "data_card.json"):
        return
    metrics = {"data/rows_read": card["rows_read"], "data/rejects": card["rejects"]}
    for d, c in card["domains"].items():
        metrics[f"data/{d}/train"] = c.get("train", 0)
        metrics[f"data/{d}/eval"] = c.get("eval", 0)
        metrics[f"data/{d}/duplicates"] = c.get("duplicates", 0)
    tracking.log_batch(metrics=metrics)

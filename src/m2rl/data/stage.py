"""The data stage: sources -> validated, deduplicated records, split per domain, plus the mix blend.

Memory stays bounded whatever the input size: rows stream from the sources straight into parquet
writers (one row group at a time); what is held per row is a 16-byte prompt hash for dedup and a
4-byte prompt length for the percentiles. The whole output folder is written to a temp location and
renamed (or uploaded) only when complete, so a failed run leaves nothing behind, and what a killed run left
(its temp folder, an interrupted overwrite) is removed or recovered when the next run starts
(`storage.output_dir`). The `natural` mix
(every train record once, shuffled) shuffles through bucket files, a bucket at a time in memory.

Prompt templates (`source.prompt_template`) rewrite the last user message of every valid record of that
listing before dedup. A rewording (`reword_from`, as the paper's `paper_science`) that does not match a
prompt leaves the record unchanged and is counted in the data card (`domains.<d>.prompt_template.unmatched`)
with a warning, rather than rejected: such a record is still a well-formed problem with a checkable label, and
rejecting it would drop training data and count against `data.max_reject_fraction`, aborting a whole run over
a difference of prompt style. The count says how far the paper's rewrite reached; a team that wants those
rows gone can see them and change the template or the source.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from m2rl import storage
from m2rl.data.registry import Reject, SourceOptionError, get_source
from m2rl.data.split import is_eval, prompt_key
from m2rl.names import MIX, Layout
from m2rl.records import RecordError, RecordWriter, iter_records, read_records, validate_record
from m2rl.spec import StudySpec
from m2rl.spec.data import DataSpec, PromptTemplate, SourceSpec

log = logging.getLogger(__name__)

NATURAL_BUCKET_BATCHES = 8  # the natural mix shuffles buckets of this many batches (data.batch_rows) in memory


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
    """What makes two listed sources one read: everything but the prompt template, which is per domain."""
    return json.dumps(src.model_dump(mode="json", exclude={"prompt_template"}), sort_keys=True)


@dataclass
class _Group:
    """One source read once, for every domain that lists it (with each domain's own prompt template)."""

    src: SourceSpec
    where: str  # the spec path of its first listing: data.domains.<d>.sources[<i>]
    templates: dict[str, PromptTemplate | None] = field(default_factory=dict)


def _groups(spec: DataSpec) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for domain, dspec in spec.domains.items():
        for i, src in enumerate(dspec.sources):
            where = f"data.domains.{domain}.sources[{i}]"
            g = groups.setdefault(_source_key(src), _Group(src, where))
            if domain in g.templates:
                raise DataStageError(f"{where}: the same source is listed twice for this domain")
            g.templates[domain] = src.template()
    return list(groups.values())


def _iter_domain_rows(spec: DataSpec) -> Iterator[tuple[str, str, Any, PromptTemplate | None]]:
    """(domain, source label, row, the domain's prompt template) for every source row; multi-domain sources
    are read once."""
    for g in _groups(spec):
        src = g.src
        fn = get_source(src.type)
        label = f"{src.type}:{src.path}" if src.path else src.type
        try:
            if getattr(fn, "multi_domain", False):
                wanted = frozenset(g.templates)
                for row in fn(src, None, domains=wanted):
                    if isinstance(row, Reject):
                        yield "", label, row, None
                    elif row.get("domain") in wanted:
                        yield row["domain"], label, row, g.templates[row["domain"]]
            else:
                for domain, template in g.templates.items():
                    for row in fn(src, domain):
                        yield domain, label, row, template
        except SourceOptionError as exc:
            raise DataStageError(f"{g.where}.{exc.option}: {exc.reason}") from None
        except (FileNotFoundError, ValueError, storage.StorageError) as exc:
            raise DataStageError(f"data source {label}: {exc}") from None


def _apply_template(rec: dict[str, Any], template: PromptTemplate) -> bool:
    """Rewrite the record's last user message with the template; False (record unchanged) when the template's
    `reword_from` does not match it."""
    for m in reversed(rec["prompt"]):
        if m["role"] == "user":
            new = template.apply(m["content"])
            if new is None:
                return False
            m["content"] = new
            return True
    return False


def _blend(train_files: dict[str, Path], counts: dict[str, int], spec: DataSpec, out: Path) -> dict[str, int]:
    """Write the mix blend. `natural`: every train record of every domain exactly once, in a seeded uniform
    shuffle (the paper's multi-task set: the subsets concatenated at their natural sizes). Otherwise each slot
    draws a domain by the spec's proportions (seeded), cycling a domain that runs out, so the balanced run sees
    every domain equally often."""
    domains = [d for d in train_files if counts.get(d)]
    if not domains:
        return {}
    rng = random.Random(spec.seed)
    if spec.balance == "natural":
        return _natural_blend({d: train_files[d] for d in domains}, rng, spec.batch_rows, out)
    if spec.balance == "equal":
        weights = [1.0] * len(domains)
    elif spec.balance == "proportional":
        weights = [float(counts[d]) for d in domains]
    else:
        weights = [spec.domains[d].weight for d in domains]
    total = sum(counts[d] for d in domains)

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


def _natural_blend(files: dict[str, Path], rng: random.Random, batch_rows: int, out: Path) -> dict[str, int]:
    """Every record of `files` once, in a seeded uniform shuffle with bounded memory (the two-pass external
    shuffle): each record goes to a uniformly drawn bucket file of about `NATURAL_BUCKET_BATCHES * batch_rows`
    records, then each bucket is shuffled in memory and appended, bucket after bucket."""
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files.values())
    n_buckets = max(1, -(-total // (NATURAL_BUCKET_BATCHES * batch_rows)))
    written: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix=".natural-", dir=out.parent) as tmp:
        buckets = [RecordWriter(Path(tmp) / f"{i}.parquet", row_group_rows=batch_rows) for i in range(n_buckets)]
        try:
            for f in files.values():
                for rec in iter_records(f, batch_rows=min(batch_rows, 1024)):
                    buckets[rng.randrange(n_buckets)].write(rec, validated=True)
            for b in buckets:
                b.close()
        except BaseException:
            for b in buckets:
                b.abort()
            raise
        with RecordWriter(out, row_group_rows=batch_rows) as w:
            for b in buckets:
                recs = read_records(b.path)
                rng.shuffle(recs)
                for rec in recs:
                    w.write(rec, validated=True)
                    written[rec["domain"]] += 1
                b.path.unlink()
    return {d: written[d] for d in files if written[d]}


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
        templated: dict[str, Counter[str]] = defaultdict(Counter)
        n_rows = n_rejects = 0
        reject_reasons: Counter[str] = Counter()
        rejects_tmp = tmp / "rejects.jsonl"
        try:
            with open(rejects_tmp, "w", encoding="utf-8") as rej:
                for domain, label, row, template in _iter_domain_rows(dspec):
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
                    if template is not None:
                        applied = _apply_template(rec, template)
                        templated[domain]["applied" if applied else "unmatched"] += 1
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
        mix_total = sum(mix_counts.values())
        card = {
            "domains": {d: dict(counts[d]) | {"prompt_chars": _percentiles(lengths[d])}
                        | _template_card(dspec, d, templated[d]) for d in dspec.domains},
            "sources": dict(per_source),
            "rows_read": n_rows,
            "rejects": n_rejects,
            "reject_reasons": dict(reject_reasons.most_common(20)),
            "mix": {"balance": dspec.balance, "counts": mix_counts, "total": mix_total,
                    "shares": {d: round(c / mix_total, 4) for d, c in mix_counts.items()} if mix_total else {}},
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


def _template_card(spec: DataSpec, domain: str, counts: Counter[str]) -> dict[str, Any]:
    """The domain's prompt templates (as the spec gives them) and how many records each rewrote or left
    unchanged because a rewording did not match; a warning when some did not."""
    given = [src.model_dump(mode="json")["prompt_template"] for src in spec.domains[domain].sources
             if src.prompt_template is not None]
    if not given:
        return {}
    if counts["unmatched"]:
        log.warning("data.domains.%s: the prompt template did not match %d of %d records (left unchanged)",
                    domain, counts["unmatched"], counts["applied"] + counts["unmatched"])
    return {"prompt_template": {"templates": given, "applied": counts["applied"], "unmatched": counts["unmatched"]}}


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

"""The evaluate stage: sample K responses per problem, score them with the verifiers, report metrics.

`evaluate(model, benchmarks, out, backend=...)` writes under `out` (a local folder or s3:// URI):
`metrics.json` and `<benchmark>/samples.parquet` (see docs of m2rl.evaluate.samples). Bad input
(an unknown benchmark or backend, a missing dataset file, a model folder without weights) fails
before any generation. Samples are cached: the same model, benchmark records, K, sampling, seed and
backend reuse the stored samples and are only rescored; an interrupted run resumes from its finished batches.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.evaluate import episodes
from m2rl.evaluate.backends import BackendOptions, Generator, get_backend
from m2rl.evaluate.metrics import summarize
from m2rl.evaluate.registry import (
    Benchmark,
    BenchmarkCard,
    EvalError,
    Sampling,
    get_benchmark,
    load_benchmark,
)
from m2rl.evaluate.samples import SampleStore, generation_key, model_fingerprint, records_digest
from m2rl.names import Layout, parse_model_name
from m2rl.progress import report as report_progress
from m2rl.registry import EVAL_BACKENDS
from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

Progress = Callable[[str, int, int], None]  # (benchmark, problems done, problems total)

# Keys under which verifiers report the answer they extracted (the first present is used for maj@K).
ANSWER_KEYS = ("answer", "extracted", "extracted_answer", "pred", "prediction", "letter", "choice")


@dataclass
class EvalResult:
    """What the evaluate stage produced for one model."""

    out: str
    model: str
    metrics: dict[str, dict[str, float]]  # benchmark -> metric -> value
    domains: dict[str, str]  # benchmark -> domain
    domain_metrics: dict[str, dict[str, float]]  # domain -> aggregate metrics
    samples: dict[str, str] = field(default_factory=dict)  # benchmark -> samples.parquet URI
    generated_samples: int = 0
    reused_samples: int = 0
    generated_tokens: int = 0
    generation_seconds: float = 0.0
    wall_seconds: float = 0.0


@dataclass
class _Run:
    bench: Benchmark
    spec: BenchmarkSpec
    records: list[dict[str, Any]]
    k: int
    sampling: Sampling
    card: BenchmarkCard


def default_model_name(model: str) -> str:
    """A folder-safe name of a model reference (eval folders are named by it)."""
    ref = str(model).rstrip("/")
    name = ref.replace(":", "-") if ref.startswith("random:") else ref.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"


def study_benchmarks(study: Any, benchmarks: Sequence[BenchmarkSpec] | None = None) -> list[BenchmarkSpec]:
    """A study's benchmarks (default its spec's), with each `builtin_<domain>` tied to its own eval split.

    A builtin benchmark without `path` reads the data stage's `<artifact_root>/data/eval/<domain>.parquet`
    when it exists; otherwise it regenerates the split with the spec's data settings (eval_fraction, seed,
    the domain's max_eval and its builtin source's seed, count, kinds, allow_last_number) as option defaults.
    """
    out = []
    for b in study.evaluate.benchmarks if benchmarks is None else benchmarks:
        domain = b.name[len("builtin_") :] if b.name.startswith("builtin_") else None
        if domain is None or b.path is not None:
            out.append(b)
            continue
        split = Layout(study.artifact_root).eval_split(domain)
        if storage.exists(split):
            out.append(b.model_copy(update={"path": split}))
            continue
        defaults: dict[str, Any] = {"eval_fraction": study.data.eval_fraction, "split_seed": study.data.seed}
        dspec = study.data.domains.get(domain)
        if dspec is not None:
            if dspec.max_eval is not None:
                defaults["max_eval"] = dspec.max_eval
            src = next((s for s in dspec.sources if s.type == "builtin"), None)
            if src is not None:
                from m2rl.data.sources.builtin import BuiltinOptions

                defaults.update({k: v for k, v in src.options.items() if k in BuiltinOptions.model_fields})
        out.append(b.model_copy(update={"options": {**defaults, **b.options}}))
    return out


def model_benchmarks(study: Any, model: str) -> list[BenchmarkSpec]:
    """The benchmarks `model` of the study is evaluated on (`study_benchmarks`): all of them, except for a
    single-domain expert under `evaluate.experts: own_domain`, which gets its own domain's only."""
    benchmarks = study_benchmarks(study)
    parsed = parse_model_name(model)
    if study.evaluate.experts != "own_domain" or parsed is None or parsed.paradigm != "single":
        return benchmarks
    own = [b for b in benchmarks if get_benchmark(b.name).domain == parsed.domain]
    if not own:
        raise EvalError(f"evaluate.experts: own_domain, but no benchmark of evaluate.benchmarks is of domain "
                        f"{parsed.domain!r} (model {model})")
    return own


def _resolve_model(model: str, cache: str | Path | None) -> Path:
    from m2rl.models import ModelError, resolve_model

    try:
        return resolve_model(model, cache=cache)
    except (ModelError, storage.StorageError) as exc:
        raise EvalError(f"model {model}: {exc}") from None


def _batch_seed(seed: int, ids: Sequence[str]) -> int:
    h = hashlib.blake2b(f"{seed}:{ids[0]}:{len(ids)}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "big") & 0x7FFFFFFF


def _answer(details: dict[str, Any]) -> str | None:
    for key in ANSWER_KEYS:
        val = details.get(key)
        if val is not None and val != "":
            return str(val).strip()
    return None


def _check_verifiers(bench: str, records: list[dict[str, Any]]) -> None:
    """Every record names a registered verifier (checked before generation, not after it)."""
    try:
        from m2rl.verifiers import VerifierError, check_record
    except ImportError as exc:
        raise EvalError(f"scoring needs m2rl.verifiers, which cannot be imported: {exc}") from None
    for rec in records:
        try:
            check_record(rec)
        except VerifierError as exc:
            raise EvalError(f"{bench}: {exc}") from None


def _check_environments(bench: str, records: list[dict[str, Any]], env_params: dict[str, Any] | None) -> None:
    """Each environment a benchmark's records play in can be set up (its params valid, its sandbox data found),
    tried on the first record of each before any generation."""
    from m2rl.envs import env_name, new_environment

    seen: set[tuple[str, str]] = set()
    for rec in records:
        if not episodes.has_env_records([rec]):
            continue
        key = (env_name(rec), str(rec["verifier"].get("sandbox")))
        if key in seen:
            continue
        seen.add(key)
        try:
            new_environment(rec, env_params or {})
        except ValueError as exc:
            raise EvalError(f"{bench}: record {rec['id']!r}: {exc}") from None


def _score(records: list[dict[str, Any]], responses: list[str], settings: EvaluateSpec,
           require_think_close: bool = False, env_params: dict[str, Any] | None = None) -> list[Any]:
    """Scores in order: single-turn responses by the verifiers, episodes by replaying them (`episodes.score`)."""
    try:
        from m2rl.verifiers import score_batch
    except ImportError as exc:
        raise EvalError(f"scoring needs m2rl.verifiers, which cannot be imported: {exc}") from None
    played = [i for i, r in enumerate(records) if episodes.has_env_records([r])]
    if not played:
        return score_batch(records, responses, workers=settings.score_workers, timeout=settings.score_timeout,
                           require_think_close=require_think_close)
    out: list[Any] = [None] * len(records)
    for i, sc in zip(played, episodes.score([records[i] for i in played], [responses[i] for i in played],
                                            env_params), strict=True):
        out[i] = sc
    single = [i for i in range(len(records)) if out[i] is None]
    if single:
        scored = score_batch([records[i] for i in single], [responses[i] for i in single],
                             workers=settings.score_workers, timeout=settings.score_timeout,
                             require_think_close=require_think_close)
        for i, sc in zip(single, scored, strict=True):
            out[i] = sc
    return out


def _render(generator: Generator, rec: dict[str, Any]) -> str:
    """The prompt of a record as the generator renders it, with the record's tool schemas when it has any
    (a generator whose `render` takes messages only still renders the records without tools)."""
    tools = rec.get("tools")
    return generator.render(rec["prompt"], tools) if tools else generator.render(rec["prompt"])


def _prepare(specs: Sequence[BenchmarkSpec | str]) -> list[tuple[Benchmark, BenchmarkSpec]]:
    items = [BenchmarkSpec(name=s) if isinstance(s, str) else s for s in specs]
    if not items:
        raise EvalError("no benchmarks to evaluate")
    seen: set[str] = set()
    out = []
    for s in items:
        if s.name in seen:
            raise EvalError(f"benchmark {s.name!r} listed twice")
        seen.add(s.name)
        out.append((get_benchmark(s.name), s))
    return out


def evaluate(
    model: str,
    benchmarks: Sequence[BenchmarkSpec | str],
    out: str,
    backend: str | None = None,
    *,
    settings: EvaluateSpec | None = None,
    model_name: str | None = None,
    cache: str | Path | None = None,
    track: bool = True,
    progress: Progress | None = None,
    require_think_close: bool = False,
    env_params: dict[str, Any] | None = None,
) -> EvalResult:
    """Evaluate `model` (a reference m2rl.models.resolve_model understands) on `benchmarks`.

    `settings` (the spec's `evaluate` section) gives seed, batch size, vLLM and scoring options;
    `backend` overrides its backend. Metrics go to `out`/metrics.json and to MLflow as
    `eval/<benchmark>/<metric>` into the active run, if any (`track=False`: not even there).
    `require_think_close` (the spec's `rewards.require_think_close`): a response without `</think>` scores 0.
    Environment records are played as episodes (`m2rl.evaluate.episodes`), their environments configured by
    `env_params` (the spec's `envs:`).
    """
    t0 = time.perf_counter()
    settings = settings or EvaluateSpec()
    backend = backend or settings.backend
    out = str(out)
    model_name = model_name or default_model_name(model)

    # Everything that can be wrong with the input fails here, before any generation.
    pairs = _prepare(benchmarks)
    backend_cls = get_backend(backend)
    folder = _resolve_model(model, cache)
    runs = []
    for bench, spec in pairs:
        problems = load_benchmark(spec, bench)
        records = list(problems)
        if spec.limit is not None:
            records = records[: spec.limit]
        if not records:
            raise EvalError(f"{bench.name}: no problems to evaluate")
        _check_verifiers(bench.name, records)
        _check_environments(bench.name, records, env_params)
        k, sampling = bench.resolve(spec)
        runs.append(_Run(bench, spec, records, k, sampling, problems.card))

    fingerprint = model_fingerprint(folder)
    own = settings.backend_options if backend == settings.backend else {}
    options = BackendOptions(
        batch_size=settings.batch_size, tensor_parallel_size=settings.tensor_parallel_size,
        gpu_memory_utilization=settings.gpu_memory_utilization, max_model_len=settings.max_model_len,
        seed=settings.seed, extra=EVAL_BACKENDS.parse_params(backend, own, "evaluate.backend_options"),
    )
    result = EvalResult(out=out, model=model_name, metrics={}, domains={}, domain_metrics={})
    report: dict[str, dict[str, Any]] = {}
    generator: Generator | None = None
    try:
        for run in runs:
            info = {"model": fingerprint, "benchmark": run.bench.name, "records": records_digest(run.records),
                    "k": run.k, "sampling": asdict(run.sampling),
                    "seed": settings.seed, "backend": backend, "options": run.spec.options,
                    **({"backend_options": own} if own else {})}
            store = SampleStore(out, run.bench.name, generation_key(info), info)
            cached = store.cached() if settings.reuse_samples else {}
            todo = [r for r in run.records if any((r["id"], i) not in cached for i in range(run.k))]
            result.reused_samples += sum(1 for r in run.records for i in range(run.k) if (r["id"], i) in cached)
            done = len(run.records) - len(todo)
            if progress:
                progress(run.bench.name, done, len(run.records))
            if todo:
                if generator is None:
                    report_progress(f"loading the model ({backend} backend)")
                    generator = backend_cls(folder, options)
                t_gen = time.perf_counter()
                if episodes.has_env_records(todo):  # multi-turn: each sample is an episode
                    done = _play_episodes(generator, run, todo, store, cached, settings, env_params, result,
                                          progress, done)
                    todo = [r for r in todo if not episodes.has_env_records([r])]
                rendered = sorted(((r, _render(generator, r)) for r in todo), key=lambda x: -len(x[1]))
                for start in range(0, len(rendered), settings.batch_size):
                    chunk = rendered[start : start + settings.batch_size]
                    ids = [r["id"] for r, _ in chunk]
                    texts = generator.generate([p for _, p in chunk], run.k, run.sampling, _batch_seed(settings.seed, ids))
                    rows = [
                        {"problem_id": r["id"], "sample_index": i, "domain": r["domain"], "prompt": p, "response": t}
                        for (r, p), completions in zip(chunk, texts, strict=True) for i, t in enumerate(completions)
                    ]
                    done = _keep(rows, len(chunk), done, run, store, cached, result, progress)
                result.generation_seconds += time.perf_counter() - t_gen
            report[run.bench.name] = _score_and_write(run, cached, store, settings, result, require_think_close,
                                                       track, env_params)
    finally:
        if generator is not None:
            result.generated_tokens = generator.generated_tokens
            generator.close()

    # Benchmarks evaluated earlier for the same checkpoint (another `m2rl eval -b ...` call) stay in metrics.json.
    kept = {b: m for b, m in _previous_metrics(out, fingerprint).items() if b not in report}
    all_metrics = {**{b: {k: v for k, v in m.items() if isinstance(v, int | float)} for b, m in kept.items()},
                   **result.metrics}
    all_domains = {**{b: str(m.get("domain", "other")) for b, m in kept.items()}, **result.domains}
    result.domain_metrics = domain_aggregate(result.metrics, result.domains)
    doc = {"model": model_name, "model_ref": str(model), "model_fingerprint": fingerprint, "backend": backend,
           "seed": settings.seed, "require_think_close": require_think_close,
           "benchmarks": dict(sorted({**kept, **report}.items())),
           "domains": domain_aggregate(all_metrics, all_domains)}
    storage.write_text(storage.join(out, "metrics.json"), json.dumps(doc, indent=2, sort_keys=True))
    result.wall_seconds = time.perf_counter() - t0
    if track:
        log_to_mlflow(result)
    return result


def _previous_metrics(out: str, fingerprint: str) -> dict[str, dict[str, Any]]:
    """The benchmarks of an existing metrics.json in `out` written for the same checkpoint (else none)."""
    uri = storage.join(out, "metrics.json")
    try:
        if not storage.exists(uri):
            return {}
        doc = json.loads(storage.read_text(uri))
    except (storage.StorageError, json.JSONDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("model_fingerprint") != fingerprint:
        return {}
    benches = doc.get("benchmarks")
    return {b: m for b, m in benches.items() if isinstance(m, dict)} if isinstance(benches, dict) else {}


def _play_episodes(generator: Generator, run: _Run, todo: list[dict[str, Any]], store: SampleStore,
                   cached: dict[tuple[str, int], dict[str, Any]], settings: EvaluateSpec,
                   env_params: dict[str, Any] | None, result: EvalResult, progress: Progress | None,
                   done: int) -> int:
    """Play K episodes of each environment record of `todo`, a batch of records at a time, into the store."""
    recs = [r for r in todo if episodes.has_env_records([r])]
    for start in range(0, len(recs), settings.batch_size):
        chunk = recs[start : start + settings.batch_size]
        seed = _batch_seed(settings.seed, [r["id"] for r in chunk])
        played = episodes.play(generator, chunk, run.k, run.sampling, seed, env_params)
        rows = [
            {"problem_id": r["id"], "sample_index": i, "domain": r["domain"],
             "prompt": json.dumps(r["prompt"], ensure_ascii=False), "response": t}
            for r, samples in zip(chunk, played, strict=True) for i, t in enumerate(samples)
        ]
        done = _keep(rows, len(chunk), done, run, store, cached, result, progress)
    return done


def _keep(rows: list[dict[str, Any]], problems: int, done: int, run: _Run, store: SampleStore,
          cached: dict[tuple[str, int], dict[str, Any]], result: EvalResult, progress: Progress | None) -> int:
    """A generated batch into the store (resumable) and the cache; the progress moved on by its problems."""
    store.append_partial(rows)
    cached.update({(row["problem_id"], row["sample_index"]): row for row in rows})
    result.generated_samples += len(rows)
    done += problems
    if progress:
        progress(run.bench.name, done, len(run.records))
    report_progress(f"{run.bench.name} {done}/{len(run.records)} problems x {run.k}", benchmark=run.bench.name,
                    done=done, total=len(run.records))
    return done


def _score_and_write(
    run: _Run, cached: dict[tuple[str, int], dict[str, Any]], store: SampleStore, settings: EvaluateSpec,
    result: EvalResult, require_think_close: bool = False, track: bool = False,
    env_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rows = [cached[(r["id"], i)] for r in run.records for i in range(run.k)]
    recs = [r for r in run.records for _ in range(run.k)]
    scores = _score(recs, [row["response"] for row in rows], settings, require_think_close, env_params)
    table, score_rows, answer_rows = [], [], []
    for j, rec in enumerate(run.records):
        s_row, a_row = [], []
        for i in range(run.k):
            row, sc = rows[j * run.k + i], scores[j * run.k + i]
            value = float(sc.value)
            details = dict(sc.details or {})
            answer = _answer(details) if run.bench.votable else None
            table.append({**row, "domain": rec["domain"], "score": value, "answer": answer,
                          "details": json.dumps(details, default=str, ensure_ascii=False)})
            s_row.append(value)
            a_row.append(answer)
        score_rows.append(s_row)
        answer_rows.append(a_row)
    store.write_final(table)
    metrics = summarize(score_rows, answer_rows if run.bench.votable else None, resamples=settings.bootstrap,
                        seed=settings.seed)
    result.metrics[run.bench.name] = metrics
    result.domains[run.bench.name] = run.bench.domain
    result.samples[run.bench.name] = store.samples_uri
    card = run.card.to_dict()
    if track:
        from m2rl import tracking

        tracking.log_dict(card, f"{run.bench.name}/benchmark_card.json")
    return {**metrics, "domain": run.bench.domain, "sampling": asdict(run.sampling), "card": card}


def domain_aggregate(metrics: dict[str, dict[str, float]], domains: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per domain: the mean Avg@K over its benchmarks (each benchmark weighs equally) and their count."""
    by_domain: dict[str, list[float]] = {}
    for bench, m in metrics.items():
        by_domain.setdefault(domains[bench], []).append(m["avg_at_k"])
    return {d: {"avg_at_k": sum(v) / len(v), "n_benchmarks": float(len(v))} for d, v in sorted(by_domain.items())}


def mlflow_metrics(result: EvalResult) -> dict[str, float]:
    """`eval/<benchmark>/<metric>` and `eval/domain_<domain>/avg_at_k` (MLflow names cannot hold '@')."""
    flat = {f"eval/{b}/{k}": v for b, m in result.metrics.items() for k, v in m.items()}
    flat.update({f"eval/domain_{d}/{k}": v for d, m in result.domain_metrics.items() for k, v in m.items()})
    return flat


def log_to_mlflow(result: EvalResult) -> bool:
    """Log the metrics into the active MLflow run (the caller opens it); whether there was one."""
    from m2rl import tracking

    return tracking.log_batch(metrics=mlflow_metrics(result)) > 0

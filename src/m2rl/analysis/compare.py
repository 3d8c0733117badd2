"""`m2rl compare`: rebuild the report's tables of every study in an MLflow experiment from the server alone.

A study is a parent run (no `mlflow.parentRunId` tag). When its report was logged, the parent run holds the
summary metrics and the layout tags and the tables come out exactly as in report.md. Otherwise the tables
that need only per-model numbers (accuracy, merge methods, transfer, cost) are rebuilt from the study's
MLflow LoggedModels (`m2rl.tracking.models`: `eval/<benchmark>/<metric>` and `cost/gpu_hours` metrics,
`m2rl.paradigm` / `m2rl.domain` / `m2rl.merge_method` tags), or, for a study tracked before it had models, from
its evaluate and train child runs read into the same rows. Nothing is read from the artifact store, so it
works for studies that ran on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m2rl.analysis.inputs import AnalysisError, infer_paradigm
from m2rl.analysis.summary import layout_from_tags
from m2rl.analysis.tables import DASH, Table, build_tables, mkey, pct, pts, verdict_lines
from m2rl.names import PARADIGM_ORDER, parse_model_name
from m2rl.tracking import TAG_PARENT

_HEADLINE_KEYS = {"avg@k", "avg_at_k", "avg_k", "avg"}


@dataclass
class StudyTables:
    """One study's tables as rebuilt from MLflow."""

    run_id: str
    run_name: str
    source: str  # "report" (summary logged by `m2rl report`), "models" (LoggedModels) or "child runs"
    tables: list[Table]
    verdict: list[str]
    metrics: dict[str, float] = field(repr=False, default_factory=dict)
    layout: dict[str, Any] = field(repr=False, default_factory=dict)

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)

    def to_markdown(self) -> str:
        parts = [f"## {self.run_name} (run {self.run_id}, from {self.source})", ""]
        parts += [f"> {s}" for s in self.verdict] + [""]
        for t in self.tables:
            parts += [t.to_markdown(), ""]
        return "\n".join(parts)


@dataclass
class CompareResult:
    experiment: str
    overview: Table
    studies: list[StudyTables]

    def to_markdown(self) -> str:
        parts = [f"# M2RL studies in experiment {self.experiment}", "", self.overview.to_markdown(), ""]
        return "\n".join(parts + [s.to_markdown() for s in self.studies])


def _canonical_metric(name: str) -> str:
    return name.lower().replace("_at_", "@")


def _bench_domain(bench: str) -> str:
    """A benchmark's domain from the evaluation registry (code, not the artifact store)."""
    from m2rl.evaluate import EvalError, get_benchmark

    try:
        return get_benchmark(bench).domain
    except EvalError:
        return bench[len("builtin_") :] if bench.startswith("builtin_") else "other"


def rows_from_runs(children: list[Any]) -> list[dict[str, Any]]:
    """A study without LoggedModels (tracked before they were): its evaluate and train child runs as the rows
    `tracking.study_model_rows` gives (name, paradigm, domain, merge_method, metrics, params); the latest
    evaluation of a model wins."""
    rows: dict[str, dict[str, Any]] = {}
    for run in sorted(children, key=lambda r: r.info.start_time or 0):
        tags, metrics = run.data.tags, run.data.metrics
        name = tags.get("m2rl.model") or run.info.run_name
        row = rows.setdefault(name, {"name": name, "paradigm": None, "domain": None, "merge_method": None,
                                     "metrics": {}, "params": {}})
        for key, tag in (("paradigm", "m2rl.paradigm"), ("domain", "m2rl.domain"), ("merge_method", "m2rl.merge_method")):
            row[key] = tags.get(tag) or row[key]
        if any(k.startswith("eval/") for k in metrics):
            row["metrics"] = {k: v for k, v in row["metrics"].items() if not k.startswith("eval/")}
            row["metrics"].update({k: v for k, v in metrics.items() if k.startswith("eval/")})
        if "cost/gpu_hours" in metrics:
            row["metrics"]["cost/gpu_hours"] = metrics["cost/gpu_hours"]
            row["params"]["device"] = tags.get("m2rl.device") or run.data.params.get("device") or "unknown"
            row["paradigm"] = row["paradigm"] or ("mix" if name == "mix" else "single")
    return list(rows.values())


def from_models(rows: list[dict[str, Any]], domains: list[str] | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """Accuracy / transfer / cost summary of one study from its models (`tracking.study_model_rows`, or
    `rows_from_runs`): `eval/<benchmark>/<metric>` and `cost/gpu_hours` metrics, paradigm / domain / merge
    method tags. `domains` (the study's `domains` param) orders experts and benchmarks as the report does."""
    rank = {d: i for i, d in enumerate(domains or [])}
    M: dict[str, float] = {}
    models: dict[str, list[Any]] = {}
    benches: dict[str, str] = {}
    for row in rows:
        name, metrics = row["name"], row["metrics"]
        if not any(k.startswith("eval/") for k in metrics):
            continue
        paradigm = row.get("paradigm")
        if paradigm not in PARADIGM_ORDER:
            try:
                paradigm = infer_paradigm(name)
            except AnalysisError:
                continue
        parsed = parse_model_name(name)
        domain = row.get("domain") or (parsed.domain if parsed else None)
        method = row.get("merge_method") or (parsed.merge_label if parsed else None)
        models[name] = [name, paradigm, domain, method]
        for key, value in metrics.items():
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != "eval":
                continue
            _, bench, metric = parts
            if bench.startswith("domain_"):  # the evaluate stage's per-domain aggregate, not a benchmark
                continue
            metric = _canonical_metric(metric)
            if metric in _HEADLINE_KEYS:
                M[mkey("acc", name, bench)] = value
                benches.setdefault(bench, _bench_domain(bench))
            elif metric in ("ci_low", "ci_high"):
                M[mkey("acc_lo" if metric == "ci_low" else "acc_hi", name, bench)] = value
    order = sorted(models.values(), key=lambda m: (PARADIGM_ORDER[m[1]], rank.get(m[2] or "", 99), m[0]))
    bench_list = sorted(benches.items(), key=lambda b: (rank.get(b[1], 99), b[0]))
    for name, *_ in order:
        vals = [M.get(mkey("acc", name, b)) for b, _ in bench_list]
        if vals and all(v is not None for v in vals):
            M[mkey("acc", name, "average")] = sum(vals) / len(vals)
    L: dict[str, Any] = {"v": 1, "metric": "avg@k", "models": order, "benchmarks": [list(b) for b in bench_list],
                         "skipped": {"verdict": "no report logged for this study: the intervals need the "
                                                "per-problem samples (run `m2rl report`)"}}
    base = next((m[0] for m in order if m[1] == "base"), None)
    if base:
        names = [m[0] for m in order if m[1] != "base"]
        for name in names:
            for b, _ in bench_list:
                a, b0 = M.get(mkey("acc", name, b)), M.get(mkey("acc", base, b))
                if a is not None and b0 is not None:
                    M[mkey("transfer", name, b)] = a - b0
        L["transfer"] = names
    trained = [r for r in rows if "cost/gpu_hours" in r["metrics"]]
    if trained:
        runs = []
        devices = set()
        for row in trained:
            name = row["name"]
            paradigm = row.get("paradigm") or ("mix" if name == "mix" else "single")
            device = row.get("params", {}).get("device") or "unknown"
            devices.add(device)
            runs.append([name, paradigm, device])
            M[mkey("cost", "run", name, "gpu_hours")] = row["metrics"]["cost/gpu_hours"]
        runs.sort(key=lambda r: (PARADIGM_ORDER.get(r[1], 9), rank.get(r[0].split("-", 1)[-1], 99), r[0]))
        singles = [M[mkey("cost", "run", r[0], "gpu_hours")] for r in runs if r[1] == "single"]
        mixes = [M[mkey("cost", "run", r[0], "gpu_hours")] for r in runs if r[1] == "mix"]
        if singles:
            M["cost/singles_gpu_hours"] = sum(singles)
        if mixes:
            M["cost/mix_gpu_hours"] = sum(mixes)
        if singles and mixes and sum(singles) > 0:
            M["cost/mix_over_singles"] = sum(mixes) / sum(singles)
        from m2rl.analysis.analyses.cost import cost_unit

        L["cost"] = {"unit": cost_unit(devices), "runs": runs}
    return M, L


def _overview_row(s: StudyTables) -> list[str]:
    M, L = s.metrics, s.layout
    models = L.get("models", [])
    mix = next((m[0] for m in models if m[1] == "mix"), None)
    merges = [m[0] for m in models if m[1] == "merge" and mkey("acc", m[0], "average") in M]
    best = max(merges, key=lambda m: M[mkey("acc", m, "average")]) if merges else None
    v = L.get("verdict")
    delta, winner = DASH, DASH
    if v:
        g = lambda k: M.get(mkey("verdict", "average", k))  # noqa: E731
        delta = pts(g("delta"), g("delta_lo"), g("delta_hi"))
        winner = next((w for sc, w, _ in v["scopes"] if sc == "average"), DASH)
    ratio = M.get("cost/mix_over_singles")
    return [s.run_name, s.run_id[:8], s.source,
            pct(M.get(mkey("acc", mix, "average"))) if mix else DASH,
            f"{pct(M[mkey('acc', best, 'average')])} ({best})" if best else DASH,
            delta, winner, DASH if ratio is None else f"{ratio:.2f}x"]


def compare(experiment: str, tracking_uri: str | None = None, run_id: str | None = None) -> CompareResult:
    """Tables of every study (parent run) of an MLflow experiment, newest first, or of one parent run."""
    from m2rl import tracking

    try:
        runs = tracking.experiment_runs(experiment, tracking_uri)
    except tracking.TrackingError as exc:
        raise AnalysisError(f"--experiment: {exc}") from None
    model_rows = tracking.study_model_rows(runs[0].info.experiment_id, tracking_uri) if runs else {}
    children: dict[str, list[Any]] = {}
    for r in runs:
        parent = r.data.tags.get(TAG_PARENT)
        if parent:
            children.setdefault(parent, []).append(r)
    parents = [r for r in runs if TAG_PARENT not in r.data.tags]
    if run_id:
        parents = [r for r in parents if r.info.run_id == run_id]
        if not parents:
            raise AnalysisError(f"--run-id: {run_id} is not a study (parent) run of experiment {experiment!r}")
    parents.sort(key=lambda r: -(r.info.start_time or 0))
    studies = []
    for p in parents:
        layout = layout_from_tags(p.data.tags)
        if layout is not None:
            M, source = dict(p.data.metrics), "report"
        else:
            domains = [d for d in p.data.params.get("domains", "").split(",") if d]
            rows = model_rows.get(p.info.run_id)
            source = "models" if rows else "child runs"
            M, layout = from_models(rows or rows_from_runs(children.get(p.info.run_id, [])), domains)
            if not layout["models"] and "cost" not in layout:
                continue
        studies.append(StudyTables(run_id=p.info.run_id, run_name=p.info.run_name or p.info.run_id,
                                   source=source, tables=build_tables(M, layout), verdict=verdict_lines(M, layout),
                                   metrics=M, layout=layout))
    if not studies:
        raise AnalysisError(f"experiment {experiment!r}: no study with evaluation or training runs")
    overview = Table("overview", f"Studies in {experiment}",
                     ["study", "run", "source", "mix avg %", "best merge avg %", "Δ mix − merge (pts, 95% CI)",
                      "winner", "mix / singles cost"], [_overview_row(s) for s in studies])
    return CompareResult(experiment=experiment, overview=overview, studies=studies)

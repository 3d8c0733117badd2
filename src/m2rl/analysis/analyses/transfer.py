"""Cross-domain transfer: Δ accuracy over the base for every model x benchmark (train on A, evaluate on B).

Δ is the model's avg@k minus the base's (from metrics.json); its 95% interval is a paired bootstrap over
the benchmark's problems (per-problem mean scores from the samples). For single-domain experts the
diagonal is in-domain gain and the rest is transfer: positive with an interval above 0 is synergy,
negative with an interval below 0 is interference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import aligned, bootstrap_indices, finite, percentile_ci


def paired_delta_ci(model: dict[str, float], base: dict[str, float], resamples: int, seed: int):
    m, b = aligned(model, base)
    if m.size == 0:
        return None
    idx = bootstrap_indices(m.size, resamples, seed)
    return percentile_ci((m[idx] - b[idx]).mean(axis=1))


@register("transfer")
def transfer(ctx: AnalysisContext) -> dict[str, Any]:
    acc = ctx.accuracy.get("models", {})
    base = ctx.base.name
    if base not in acc:
        return {"skipped": "no base evaluation"}
    rows = []
    for name, entry in ctx.models.items():
        if name not in acc:
            continue
        for bench in ctx.benchmarks():
            a, b0 = acc[name].get(bench), acc[base].get(bench)
            if a is None or b0 is None:
                continue
            ci = None
            ev, evb = ctx.evals.get(name), ctx.evals[base]
            if ev is not None and ev.has_samples(bench) and evb.has_samples(bench):
                ci = paired_delta_ci(ev.problem_scores(bench), evb.problem_scores(bench), ctx.bootstrap,
                                     ctx.params.seed)
            domain = ctx.bench_domain(bench)
            kind = "in-domain" if entry.paradigm == "single" and entry.domain == domain else (
                "cross-domain" if entry.paradigm == "single" else entry.paradigm)
            effect = "neutral"
            if ci is not None and ci[0] > 0:
                effect = "synergy" if kind == "cross-domain" else "gain"
            elif ci is not None and ci[1] < 0:
                effect = "interference" if kind == "cross-domain" else "loss"
            rows.append({"model": name, "benchmark": bench, "domain": domain, "kind": kind,
                         "delta": a - b0, "ci_low": finite(ci[0]) if ci else None,
                         "ci_high": finite(ci[1]) if ci else None, "effect": effect})
    cross = [r["delta"] for r in rows if r["kind"] == "cross-domain"]
    own = [r["delta"] for r in rows if r["kind"] == "in-domain"]
    return {
        "rows": rows,
        "summary": {
            "mean_in_domain_delta": finite(np.mean(own)) if own else None,
            "mean_cross_domain_delta": finite(np.mean(cross)) if cross else None,
            "synergies": sum(r["effect"] == "synergy" for r in rows),
            "interferences": sum(r["effect"] == "interference" for r in rows),
        },
    }

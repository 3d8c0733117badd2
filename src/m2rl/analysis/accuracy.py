"""The accuracy table and the verdict: which paradigm wins per domain and on average, and at what cost.

Accuracy is the evaluate stage's avg@k (with its 95% interval) for every model x benchmark. The verdict
compares the mixed model with the best merge (the merge with the highest average avg@k; with one of them
and distill, that one against the distilled model; when only one paradigm ran, its model against the base) by a paired bootstrap over problems: each
resample draws a benchmark's problems with replacement, the same draw for both models; a domain's score
is the mean over its benchmarks, the average the mean over all benchmarks. A side wins a scope when the
95% interval of the difference excludes 0; otherwise the scope is a tie. When two or three of mix, merge and
distill ran, `paradigms` lays them side by side (`paradigms_section`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from m2rl.analysis.inputs import HEADLINE, HEADLINE_ALIASES
from m2rl.analysis.registry import AnalysisContext
from m2rl.analysis.stats import bootstrap_indices, finite, percentile_ci, scope_seed


def accuracy_section(ctx: AnalysisContext) -> dict[str, Any]:
    benches = ctx.benchmarks()
    names = [ctx.base.name, *ctx.models]
    models, ci, extra = {}, {}, {}
    for name in names:
        ev = ctx.evals.get(name)
        if ev is None:
            continue
        models[name], ci[name], extra[name] = {}, {}, {}
        for b in benches:
            m = ev.benchmarks.get(b)
            if m is None:  # an expert evaluated on its own domain only
                continue
            models[name][b] = ev.accuracy(b)
            if m.get("ci_low") is not None and m.get("ci_high") is not None:
                ci[name][b] = [float(m["ci_low"]), float(m["ci_high"])]
            extra[name][b] = {k: v for k, v in m.items() if isinstance(v, int | float)
                              and k not in (*HEADLINE_ALIASES, "ci_low", "ci_high")}
    # the average over every benchmark: none for an expert evaluated on its own domain only
    average = {n: float(np.mean(list(v.values()))) for n, v in models.items() if v and len(v) == len(benches)}
    info = []
    for b in benches:
        any_m = next((ev.benchmarks[b] for ev in ctx.evals.values() if b in ev.benchmarks), {})
        info.append({"name": b, "domain": ctx.bench_domain(b), "k": any_m.get("k"),
                     "n_problems": any_m.get("n_problems")})
    return {"metric": HEADLINE, "benchmarks": info, "models": models, "ci": ci, "extra": extra, "average": average}


def _winner(ci: tuple[float, float], a: str, b: str) -> str:
    if ci[0] > 0:
        return a
    if ci[1] < 0:
        return b
    return "tie"


def verdict_section(ctx: AnalysisContext, cost: dict[str, Any] | None) -> dict[str, Any]:
    avg = ctx.accuracy.get("average", {})
    mixes = [m.name for m in ctx.by_paradigm("mix") if m.name in ctx.evals]
    merges = sorted((m.name for m in ctx.by_paradigm("merge") if m.name in avg), key=lambda n: -avg[n])
    distills = [m.name for m in ctx.by_paradigm("distill") if m.name in ctx.evals]
    if mixes and merges:
        a, a_label, b, b_label = mixes[0], "mix", merges[0], "merge"
    elif mixes or merges or distills:
        a_label = "mix" if mixes else "merge" if merges else "distill"
        a = (mixes or merges or distills)[0]
        b, b_label = (distills[0], "distill") if distills and a_label != "distill" else (ctx.base.name, "base")
        if b not in ctx.evals:
            return {"skipped": "only one paradigm ran and the base was not evaluated"}
    else:
        return {"skipped": "neither a mixed, a merged nor a distilled model was evaluated"}
    ev_a, ev_b = ctx.evals[a], ctx.evals[b]
    resamples, seed = ctx.bootstrap, ctx.params.seed
    draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    points: dict[str, tuple[float, float]] = {}
    skipped = []
    for bench in ctx.benchmarks():
        if not (ev_a.has_samples(bench) and ev_b.has_samples(bench)):
            skipped.append(bench)
            continue
        sa, sb = ev_a.problem_scores(bench), ev_b.problem_scores(bench)
        ids = sorted(set(sa) & set(sb))
        if not ids:
            skipped.append(bench)
            continue
        va, vb = np.array([sa[i] for i in ids]), np.array([sb[i] for i in ids])
        idx = bootstrap_indices(len(ids), resamples, scope_seed(seed, bench))
        draws[bench] = (va[idx].mean(axis=1), vb[idx].mean(axis=1))
        points[bench] = (float(va.mean()), float(vb.mean()))
    if not draws:
        return {"skipped": "no benchmark has per-problem samples for both models"}
    scopes: dict[str, list[str]] = {}
    for bench in draws:
        scopes.setdefault(ctx.bench_domain(bench), []).append(bench)
    scopes["average"] = list(draws)
    acc = ctx.accuracy.get("models", {})
    rows = []
    for scope, benches in scopes.items():
        da = np.mean([draws[x][0] for x in benches], axis=0)
        db = np.mean([draws[x][1] for x in benches], axis=0)
        pa = float(np.mean([points[x][0] for x in benches]))
        pb = float(np.mean([points[x][1] for x in benches]))
        delta_ci = percentile_ci(da - db)
        expert = None
        if scope != "average":
            e = ctx.expert_for(scope)
            if e is not None and e.name in acc:
                expert = {"model": e.name, "score": float(np.mean([acc[e.name][x] for x in benches]))}
        else:
            own = [(e, x) for x in benches if (e := ctx.expert_for(ctx.bench_domain(x))) and e.name in acc]
            if len(own) == len(benches):
                expert = {"model": "experts (own domain)",
                          "score": float(np.mean([acc[e.name][x] for e, x in own]))}
        rows.append({
            "scope": scope, "benchmarks": benches,
            "a": pa, "a_ci": list(percentile_ci(da)), "b": pb, "b_ci": list(percentile_ci(db)),
            "delta": pa - pb, "delta_ci": list(delta_ci), "winner": _winner(delta_ci, a_label, b_label),
            "expert": expert,
        })
    out: dict[str, Any] = {
        "a": {"label": a_label, "model": a}, "b": {"label": b_label, "model": b},
        "merges_ranked": [{"model": m, "average": avg[m]} for m in merges],
        "bootstrap": resamples, "confidence": 0.95, "rows": rows, "benchmarks_without_samples": skipped,
    }
    if cost and "skipped" not in cost:
        out["cost"] = {k: finite(cost.get(k)) for k in ("mix_gpu_hours", "singles_gpu_hours", "mix_over_singles",
                                                        "distill_gpu_hours")}
        out["cost"]["unit"] = cost.get("unit")
    three = paradigms_section(ctx, cost)
    if three:
        out["paradigms"] = three
    return out


PARADIGM_LABELS = ("mix", "merge", "distill")


def paradigm_cost(cost: dict[str, Any] | None, label: str) -> float | None:
    """What a paradigm costs in all: mix its run, merge the single-domain runs, distill its run plus the experts
    it distils (when the study trained them)."""
    if not cost or "skipped" in cost:
        return None
    if label == "mix":
        return finite(cost.get("mix_gpu_hours"))
    if label == "merge":
        return finite(cost.get("singles_gpu_hours"))
    own = cost.get("distill_gpu_hours")
    return None if own is None else finite(own + (cost.get("singles_gpu_hours") or 0.0))


def paradigms_section(ctx: AnalysisContext, cost: dict[str, Any] | None) -> dict[str, Any] | None:
    """The paradigms side by side (mix, the best merge, distill) when at least two ran: each one's score per
    domain and on average with a paired-bootstrap interval (the same problem draws for all), the pairwise
    differences, the best per scope, which are within the interval of the best (the difference's interval
    includes 0) and the cheapest of those."""
    avg = ctx.accuracy.get("average", {})
    reps: dict[str, str] = {}
    for label in PARADIGM_LABELS:
        names = sorted((m.name for m in ctx.by_paradigm(label) if m.name in avg), key=lambda n: -avg[n])
        if names:
            reps[label] = names[0]
    if len(reps) < 2:
        return None
    draws: dict[str, dict[str, np.ndarray]] = {}
    points: dict[str, dict[str, float]] = {}
    for bench in ctx.benchmarks():
        evs = {lab: ctx.evals[n] for lab, n in reps.items()}
        if not all(ev.has_samples(bench) for ev in evs.values()):
            continue
        scores = {lab: ev.problem_scores(bench) for lab, ev in evs.items()}
        ids = sorted(set.intersection(*(set(sc) for sc in scores.values())))
        if not ids:
            continue
        idx = bootstrap_indices(len(ids), ctx.bootstrap, scope_seed(ctx.params.seed, bench))
        vals = {lab: np.array([sc[i] for i in ids]) for lab, sc in scores.items()}
        draws[bench] = {lab: v[idx].mean(axis=1) for lab, v in vals.items()}
        points[bench] = {lab: float(v.mean()) for lab, v in vals.items()}
    if not draws:
        return None
    scopes: dict[str, list[str]] = {}
    for bench in draws:
        scopes.setdefault(ctx.bench_domain(bench), []).append(bench)
    scopes["average"] = list(draws)
    costs = {lab: paradigm_cost(cost, lab) for lab in reps}
    rows = []
    for scope, benches in scopes.items():
        d = {lab: np.mean([draws[b][lab] for b in benches], axis=0) for lab in reps}
        pt = {lab: float(np.mean([points[b][lab] for b in benches])) for lab in reps}
        best = max(reps, key=lambda lab: pt[lab])
        pairs = []
        for i, a in enumerate(reps):
            for b in list(reps)[i + 1:]:
                ci = percentile_ci(d[a] - d[b])
                pairs.append({"a": a, "b": b, "delta": pt[a] - pt[b], "delta_ci": list(ci), "winner": _winner(ci, a, b)})
        within = [lab for lab in reps if lab == best or percentile_ci(d[best] - d[lab])[0] <= 0]
        priced = [lab for lab in within if costs[lab] is not None]
        rows.append({"scope": scope, "benchmarks": benches,
                     "scores": {lab: {"score": pt[lab], "ci": list(percentile_ci(d[lab]))} for lab in reps},
                     "pairs": pairs, "best": best, "within_ci_of_best": within,
                     "cheapest_within_ci": min(priced, key=lambda lab: costs[lab]) if priced else None})
    return {"models": reps, "cost": costs, "bootstrap": ctx.bootstrap, "confidence": 0.95, "rows": rows}

"""Skill inheritance: on each domain's benchmark, does the mixed / merged model solve what the expert solves?

A problem counts as solved by a model when its mean score over the k samples is at least `SOLVED_AT`.
Per benchmark and model: the overlap of the solved sets with the expert's (Jaccard), the share of the
expert's solved problems the model also solves (inherited), the share it solves that the expert does not
(new), Cohen's kappa of the two solved / unsolved labelings, and the correlation of per-problem scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import aligned, cohen_kappa, finite, jaccard

SOLVED_AT = 0.5


def agreement(model_scores: dict[str, float], expert_scores: dict[str, float]) -> dict[str, Any]:
    m, e = aligned(model_scores, expert_scores)
    sm, se = m >= SOLVED_AT, e >= SOLVED_AT
    corr = float(np.corrcoef(m, e)[0, 1]) if m.size > 1 and m.std() > 0 and e.std() > 0 else None
    return {
        "problems": int(m.size),
        "solved_model": int(sm.sum()),
        "solved_expert": int(se.sum()),
        "jaccard": finite(jaccard(sm, se)),
        "inherited": finite(float((sm & se).sum() / se.sum())) if se.sum() else None,
        "new": finite(float((sm & ~se).sum() / m.size)) if m.size else None,
        "kappa": finite(cohen_kappa(sm, se)),
        "score_correlation": finite(corr),
    }


@register("inheritance")
def inheritance(ctx: AnalysisContext) -> dict[str, Any]:
    rows = []
    compared = [m.name for m in ctx.models.values() if m.paradigm in ("mix", "merge", "distill")]
    for bench in ctx.benchmarks():
        domain = ctx.bench_domain(bench)
        expert = ctx.expert_for(domain)
        if expert is None or expert.name not in ctx.evals or not ctx.evals[expert.name].has_samples(bench):
            continue
        expert_scores = ctx.evals[expert.name].problem_scores(bench)
        for name in compared:
            ev = ctx.evals.get(name)
            if ev is None or not ev.has_samples(bench):
                continue
            rows.append({"benchmark": bench, "domain": domain, "expert": expert.name, "model": name,
                         "paradigm": ctx.models[name].paradigm,
                         **agreement(ev.problem_scores(bench), expert_scores)})
    if not rows:
        return {"skipped": "needs a single-domain expert and a mixed or merged model with samples"}
    summary = {}
    for paradigm in ("mix", "merge", "distill"):
        kappas = [r["kappa"] for r in rows if r["paradigm"] == paradigm and r["kappa"] is not None]
        if kappas:
            summary[paradigm] = {"mean_kappa": float(np.mean(kappas)),
                                 "mean_inherited": finite(np.mean([r["inherited"] for r in rows
                                                                   if r["paradigm"] == paradigm
                                                                   and r["inherited"] is not None] or [np.nan]))}
    return {"solved_at": SOLVED_AT, "rows": rows, "summary": summary}

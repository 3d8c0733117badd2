"""Behaviour: response lengths and self-verification, per model and domain, from the eval samples.

Lengths are in tokens of the base model's tokenizer (whitespace words if it cannot be loaded).
Self-verification: a response verifies itself when it contains one of `VERIFY_PATTERNS` ("let me check",
"verify", "wait", ...); its position is where the first one starts, as a fraction of the response.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import finite

VERIFY_PATTERNS = (
    r"let me (?:double[- ]?)?check", r"let'?s (?:double[- ]?)?check", r"double[- ]check", r"\bverif(?:y|ied|ying)\b",
    r"\bwait\b", r"let me re-?(?:check|examine|consider|evaluate)", r"check (?:again|my (?:work|answer))",
    r"\bre-?check", r"sanity check",
)
VERIFY_RE = re.compile("|".join(f"(?:{p})" for p in VERIFY_PATTERNS), re.IGNORECASE)
HIST_BINS = 20


def first_verification(text: str) -> float | None:
    """Relative position (0 = start, 1 = end) of the first self-verification phrase, None if none."""
    m = VERIFY_RE.search(text or "")
    if m is None:
        return None
    return m.start() / max(1, len(text))


def _length_fn(ctx: AnalysisContext):
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(ctx.model_path(ctx.base.name)))
        return "tokens", lambda texts: [len(x) for x in tok(list(texts), add_special_tokens=False)["input_ids"]]
    except Exception:
        return "words", lambda texts: [len(t.split()) for t in texts]


@register("behaviour")
def behaviour(ctx: AnalysisContext) -> dict[str, Any]:
    unit, lengths_of = _length_fn(ctx)
    names = [ctx.base.name, *ctx.models]
    collected: dict[str, dict[str, dict[str, Any]]] = {}
    all_lengths: list[int] = []
    for name in names:
        ev = ctx.evals.get(name)
        if ev is None:
            continue
        for bench in ctx.benchmarks():
            if not ev.has_samples(bench):
                continue
            df = ev.samples(bench)
            if "response" not in df:
                continue
            responses = [str(r) if r is not None else "" for r in df["response"]]
            domains = df["domain"].astype(str).tolist() if "domain" in df else [ctx.bench_domain(bench)] * len(df)
            lengths = lengths_of(responses)
            for resp, dom, n, score in zip(responses, domains, lengths, df["score"].tolist(), strict=True):
                slot = collected.setdefault(name, {}).setdefault(
                    dom, {"lengths": [], "positions": [], "verify": [], "scores": []})
                pos = first_verification(resp)
                slot["lengths"].append(n)
                slot["verify"].append(pos is not None)
                slot["scores"].append(float(score))
                if pos is not None:
                    slot["positions"].append(pos)
                all_lengths.append(n)
    if not collected:
        return {"skipped": "no samples with responses"}
    top = max(1, int(np.quantile(all_lengths, 0.99))) if all_lengths else 1
    edges = np.linspace(0, top, HIST_BINS + 1)
    stats: dict[str, dict[str, Any]] = {}
    for name, per_domain in collected.items():
        out = {}
        rank = {d: i for i, d in enumerate(ctx.domains)}
        for dom, s in sorted(per_domain.items(), key=lambda kv: (rank.get(kv[0], 99), kv[0])):
            lengths = np.array(s["lengths"], dtype=float)
            verify = np.array(s["verify"], dtype=bool)
            scores = np.array(s["scores"], dtype=float)
            hist, _ = np.histogram(np.clip(lengths, 0, top), bins=edges)
            out[dom] = {
                "responses": int(lengths.size),
                "length_mean": float(lengths.mean()),
                "length_median": float(np.median(lengths)),
                "length_p10": float(np.quantile(lengths, 0.1)),
                "length_p90": float(np.quantile(lengths, 0.9)),
                "length_hist": hist.astype(int).tolist(),
                "verify_rate": float(verify.mean()),
                "verify_first_position": finite(float(np.mean(s["positions"]))) if s["positions"] else None,
                "accuracy_when_verifying": finite(float(scores[verify].mean())) if verify.any() else None,
                "accuracy_otherwise": finite(float(scores[~verify].mean())) if (~verify).any() else None,
            }
        stats[name] = out
    return {"length_unit": unit, "length_bins": edges.tolist(), "patterns": list(VERIFY_PATTERNS), "models": stats}

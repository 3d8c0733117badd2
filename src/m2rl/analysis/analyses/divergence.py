"""Policy divergence: token-level KL between models on a shared prompt set (the "policy neighbourhood").

Prompts: `kl_prompts` problems sampled (seeded, round-robin over benchmarks) among those every model was
evaluated on. For each policy model p the continuation is p's own eval response to that prompt (its first
sample, cut to `kl_max_new_tokens` tokens); where p has no response for it, p generates one greedily.
KL(p || r) is the full-vocabulary KL of the next-token distributions, averaged over every continuation
token: the on-policy token-level KL. References: the base for every model, and every single-domain
expert for the mixed and merged models. Each model is loaded once per group of prompts and scores every
continuation it takes part in (its own, as a policy; those of the policies it is a reference of); one model
is in memory at a time, plus the policies' log-probabilities for one group of prompts (`KEPT_BYTES` at most:
the groups are sized for it).

Every KL is also kept per domain (the tokens of that domain's prompts only). Divergence against gains: for each
domain, Spearman's rho between every model's KL from the base on the domain's prompts and its accuracy gain over
the base on the domain's benchmarks (mean of avg@k minus the base's), and overall (KL on every prompt against
the gain on the average of all benchmarks), with a seeded percentile interval from resampling the models
(`Params`: resamples, confidence, seed). Ties take average ranks; with fewer than `MIN_MODELS` models, or a
constant KL or gain, rho is reported as not computable with the reason.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from pydantic import Field

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import bootstrap_indices, finite, percentile_ci, scope_seed, spearman
from m2rl.registry import StrictModel

KEPT_BYTES = 2 << 30  # policy log-probs kept for their references, per group of prompts
MIN_MODELS = 3  # a rank correlation of two models is always +-1: it says nothing
OVERALL = "overall"


class Params(StrictModel):
    """Settings of the correlation between each model's KL from the base and its accuracy gain."""

    resamples: int | None = Field(default=None, ge=1, description=(
        "Bootstrap resamples of the models for the interval of Spearman's rho; default evaluate.bootstrap."))
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Coverage of rho's percentile interval.")
    seed: int | None = Field(default=None, description="Seed of the bootstrap over models; default analysis.seed.")


def render_prompt(tok, prompt: str) -> str:
    """The prompt as the model saw it: templated text as is; chat messages (JSON) or plain text templated."""
    if "<|im_start|>" in prompt or (tok.bos_token and prompt.startswith(tok.bos_token)):
        return prompt
    messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
    if prompt.lstrip().startswith("["):
        try:
            parsed = json.loads(prompt)
            if isinstance(parsed, list) and all(isinstance(m, dict) and "role" in m for m in parsed):
                messages = parsed
        except json.JSONDecodeError:
            pass
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:
        return prompt


def choose_prompts(ctx: AnalysisContext, n: int) -> list[tuple[str, str]]:
    """(benchmark, problem_id) pairs every fully evaluated model (`full_evals`) has samples for, round-robin over
    benchmarks, seeded."""
    rng = np.random.default_rng(ctx.params.seed)
    pools: list[tuple[str, list[str]]] = []
    evals = ctx.full_evals()
    for bench in ctx.benchmarks():
        if not all(ev.has_samples(bench) for ev in evals.values()):
            continue
        ids = None
        for ev in evals.values():
            got = set(ev.samples(bench)["problem_id"])
            ids = got if ids is None else ids & got
        if ids:
            pool = sorted(ids)
            pools.append((bench, [pool[i] for i in rng.permutation(len(pool))]))
    chosen: list[tuple[str, str]] = []
    depth = 0
    while len(chosen) < n and any(depth < len(p) for _, p in pools):
        for bench, pool in pools:
            if depth < len(pool) and len(chosen) < n:
                chosen.append((bench, pool[depth]))
        depth += 1
    return chosen


def _first_sample(df, problem_id: str, column: str) -> str | None:
    rows = df[df["problem_id"] == problem_id]
    if rows.empty or column not in rows:
        return None
    if "sample_index" in rows:
        rows = rows.sort_values("sample_index")
    value = rows.iloc[0][column]
    return None if value is None else str(value)


def _load(path):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model


class PromptScorer:
    """Next-token log-probabilities of one model over continuations of shared prompts.

    Each prompt goes through the model once; its key/value cache is then reused for every continuation
    scored after it, so a reference that scores the continuations of ten policies pays for the (long)
    prompt once and for the (short) continuations ten times. Only the logits at continuation positions
    are computed: the full-vocabulary logits of a 1,000-token agent prompt are never materialised.
    """

    def __init__(self, model):
        import inspect

        self.model = model
        # transformers renamed `past_key_values` to `cache` (5.2x); take whichever this version has
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._prompt: tuple[int, ...] | None = None
        self._cache = None
        self._last = None

    def _encode_prompt(self, prompt_ids: list[int]) -> None:
        import torch

        key = tuple(prompt_ids)
        if key == self._prompt:
            return
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prompt_ids]), use_cache=True, logits_to_keep=1)
        self._cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self._last = out.logits[0, -1].float()
        self._prompt = key

    def logprobs(self, prompt_ids: list[int], continuation: list[int]):
        """Log-softmax over the vocabulary at every continuation position: (len(continuation), vocab)."""
        import copy

        import torch

        self._encode_prompt(prompt_ids)
        rows = [self._last[None]]
        if len(continuation) > 1:
            cache = copy.deepcopy(self._cache)  # the forward extends the cache in place
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([continuation[:-1]]), use_cache=True,
                                 **{self.cache_arg: cache})
            rows.append(out.logits[0].float())
        return torch.log_softmax(torch.cat(rows), dim=-1)


def sequence_kl(policy_lp, reference_lp) -> float:
    """Sum over positions of KL(policy || reference) of full-vocabulary next-token distributions."""
    kl = (policy_lp.exp() * (policy_lp - reference_lp)).sum(-1)
    return float(kl.clamp_min(0).sum())


def _generate(model, tok, prompt_ids: list[int], max_new: int) -> list[int]:
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    return out[0, len(prompt_ids) :].tolist()


def references_of(ctx: AnalysisContext, name: str) -> list[str]:
    refs = [ctx.base.name]
    if ctx.models[name].paradigm in ("mix", "merge", "distill"):
        refs += [m.name for m in ctx.by_paradigm("single")]
    return refs


def visit_order(ctx: AnalysisContext) -> list[str]:
    """Every model once, each policy before the references it is compared with: mixed and merged
    models, then the rest (experts: policies, and references of the former), then the base."""
    combined = [n for n in ctx.models if ctx.models[n].paradigm in ("mix", "merge", "distill")]
    return combined + [n for n in ctx.models if n not in combined] + [ctx.base.name]


def _score_group(ctx, tok, prompt_ids, bench_of, indices, continuations, consumers, kl_sum, kl_tokens,
                 end_id) -> None:
    """Load every model once (policies before their references) and add the group's KL terms, keyed by
    (policy, reference, benchmark of the prompt)."""
    kept: dict[tuple[str, int], Any] = {}
    pending = {name: len(references_of(ctx, name)) for name in ctx.models}
    for name in visit_order(ctx):
        model = _load(ctx.model_path(name))
        scorer = PromptScorer(model)
        for i in indices:
            pids = prompt_ids[i]
            if name in ctx.models:
                if continuations[name][i] is None:
                    continuations[name][i] = _generate(model, tok, pids, ctx.params.kl_max_new_tokens) or [end_id]
                kept[(name, i)] = scorer.logprobs(pids, continuations[name][i])
            for policy in consumers.get(name, []):
                key = (policy, name, bench_of[i])
                ref_lp = scorer.logprobs(pids, continuations[policy][i])
                kl_sum[key] = kl_sum.get(key, 0.0) + sequence_kl(kept[(policy, i)], ref_lp)
                kl_tokens[key] = kl_tokens.get(key, 0) + len(continuations[policy][i])
        for policy in consumers.get(name, []):
            pending[policy] -= 1
            if not pending[policy]:  # its last reference is done: drop its log-probs
                for i in indices:
                    kept.pop((policy, i), None)
        del scorer, model


def _spearman_interval(kl: np.ndarray, gain: np.ndarray, resamples: int, confidence: float,
                       seed: int) -> tuple[float | None, float | None, int]:
    """Percentile interval of rho over resampled models, and how many resamples had a defined rho (a resample
    that drew one KL or one gain only is left out)."""
    idx = bootstrap_indices(kl.size, resamples, seed)
    draws = spearman(kl[idx], gain[idx])
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return None, None, 0
    lo, hi = percentile_ci(draws, confidence)
    return lo, hi, int(draws.size)


def correlate(scope: str, kl: dict[str, float | None], gain: dict[str, float | None], resamples: int,
              confidence: float, seed: int) -> dict[str, Any]:
    """Spearman's rho of KL against gain over the models that have both, with its bootstrap interval, or the
    reason it cannot be computed. The bootstrap seed is `seed` mixed with the scope's name."""
    models = [m for m in kl if kl[m] is not None and gain.get(m) is not None]
    row: dict[str, Any] = {"scope": scope, "models": models, "n": len(models), "rho": None, "ci_low": None,
                           "ci_high": None, "resamples_used": 0, "reason": None}
    x = np.array([kl[m] for m in models], dtype=float)
    y = np.array([gain[m] for m in models], dtype=float)
    if len(models) < MIN_MODELS:
        with_kl = sum(v is not None for v in kl.values())
        with_gain = sum(v is not None for v in gain.values())
        row["reason"] = (f"{len(models)} model(s) have both a KL from the base and a gain ({with_kl} with a KL, "
                         f"{with_gain} with a gain); a rank correlation needs at least {MIN_MODELS}")
    elif np.ptp(x) == 0:
        row["reason"] = f"every model has the same KL from the base ({x[0]:.4g}): rho is undefined"
    elif np.ptp(y) == 0:
        row["reason"] = f"every model has the same gain ({y[0]:+.4g}): rho is undefined"
    else:
        row["rho"] = finite(spearman(x, y))
        lo, hi, used = _spearman_interval(x, y, resamples, confidence, scope_seed(seed, scope))
        row.update(ci_low=finite(lo), ci_high=finite(hi), resamples_used=used)
        if used == 0:
            row["reason"] = "no resample drew two distinct KLs and gains: no interval"
    return row


def domain_gains(ctx: AnalysisContext, domains: list[str]) -> dict[str, dict[str, float | None]]:
    """domain -> model -> mean over the domain's benchmarks of (avg@k - the base's avg@k); None without both."""
    acc = ctx.accuracy.get("models", {})
    base = acc.get(ctx.base.name, {})
    out: dict[str, dict[str, float | None]] = {}
    for domain in domains:
        benches = [b for b in ctx.benchmarks() if ctx.bench_domain(b) == domain]
        out[domain] = {}
        for name in ctx.models:
            deltas = [acc[name][b] - base[b] for b in benches
                      if acc.get(name, {}).get(b) is not None and base.get(b) is not None]
            out[domain][name] = float(np.mean(deltas)) if deltas and len(deltas) == len(benches) else None
    return out


@register("divergence", params=Params)
def divergence(ctx: AnalysisContext) -> dict[str, Any]:
    from transformers import AutoTokenizer

    started = time.perf_counter()
    if not ctx.models:
        return {"skipped": "no models besides the base"}
    chosen = choose_prompts(ctx, ctx.params.kl_prompts)
    if not chosen:
        return {"skipped": "no benchmark with samples shared by every model"}
    p = ctx.params
    tok = AutoTokenizer.from_pretrained(str(ctx.model_path(ctx.base.name)))
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    end_id = tok.eos_token_id if tok.eos_token_id is not None else pad_id
    base_samples = {b: ctx.evals[ctx.base.name].samples(b) for b in {b for b, _ in chosen}}
    prompt_ids = []
    for bench, pid in chosen:
        text = render_prompt(tok, _first_sample(base_samples[bench], pid, "prompt") or "")
        prompt_ids.append(tok(text, add_special_tokens=False)["input_ids"] or [pad_id])

    # Continuations: each policy's own eval response (cut), or a greedy one where it has none.
    continuations: dict[str, list[list[int] | None]] = {}
    source: dict[str, str] = {}
    for name in ctx.models:
        ev = ctx.evals.get(name)
        conts: list[list[int] | None] = []
        for bench, pid in chosen:
            resp = _first_sample(ev.samples(bench), pid, "response") if ev and ev.has_samples(bench) else None
            conts.append(None if resp is None else
                         tok(resp, add_special_tokens=False)["input_ids"][: p.kl_max_new_tokens] or [end_id])
        generated = sum(c is None for c in conts)
        source[name] = "eval responses" if not generated else f"{generated} generated, rest eval responses"
        continuations[name] = conts
    consumers: dict[str, list[str]] = {}
    for name in ctx.models:
        for ref in references_of(ctx, name):
            consumers.setdefault(ref, []).append(name)

    # Log-probs kept per (policy, prompt): continuation tokens x vocabulary, float32.
    per_prompt = len(ctx.models) * p.kl_max_new_tokens * max(len(tok), 1) * 4
    group = max(1, KEPT_BYTES // per_prompt)
    bench_of = [b for b, _ in chosen]
    kl_sum: dict[tuple[str, str, str], float] = {}
    kl_tokens: dict[tuple[str, str, str], int] = {}
    for first in range(0, len(prompt_ids), group):
        indices = range(first, min(first + group, len(prompt_ids)))
        _score_group(ctx, tok, prompt_ids, bench_of, indices, continuations, consumers, kl_sum, kl_tokens, end_id)

    counts: dict[str, int] = {}
    for bench in bench_of:
        counts[bench] = counts.get(bench, 0) + 1
    domains = list(dict.fromkeys(ctx.bench_domain(b) for b in ctx.benchmarks()))
    benches_of = {d: [b for b in counts if ctx.bench_domain(b) == d] for d in domains}

    def kl_over(name: str, ref: str, benches: list[str]) -> tuple[float | None, int]:
        tokens = sum(kl_tokens.get((name, ref, b), 0) for b in benches)
        total = sum(kl_sum.get((name, ref, b), 0.0) for b in benches)
        return (finite(total / tokens) if tokens else None), tokens

    pairs, kl_to_base = [], {}
    kl_by_domain: dict[str, dict[str, float | None]] = {d: {} for d in domains}
    for name in ctx.models:
        for ref in references_of(ctx, name):
            kl, tokens = kl_over(name, ref, list(counts))
            by_domain = {}
            for d in domains:
                dkl, dtokens = kl_over(name, ref, benches_of[d])
                by_domain[d] = {"kl": dkl, "tokens": dtokens}
                if ref == ctx.base.name:
                    kl_by_domain[d][name] = dkl
            pairs.append({"model": name, "reference": ref, "kl": kl, "tokens": tokens, "by_domain": by_domain})
            if ref == ctx.base.name:
                kl_to_base[name] = kl
    avg = ctx.accuracy.get("average", {})
    base_avg = avg.get(ctx.base.name)
    gain = {m: (avg[m] - base_avg) if m in avg and base_avg is not None else None for m in ctx.models}
    gain_by_domain = domain_gains(ctx, domains)

    opts = ctx.settings("divergence")
    resamples = opts.resamples if opts.resamples is not None else ctx.bootstrap
    seed = opts.seed if opts.seed is not None else ctx.params.seed
    rows = []
    for d in domains:
        rows.append(correlate(d, kl_by_domain[d], gain_by_domain[d], resamples, opts.confidence, seed))
        if not benches_of[d]:  # no model has a KL here: say why
            rows[-1]["reason"] = ("no prompt of this domain among the KL prompts (its benchmarks have no samples "
                                  "shared by every model)")
    rows.append(correlate(OVERALL, kl_to_base, gain, resamples, opts.confidence, seed))
    return {
        "prompts": len(chosen),
        "prompts_per_benchmark": counts,
        "max_new_tokens": p.kl_max_new_tokens,
        "continuations": source,
        "pairs": pairs,
        "kl_to_base": kl_to_base,
        "gain": gain,
        "kl_to_base_by_domain": kl_by_domain,
        "gain_by_domain": gain_by_domain,
        "correlation": {"method": "spearman", "resamples": resamples, "confidence": opts.confidence, "seed": seed,
                        "rows": rows},
        "seconds": round(time.perf_counter() - started, 3),
    }

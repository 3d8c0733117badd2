"""Policy divergence: token-level KL between models on a shared prompt set (the "policy neighbourhood").

Prompts: `kl_prompts` problems sampled (seeded, round-robin over benchmarks) among those every model was
evaluated on. For each policy model p the continuation is p's own eval response to that prompt (its first
sample, cut to `kl_max_new_tokens` tokens); where p has no response for it, p generates one greedily.
KL(p || r) is the full-vocabulary KL of the next-token distributions, averaged over every continuation
token: the on-policy token-level KL. References: the base for every model, and every single-domain
expert for the mixed and merged models. Two models are in memory at a time (the policy and one reference).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from m2rl.analysis.registry import AnalysisContext, register
from m2rl.analysis.stats import finite

BATCH = 8


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
    """(benchmark, problem_id) pairs every model has samples for, round-robin over benchmarks, seeded."""
    rng = np.random.default_rng(ctx.params.seed)
    pools: list[tuple[str, list[str]]] = []
    for bench in ctx.benchmarks():
        if not all(ev.has_samples(bench) for ev in ctx.evals.values()):
            continue
        ids = None
        for ev in ctx.evals.values():
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


def _response_logprobs(model, batch: list[tuple[list[int], list[int]]], pad_id: int):
    """Log-softmax over the vocabulary at every continuation position: (batch, max_resp, vocab), mask."""
    import torch

    lengths = [len(p) + len(r) for p, r in batch]
    width = max(lengths)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (p, r) in enumerate(batch):
        ids[i, : len(p) + len(r)] = torch.tensor(p + r)
        attn[i, : len(p) + len(r)] = 1
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=attn).logits.float()
    max_resp = max(len(r) for _, r in batch)
    out = torch.zeros((len(batch), max_resp, logits.shape[-1]))
    mask = torch.zeros((len(batch), max_resp), dtype=torch.bool)
    for i, (p, r) in enumerate(batch):
        out[i, : len(r)] = torch.log_softmax(logits[i, len(p) - 1 : len(p) + len(r) - 1], dim=-1)
        mask[i, : len(r)] = True
    return out, mask


def token_kl(policy, reference, seqs: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[float, int]:
    """Mean over continuation tokens of KL(policy(.|ctx) || reference(.|ctx)); returns (kl, tokens)."""
    total, tokens = 0.0, 0
    for i in range(0, len(seqs), BATCH):
        batch = seqs[i : i + BATCH]
        lp, mask = _response_logprobs(policy, batch, pad_id)
        lr, _ = _response_logprobs(reference, batch, pad_id)
        kl = (lp.exp() * (lp - lr)).sum(-1)
        total += float(kl[mask].clamp_min(0).sum())
        tokens += int(mask.sum())
    return (total / tokens if tokens else float("nan")), tokens


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
    if ctx.models[name].paradigm in ("mix", "merge"):
        refs += [m.name for m in ctx.by_paradigm("single")]
    return refs


@register("divergence")
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
    base_samples = {b: ctx.evals[ctx.base.name].samples(b) for b in {b for b, _ in chosen}}
    prompt_ids = []
    for bench, pid in chosen:
        text = render_prompt(tok, _first_sample(base_samples[bench], pid, "prompt") or "")
        prompt_ids.append(tok(text, add_special_tokens=False)["input_ids"] or [pad_id])
    pairs, kl_to_base, source = [], {}, {}
    base_model = _load(ctx.model_path(ctx.base.name))  # every policy is compared with the base
    for name in ctx.models:
        policy = _load(ctx.model_path(name))
        seqs, generated = [], 0
        ev = ctx.evals.get(name)
        for (bench, pid), pids in zip(chosen, prompt_ids, strict=True):
            resp = _first_sample(ev.samples(bench), pid, "response") if ev and ev.has_samples(bench) else None
            if resp is None:
                ids = _generate(policy, tok, pids, p.kl_max_new_tokens)
                generated += 1
            else:
                ids = tok(resp, add_special_tokens=False)["input_ids"][: p.kl_max_new_tokens]
            seqs.append((pids, ids or [tok.eos_token_id if tok.eos_token_id is not None else pad_id]))
        source[name] = "eval responses" if not generated else f"{generated} generated, rest eval responses"
        for ref in references_of(ctx, name):
            reference = base_model if ref == ctx.base.name else _load(ctx.model_path(ref))
            kl, tokens = token_kl(policy, reference, seqs, pad_id)
            del reference
            pairs.append({"model": name, "reference": ref, "kl": finite(kl), "tokens": tokens})
            if ref == ctx.base.name:
                kl_to_base[name] = finite(kl)
        del policy
    avg = ctx.accuracy.get("average", {})
    base_avg = avg.get(ctx.base.name)
    gain = {m: (avg[m] - base_avg) if m in avg and base_avg is not None else None for m in ctx.models}
    counts: dict[str, int] = {}
    for bench, _ in chosen:
        counts[bench] = counts.get(bench, 0) + 1
    return {
        "prompts": len(chosen),
        "prompts_per_benchmark": counts,
        "max_new_tokens": p.kl_max_new_tokens,
        "continuations": source,
        "pairs": pairs,
        "kl_to_base": kl_to_base,
        "gain": gain,
        "seconds": round(time.perf_counter() - started, 3),
    }

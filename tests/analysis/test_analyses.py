"""Divergence, inheritance, behaviour, transfer, cost and the verdict on the planted fixture study."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from m2rl.analysis import AnalysisError, analyze
from m2rl.analysis.analyses.behaviour import first_verification
from m2rl.analysis.analyses.divergence import render_prompt
from m2rl.analysis.analyses.inheritance import agreement
from m2rl.analysis.stats import cohen_kappa
from m2rl.registry import RegistryError
from tests.analysis.fixture_study import BENCHES, DOMAINS, GPU_HOURS, N_PROBLEMS, K

# ---- divergence ---------------------------------------------------------------------------------------


def test_kl_zero_for_identical_and_matches_direct_computation(study, tmp_path):
    """A copy of the base has KL 0; the mix's KL equals a per-sequence computation without batching."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    copy = tmp_path / "copy"
    shutil.copytree(study.base, copy)
    models = {"single-math": {"uri": str(copy)}, "mix": study.models["mix"]}
    evals = {n: study.evals[n] for n in ("base", "single-math", "mix")}
    analyze({"analyses": ["divergence"], "kl_prompts": 4, "kl_max_new_tokens": 10}, models, study.base, evals, {},
            str(tmp_path / "out"))
    d = json.loads((tmp_path / "out" / "analysis.json").read_text())["analyses"]["divergence"]
    kl = {(p["model"], p["reference"]): p["kl"] for p in d["pairs"]}
    assert kl[("single-math", "base")] == pytest.approx(0.0, abs=1e-6)
    assert kl[("mix", "single-math")] == pytest.approx(kl[("mix", "base")], rel=1e-5)  # the expert is the base
    assert kl[("mix", "base")] > 1e-4
    assert d["prompts"] == 4 and set(d["prompts_per_benchmark"]) == set(BENCHES.values())

    # direct: one sequence at a time, no padding, from the same prompts and the mix's own responses
    from m2rl.analysis.analyses.divergence import choose_prompts
    from m2rl.analysis.stage import build_context

    ctx = build_context({"kl_prompts": 4}, models, study.base, evals, {})
    tok = AutoTokenizer.from_pretrained(study.base)
    mix = AutoModelForCausalLM.from_pretrained(study.models["mix"]["uri"], dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(study.base, dtype=torch.float32)
    total, tokens = 0.0, 0
    per_domain: dict[str, list[float]] = {}
    for bench, pid in choose_prompts(ctx, 4):
        rows = ctx.evals["mix"].samples(bench)
        rows = rows[rows["problem_id"] == pid].sort_values("sample_index")
        p_ids = tok(render_prompt(tok, rows.iloc[0]["prompt"]), add_special_tokens=False)["input_ids"]
        r_ids = tok(rows.iloc[0]["response"], add_special_tokens=False)["input_ids"][:10]
        ids = torch.tensor([p_ids + r_ids])
        with torch.no_grad():
            lp = torch.log_softmax(mix(ids).logits[0, len(p_ids) - 1 : -1].double(), -1)
            lb = torch.log_softmax(base(ids).logits[0, len(p_ids) - 1 : -1].double(), -1)
        seq = float((lp.exp() * (lp - lb)).sum())
        total += seq
        tokens += len(r_ids)
        acc = per_domain.setdefault(ctx.bench_domain(bench), [0.0, 0])
        acc[0] += seq
        acc[1] += len(r_ids)
    assert kl[("mix", "base")] == pytest.approx(total / tokens, rel=1e-3)
    # and per domain: the KL of that domain's prompts only
    assert set(per_domain) == set(DOMAINS)
    for domain, (seq_sum, n) in per_domain.items():
        assert d["kl_to_base_by_domain"][domain]["mix"] == pytest.approx(seq_sum / n, rel=1e-3)


def test_kl_same_when_prompts_are_scored_in_groups_and_generated_without_eval(study, tmp_path, monkeypatch):
    """Grouping the prompts to bound the kept log-probs changes nothing; a model without eval samples
    gets greedy continuations of its own."""
    from m2rl.analysis.analyses import divergence

    models = {n: study.models[n] for n in ("single-math", "mix")}
    evals = {n: study.evals[n] for n in ("base", "single-math")}  # no eval folder for the mix
    params = {"analyses": ["divergence"], "kl_prompts": 4, "kl_max_new_tokens": 6}

    def run(out):
        analyze(params, models, study.base, evals, {}, str(tmp_path / out))
        return json.loads((tmp_path / out / "analysis.json").read_text())["analyses"]["divergence"]

    whole = run("whole")
    monkeypatch.setattr(divergence, "KEPT_BYTES", 1)  # one prompt per group: every model loaded 4 times
    grouped = run("grouped")
    assert whole["continuations"]["mix"] == "4 generated, rest eval responses"
    assert whole["continuations"]["single-math"] == "eval responses"
    kl = {(p["model"], p["reference"]): p["kl"] for p in whole["pairs"]}
    assert set(kl) == {("single-math", "base"), ("mix", "base"), ("mix", "single-math")}
    assert kl[("mix", "base")] > 0 and all(p["tokens"] > 0 for p in whole["pairs"])
    for a, b in zip(whole["pairs"], grouped["pairs"], strict=True):
        assert (a["model"], a["reference"], a["tokens"]) == (b["model"], b["reference"], b["tokens"])
        assert a["kl"] == pytest.approx(b["kl"], rel=1e-6, abs=1e-9)


def test_render_prompt_templates_plain_text_once(study):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(study.base)
    text = render_prompt(tok, "What is 2+2?")
    assert text.startswith("<|im_start|>user\nWhat is 2+2?") and text.endswith("<|im_start|>assistant\n")
    assert render_prompt(tok, text) == text
    msgs = json.dumps([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert render_prompt(tok, msgs).startswith("<|im_start|>system\nS")


# ---- inheritance --------------------------------------------------------------------------------------


def test_kappa_known_values():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4 (the textbook example)
    a = np.array([1] * 20 + [1] * 5 + [0] * 10 + [0] * 15, dtype=bool)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15, dtype=bool)
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a[:30], ~a[:30]) < 0


def test_agreement_identical_and_disjoint():
    scores = {f"p{i}": float(i % 2) for i in range(10)}
    same = agreement(scores, scores)
    assert same["kappa"] == 1.0 and same["jaccard"] == 1.0 and same["inherited"] == 1.0 and same["new"] == 0.0
    flipped = agreement({k: 1 - v for k, v in scores.items()}, scores)
    assert flipped["kappa"] == pytest.approx(-1.0) and flipped["jaccard"] == 0.0 and flipped["inherited"] == 0.0
    assert flipped["new"] == 0.5


def test_inheritance_rows_match_the_samples(analysed):
    study, _, a = analysed
    inh = a["analyses"]["inheritance"]
    rows = {(r["model"], r["benchmark"]): r for r in inh["rows"]}
    assert set(rows) == {(m, b) for m in ("mix", "merge-average", "merge-task_arithmetic") for b in BENCHES.values()}
    r = rows[("mix", "builtin_math")]
    mix = study.scores["mix"]["builtin_math"].mean(axis=1) >= 0.5
    expert = study.scores["single-math"]["builtin_math"].mean(axis=1) >= 0.5
    assert r["expert"] == "single-math"
    assert r["solved_model"] == mix.sum() and r["solved_expert"] == expert.sum()
    assert r["inherited"] == pytest.approx((mix & expert).sum() / expert.sum())
    assert r["kappa"] == pytest.approx(cohen_kappa(mix, expert))


# ---- behaviour ----------------------------------------------------------------------------------------


def test_first_verification_position():
    assert first_verification("no checks here") is None
    text = "abcd Let me check that."
    assert first_verification(text) == pytest.approx(5 / len(text))
    assert first_verification("Wait, " + "x" * 94) == 0.0
    assert first_verification("I will verify it") is not None
    assert first_verification("awaiting") is None  # whole words only


def test_behaviour_matches_planted_responses(analysed):
    study, _, a = analysed
    b = a["analyses"]["behaviour"]
    assert b["length_unit"] == "tokens"
    for model in ("base", "mix"):
        for domain in DOMAINS:
            df = pq.read_table(f"{study.evals[model]}/{BENCHES[domain]}/samples.parquet").to_pandas()
            has = df["response"].map(lambda t: first_verification(t) is not None)
            s = b["models"][model][domain]
            assert s["responses"] == N_PROBLEMS * K
            assert s["verify_rate"] == pytest.approx(has.mean())
            assert sum(s["length_hist"]) == N_PROBLEMS * K
    assert b["models"]["base"]["math"]["verify_rate"] == 0.0
    assert b["models"]["mix"]["math"]["length_mean"] > 2 * b["models"]["base"]["math"]["length_mean"]


# ---- transfer and cost --------------------------------------------------------------------------------


def test_transfer_deltas_are_accuracy_minus_base(analysed):
    study, _, a = analysed
    rows = {(r["model"], r["benchmark"]): r for r in a["analyses"]["transfer"]["rows"]}
    for (model, bench), r in rows.items():
        assert r["delta"] == pytest.approx(study.accuracy(model, bench) - study.accuracy("base", bench))
        assert r["ci_low"] <= r["delta"] <= r["ci_high"]
    assert rows[("single-math", "builtin_math")]["kind"] == "in-domain"
    assert rows[("single-math", "builtin_code")]["kind"] == "cross-domain"
    assert rows[("single-math", "builtin_math")]["effect"] == "gain"  # planted +40 points


def test_cost_ratio(analysed):
    _, _, a = analysed
    c = a["analyses"]["cost"]
    assert c["unit"] == "GPU-hours"
    assert c["singles_gpu_hours"] == pytest.approx(GPU_HOURS["single-math"] + GPU_HOURS["single-code"])
    assert c["mix_over_singles"] == pytest.approx(GPU_HOURS["mix"] / (GPU_HOURS["single-math"]
                                                                       + GPU_HOURS["single-code"]))
    assert [r["run"] for r in c["runs"]] == ["single-math", "single-code", "mix"]


def test_cpu_cards_are_cpu_hours(study, tmp_path):
    card = json.loads(open(study.train_cards["mix"]).read())
    card["device"] = "cpu"
    (tmp_path / "mix.json").write_text(json.dumps(card))
    analyze({"analyses": ["cost"]}, {"mix": study.models["mix"]}, study.base, {}, {"mix": str(tmp_path / "mix.json")},
            str(tmp_path / "out"))
    c = json.loads((tmp_path / "out" / "analysis.json").read_text())["analyses"]["cost"]
    assert c["unit"] == "CPU-hours" and c["mix_over_singles"] is None


# ---- verdict ------------------------------------------------------------------------------------------


def test_verdict_numbers_and_winners(analysed):
    study, result, a = analysed
    v = a["verdict"]
    assert v["a"]["model"] == "mix" and v["b"]["label"] == "merge"
    best = max(("merge-average", "merge-task_arithmetic"),
               key=lambda m: np.mean([study.accuracy(m, b) for b in BENCHES.values()]))
    assert v["b"]["model"] == best
    rows = {r["scope"]: r for r in v["rows"]}
    assert set(rows) == {"math", "code", "average"}
    for domain in DOMAINS:
        r = rows[domain]
        bench = BENCHES[domain]
        assert r["a"] == pytest.approx(study.accuracy("mix", bench))
        assert r["b"] == pytest.approx(study.accuracy(best, bench))
        assert r["delta_ci"][0] <= r["delta"] <= r["delta_ci"][1]
        assert r["expert"]["model"] == f"single-{domain}"
        expected = "mix" if r["delta_ci"][0] > 0 else "merge" if r["delta_ci"][1] < 0 else "tie"
        assert r["winner"] == expected
    assert rows["math"]["winner"] == "mix"  # planted: 0.80 against 0.35
    assert rows["average"]["a"] == pytest.approx((rows["math"]["a"] + rows["code"]["a"]) / 2)
    assert v["cost"]["mix_over_singles"] == pytest.approx(0.75)
    assert result.verdict == v


def test_bad_inputs_name_the_field(study, tmp_path):
    with pytest.raises(AnalysisError, match="evals.nobody"):
        analyze(None, study.models, study.base, {"nobody": study.evals["mix"]}, {}, str(tmp_path / "o"))
    with pytest.raises(RegistryError, match="analysis.analyses: unknown analysis 'magic'; known: .*"):
        analyze({"analyses": ["magic"]}, study.models, study.base, {}, {}, str(tmp_path / "o"))
    with pytest.raises(AnalysisError, match="analysis.projection_dim"):
        analyze({"projection_dim": 0}, study.models, study.base, {}, {}, str(tmp_path / "o"))
    bad = tmp_path / "bad-eval"
    bad.mkdir()
    (bad / "metrics.json").write_text(json.dumps({"benchmarks": {"builtin_math": {"pass_at_1": 0.1}}}))
    with pytest.raises(AnalysisError, match="evals.mix: .*builtin_math.*avg_at_k"):
        analyze(None, study.models, study.base, {"mix": str(bad)}, {}, str(tmp_path / "o"))
    with pytest.raises(AnalysisError, match="train_cards.mix"):
        analyze(None, study.models, study.base, {}, {"mix": str(tmp_path / "missing.json")}, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()

"""Divergence against gains: Spearman's rho (average ranks for ties) of each model's KL from the base and its
accuracy gain, per domain and overall, with a seeded bootstrap interval over models; known values, the
not-computable cases, the stage on the fixture study and the report's sentences."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from m2rl.analysis import AnalysisError, analyze, build_report
from m2rl.analysis.analyses.divergence import MIN_MODELS, correlate
from m2rl.analysis.stats import average_ranks, scope_seed, spearman
from m2rl.analysis.summary import flatten
from m2rl.analysis.tables import kl_gain_lines
from m2rl.registry import ANALYSES, RegistryError
from tests.analysis.fixture_study import BENCHES, DOMAINS

# ---- Spearman's rho: known values ---------------------------------------------------------------------


def test_rho_hand_computed_without_ties():
    # ranks differ by d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    y = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    assert float(spearman(x, y)) == pytest.approx(0.8)
    assert float(spearman(x, -y)) == pytest.approx(-0.8)
    assert float(spearman(x, np.exp(10 * x))) == pytest.approx(1.0)  # monotone, not linear: still 1


def test_ties_take_average_ranks():
    assert average_ranks([3.0, 1.0, 3.0]).tolist() == [2.5, 1.0, 2.5]
    assert average_ranks([[5.0, 5.0, 5.0, 1.0]]).tolist() == [[3.0, 3.0, 3.0, 1.0]]
    # x ranks (1, 2.5, 2.5, 4), y ranks (1, 3, 2, 4): centred, sxy = 4.5, sxx = 4.5, syy = 5 -> rho = sqrt(0.9)
    rho = float(spearman(np.array([1.0, 2.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0, 40.0])))
    assert rho == pytest.approx(np.sqrt(0.9))
    # the textbook d^2 formula, which ignores ties, would give 1 - 6 * 0.5 / 60 = 0.95: ties must not use it
    assert rho != pytest.approx(0.95)


def test_rho_equals_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 5, 7).astype(float)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert float(spearman(x, y)) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_rho_is_nan_for_constant_input_and_rowwise():
    assert np.isnan(spearman(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])))
    rows = spearman(np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0], [1.0, 2.0, 3.0]]),
                    np.array([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]]))
    assert rows[0] == pytest.approx(-1.0) and np.isnan(rows[1]) and rows[2] == pytest.approx(0.5)


# ---- the correlation of KL and gain -------------------------------------------------------------------

KL = {"a": 0.01, "b": 0.02, "c": 0.03, "d": 0.04, "e": 0.05, "f": 0.06, "g": 0.07, "h": 0.08}
GAIN = {"a": 0.05, "b": 0.01, "c": 0.07, "d": 0.02, "e": 0.10, "f": 0.06, "g": 0.12, "h": 0.09}


def _ranks(v: list[float]) -> list[float]:
    """Average ranks the slow way: sort, and give each run of equal values the mean of its positions."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    out = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def _slow_rho(x: list[float], y: list[float]) -> float | None:
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / (sxx * syy) ** 0.5


def test_bootstrap_interval_is_deterministic_for_a_seed():
    row = correlate("math", KL, GAIN, resamples=300, confidence=0.9, seed=11)
    assert row["n"] == 8 and row["models"] == list(KL) and row["reason"] is None
    x, y = list(KL.values()), [GAIN[m] for m in KL]
    assert row["rho"] == pytest.approx(_slow_rho(x, y))
    # the same interval, drawn independently: the scope's seed, 300 draws of 8 models, degenerate draws left out
    idx = np.random.default_rng(scope_seed(11, "math")).integers(0, 8, size=(300, 8))
    draws = [r for r in (_slow_rho([x[i] for i in ix], [y[i] for i in ix]) for ix in idx) if r is not None]
    assert row["resamples_used"] == len(draws)
    assert row["ci_low"] == pytest.approx(np.quantile(draws, 0.05))
    assert row["ci_high"] == pytest.approx(np.quantile(draws, 0.95))
    assert row["ci_low"] < row["rho"] < row["ci_high"]
    assert correlate("math", KL, GAIN, 300, 0.9, 11) == row  # same seed, same interval
    other = correlate("math", KL, GAIN, 300, 0.9, 12)
    assert (other["ci_low"], other["ci_high"]) != (row["ci_low"], row["ci_high"])
    assert other["rho"] == row["rho"]
    wider = correlate("math", KL, GAIN, 300, 0.99, 11)
    assert wider["ci_low"] <= row["ci_low"] and wider["ci_high"] >= row["ci_high"]


def test_monotone_relation_has_a_degenerate_interval():
    up = {m: 2 * v for m, v in KL.items()}
    row = correlate("code", KL, up, resamples=200, confidence=0.95, seed=0)
    assert (row["rho"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
    row = correlate("code", KL, {m: -v for m, v in KL.items()}, resamples=200, confidence=0.95, seed=0)
    assert (row["rho"], row["ci_low"], row["ci_high"]) == (-1.0, -1.0, -1.0)


def test_too_few_models_and_constant_inputs_are_not_computable():
    assert MIN_MODELS == 3
    two = correlate("math", {"a": 0.1, "b": 0.2, "c": None}, {"a": 0.1, "b": 0.3, "c": 0.2}, 100, 0.95, 0)
    assert two["rho"] is None and two["ci_low"] is None and two["n"] == 2 and two["models"] == ["a", "b"]
    assert "2 model(s) have both" in two["reason"] and "2 with a KL, 3 with a gain" in two["reason"]
    assert "at least 3" in two["reason"]
    same_kl = correlate("math", {"a": 0.1, "b": 0.1, "c": 0.1}, {"a": 0.1, "b": 0.3, "c": 0.2}, 100, 0.95, 0)
    assert same_kl["rho"] is None and same_kl["n"] == 3 and "same KL" in same_kl["reason"]
    same_gain = correlate("math", {"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.2, "b": 0.2, "c": 0.2}, 100, 0.95, 0)
    assert same_gain["rho"] is None and "same gain" in same_gain["reason"]
    # three models, one resample: it may draw a single model (no rho), then there is no interval, said so
    for seed in range(50):
        row = correlate("math", {"a": 0.1, "b": 0.2, "c": 0.3}, {"a": 0.1, "b": 0.3, "c": 0.2}, 1, 0.95, seed)
        assert row["rho"] == pytest.approx(0.5)
        if row["resamples_used"] == 0:
            assert row["ci_low"] is None and "no interval" in row["reason"]
            break
    else:
        pytest.fail("no seed drew a degenerate single resample")


def test_params_are_typed_and_checked_before_any_work(study, tmp_path):
    docs = {n: d for n, _, d in ANALYSES.entry("divergence").param_docs()}
    assert set(docs) == {"resamples", "confidence", "seed"} and all(docs.values())
    evals = {n: study.evals[n] for n in ("base", "mix")}
    with pytest.raises(RegistryError, match=r"analysis\.options\.divergence\.confidence: must be < 1"):
        analyze({"analyses": ["divergence"], "options": {"divergence": {"confidence": 1.5}}},
                {"mix": study.models["mix"]}, study.base, evals, {}, str(tmp_path / "o"))
    with pytest.raises(RegistryError, match=r"analysis\.options\.divergence\.resample: unknown parameter.*"
                                            r"did you mean 'resamples'"):
        analyze({"analyses": ["divergence"], "options": {"divergence": {"resample": 10}}},
                {"mix": study.models["mix"]}, study.base, evals, {}, str(tmp_path / "o"))
    with pytest.raises(AnalysisError, match=r"analysis\.options\.divergence: not an analysis the spec runs"):
        analyze({"analyses": ["transfer"], "options": {"divergence": {"seed": 1}}},
                {"mix": study.models["mix"]}, study.base, evals, {}, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


# ---- through the analysis stage -----------------------------------------------------------------------


def test_stage_correlates_per_domain_kl_with_per_domain_gain(analysed):
    study, _, a = analysed
    d = a["analyses"]["divergence"]
    corr = d["correlation"]
    assert corr["method"] == "spearman" and corr["resamples"] == a["bootstrap"] == 400
    assert corr["seed"] == a["params"]["seed"] and corr["confidence"] == 0.95
    assert a["options"]["divergence"] == {"resamples": None, "confidence": 0.95, "seed": None}
    rows = {r["scope"]: r for r in corr["rows"]}
    assert list(rows) == [*DOMAINS, "overall"]
    models = [m for m in study.models]
    for domain in DOMAINS:
        bench = BENCHES[domain]
        gain = {m: study.accuracy(m, bench) - study.accuracy("base", bench) for m in models}
        assert d["gain_by_domain"][domain] == pytest.approx(gain)
        kl = d["kl_to_base_by_domain"][domain]
        assert set(kl) == set(models) and all(v > 0 for v in kl.values())
        r = rows[domain]
        assert r["n"] == len(models) and r["reason"] is None
        assert r["rho"] == pytest.approx(_slow_rho([kl[m] for m in models], [gain[m] for m in models]))
        assert -1 <= r["ci_low"] <= r["ci_high"] <= 1 and 0 < r["resamples_used"] <= 400
    overall = rows["overall"]
    assert overall["rho"] == pytest.approx(_slow_rho([d["kl_to_base"][m] for m in models],
                                                     [d["gain"][m] for m in models]))
    # the per-domain KLs are the overall KL split by the prompts' domain: token-weighted, they add up to it
    for p in d["pairs"]:
        parts = p["by_domain"]
        assert sum(v["tokens"] for v in parts.values()) == p["tokens"]
        assert sum(v["kl"] * v["tokens"] for v in parts.values()) / p["tokens"] == pytest.approx(p["kl"], rel=1e-9)
        if p["reference"] == "base":
            assert all(parts[dom]["kl"] == d["kl_to_base_by_domain"][dom][p["model"]] for dom in DOMAINS)


@pytest.fixture
def no_figures(monkeypatch):
    """The report without drawing its figures (test_report checks those): tables and text only."""
    import m2rl.analysis.report as report_mod

    monkeypatch.setattr(report_mod, "make_figures", lambda a: {})


def test_stage_reports_a_domain_without_prompts_and_too_few_models(study, tmp_path, no_figures):
    """Two models: every scope has fewer than 3; code has no prompt (the mix has no code samples) either."""
    mix_eval = tmp_path / "mix-eval"
    shutil.copytree(study.evals["mix"], mix_eval)
    (mix_eval / BENCHES["code"] / "samples.parquet").unlink()
    models = {n: study.models[n] for n in ("single-math", "mix")}
    evals = {"base": study.evals["base"], "single-math": study.evals["single-math"], "mix": str(mix_eval)}
    out = tmp_path / "out"
    analyze({"analyses": ["divergence"], "kl_prompts": 4, "kl_max_new_tokens": 6, "domains": list(DOMAINS),
             "options": {"divergence": {"resamples": 50, "seed": 3}}}, models, study.base, evals, {}, str(out))
    a = json.loads((out / "analysis.json").read_text())
    d = a["analyses"]["divergence"]
    assert d["prompts_per_benchmark"] == {BENCHES["math"]: 4}
    assert d["correlation"]["resamples"] == 50 and d["correlation"]["seed"] == 3
    rows = {r["scope"]: r for r in d["correlation"]["rows"]}
    assert rows["math"]["rho"] is None and "2 model(s) have both" in rows["math"]["reason"]
    assert rows["code"]["rho"] is None and "no prompt of this domain" in rows["code"]["reason"]
    assert all(v is None for v in d["kl_to_base_by_domain"]["code"].values())
    assert d["gain_by_domain"]["code"]["mix"] == pytest.approx(
        study.accuracy("mix", BENCHES["code"]) - study.accuracy("base", BENCHES["code"]))
    assert rows["overall"]["rho"] is None and rows["overall"]["n"] == 2
    lines = kl_gain_lines(*flatten(a))
    assert lines[1].startswith("math: not computable (2 model(s) have both a KL from the base and a gain")
    assert lines[2].startswith("code: not computable (no prompt of this domain")
    rep = build_report(str(out), str(tmp_path / "rep"), log_mlflow=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"- {lines[2]}" in md and "kl_gain" in rep.tables


def test_report_states_rho_per_domain(analysed, tmp_path, no_figures):
    import re

    _, result, a = analysed
    rows = {r["scope"]: r for r in a["analyses"]["divergence"]["correlation"]["rows"]}
    build_report(result.out, str(tmp_path), log_mlflow=False)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for scope, r in rows.items():
        sentence = f"{scope}: rho = {r['rho']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] over {r['n']} models"
        assert f"- {sentence}" in md and sentence in html
        cells = re.search(rf"<tr><td>{scope}</td><td>(\d+)</td><td>(?:<b>)?([-\d.]+)", html.split("table-kl_gain")[1])
        assert cells and cells.group(1) == str(r["n"]) and cells.group(2) == f"{r['rho']:.2f}"
    metrics, _ = flatten(a)
    assert metrics["divergence/rho/math"] == pytest.approx(rows["math"]["rho"])
    assert metrics["divergence/rho_n/overall"] == rows["overall"]["n"]
    assert metrics["divergence/kl_domain/mix/code"] == a["analyses"]["divergence"]["kl_to_base_by_domain"]["code"]["mix"]

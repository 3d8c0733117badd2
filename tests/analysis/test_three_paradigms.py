"""Three paradigms side by side: mix, the best merge and distill, with intervals, differences and cost."""

from __future__ import annotations

import json
import shutil

import numpy as np

from tests.analysis.fixture_study import make_study, write_eval


def test_distill_joins_the_verdict_tables_and_analyses(tmp_path):
    from m2rl.analysis.report import render
    from m2rl.analysis.stage import analyze, read_analysis

    study = make_study(tmp_path / "study")
    shutil.copytree(study.root / "models" / "mix", study.root / "models" / "distill")  # weights of the mix model
    card = {"run": "distill", "paradigm": "distill", "domains": ["math", "code"], "steps": 4, "wall_seconds": 360,
            "device": "gpu", "num_devices": 1, "gpu_hours": 0.1, "backend": "distill-vllm"}
    (study.root / "models" / "distill" / "train_card.json").write_text(json.dumps(card))
    write_eval(study.root / "eval" / "distill", "mix", np.random.default_rng(11))  # the mix model's accuracy
    models = {**study.models, "distill": {"uri": str(study.root / "models" / "distill")}}
    evals = {**study.evals, "distill": str(study.root / "eval" / "distill")}
    cards = {**study.train_cards, "distill": str(study.root / "models" / "distill" / "train_card.json")}
    params = {"analyses": ["cost", "inheritance"], "bootstrap": 300}
    analyze(params, models, study.base, evals, cards, str(tmp_path / "analysis"))
    doc = read_analysis(str(tmp_path / "analysis"))
    three = doc["verdict"]["paradigms"]
    best_merge = doc["verdict"]["merges_ranked"][0]["model"]  # the merge with the highest average
    assert three["models"] == {"mix": "mix", "merge": best_merge, "distill": "distill"}
    # costs: mix its run, merge the singles (0.5 + 0.7), distill its run + the experts it needs
    assert three["cost"]["mix"] == 0.9 and abs(three["cost"]["merge"] - 1.2) < 1e-9
    assert abs(three["cost"]["distill"] - 1.3) < 1e-9
    rows = {r["scope"]: r for r in three["rows"]}
    assert set(rows) == {"math", "code", "average"}
    for r in rows.values():
        assert {(p["a"], p["b"]) for p in r["pairs"]} == {("mix", "merge"), ("mix", "distill"), ("merge", "distill")}
        assert r["best"] == max(r["scores"], key=lambda lab: r["scores"][lab]["score"])
        assert r["best"] in r["within_ci_of_best"]
        priced = {lab: three["cost"][lab] for lab in r["within_ci_of_best"]}
        assert r["cheapest_within_ci"] == min(priced, key=priced.get)
        for lab, sc in r["scores"].items():
            assert sc["ci"][0] <= sc["score"] <= sc["ci"][1], (lab, sc)
    assert any(row["model"] == "distill" for row in doc["analyses"]["inheritance"]["rows"])
    assert doc["analyses"]["cost"]["distill_gpu_hours"] == 0.1
    html, md, tables, lines = render(doc, {})
    table = next(t for t in tables if t.key == "paradigms")
    assert table.columns[1:4] == ["mix (mix)", f"merge ({best_merge})", "distill (distill)"]
    assert "within CI of best" in table.columns and any("Three paradigms" in s for s in lines)
    assert "distill" in md and "table-paradigms" in html

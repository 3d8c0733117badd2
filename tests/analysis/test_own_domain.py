"""`evaluate.experts: own_domain`: each single-domain expert is evaluated on its own domain's benchmarks only.
The analysis then takes the study's benchmarks from the fully evaluated models, leaves the experts' other
cells empty (no average for them), keeps their own-domain gains, the verdict's expert column and the KL
prompts; the report shows the empty cells as dashes. The evaluate side: `model_benchmarks` gives an expert
its domain's benchmarks only, and a spec whose domain has no benchmark is refused when it is loaded."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.analysis.conftest import ANALYSIS_PARAMS
from tests.analysis.fixture_study import BENCHES


@pytest.fixture(scope="module")
def own_domain(study, tmp_path_factory):
    """The fixture study with its experts' eval folders cut to their own domain, analysed and reported."""
    from m2rl.analysis import analyze, build_report, read_analysis

    root = tmp_path_factory.mktemp("own-domain")
    evals = dict(study.evals)
    for name in ("single-math", "single-code"):
        domain = name.split("-", 1)[1]
        folder = root / name
        shutil.copytree(study.evals[name], folder)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["benchmarks"] = {BENCHES[domain]: metrics["benchmarks"][BENCHES[domain]]}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        for other in set(BENCHES.values()) - {BENCHES[domain]}:
            shutil.rmtree(folder / other)
        evals[name] = str(folder)
    out = root / "analysis"
    result = analyze(dict(ANALYSIS_PARAMS), study.models, study.base, evals, study.train_cards, str(out),
                     cache=root / "cache")
    build_report(result.out, str(root / "report"), log_mlflow=False)
    return read_analysis(str(out)), (root / "report" / "report.md").read_text()


def test_experts_keep_their_own_cells_and_nothing_else(own_domain, analysed):
    analysis, _ = own_domain
    full = analysed[2]
    acc = analysis["accuracy"]
    assert [b["name"] for b in acc["benchmarks"]] == [b["name"] for b in full["accuracy"]["benchmarks"]]
    assert acc["models"]["single-math"] == {"builtin_math": full["accuracy"]["models"]["single-math"]["builtin_math"]}
    assert set(acc["models"]["single-code"]) == {"builtin_code"}
    assert "single-math" not in acc["average"] and acc["average"]["mix"] == full["accuracy"]["average"]["mix"]
    rows = analysis["analyses"]["transfer"]["rows"]
    experts = [r for r in rows if r["model"].startswith("single-")]
    assert experts and all(r["kind"] == "in-domain" for r in experts)
    full_own = {(r["model"], r["benchmark"]): r["delta"] for r in full["analyses"]["transfer"]["rows"]
                if r["kind"] == "in-domain"}
    assert {(r["model"], r["benchmark"]): r["delta"] for r in experts} == full_own
    verdict = {r["scope"]: r for r in analysis["verdict"]["rows"]}
    assert verdict["math"]["expert"]["model"] == "single-math"
    assert verdict["average"]["expert"]["model"] == "experts (own domain)"
    assert verdict["average"]["delta"] == pytest.approx(
        {r["scope"]: r for r in full["verdict"]["rows"]}["average"]["delta"])
    divergence = analysis["analyses"]["divergence"]
    assert "skipped" not in divergence  # the KL prompts come from the fully evaluated models


def test_report_shows_dashes_for_cells_not_evaluated(own_domain):
    _, md = own_domain
    row = next(line for line in md.splitlines() if line.startswith("| builtin_code (code) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = next(line for line in md.splitlines() if line.startswith("| benchmark | base |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    assert cells[names.index("single-math")] == "—" and cells[names.index("single-code")] != "—"
    assert "Experts on their own domain: " in md
    assert md.count("—: not evaluated (under `evaluate.experts: own_domain`") == 2  # accuracy, transfer


def _spec(tmp_path, **evaluate):
    from m2rl.spec import StudySpec

    return StudySpec.model_validate({
        "name": "own", "artifact_root": str(tmp_path / "a"), "work_dir": str(tmp_path / "w"),
        "data": {"domains": {"math": {"sources": [{"type": "builtin"}]}, "code": {"sources": [{"type": "builtin"}]}}},
        "evaluate": {"benchmarks": [{"name": "builtin_math"}, {"name": "builtin_code"}], **evaluate},
    })


def test_model_benchmarks_give_an_expert_its_own_domain(tmp_path):
    from m2rl.evaluate.stage import model_benchmarks

    own = _spec(tmp_path, experts="own_domain")
    assert [b.name for b in model_benchmarks(own, "single-code")] == ["builtin_code"]
    for model in ("base", "mix", "merge-ties"):
        assert [b.name for b in model_benchmarks(own, model)] == ["builtin_math", "builtin_code"]
    assert [b.name for b in model_benchmarks(_spec(tmp_path), "single-code")] == ["builtin_math", "builtin_code"]


def test_own_domain_without_a_benchmark_of_a_domain_is_refused(tmp_path):
    from m2rl.spec.resolve import name_problems

    data = {"data": {"domains": {"math": {}, "code": {}}},
            "evaluate": {"experts": "own_domain", "benchmarks": [{"name": "builtin_math"}]}}
    problems = name_problems(data)
    assert problems == ["evaluate.experts: own_domain, but no benchmark of evaluate.benchmarks is of domain 'code' "
                        "(its expert would be evaluated on nothing)"]
    data["evaluate"]["experts"] = "all"
    assert name_problems(data) == []

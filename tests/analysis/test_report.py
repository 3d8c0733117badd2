"""The report of the fixture study: every section, numbers equal to the inputs, self-contained HTML; logged to
the study's MLflow parent run; `m2rl compare` rebuilding the same tables from the MLflow server alone."""

from __future__ import annotations

import base64
import re

import pytest

from m2rl.analysis import build_report, compare
from m2rl.analysis.report import SECTIONS
from tests.analysis.fixture_study import BENCHES, GPU_HOURS

MODELS = ["base", "single-math", "single-code", "mix", "merge-average", "merge-task_arithmetic"]


@pytest.fixture(scope="module")
def report(analysed, tmp_path_factory):
    study, result, analysis = analysed
    out = tmp_path_factory.mktemp("built-report")
    rep = build_report(result.out, str(out), log_mlflow=False)
    return study, analysis, rep, out


def table_rows(html: str, key: str) -> list[list[str]]:
    body = re.search(rf"<table id=\"table-{key}\">.*?<tbody>(.*?)</tbody>", html, re.S).group(1)
    return [re.findall(r"<td>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", body)]


def test_html_is_self_contained_with_every_section(report):
    study, analysis, rep, out = report
    html = (out / "report.html").read_text()
    for key, _heading, _, _ in SECTIONS:
        section = re.search(rf"<section id='{key}'>(.*?)</section>", html, re.S)
        assert section, key
        assert "Not available" not in section.group(1), key  # every section filled
    assert "<script" not in html and "<link" not in html and "http://" not in html and "https://" not in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == len(rep.figures) == 8
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    for fig in ("transfer", "cosine", "overlap", "kl_vs_gain", "accuracy", "cost"):
        assert fig in rep.figures and (out / "figures" / f"{fig}.png").stat().st_size > 1000
    md = (out / "report.md").read_text()
    for _, heading, _, _ in SECTIONS:
        assert f"\n## {heading}\n" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (out / link).is_file()


def test_accuracy_table_numbers_and_best_in_bold(report):
    study, analysis, rep, out = report
    html = (out / "report.html").read_text()
    rows = table_rows(html, "accuracy")
    assert len(rows) == len(BENCHES) + 1
    for row, bench in zip(rows, BENCHES.values(), strict=False):
        values = {m: study.accuracy(m, bench) for m in MODELS}
        best = max(values.values())
        for cell, m in zip(row[1:], MODELS, strict=True):
            text = re.sub("</?b>", "", cell)
            assert text.startswith(f"{100 * values[m]:.1f} ["), (bench, m, cell)
            assert cell.startswith("<b>") == (abs(values[m] - best) < 1e-12), (bench, m)
    avg = {m: sum(study.accuracy(m, b) for b in BENCHES.values()) / len(BENCHES) for m in MODELS}
    assert [re.sub("</?b>", "", c) for c in rows[-1][1:]] == [f"{100 * avg[m]:.1f}" for m in MODELS]
    md = (out / "report.md").read_text()
    assert f"**{100 * max(avg.values()):.1f}**" in md


def test_merge_cost_and_verdict_tables(report):
    study, analysis, rep, out = report
    html = (out / "report.html").read_text()
    merges = table_rows(html, "merge_methods")
    assert [r[0] for r in merges] == ["average (merge-average)", "task_arithmetic (merge-task_arithmetic)",
                                      "reference: mix", "reference: expert of the domain"]
    math = BENCHES["math"]
    assert re.sub("</?b>", "", merges[0][1]) == f"{100 * study.accuracy('merge-average', math):.1f}"
    cost = table_rows(html, "cost")
    assert [r[0] for r in cost[:3]] == ["single-math", "single-code", "mix"]
    assert cost[0][3] == f"{GPU_HOURS['single-math']:.2f}" and cost[-1][3] == "0.75x"
    assert cost[-2][3] == f"{GPU_HOURS['single-math'] + GPU_HOURS['single-code']:.2f}"
    verdict = {r[0]: r for r in table_rows(html, "verdict")}
    v = {r["scope"]: r for r in analysis["verdict"]["rows"]}
    for scope in ("math", "code", "average"):
        lo, hi = v[scope]["delta_ci"]
        assert verdict[scope][3] == f"{100 * v[scope]['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        assert verdict[scope][4] == v[scope]["winner"]
    text = " ".join(rep.verdict)
    assert "mix wins on average" in text and "95% paired bootstrap interval" in text and "0.75x" in text
    assert re.search(r"Δ = \+\d+\.\d \[\+\d+\.\d, \+\d+\.\d\] points", text)


def test_geometry_and_divergence_tables_match_analysis(report):
    study, analysis, rep, out = report
    html = (out / "report.html").read_text()
    g = analysis["analyses"]["geometry"]
    cos = table_rows(html, "cosine")
    for i, row in enumerate(cos):
        for j, cell in enumerate(row[1:]):
            assert cell == f"{g['cosine'][min(i, j)][max(i, j)]:.3f}"
    kl = {r[0]: r for r in table_rows(html, "kl")}
    pairs = {(p["model"], p["reference"]): p["kl"] for p in analysis["analyses"]["divergence"]["pairs"]}
    assert kl["mix"][1] == f"{pairs[('mix', 'base')]:.4f}"


def test_report_logged_to_parent_run_and_compare_rebuilds_it(analysed, report, mlflow_server, monkeypatch,
                                                              tmp_path):
    import mlflow
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from m2rl.cli import app
    from m2rl.evaluate.stage import EvalResult, mlflow_metrics
    from m2rl.names import model_tags

    study, result, analysis = analysed
    _, _, rep, out = report
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    exp = mlflow.create_experiment("m2rl-compare-test")
    client = MlflowClient(mlflow_server)
    parent = client.create_run(exp, run_name="fixture-study").info.run_id
    # the figures drawn for the report fixture (drawing them again would only cost time)
    import m2rl.analysis.report as report_mod

    drawn = {n: (n, (out / "figures" / f"{n}.png").read_bytes()) for n in rep.figures}
    monkeypatch.setattr(report_mod, "make_figures", lambda a: drawn)
    logged = build_report(result.out, str(tmp_path / "r"), parent_run_id=parent)
    assert logged.mlflow_run_id == parent and logged.metrics_logged > 50
    run = client.get_run(parent)
    for bench in BENCHES.values():
        assert run.data.metrics[f"acc/mix/{bench}"] == pytest.approx(study.accuracy("mix", bench))
    assert run.data.metrics["cost/mix_over_singles"] == pytest.approx(0.75)
    for r in analysis["analyses"]["divergence"]["correlation"]["rows"]:  # rho per domain and overall, and n
        assert run.data.metrics[f"divergence/rho/{r['scope']}"] == pytest.approx(r["rho"])
        assert run.data.metrics[f"divergence/rho_n/{r['scope']}"] == r["n"]
    assert run.data.tags["m2rl.verdict.average"] == "mix" and run.data.tags["m2rl.best_merge"].startswith("merge-")
    files = {f.path for f in client.list_artifacts(parent, "report")}
    assert {"report/report.html", "report/report.md", "report/analysis.json"} <= files

    # a second study of the same experiment with no report: only its evaluate and train child runs, tagged and
    # named as the evaluate stage (`eval/<benchmark>/<metric>`) and the train stage (`cost/gpu_hours`) log them
    import json

    from mlflow.entities import Metric

    other = client.create_run(exp, run_name="children-only").info.run_id
    client.log_param(other, "domains", "math,code")
    for name in MODELS:
        doc = json.loads((study.root / "eval" / name / "metrics.json").read_text())
        metrics = {b: {k: v for k, v in m.items() if isinstance(v, int | float)} for b, m in doc["benchmarks"].items()}
        res = EvalResult(out="x", model=name, metrics=metrics, domains={b: "x" for b in metrics},
                         domain_metrics={"math": {"avg_at_k": 0.5}})
        child = client.create_run(exp, run_name=f"evaluate/{name}", tags={
            "mlflow.parentRunId": other, "m2rl.model": name, **{f"m2rl.{k}": v for k, v in model_tags(name).items()}})
        client.log_batch(child.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in mlflow_metrics(res).items()])
    for name, hours in GPU_HOURS.items():
        child = client.create_run(exp, run_name=f"train/{name}", tags={
            "mlflow.parentRunId": other, "m2rl.model": name, "m2rl.paradigm": "mix" if name == "mix" else "single"})
        client.log_metric(child.info.run_id, "cost/gpu_hours", hours)

    res = compare("m2rl-compare-test", tracking_uri=mlflow_server)
    by_name = {s.run_name: s for s in res.studies}
    assert set(by_name) == {"fixture-study", "children-only"}
    full, partial = by_name["fixture-study"], by_name["children-only"]
    assert full.source == "report" and partial.source == "child runs"
    md = (out / "report.md").read_text()
    for table in full.tables:  # every table of report.md, identical, from MLflow alone
        assert table.to_markdown() in md, table.key
    assert {t.key for t in full.tables} == set(rep.tables) and full.verdict == rep.verdict
    # from the child runs: the accuracy and merge tables equal the report's, the cost table too
    for key in ("accuracy", "merge_methods"):
        assert partial.table(key).to_markdown() == full.table(key).to_markdown(), key
    assert partial.table("cost").rows[-1][-1] == "0.75x"
    assert partial.table("transfer") is not None and partial.verdict[0].startswith("No verdict")

    r = CliRunner().invoke(app, ["compare", "--experiment", "m2rl-compare-test", "--tracking-uri", mlflow_server,
                                 "--out", str(tmp_path / "compare.md")])
    assert r.exit_code == 0, r.output
    assert "Studies in m2rl-compare-test" in r.output and full.table("accuracy").to_markdown() in r.output
    r = CliRunner().invoke(app, ["compare", "--experiment", "nope", "--tracking-uri", mlflow_server])
    assert r.exit_code == 2 and "no MLflow experiment named 'nope'" in r.output


def test_report_command_writes_files(analysed, tmp_path):
    from typer.testing import CliRunner

    from m2rl.cli import app

    _, result, _ = analysed
    r = CliRunner().invoke(app, ["report", result.out, "--out", str(tmp_path / "rep"), "--no-mlflow"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "rep" / "report.html").is_file() and "mix wins on average" in r.output
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere"), "--no-mlflow"])
    assert r.exit_code == 2 and "analysis_dir" in r.output


def test_analyze_and_report_commands_on_the_artifact_layout(study, tmp_path, monkeypatch):
    """`m2rl analyze SPEC` finds models/ and eval/ under the artifact root; `m2rl report SPEC` writes report/."""
    import yaml
    from typer.testing import CliRunner

    from m2rl.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    root = tmp_path / "artifacts"
    root.mkdir()
    for sub in ("models", "eval"):
        (root / sub).symlink_to(study.root / sub)
    spec = {"name": "layout-study", "base_model": study.base, "artifact_root": str(root), "work_dir": str(tmp_path),
            "data": {"domains": {"math": {}, "code": {}}},
            "merge": {"methods": [{"method": "average"}, {"method": "task_arithmetic"}]},
            "analysis": {"analyses": ["transfer", "cost", "inheritance"]}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["analyze", str(path)])
    assert r.exit_code == 0, r.output
    assert (root / "analysis" / "analysis.json").is_file() and "transfer" in r.output
    r = CliRunner().invoke(app, ["report", str(path), "--no-mlflow"])
    assert r.exit_code == 0, r.output
    html = (root / "report" / "report.html").read_text()
    assert "Not available: not in the spec&#x27;s analysis list" in html  # geometry was not asked for
    assert "<table id=\"table-accuracy\">" in html and "<table id=\"table-cost\">" in html


def test_the_verdict_says_whether_training_worked(report):
    """Per expert its own-domain gain over the base with the paired interval, and the mix's domains won."""
    from m2rl.analysis.summary import flatten
    from m2rl.analysis.tables import gain_lines

    study, analysis, rep, out = report
    rows = analysis["analyses"]["transfer"]["rows"]
    own = [r for r in rows if r["kind"] == "in-domain"]
    assert own  # the fixture has math and code experts
    wins = sum(1 for r in own if r["ci_low"] is not None and r["ci_low"] > 0)
    md = (out / "report.md").read_text()
    assert f"Experts on their own domain: {wins} of {len(own)} beat the base (interval above 0)" in md
    for r in own:
        assert f"{r['domain']} {100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]" in md
    mix = {r["domain"]: r for r in rows if r["model"] == "mix"}
    mix_wins = sorted(d for d, r in mix.items() if r["ci_low"] is not None and r["ci_low"] > 0)
    lines = gain_lines(*flatten(analysis))
    assert any(line.startswith(f"The mixed model beats the base on {len(mix_wins)} of {len(mix)} domains")
               for line in lines)

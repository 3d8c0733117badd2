"""`m2rl compile` and `m2rl submit --dry-run` (no KFP API server can run here: nothing is contacted)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from m2rl.cli import app
from m2rl.orchestration.package import read_package, run_url, task_names

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_compile_command(tmp_path):
    out = tmp_path / "study.yaml"
    res = runner.invoke(app, ["compile", str(REPO / "examples" / "smoke.yaml"), "-o", str(out), "--variant", "mix"])
    assert res.exit_code == 0, res.output
    assert f"{out}: 6 tasks" in res.output
    assert task_names(read_package(out)[0]) == ["analyze", "data", "evaluate base", "evaluate mix", "report", "train mix"]


def test_submit_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    pkg = tmp_path / "pkg" / "paper.yaml"
    res = runner.invoke(app, [
        "submit", str(REPO / "examples" / "qwen3-4b-paper.yaml"), "--host", "http://127.0.0.1:9", "--dry-run",
        "--experiment", "paper-exp", "--run-name", "paper-run-1", "--package", str(pkg),
    ])
    assert res.exit_code == 0, res.output
    assert f"package: {pkg} (qwen3-4b-mix-vs-merge, 30 tasks)" in res.output
    assert "experiment: paper-exp" in res.output and "run name: paper-run-1" in res.output
    assert "service account: m2rl-launcher" in res.output
    assert "dry run: would create the MLflow parent run and a KFP run on http://127.0.0.1:9" in res.output
    ps, platform = read_package(pkg)
    assert ps["pipelineInfo"]["name"] == "qwen3-4b-mix-vs-merge" and "kubernetes" in platform["platforms"]
    assert not (tmp_path / "never.db").exists()  # no MLflow parent run in a dry run


def test_submit_defaults_and_bad_variant(tmp_path):
    res = runner.invoke(app, ["submit", str(REPO / "examples" / "smoke.yaml"), "--host", "http://h", "--dry-run",
                              "--package", str(tmp_path / "s.yaml"), "--service-account", ""])
    assert res.exit_code == 0, res.output
    assert "experiment: m2rl-smoke" in res.output and "run name: m2rl-smoke-" in res.output
    assert "service account: (KFP default)" in res.output
    bad = runner.invoke(app, ["compile", str(REPO / "examples" / "smoke.yaml"), "--variant", "both"])
    assert bad.exit_code == 2 and "--variant must be one of study, mix, merge" in bad.output
    assert run_url("http://kfp:8080/", "abc") == "http://kfp:8080/#/runs/details/abc"


def test_bad_spec_exits_2(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ntrain: {lr: -1}\n")
    res = runner.invoke(app, ["run", str(spec)])
    assert res.exit_code == 2 and "train.lr" in res.output

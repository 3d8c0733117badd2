"""Commands `m2rl analyze`, `m2rl report` and `m2rl compare`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from m2rl.commands import load_spec_or_exit


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


_spec = load_spec_or_exit


def analyze_cmd(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    artifact_root: str = typer.Option(None, "--artifact-root", help="Study artifacts; default the spec's."),
    inputs: Path = typer.Option(
        None, "--inputs", help="JSON {models, base, evals, train_cards} instead of the artifact layout."
    ),
    out: str = typer.Option(None, "--out", "-o", help="Output folder; default <artifact_root>/analysis."),
) -> None:
    """Run the spec's analyses over the study's checkpoints, eval folders and train cards -> analysis.json."""
    from m2rl import storage, tracking
    from m2rl.analysis import AnalysisError, analyze
    from m2rl.analysis.stage import inputs_from_layout
    from m2rl.checkpoint import CheckpointError
    from m2rl.names import Layout
    from m2rl.registry import RegistryError

    s = _spec(spec)
    root = artifact_root or s.artifact_root
    try:
        if inputs is not None:
            try:
                args = json.loads(inputs.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                _fail(f"--inputs: {inputs}: {exc}")
            missing = [k for k in ("models", "base", "evals") if k not in args]
            if missing:
                _fail(f"--inputs: {inputs}: missing keys {', '.join(missing)}")
        else:
            args = inputs_from_layout(s, root)
        with tracking.command_run("analyze", s):
            result = analyze(s, args["models"], args["base"], args["evals"], args.get("train_cards") or {},
                             out or Layout(root).analysis)
    except (AnalysisError, CheckpointError, RegistryError, storage.StorageError) as exc:
        _fail(str(exc))
    for name, status in result.sections.items():
        typer.echo(f"  {name:<12} {status}  ({result.seconds.get(name, 0):.1f}s)")
    typer.echo(f"analysis -> {result.analysis_path}")


def report_cmd(
    source: Path = typer.Argument(..., help="Experiment spec (YAML) or an analysis folder / analysis.json."),
    out: str = typer.Option(
        None, "--out", "-o", help="Output folder; default <artifact_root>/report for a spec, else the analysis folder."
    ),
    parent_run_id: str = typer.Option(None, "--parent-run-id", help="MLflow run to log to; default the study's."),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Write the files only."),
) -> None:
    """Build report.html (self-contained) and report.md from analysis.json; log them to the study's run."""
    from m2rl import storage, tracking
    from m2rl.analysis import AnalysisError, build_report
    from m2rl.names import Layout

    run_id = parent_run_id or (None if no_mlflow else tracking.env_parent())
    if source.suffix in (".yaml", ".yml"):
        s = _spec(source)
        analysis_dir = Layout(s.artifact_root).analysis
        out = out or Layout(s.artifact_root).report
        if not no_mlflow and run_id is None:
            run_id = tracking.latest_parent(s)
    else:
        analysis_dir = str(source)
    try:
        result = build_report(analysis_dir, out, parent_run_id=run_id, log_mlflow=not no_mlflow)
    except (AnalysisError, storage.StorageError) as exc:
        _fail(str(exc))
    for line in result.verdict:
        typer.echo(line)
    typer.echo(f"report -> {result.html}, {result.markdown}")
    if result.mlflow_run_id:
        typer.echo(f"logged {result.metrics_logged} metrics and the report to MLflow run {result.mlflow_run_id}")


def compare_cmd(
    experiment: str = typer.Option(..., "--experiment", "-e", help="MLflow experiment holding the studies."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="Default $MLFLOW_TRACKING_URI."),
    run_id: str = typer.Option(None, "--run-id", help="Only this study (parent run)."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the tables to this Markdown file."),
) -> None:
    """Rebuild the report's tables for every study of an experiment from the MLflow server alone."""
    from m2rl.analysis import AnalysisError, compare

    try:
        result = compare(experiment, tracking_uri=tracking_uri, run_id=run_id)
    except AnalysisError as exc:
        _fail(str(exc))
    except Exception as exc:  # MLflow raises its own types for an unreachable server
        _fail(f"MLflow at {tracking_uri or os.environ.get('MLFLOW_TRACKING_URI', '(default)')}: {exc}")
    text = result.to_markdown()
    typer.echo(text)
    if out is not None:
        out.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_cmd)
    app.command("report")(report_cmd)
    app.command("compare")(compare_cmd)

"""`m2rl train`: one GRPO run (a domain or the mix) from the spec's `train` section."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer


def load_spec_from_env(name: str):
    """The spec held by environment variable `name` (JSON or YAML text, as a RayJob carries it in
    `M2RL_SPEC_YAML`), or exit 2 naming the variable and every error by field path."""
    import json
    import os

    import yaml

    from m2rl.spec import SpecError, spec_from_dict

    text = os.environ.get(name, "")
    if not text.strip():
        typer.echo(f"--spec-env: environment variable {name} is not set or empty", err=True)
        raise typer.Exit(2)
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            typer.echo(f"${name}: invalid spec\n  not valid JSON or YAML: {getattr(exc, 'problem', exc)}", err=True)
            raise typer.Exit(2) from None
    try:
        return spec_from_dict(data, f"${name}")
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def train_command(
    spec: Path = typer.Argument(None, help="Experiment spec (YAML); or --spec-env."),
    run: str = typer.Option(..., "--run", help="A domain of the spec, or 'mix' for the blended run."),
    data: str = typer.Option(
        None, "--data", help="Train records parquet (local or s3://); default <artifact_root>/data/train/<run>.parquet."
    ),
    base: str = typer.Option(None, "--base", help="Base model: HF id, folder, s3:// URI; default spec.base_model."),
    out: str = typer.Option(
        None, "--out", "-o", help="Checkpoint folder or s3:// URI; default <artifact_root>/models/<single-run|mix>."
    ),
    checkpoints: str = typer.Option(
        None, "--checkpoints", help="Periodic checkpoints (resume); default <artifact_root>/checkpoints/<out name>."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check the job and print the backend command; run nothing."),
    spec_env: str = typer.Option(
        None, "--spec-env", help="Read the spec (JSON or YAML) from this environment variable instead of a file "
        "(a RayJob carries it in M2RL_SPEC_YAML)."
    ),
) -> None:
    """Train one model with GRPO (TRL on the CPU, OpenRLHF on GPUs) and write a Hugging Face checkpoint."""
    from m2rl import storage, tracking
    from m2rl.commands import load_spec_or_exit
    from m2rl.names import Layout, run_model
    from m2rl.registry import RegistryError
    from m2rl.train import TrainError, describe, train

    if (spec is None) == (spec_env is None):
        typer.echo("spec: give either a spec file or --spec-env VAR, not both and not neither", err=True)
        raise typer.Exit(2)
    s = load_spec_or_exit(spec) if spec is not None else load_spec_from_env(spec_env)
    layout = Layout(s.artifact_root)
    base_ref = base or s.base_model
    data = data or layout.train_split(run)
    out = out or layout.model(run_model(run))
    try:
        if dry_run:
            cmd = describe(s, run, data, base_ref, out, checkpoint_dir=checkpoints)
            typer.echo(shlex.join(cmd))
            return
        with tracking.command_run("train", s, model=run_model(run)):
            result = train(s, run, data, base_ref, out, checkpoint_dir=checkpoints)
    except (TrainError, RegistryError, storage.StorageError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    first = result.reward_curve[0]["reward"] if result.reward_curve else float("nan")
    last = result.reward_curve[-1]["reward"] if result.reward_curve else float("nan")
    typer.echo(
        f"train {result.run} ({result.backend}) -> {result.out}: {result.steps} steps, reward {first:.3f} -> "
        f"{last:.3f}, {result.wall_seconds:.0f}s, {result.gpu_hours:.4f} {result.device}-hours"
        + (f", resumed from step {result.resumed_from_step}" if result.resumed_from_step else "")
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)

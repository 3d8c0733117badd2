"""`m2rl rayjob`: build (and with a cluster, run) the KubeRay RayJob of one training job."""

from __future__ import annotations

from pathlib import Path

import typer


def rayjob(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    domain: str = typer.Option(..., "--domain", help="Training run: a domain of the spec, or 'mix'."),
    data: str = typer.Option(..., "--data", help="Train split URI (parquet) the job reads."),
    base: str = typer.Option(..., "--base", help="Base checkpoint URI or model reference."),
    out: str = typer.Option(..., "--out", help="Checkpoint output URI."),
    name: str = typer.Option(None, "--name", help="RayJob name; default m2rl-<study>-<run>-<hash>."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the RayJob manifest (YAML) and exit."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds to wait before deleting the RayJob."),
) -> None:
    """Run `m2rl train` for one domain (or the mix) as a KubeRay RayJob; exit with its mapped exit code."""
    from m2rl.commands import load_spec_or_exit
    from m2rl.k8s import RayJobError, build_rayjob, launch_training, rayjob_name, to_yaml, train_command
    from m2rl.names import MIX

    s = load_spec_or_exit(spec)
    allowed = [*s.domains, MIX]
    if domain not in allowed:
        typer.echo(f"--domain: {domain!r} is not one of {', '.join(allowed)}", err=True)
        raise typer.Exit(2)
    job_name = name or rayjob_name(s.name, domain)
    try:
        manifest = build_rayjob(s, train_command(domain, data, base, out), name=job_name)
    except RayJobError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if dry_run:
        typer.echo(to_yaml(manifest), nl=False)
        return
    result = launch_training(s, run=domain, data=data, base=base, out=out, name=job_name, timeout_s=timeout)
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("rayjob")(rayjob)

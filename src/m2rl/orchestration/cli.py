"""Commands `m2rl run`, `m2rl compile` and `m2rl submit`."""

from __future__ import annotations

from pathlib import Path

import typer

from m2rl.commands import load_spec_or_exit

DEFAULT_SPEC = Path("examples/demo.yaml")
VARIANT_HELP = "Pipeline: study (the spec's paradigms), mix (mix only) or merge (merge only)."


def _variant(variant: str) -> str:
    from m2rl.workflow.plan import VARIANTS

    if variant not in VARIANTS:
        typer.echo(f"error: --variant must be one of {', '.join(VARIANTS)}, got {variant!r}", err=True)
        raise typer.Exit(2)
    return variant


def run(
    spec: Path = typer.Argument(DEFAULT_SPEC, help="Experiment spec (YAML); default examples/demo.yaml."),
    variant: str = typer.Option("study", "--variant", help=VARIANT_HELP),
    new_run: bool = typer.Option(False, "--new-run", help="A new MLflow parent run instead of resuming the last one."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rerun every stage, even those already finished."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Stream every task's log here (else to a log file)."),
) -> None:
    """Run the whole study on this machine: the KFP pipeline via kfp.local, local MLflow and artifacts.

    Finished stages are reused (rerun after an interruption to resume); prints the report and MLflow UI at the end.
    """
    from rich.console import Console

    from m2rl.orchestration.local import LocalRunError, headline, run_local

    s = load_spec_or_exit(spec)
    console = Console(stderr=True)
    try:
        result = run_local(s, spec_path=spec, variant=_variant(variant), resume=not new_run, use_cache=not no_cache,
                           verbose=verbose, console=console)
    except LocalRunError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: run the same command again to resume from the last finished stage", err=True)
        raise typer.Exit(130) from None
    cached = sum(1 for v in result.statuses.values() if v == "cached")
    out = Console()
    table = headline(str(Path(result.report_html).parent))
    if table is not None:
        out.print(table)
    for line in result.verdict:
        out.print(line, highlight=False)
    out.print(
        f"done in {result.wall_seconds:.0f}s ({len(result.statuses) - cached} stages run, {cached} reused)\n"
        f"report: {result.report_html}\n"
        f"MLflow: {result.mlflow_ui}  (parent run {result.parent_run_id})", highlight=False, soft_wrap=True,
    )


def compile_cmd(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    out: Path = typer.Option(Path("study.yaml"), "--out", "-o", help="Pipeline package to write."),
    variant: str = typer.Option("study", "--variant", help=VARIANT_HELP),
) -> None:
    """Compile the study pipeline into a KFP package (YAML) for a cluster."""
    from m2rl.orchestration.package import compile_package, read_package, task_names

    s = load_spec_or_exit(spec)
    path = compile_package(s, out, _variant(variant))
    names = task_names(read_package(path)[0])
    typer.echo(f"{path}: {len(names)} tasks ({', '.join(names)})")


def submit_cmd(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    host: str = typer.Option(..., "--host", help="KFP API server URL, e.g. http://localhost:8080."),
    experiment: str = typer.Option(None, "--experiment", help="KFP experiment; default the spec's tracking experiment or name."),
    run_name: str = typer.Option(None, "--run-name", help="KFP run and MLflow parent run name; default <study>-<time>."),
    namespace: str = typer.Option(None, "--namespace", help="KFP namespace (multi-user deployments)."),
    service_account: str = typer.Option(
        None, "--service-account", help="Service account of the run; default kubernetes.service_account ('' for KFP's)."
    ),
    package: Path = typer.Option(None, "--package", help="Where to write the pipeline package; default under work_dir."),
    variant: str = typer.Option("study", "--variant", help=VARIANT_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compile and show what would be submitted; contact nothing."),
    token: str = typer.Option(
        None, "--token", envvar="M2RL_KFP_TOKEN", show_envvar=True,
        help="Bearer token for the KFP API server (e.g. `kubectl create token`); prefer the environment variable.",
    ),
) -> None:
    """Compile the pipeline and create a run on a KFP cluster; prints the run URL and the MLflow parent run.

    Exit 2 with one line when nothing runs: the server cannot be reached, refuses the credentials or the
    namespace, or rejects the package (then the MLflow parent run already made is ended FAILED).
    """
    from m2rl.orchestration.package import SubmitError, submit

    s = load_spec_or_exit(spec)
    try:
        r = submit(s, host, experiment=experiment, run_name=run_name, namespace=namespace,
                   service_account=service_account, package=package, variant=_variant(variant), dry_run=dry_run,
                   spec_path=spec, token=token)
    except SubmitError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # anything else (compiling, writing the package)
        if isinstance(exc, typer.Exit):
            raise
        typer.echo(f"error: submitting to {host}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"package: {r.package} ({r.pipeline_name}, {len(r.tasks)} tasks)")
    typer.echo(f"experiment: {r.experiment}\nrun name: {r.run_name}")
    typer.echo(f"service account: {r.service_account or '(KFP default)'}; namespace: {r.namespace or '(KFP default)'}")
    if r.dry_run:
        typer.echo(f"dry run: would create the MLflow parent run and a KFP run on {host} with arguments "
                   f"{sorted(r.arguments)}")
        return
    typer.echo(f"KFP run: {r.run_url}\nMLflow parent run: {r.parent_run_id}")
    if r.warning:
        typer.echo(f"warning: {r.warning}", err=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("compile")(compile_cmd)
    app.command("submit")(submit_cmd)

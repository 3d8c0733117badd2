"""Foundation commands: `m2rl validate` and `m2rl data`."""

from __future__ import annotations

from pathlib import Path

import typer


def load_spec_or_exit(spec_path: Path):
    """The spec at `spec_path`, or exit 2 with every error by field path (shared by all commands)."""
    from m2rl.spec import SpecError, load_spec

    try:
        return load_spec(spec_path)
    except SpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def validate(spec: Path = typer.Argument(..., help="Experiment spec (YAML).")) -> None:
    """Check a spec and explain every error by field path (exit code 2 when invalid)."""
    s = load_spec_or_exit(spec)
    typer.echo(
        f"{spec}: valid — study {s.name!r}, base {s.base_model}, domains {', '.join(s.domains)}, "
        f"paradigms {', '.join(s.paradigms)}, backend {s.train.backend}"
    )


def data(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    out: str = typer.Option(None, "--out", "-o", help="Output folder or s3:// URI; default <artifact_root>/data."),
) -> None:
    """Run the data stage alone: sources -> per-domain train/eval parquet, the mix blend, data card."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn
    from rich.table import Table

    from m2rl import storage, tracking
    from m2rl.data import DataStageError, run_data_stage
    from m2rl.names import Layout

    s = load_spec_or_exit(spec)
    target = out or Layout(s.artifact_root).data
    console = Console(stderr=True)
    try:
        with tracking.command_run("data", s), Progress(
            SpinnerColumn(), TextColumn("[bold]data[/] {task.description}"), console=console, transient=True
        ) as bar:
            task = bar.add_task("reading sources", total=None)
            result = run_data_stage(s, target, progress=lambda what, n: bar.update(task, description=f"{n:,} {what}"))
    except (DataStageError, storage.StorageError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"data -> {result.out}")
    for col in ("domain", "train", "eval", "duplicates"):
        table.add_column(col, justify="right" if col != "domain" else "left")
    for d, c in result.counts.items():
        table.add_row(d, str(c.get("train", sum(c.values()) if d == "mix" else 0)), str(c.get("eval", "")),
                      str(c.get("duplicates", "")))
    Console().print(table)
    if result.rejects:
        typer.echo(f"{result.rejects} rejected rows: see {storage.join(result.out, 'rejects.jsonl')}")


def list_registered(
    kind: str = typer.Argument(None, help="merge, verifier, source, benchmark, analysis, train_backend, eval_backend."),
    as_json: bool = typer.Option(False, "--json", help="JSON: every entry with its parameters."),
) -> None:
    """Every registered name of a kind (default every kind), with its parameters and their descriptions."""
    import json

    from m2rl.registry import REGISTRIES, RegistryError, registry

    try:
        kinds = [registry(kind)] if kind else list(REGISTRIES.values())
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        doc = {r.kind: [{"name": e.name, "description": e.description,
                         "params": [{"name": n, "default": d, "description": t} for n, d, t in e.param_docs()]}
                        for e in r.entries()] for r in kinds}
        typer.echo(json.dumps(doc, indent=1))
        return
    for r in kinds:
        typer.echo(f"{r.kind}: every {r.what} (from {r.package}):")
        for e in r.entries():
            typer.echo(f"  {e.name}: {e.description}")
            for n, d, t in e.param_docs():
                typer.echo(f"      {n} = {d}: {t}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("data")(data)
    app.command("list")(list_registered)

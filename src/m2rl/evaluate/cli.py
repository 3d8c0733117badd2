"""`m2rl eval MODEL`: evaluate one model on benchmarks and print a table of Avg@K, pass@k, maj@K, CI."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    model: str = typer.Argument(..., help="Model: a checkpoint folder, s3:// URI, HF id, smollm2-135m-instruct, random:tiny."),
    spec: Path = typer.Option(None, "--spec", "-s", help="Experiment spec (YAML): its evaluate section and artifact root."),
    benchmark: list[str] = typer.Option(None, "--benchmark", "-b", help="Benchmark name (repeatable); default: the spec's."),
    out: str = typer.Option(None, "--out", "-o", help="Eval folder or s3:// URI; default <artifact_root>/eval/<name>."),
    k: int = typer.Option(None, "--k", min=1, help="Samples per problem for every benchmark (overrides defaults)."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many problems per benchmark."),
    backend: str = typer.Option(None, "--backend", help="hf or vllm; default: the spec's (hf)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", min=1, help="Cap on generated tokens."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Prompts per generation batch."),
    name: str = typer.Option(None, "--name", help="Model name in the eval folder and MLflow (base, mix, ...)."),
) -> None:
    """Evaluate MODEL: sample K responses per problem, score them, write metrics.json and samples."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from m2rl import storage, tracking
    from m2rl.commands import load_spec_or_exit
    from m2rl.evaluate import EvalError, default_model_name, evaluate
    from m2rl.evaluate.stage import study_benchmarks
    from m2rl.names import Layout
    from m2rl.registry import RegistryError
    from m2rl.spec import StudySpec
    from m2rl.spec.resolve import name_problems

    study = load_spec_or_exit(spec) if spec is not None else StudySpec()
    settings = study.evaluate.model_copy(deep=True)
    if batch_size is not None:
        settings.batch_size = batch_size
    if benchmark:
        from m2rl.spec.evaluate import BenchmarkSpec

        by_name = {b.name: b for b in settings.benchmarks}
        settings.benchmarks = [by_name.get(n, BenchmarkSpec(name=n)).model_copy() for n in benchmark]
    settings.benchmarks = study_benchmarks(study, settings.benchmarks)
    overrides = {"k": k, "limit": limit, "max_new_tokens": max_new_tokens}
    benches = [b.model_copy(update={f: v for f, v in overrides.items() if v is not None}) for b in settings.benchmarks]
    problems = name_problems({"evaluate": {"benchmarks": [b.model_dump(mode="json") for b in benches],
                                           "backend": backend or settings.backend}})
    if problems:
        typer.echo("\n".join(problems), err=True)
        raise typer.Exit(2)
    model_name = name or default_model_name(model)
    target = out or Layout(study.artifact_root).eval(model_name)

    console = Console(stderr=True)
    try:
        with tracking.command_run("evaluate", study if spec is not None else None, model=model_name), Progress(
            TextColumn("[bold]eval[/] {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(bench: str, done: int, total: int) -> None:
                if bench not in tasks:
                    tasks[bench] = bar.add_task(bench, total=total)
                bar.update(tasks[bench], completed=done)

            result = evaluate(
                model, benches, target, backend=backend, settings=settings, model_name=model_name, progress=progress,
            )
    except (EvalError, RegistryError, storage.StorageError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    Console().print(results_table(result))
    typer.echo(
        f"{result.generated_samples} samples generated ({result.generated_tokens} tokens in "
        f"{result.generation_seconds:.1f} s), {result.reused_samples} reused; wall {result.wall_seconds:.1f} s; "
        f"metrics: {storage.join(result.out, 'metrics.json')}"
    )


def results_table(result):
    """A rich table: one row per benchmark (Avg@K with its 95% CI, pass@k, maj@K), then per-domain rows."""
    from rich.table import Table

    pass_cols = sorted(
        {m for ms in result.metrics.values() for m in ms if m.startswith("pass_at_")}, key=lambda m: int(m[8:])
    )
    table = Table(title=f"eval {result.model} -> {result.out}")
    for col in ("benchmark", "domain", "problems", "K", "Avg@K", "95% CI"):
        table.add_column(col, justify="left" if col in ("benchmark", "domain") else "right",
                         no_wrap=col in ("benchmark", "95% CI"))
    for col in pass_cols:
        table.add_column(f"pass@{col[8:]}", justify="right")
    table.add_column("maj@K", justify="right")
    for bench, m in result.metrics.items():
        row = [bench, result.domains[bench], str(int(m["n_problems"])), str(int(m["k"])), f"{100 * m['avg_at_k']:.1f}",
               f"{100 * m['ci_low']:.1f}-{100 * m['ci_high']:.1f}"]
        row += [f"{100 * m[c]:.1f}" if c in m else "" for c in pass_cols]
        row.append(f"{100 * m['maj_at_k']:.1f}" if "maj_at_k" in m else "-")
        table.add_row(*row)
    if result.domain_metrics:
        table.add_section()
        for domain, m in result.domain_metrics.items():
            table.add_row("[italic](domain avg)[/]", domain, "", "", f"{100 * m['avg_at_k']:.1f}", "",
                          *([""] * len(pass_cols)), "")
    return table


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)

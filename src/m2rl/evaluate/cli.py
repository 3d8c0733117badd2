"""`m2rl eval MODEL`: evaluate one model on benchmarks and print a table of Avg@K, pass@k, maj@K, CI.

`m2rl benchmark NAME`: what a benchmark's loader makes of its data, before any model runs: the problems as
unified records (`--json`: one JSON line each) and the benchmark's card (rows read, malformed rows skipped
with their reasons, rows its rules leave out).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    require_think_close: bool = typer.Option(
        None, "--require-think-close/--no-require-think-close",
        help="Score 0 a response without </think>; default: the spec's rewards.require_think_close.",
    ),
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
                require_think_close=(study.rewards.require_think_close if require_think_close is None
                                     else require_think_close), env_params=study.envs,
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


def _options(items: list[str] | None) -> dict[str, Any]:
    """`--option KEY=VALUE` pairs (the value read as YAML: numbers, booleans, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            typer.echo(f"error: --option {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(2)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            typer.echo(f"error: --option {item!r}: {exc}", err=True)
            raise typer.Exit(2) from None
    return out


def _head(rec: dict[str, Any], width: int = 100) -> str:
    """The start of a record's last user turn, on one line."""
    users = [m["content"] for m in rec["prompt"] if m["role"] == "user"]
    text = " ".join((users[-1] if users else "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def benchmark_command(
    name: str = typer.Argument(..., help="Registered benchmark (see `m2rl list benchmark`)."),
    path: str = typer.Option(None, "--path", "-p", help="Local file/folder or s3:// URI instead of its hub dataset."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="Print at most this many problems."),
    as_json: bool = typer.Option(False, "--json", help="One unified record per line on stdout; the card on stderr."),
    option: list[str] = typer.Option(None, "--option", "-O", help="Benchmark option KEY=VALUE (repeatable)."),
    spec: Path = typer.Option(None, "--spec", "-s", help="Start from this spec's entry for NAME (path, options)."),
) -> None:
    """Show what benchmark NAME loads: its problems as unified records and its card's counts."""
    from m2rl import storage
    from m2rl.evaluate.registry import EvalError, load_benchmark
    from m2rl.registry import RegistryError
    from m2rl.spec.evaluate import BenchmarkSpec

    entry = BenchmarkSpec(name=name)
    if spec is not None:
        from m2rl.commands import load_spec_or_exit
        from m2rl.evaluate.stage import study_benchmarks

        study = load_spec_or_exit(spec)
        listed = [b for b in study.evaluate.benchmarks if b.name == name]
        entry = study_benchmarks(study, listed or [entry])[0]
    update: dict[str, Any] = {"options": {**entry.options, **_options(option)}}
    if path is not None:
        update["path"] = path
    entry = entry.model_copy(update=update)
    try:
        problems = load_benchmark(entry)
    except (EvalError, RegistryError, storage.StorageError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    shown = problems[:limit] if limit is not None else list(problems)
    card = problems.card
    if as_json:
        for rec in shown:
            typer.echo(json.dumps(rec, ensure_ascii=False))
        typer.echo(json.dumps({"card": card.to_dict()}, ensure_ascii=False), err=True)
        return
    for rec in shown:
        label = rec["label"] if rec["label"] != "" else "-"
        typer.echo(f"{rec['id']}  [{rec['verifier']['type']}: {label}]  {_head(rec)}")
    if len(shown) < len(problems):
        typer.echo(f"... {len(problems) - len(shown)} more")
    typer.echo("")
    typer.echo("\n".join(card.summary()))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("benchmark")(benchmark_command)

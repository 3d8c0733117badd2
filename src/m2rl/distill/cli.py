"""`m2rl distill`: multi-teacher on-policy distillation of the base from the spec's `distill` section."""

from __future__ import annotations

from pathlib import Path

import typer


def distill_command(
    spec: Path = typer.Argument(..., help="Experiment spec (YAML)."),
    data: str = typer.Option(None, "--data", help="Prompt records of every domain; default the mix blend parquet."),
    base: str = typer.Option(None, "--base", help="Student (the base): HF id, folder, s3:// URI; default spec.base_model."),
    teacher: list[str] = typer.Option(
        None, "--teacher", help="DOMAIN=CHECKPOINT, repeatable; default distill.teachers, else models/single-<domain>."),
    out: str = typer.Option(None, "--out", "-o", help="Checkpoint folder or s3:// URI; default <artifact_root>/models/distill."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what the backend would run (TRL settings or the GPU "
                                                        "launch commands); run nothing."),
) -> None:
    """Distil each domain's expert into the base on-policy (TRL on the CPU, vLLM + TRL on GPU pods)."""
    from m2rl import storage, tracking
    from m2rl.commands import load_spec_or_exit
    from m2rl.distill import DistillError, describe, distill, teacher_refs
    from m2rl.names import DISTILL, MIX, Layout

    s = load_spec_or_exit(spec)
    layout = Layout(s.artifact_root)
    teachers = teacher_refs(s, layout)
    for item in teacher or []:
        domain, sep, ref = item.partition("=")
        if not sep or domain not in s.domains or not ref:
            typer.echo(f"--teacher: {item!r} must be DOMAIN=CHECKPOINT with a domain of the spec "
                       f"({', '.join(s.domains)})", err=True)
            raise typer.Exit(2)
        teachers[domain] = ref
    data, base_ref, out = data or layout.train_split(MIX), base or s.base_model, out or layout.model(DISTILL)
    try:
        if dry_run:
            typer.echo("\n".join(describe(s, data, teachers, base_ref, out)))
            return
        with tracking.command_run("distill", s, model=DISTILL):
            result = distill(s, data, teachers, base_ref, out)
    except (DistillError, storage.StorageError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    curve = result.card.get("divergence_curve") or []
    first, last = (curve[0]["divergence"], curve[-1]["divergence"]) if curve else (float("nan"), float("nan"))
    typer.echo(f"distill ({result.backend}) -> {result.out}: {result.steps} steps, divergence {first:.4f} -> "
               f"{last:.4f}, {result.wall_seconds:.0f}s, {result.gpu_hours:.4f} {result.device}-hours")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)

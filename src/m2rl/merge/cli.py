"""`m2rl merge`: merge expert checkpoints, from flags, a YAML merge block, or a study spec.

    m2rl merge --spec study.yaml                       # every spec merge: <root>/models/merge-<label>
    m2rl merge --base B --model E1 --model E2 --method ties --param density=0.3 --out OUT
    m2rl merge --base B --model E1 --model E2 --config merge.yaml --out ROOT   # ROOT/merge-<label> each

A `--config` file holds a block like the spec's `merge` section (`methods`, `dtype`, `shard_size_mb`),
at top level or under a `merge:` key. With `--spec`, the base is the spec's `base_model` and the experts
are `<artifact_root>/models/single-<domain>` for each of its domains.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _parse_params(items: list[str] | None) -> dict:
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--param {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _merge_block(path: Path):
    import yaml
    from pydantic import ValidationError

    from m2rl.spec import MergeSpec
    from m2rl.spec.study import format_validation_error

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{path}: {exc}")
    if isinstance(data, dict) and set(data) == {"merge"}:
        data = data["merge"]
    try:
        return MergeSpec.model_validate(data or {})
    except ValidationError as exc:
        _fail(f"{path}: invalid merge block\n" + "\n".join(f"  {e}" for e in format_validation_error(exc)))


def merge_command(
    spec: Path = typer.Option(None, "--spec", "-s", help="Study spec: its base model, domains' experts and merges."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML merge block (methods, dtype, shard_size_mb)."),
    base: str = typer.Option(None, "--base", help="Base checkpoint (folder or s3:// URI)."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Expert checkpoint (repeatable)."),
    method: str = typer.Option(None, "--method", help="Merge method (one merge from flags)."),
    param: list[str] = typer.Option(None, "--param", "-p", help="Method parameter KEY=VALUE (repeatable)."),
    name: str = typer.Option(None, "--name", help="Output label (default: the method)."),
    only: list[str] = typer.Option(None, "--only", help="With --spec/--config: run only these labels (repeatable)."),
    out: str = typer.Option(
        None, "--out", "-o",
        help="With --method: the output checkpoint. Otherwise the folder receiving merge-<label> "
             "(default <artifact_root>/models).",
    ),
    dtype: str = typer.Option(None, "--dtype", help="Output dtype: base, float32, bfloat16, float16."),
    shard_size_mb: int = typer.Option(None, "--shard-size-mb", min=1, help="Max output shard size in MB."),
) -> None:
    """Merge expert checkpoints onto a base: one output checkpoint per method."""
    from rich.console import Console
    from rich.table import Table

    from m2rl import storage
    from m2rl.commands import load_spec_or_exit
    from m2rl.merge import MergeError, merge
    from m2rl.names import Layout, merge_name, single_name
    from m2rl.registry import RegistryError
    from m2rl.spec import MergeMethodSpec, MergeSpec
    from m2rl.spec.resolve import name_problems

    study = load_spec_or_exit(spec) if spec is not None else None
    if method is not None and config is not None:
        _fail("give either --method (one merge) or --config (a merge block), not both")
    if method is not None:
        block = MergeSpec(methods=[MergeMethodSpec(method=method, name=name, params=_parse_params(param))])
    elif config is not None:
        block = _merge_block(config)
    elif study is not None:
        block = study.merge
    else:
        _fail("nothing to merge: give --spec, --config or --method")
    if param and method is None:
        _fail("--param goes with --method")
    problems = name_problems({"merge": block.model_dump(mode="json")})
    if problems:
        _fail("\n".join(problems))
    base_ref = base or (study.base_model if study is not None else None)
    experts = list(model or [])
    if not experts and study is not None:
        from m2rl.merge.stage import expert_checkpoints

        try:  # each domain's expert at the step merge.expert_steps names (default its final one)
            experts = expert_checkpoints({d: Layout(study.artifact_root).model(single_name(d)) for d in study.domains},
                                         study.merge.expert_steps)
        except MergeError as exc:
            _fail(str(exc))
    if base_ref is None or not experts:
        _fail("need a base (--base or --spec) and experts (--model or --spec)")
    entries = [m for m in block.methods if not only or m.label in only]
    if only and len(entries) != len(set(only)):
        _fail(f"--only: unknown label(s) {sorted(set(only) - {m.label for m in block.methods})}")
    out_dtype = dtype or block.dtype
    shard_bytes = (shard_size_mb or block.shard_size_mb) * 2**20
    if method is not None:
        if out is None and study is None:
            _fail("--out is required with --method (the output checkpoint)")
        targets = [out or Layout(study.artifact_root).model(merge_name(entries[0].label))]
    else:
        root = out or (Layout(study.artifact_root).models if study is not None else None)
        if root is None:
            _fail("--out is required with --config (the folder receiving merge-<label>)")
        targets = [storage.join(root, merge_name(m.label)) for m in entries]

    from m2rl import tracking

    table = Table(title="merge")
    for col in ("label", "method", "tensors", "GB", "seconds", "out"):
        table.add_column(col)
    for entry, target in zip(entries, targets, strict=True):
        try:
            with tracking.command_run("merge", study, model=merge_name(entry.label)):
                r = merge(base_ref, experts, entry.method, entry.params, target, dtype=out_dtype,
                          shard_size=shard_bytes, label=entry.label)
        except (MergeError, RegistryError, storage.StorageError) as exc:
            _fail(f"{entry.label}: {exc}")
        table.add_row(r.label, r.method, str(r.tensors), f"{r.bytes / 2**30:.3f}", f"{r.seconds:.1f}", r.out)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_command)

"""Compile the study pipeline into a KFP package and submit it to a cluster with kfp.Client."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from m2rl import tracking
from m2rl.spec import StudySpec
from m2rl.workflow.plan import pipeline_name


@dataclass
class SubmitResult:
    """What `submit` sent (or, with dry_run, would send) to the KFP API server."""

    package: str
    pipeline_name: str
    experiment: str
    run_name: str
    arguments: dict[str, Any]
    service_account: str | None
    namespace: str | None
    dry_run: bool
    tasks: list[str] = field(default_factory=list)
    run_id: str | None = None
    run_url: str | None = None
    parent_run_id: str | None = None


def compile_package(spec: StudySpec, out: str | Path, variant: str = "study") -> Path:
    """Write the pipeline package (YAML: the pipeline spec, then the Kubernetes platform spec) to `out`."""
    from kfp import compiler

    import pipelines

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix not in (".yaml", ".yml"):
        raise ValueError(f"out: {path}: a pipeline package is YAML, name it *.yaml")
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        compiler.Compiler().compile(pipeline_func=pipelines.build_pipeline(spec, variant), package_path=str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_package(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline spec, platform spec) of a compiled package."""
    docs = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    return docs[0], (docs[1] if len(docs) > 1 else {})


def task_names(pipeline_spec: dict[str, Any]) -> list[str]:
    """Display names of the root DAG's tasks."""
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    return sorted(t.get("taskInfo", {}).get("name", k) for k, t in tasks.items())


def run_url(host: str, run_id: str) -> str:
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def submit(
    spec: StudySpec,
    host: str,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    package: str | Path | None = None,
    variant: str = "study",
    dry_run: bool = False,
    spec_path: str | Path | None = None,
) -> SubmitResult:
    """Compile, create the MLflow parent run and create a KFP run (dry_run: compile and describe only).

    The parent run is made from this machine with the spec's tracking URI ($MLFLOW_TRACKING_URI overrides,
    e.g. through a port-forward); its id is the `parent_run_id` argument of the KFP run.
    """
    experiment = experiment or spec.tracking.experiment or spec.name
    run_name = run_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sa = spec.kubernetes.service_account if service_account is None else (service_account or None)
    pkg = Path(package) if package else Path(spec.work_dir) / "kfp" / f"{pipeline_name(spec, variant)}.yaml"
    compile_package(spec, pkg, variant)
    result = SubmitResult(
        package=str(pkg), pipeline_name=pipeline_name(spec, variant), experiment=experiment, run_name=run_name,
        arguments={"parent_run_id": "<created at submission>"}, service_account=sa, namespace=namespace,
        dry_run=dry_run, tasks=task_names(read_package(pkg)[0]),
    )
    if dry_run:
        return result
    import kfp

    parent, _ = tracking.open_parent(spec, spec_path=spec_path, run_name=run_name, resume=False)
    result.parent_run_id = parent
    result.arguments = {"parent_run_id": parent}
    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(
        pipeline_file=str(pkg), arguments=result.arguments, run_name=run_name, experiment_name=experiment,
        namespace=namespace, service_account=sa,
    )
    result.run_id = run.run_id
    result.run_url = run_url(host, run.run_id)
    tracking.log_batch(tags={"m2rl.kfp_run_url": result.run_url}, run_id=parent)
    return result

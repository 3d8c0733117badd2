"""Compile the study pipeline into a KFP package and submit it to a cluster with kfp.Client."""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
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
    experiment_id: str | None = None
    warning: str | None = None


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


TAG_KFP_RUN_ID, TAG_KFP_RUN_URL = "m2rl.kfp_run_id", "m2rl.kfp_run_url"
TAG_KFP_EXPERIMENT_ID, TAG_KFP_ERROR = "m2rl.kfp_experiment_id", "m2rl.kfp_error"
TOKEN_ENV = "M2RL_KFP_TOKEN"  # the bearer token of `m2rl submit --token`


class SubmitError(Exception):
    """A submission that did not start a KFP run; the message is the one line for the user."""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _server_message(body: Any) -> str:
    """The message of a KFP error body (google.rpc.Status `message`, or grpc-gateway v1's `error`)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return _one_line(body or "")
    if isinstance(data, dict):
        return _one_line(data.get("message") or data.get("error") or "")
    return _one_line(body or "")


def _os_reason(exc: BaseException) -> str | None:
    """The innermost OS-level reason of a connection failure (e.g. "[Errno 111] Connection refused"), found
    through causes, contexts and urllib3's `reason`; None when there is none."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    best = None
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            best = f"{e.strerror}" if e.errno is None else f"[Errno {e.errno}] {e.strerror}"
        todo.extend([getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), BaseException) else None,
                     e.__cause__, e.__context__])
    return best


def describe_kfp_error(exc: BaseException, host: str, namespace: str | None = None) -> str:
    """One line that says what the KFP API server at `host` answered (or why it could not be reached)."""
    import kfp_server_api
    import urllib3

    if isinstance(exc, kfp_server_api.ApiException):
        status, reason = exc.status or 0, exc.reason or ""
        if status == 0:  # the generated client's code for an SSL or connection failure
            return f"cannot reach the KFP API server at {host}: {_one_line(reason)}"
        said = _server_message(exc.body)
        said = f": {said}" if said else ""
        if status == 401:
            return (f"the KFP API server at {host} needs credentials (401 {reason}{said}); pass a bearer token with "
                    f"--token or ${TOKEN_ENV}")
        if status == 403:
            where = f" in namespace {namespace!r}" if namespace else ""
            return (f"the KFP API server at {host} denied access{where} (403 {reason}{said}); check --namespace and "
                    "the token's access")
        return f"the KFP API server at {host} rejected the request ({status} {reason}{said})"
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return f"cannot reach the KFP API server at {host}: {_os_reason(exc) or _one_line(str(exc))}"
    return f"submitting to {host}: {type(exc).__name__}: {_one_line(str(exc))}"


def _kfp_client(host: str, namespace: str | None, token: str | None) -> Any:
    """A kfp.Client for `host`, after one health check (kfp.Client's own retries five times, 5 s apart, and logs
    a traceback each time); raises SubmitError when the server cannot be reached or refuses."""
    import kfp
    import kfp_server_api

    config = kfp_server_api.Configuration(host=host.rstrip("/"))
    if token:
        config.api_key["authorization"] = token
        config.api_key_prefix["authorization"] = "Bearer"
    try:
        health = kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(config)).healthz_service_get_healthz(
            _request_timeout=30)
    except Exception as exc:
        raise SubmitError(describe_kfp_error(exc, host, namespace)) from exc
    if health.multi_user and not namespace:
        raise SubmitError(f"the KFP API server at {host} is multi-user: pass --namespace (your profile's namespace)")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)  # "This client only works with Kubeflow Pipeline v2.0.0-beta.2"
        try:
            return kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token or None)
        except Exception as exc:
            raise SubmitError(describe_kfp_error(exc, host, namespace)) from exc


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
    token: str | None = None,
) -> SubmitResult:
    """Compile, create the MLflow parent run and create a KFP run (dry_run: compile and describe only).

    In order: the KFP health check and the experiment (found by name, else created), so that an unreachable
    server, missing credentials or a namespace without access are told at once and leave nothing behind; the
    compile; the MLflow parent run, made from this machine with the spec's tracking URI ($MLFLOW_TRACKING_URI
    overrides, e.g. through a port-forward; when it fails only the experiment is left); the KFP run of the
    package with the arguments `spec_json` (the resolved spec) and `parent_run_id`; then the parent run is
    tagged with the KFP run id, URL and experiment id. When KFP refuses the run, the parent run is ended
    FAILED with the server's answer in the tag `m2rl.kfp_error`.
    Raises SubmitError (one line) for anything that leaves no KFP run.
    """
    if not host.startswith(("http://", "https://")):
        raise SubmitError(f"--host must be the http:// or https:// URL of the KFP API server, got {host!r}")
    experiment = experiment or spec.tracking.experiment or spec.name
    run_name = run_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    sa = spec.kubernetes.service_account if service_account is None else (service_account or None)
    pkg = Path(package) if package else Path(spec.work_dir) / "kfp" / f"{pipeline_name(spec, variant)}.yaml"
    client = exp = None
    if not dry_run:  # first the server: a wrong host, token or namespace is told before the compile
        client = _kfp_client(host, namespace, token)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # kfp prints "Experiment details: <link>"
                exp = client.create_experiment(name=experiment, namespace=namespace)
        except Exception as exc:
            raise SubmitError(describe_kfp_error(exc, host, namespace)) from exc
    compile_package(spec, pkg, variant)
    result = SubmitResult(
        package=str(pkg), pipeline_name=pipeline_name(spec, variant), experiment=experiment, run_name=run_name,
        arguments={"spec_json": "<the resolved spec>", "parent_run_id": "<created at submission>"},
        service_account=sa, namespace=namespace, dry_run=dry_run, tasks=task_names(read_package(pkg)[0]),
    )
    if client is None or exp is None:
        return result
    result.experiment_id = exp.experiment_id

    try:
        parent, _ = tracking.open_parent(spec, spec_path=spec_path, run_name=run_name, resume=False)
    except Exception as exc:
        uri, reason = tracking.tracking_uri(spec), _os_reason(exc)
        if reason:
            raise SubmitError(f"cannot reach the MLflow tracking server at {uri}: {reason}") from exc
        raise SubmitError(f"creating the MLflow parent run at {uri}: {type(exc).__name__}: "
                          f"{_one_line(str(exc))}") from exc
    result.parent_run_id = parent
    result.arguments = {"spec_json": spec.model_dump_json(), "parent_run_id": parent}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # kfp prints "Run details: <link>"
            run = client.create_run_from_pipeline_package(
                pipeline_file=str(pkg), arguments=result.arguments, run_name=run_name, experiment_id=exp.experiment_id,
                namespace=namespace, service_account=sa,
            )
    except Exception as exc:
        message = describe_kfp_error(exc, host, namespace)
        try:
            tracking.log_batch(tags={TAG_KFP_ERROR: message}, run_id=parent)
            tracking.finish_run(parent, "FAILED")
            ended = f"; MLflow parent run {parent} ended FAILED"
        except Exception as mlflow_exc:
            ended = f"; MLflow parent run {parent} is left RUNNING ({type(mlflow_exc).__name__})"
        raise SubmitError(message + ended) from exc
    result.run_id = run.run_id
    result.run_url = run_url(host, run.run_id)
    try:
        tracking.log_batch(tags={TAG_KFP_RUN_ID: run.run_id, TAG_KFP_RUN_URL: result.run_url,
                                 TAG_KFP_EXPERIMENT_ID: exp.experiment_id}, run_id=parent)
    except Exception as exc:  # the KFP run is created and will log into the parent run: say so, do not fail
        result.warning = (f"the KFP run is created but tagging MLflow parent run {parent} with it failed: "
                          f"{type(exc).__name__}: {_one_line(str(exc))}")
    return result

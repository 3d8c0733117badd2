"""`m2rl submit` for real against a KFP v2beta1 API server on loopback (tests/orchestration/kfp_server.py): the
kfp.Client of the venv (2.17) talks HTTP to it; MLflow is a real `mlflow server` (conftest) or a SQLite store.

Checked: the package kfp.Client sends is the one `m2rl compile` makes; the experiment is created once and
then reused; the run's parameters are the resolved spec and the MLflow parent run id; the parent run is
tagged with the KFP run; and the one line (exit 2) a user gets for an unreachable server, missing
credentials (401), a namespace without access (403) and a package the server rejects (400), with no MLflow
parent run left RUNNING.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from m2rl.cli import app
from m2rl.orchestration.package import read_package, task_names
from m2rl.spec import StudySpec, load_spec
from tests.conftest import free_port
from tests.orchestration.kfp_server import KfpApiServer

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "examples" / "smoke.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    import kfp

    # kfp.Client reads (and in-cluster, writes) ~/.config/kfp/context.json: keep the user's out of the tests.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for var in ("M2RL_KFP_TOKEN", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME",
                "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@pytest.fixture
def untouched_mlflow(tmp_path, monkeypatch):
    """A SQLite store that does not exist yet: opening a parent run would create it."""
    db = tmp_path / "never" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    yield db
    assert not db.exists(), "an MLflow parent run was made"


@pytest.fixture
def sqlite_mlflow(tmp_path, monkeypatch):
    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    MlflowClient(f"sqlite:///{db}").search_experiments()  # make the tables now (MLflow logs it)
    return db


def parent_runs(db: Path) -> list:
    client = MlflowClient(f"sqlite:///{db}")
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def serve(**settings) -> KfpApiServer:
    return KfpApiServer(**settings).start()


@pytest.fixture
def kfp_api():
    servers: list[KfpApiServer] = []

    def make(**settings) -> KfpApiServer:
        servers.append(serve(**settings))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def submit(host: str, tmp_path: Path, *extra: str):
    return runner.invoke(app, ["submit", str(SMOKE), "--host", host, "--variant", "mix",
                               "--package", str(tmp_path / "pkg" / "smoke-mix.yaml"), *extra])


def one_error_line(res) -> str:
    """The whole output of a failed submit: a single `error: ...` line, no traceback."""
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


@pytest.mark.filterwarnings("ignore:This client only works with Kubeflow Pipeline:FutureWarning")
def test_submit_creates_the_run_and_tags_the_parent(kfp_api, mlflow_server, tmp_path, monkeypatch):
    """A multi-user KFP behind a token: the run lands in the namespace's experiment, tagged on the parent."""
    import kfp
    import kfp_server_api

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("M2RL_KFP_TOKEN", "s3cret")
    api = kfp_api(token="s3cret", multi_user=True, allowed_namespaces=("team-a",))
    res = submit(api.url, tmp_path, "--experiment", "smoke-exp", "--run-name", "smoke-1", "--namespace", "team-a")
    assert res.exit_code == 0, res.output
    assert {r.headers.get("authorization") for r in api.requests} == {"Bearer s3cret"}
    (run,) = api.runs.values()
    pid = res.output.split("MLflow parent run: ")[1].split()[0]
    assert f"KFP run: {api.url}/#/runs/details/{run['run_id']}" in res.output
    assert "Experiment details" not in res.output and "Run details" not in res.output  # kfp's prints are muted

    # The experiment: looked up by name (kfp's EQUALS filter), not found, created.
    (listed,) = api.calls("GET", "/experiments")
    (pred,) = json.loads(listed.query["filter"][0])["predicates"]
    assert pred["key"] == "display_name" and pred["stringValue"] == "smoke-exp"
    assert listed.query["namespace"] == ["team-a"]
    (created,) = api.calls("POST", "/experiments")
    (exp,) = api.experiments.values()
    assert created.body["display_name"] == "smoke-exp" and created.body["namespace"] == "team-a"
    assert exp["namespace"] == "team-a" and run["experiment_id"] == exp["experiment_id"]

    # The package kfp.Client sent is the compiled one: pipeline spec and Kubernetes platform spec.
    pipeline, platform = read_package(tmp_path / "pkg" / "smoke-mix.yaml")
    (posted,) = api.calls("POST", "/runs")
    sent = posted.body["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == pipeline["pipelineInfo"]["name"] == "m2rl-smoke-mix"
    assert task_names(sent["pipeline_spec"]) == task_names(pipeline) == [
        "analyze", "data", "evaluate base", "evaluate mix", "report", "train mix"]
    assert sent["pipeline_spec"]["components"].keys() == pipeline["components"].keys()
    assert sent["pipeline_spec"]["deploymentSpec"] == pipeline["deploymentSpec"]
    assert sent["platform_spec"]["platforms"]["kubernetes"] == platform["platforms"]["kubernetes"]
    assert posted.body["display_name"] == "smoke-1" and posted.body["service_account"] == "m2rl-launcher"

    # The parameters: the resolved spec (as the package's default) and the MLflow parent run.
    params = posted.body["runtime_config"]["parameters"]
    assert params.keys() == {"spec_json", "parent_run_id"} and params["parent_run_id"] == pid
    assert StudySpec.model_validate_json(params["spec_json"]) == load_spec(SMOKE)
    assert params["spec_json"] == pipeline["root"]["inputDefinitions"]["parameters"]["spec_json"]["defaultValue"]

    # The MLflow parent run (on the tracking server) carries the KFP run.
    parent = MlflowClient(mlflow_server).get_run(pid)
    assert parent.info.status == "RUNNING" and parent.info.run_name == "smoke-1"
    assert parent.data.tags["m2rl.kfp_run_id"] == run["run_id"]
    assert parent.data.tags["m2rl.kfp_run_url"] == f"{api.url}/#/runs/details/{run['run_id']}"
    assert parent.data.tags["m2rl.kfp_experiment_id"] == exp["experiment_id"]
    assert parent.data.tags["m2rl.study"] == "m2rl-smoke"

    # What the server now holds, read back through kfp.Client (GET runs/{id}).
    client = kfp.Client(host=api.url, existing_token="s3cret", namespace="team-a")
    got = client.get_run(run["run_id"])
    assert got.state == "PENDING" and got.experiment_id == exp["experiment_id"]
    assert got.runtime_config.parameters["parent_run_id"] == pid
    # ... and it checks parameters against the package's inputs, as the API server does (a stale package).
    with pytest.raises(kfp_server_api.ApiException) as err:
        client.run_pipeline(exp["experiment_id"], "x", str(tmp_path / "pkg" / "smoke-mix.yaml"),
                            params={"spec": "{}", "parent_run_id": ""})
    assert err.value.status == 400 and "runtime parameter 'spec' is not an input" in str(err.value.body)

    # A second submission (token on the command line, KFP's default service account) reuses the experiment
    # and makes a new parent run. Here someone deletes that parent run while KFP creates the run: the KFP
    # run stands, so the submit succeeds and warns that the parent run could not be tagged.
    api.on_run = lambda r: MlflowClient(mlflow_server).delete_run(r["runtime_config"]["parameters"]["parent_run_id"])
    monkeypatch.delenv("M2RL_KFP_TOKEN")
    again = submit(api.url, tmp_path, "--experiment", "smoke-exp", "--run-name", "smoke-2", "--namespace", "team-a",
                   "--token", "s3cret", "--service-account", "")
    assert again.exit_code == 0, again.output
    assert len(api.calls("POST", "/experiments")) == 1 and len(api.experiments) == 1 and len(api.runs) == 2
    (second,) = [r for r in api.runs.values() if r["display_name"] == "smoke-2"]
    assert second["experiment_id"] == exp["experiment_id"] and second["service_account"] == ""
    pid2 = second["runtime_config"]["parameters"]["parent_run_id"]
    assert pid2 not in (pid, "") and f"MLflow parent run: {pid2}" in again.output
    assert f"KFP run: {api.url}/#/runs/details/{second['run_id']}" in again.output
    assert (f"warning: the KFP run is created but tagging MLflow parent run {pid2} with it failed: "
            "RestException") in again.stderr
    assert "m2rl.kfp_run_id" not in MlflowClient(mlflow_server).get_run(pid2).data.tags


def test_unreachable_server_leaves_nothing(untouched_mlflow, tmp_path):
    host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = one_error_line(submit(host, tmp_path))
    assert line == f"error: cannot reach the KFP API server at {host}: [Errno 111] Connection refused"
    assert not (tmp_path / "pkg").exists()  # told before compiling


def test_host_must_be_a_url(untouched_mlflow, tmp_path):
    line = one_error_line(submit("localhost:8080", tmp_path, "--dry-run"))
    assert line == "error: --host must be the http:// or https:// URL of the KFP API server, got 'localhost:8080'"


def test_unreachable_mlflow_leaves_no_kfp_run(kfp_api, tmp_path, monkeypatch):
    api = kfp_api()
    mlflow = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow)
    line = one_error_line(submit(api.url, tmp_path))
    assert line == f"error: cannot reach the MLflow tracking server at {mlflow}: [Errno 111] Connection refused"
    assert len(api.experiments) == 1 and not api.runs and not api.calls("POST", "/runs")


def test_credentials_and_namespaces(kfp_api, untouched_mlflow, tmp_path, monkeypatch):
    api = kfp_api(token="s3cret", multi_user=True, allowed_namespaces=("team-a",))

    # No token: the server (its gateway) answers 401 to the health check; nothing else is attempted.
    line = one_error_line(submit(api.url, tmp_path, "--namespace", "team-a"))
    assert line == (f"error: the KFP API server at {api.url} needs credentials (401 Unauthorized: Request header "
                    "error: there is no user identity header.); pass a bearer token with --token or $M2RL_KFP_TOKEN")
    assert [r.path for r in api.requests] == ["/apis/v2beta1/healthz"]

    # A wrong token is refused the same way.
    monkeypatch.setenv("M2RL_KFP_TOKEN", "wrong")
    assert "needs credentials (401 Unauthorized" in one_error_line(submit(api.url, tmp_path, "--namespace", "team-a"))

    # The right token (from the environment) but a multi-user server and no namespace.
    monkeypatch.setenv("M2RL_KFP_TOKEN", "s3cret")
    line = one_error_line(submit(api.url, tmp_path))
    assert line == f"error: the KFP API server at {api.url} is multi-user: pass --namespace (your profile's namespace)"

    # A namespace the token may not use: 403 on the experiment look-up.
    line = one_error_line(submit(api.url, tmp_path, "--namespace", "team-b"))
    assert line.startswith(f"error: the KFP API server at {api.url} denied access in namespace 'team-b' (403 "
                           "Forbidden: Failed to authorize with API: PermissionDenied:")
    assert line.endswith("; check --namespace and the token's access")
    assert not api.experiments and not api.runs and not (tmp_path / "pkg").exists()


def test_rejected_package_ends_the_parent_failed(kfp_api, sqlite_mlflow, tmp_path):
    api = kfp_api(schema_versions=("2.0.0",))  # an older backend: kfp 2.17 writes schemaVersion 2.1.0
    res = submit(api.url, tmp_path, "--run-name", "rejected")
    line = one_error_line(res)
    assert line.startswith(f"error: the KFP API server at {api.url} rejected the request (400 Bad Request: Invalid "
                           "input error: Failed to create a run: unsupported pipeline spec schemaVersion '2.1.0'")
    assert not api.runs and len(api.calls("POST", "/runs")) == 1

    (parent,) = parent_runs(sqlite_mlflow)
    assert line.endswith(f"; MLflow parent run {parent.info.run_id} ended FAILED")
    assert parent.info.status == "FAILED" and parent.info.run_name == "rejected"
    assert parent.data.tags["m2rl.kfp_error"] == line.removeprefix("error: ").split("; MLflow parent run")[0]
    assert "m2rl.kfp_run_id" not in parent.data.tags


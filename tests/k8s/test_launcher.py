"""The RayJob launcher's watch loop, log streaming and exit codes, driven through the real `kubernetes`
client (CustomObjectsApi, CoreV1Api, watch.Watch) against a scripted in-memory API server that
answers at the REST layer (the client's serialisation, watch parsing and errors are all real)."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
from typing import Any
from urllib.parse import urlparse

import pytest

from m2rl.k8s import RayJobLauncher, RayJobState, build_rayjob, exit_code, launch_training
from m2rl.k8s import states as st
from m2rl.spec import load_spec
from tests.k8s.conftest import REPO

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

NS = "m2rl"
RJ = f"/apis/ray.io/v1/namespaces/{NS}/rayjobs"


class _Resp:
    """What the REST layer returns: preloaded (`.data`) or streamed (`.stream()`)."""

    def __init__(self, status: int, payload: Any = None, chunks: list[bytes] | None = None):
        self.status, self.reason = status, "OK"
        self.data = json.dumps(payload).encode() if payload is not None else b""
        self._chunks = chunks or []

    def getheaders(self):
        return {"content-type": "application/json"}

    def getheader(self, name, default=None):
        return self.getheaders().get(name.lower(), default)

    def stream(self, amt=None, decode_content=False):
        yield from self._chunks

    def close(self):
        pass

    def release_conn(self):
        pass


class FakeApiServer:
    """RayJobs and pods of one namespace; each watch round applies the next scripted status."""

    def __init__(self, statuses: list[dict[str, Any] | str], logs: dict[str, list[str]] | None = None,
                 on_watch=None):
        self.statuses = list(statuses)  # a status dict, "DELETE" (someone deletes it) or "GONE" (410)
        self.logs = logs or {}
        self.on_watch = on_watch
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, Any]] = []
        self.rv = 1

    def _bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def request(self, method, url, query_params=None, headers=None, body=None, post_params=None,
                _preload_content=True, _request_timeout=None):
        path = urlparse(url).path
        query = dict(query_params or [])
        self.calls.append((method, path))
        if path == RJ and method == "POST":
            name = body["metadata"]["name"]
            if name in self.objects:
                raise ApiException(status=409, reason="AlreadyExists")
            obj = json.loads(json.dumps(body))
            obj["metadata"]["uid"] = "u1"
            self._bump(obj)
            self.objects[name] = obj
            return _Resp(201, obj)
        if path == RJ and method == "GET" and query.get("watch"):
            return self._watch(query)
        if path.startswith(RJ + "/"):
            name = path.rsplit("/", 1)[1]
            if name not in self.objects:
                raise ApiException(status=404, reason="NotFound")
            if method == "GET":
                return _Resp(200, self.objects[name])
            if method == "DELETE":
                self.deleted.append((name, body))
                return _Resp(200, {"kind": "Status", "status": "Success"})
        if path == f"/api/v1/namespaces/{NS}/pods" and method == "GET":
            job = query["labelSelector"].split("=", 1)[1]
            items = [{"metadata": {"name": pod, "namespace": NS, "creationTimestamp": f"2026-01-01T00:00:0{i}Z",
                                   "labels": {"job-name": job}},
                      "status": {"phase": "Running"}} for i, pod in enumerate(sorted(self.logs))]
            return _Resp(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        if path.startswith(f"/api/v1/namespaces/{NS}/pods/") and path.endswith("/log"):
            pod = path.split("/")[-2]
            return _Resp(200, chunks=[(line + "\n").encode() for line in self.logs[pod]])
        raise AssertionError(f"unexpected call {method} {path} {query}")

    def GET(self, url, **kw):  # noqa: N802 - the REST client's method names
        return self.request("GET", url, **kw)

    def POST(self, url, **kw):  # noqa: N802
        return self.request("POST", url, **kw)

    def DELETE(self, url, **kw):  # noqa: N802
        return self.request("DELETE", url, **kw)

    def _watch(self, query):
        assert query["fieldSelector"].startswith("metadata.name=")
        name = query["fieldSelector"].split("=", 1)[1]
        if self.on_watch:
            self.on_watch(self)
        if not self.statuses:  # nothing happens in this window: the watch times out empty
            return _Resp(200, chunks=[])
        step = self.statuses.pop(0)
        if step == "GONE":
            return _Resp(200, chunks=[json.dumps({"type": "ERROR", "object": {
                "kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}).encode() + b"\n"])
        obj = self.objects[name]
        if step == "DELETE":
            del self.objects[name]
            return _Resp(200, chunks=[json.dumps({"type": "DELETED", "object": obj}).encode() + b"\n"])
        obj["status"] = step
        self._bump(obj)
        # Deliver the event in two chunks, split mid-line, as a real chunked response may.
        line = json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n"
        return _Resp(200, chunks=[line[:17], line[17:]])


def _apis(server: FakeApiServer):
    api = client.ApiClient(client.Configuration(host="https://k8s.test"))
    api.rest_client = server
    return client.CustomObjectsApi(api), client.CoreV1Api(api)


@pytest.fixture(scope="module")
def manifest():
    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    from m2rl.k8s import train_command

    return build_rayjob(spec, train_command("math", "d", "b", "o"), name="m2rl-paper-math")


def _run(server, manifest, **kw):
    custom, core = _apis(server)
    out = io.StringIO()
    launcher = RayJobLauncher(NS, custom, core, out=out, watch_timeout_s=5, log_poll_s=0.01)
    result = launcher.run(manifest, drain_s=5, **kw)
    return result, out.getvalue()


RUNNING = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}


def test_success_streams_the_driver_log_and_exits_0(manifest):
    server = FakeApiServer(
        [{"jobDeploymentStatus": "Initializing"}, RUNNING, "GONE", RUNNING,
         {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}],
        logs={"m2rl-paper-math-abcde": ["step 1 reward 0.25", "step 2 reward 0.5"]},
    )
    result, out = _run(server, manifest)
    assert (result.exit_code, result.outcome) == (0, "finished")
    assert result.state.job_status == "SUCCEEDED"
    assert "step 1 reward 0.25" in out and "step 2 reward 0.5" in out
    assert "deployment=Initializing job=-" in out and "deployment=Running job=RUNNING" in out
    assert out.count("deployment=Running job=RUNNING") == 1, "unchanged states are reported once"
    assert not server.deleted, "a finished RayJob is left to its TTL"
    assert server.calls[0] == ("POST", RJ)


@pytest.mark.parametrize(
    ("final", "code"),
    [
        ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}, st.EXIT_JOB_FAILED),
        ({"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed"}, st.EXIT_SUBMISSION_FAILED),
        ({"jobDeploymentStatus": "Failed", "jobStatus": "RUNNING", "reason": "DeadlineExceeded"}, st.EXIT_DEADLINE),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}, st.EXIT_STOPPED),
    ],
)
def test_terminal_states_map_to_exit_codes(manifest, final, code):
    result, out = _run(FakeApiServer([RUNNING, final]), manifest)
    assert (result.exit_code, result.outcome) == (code, "finished")
    assert f"exit code {code}" in out


def test_a_retried_failure_does_not_end_the_watch(manifest):
    # backoffLimit > 0: a FAILED Ray job is retried (deployment Retrying), so jobStatus alone must not end it.
    server = FakeApiServer([{"jobDeploymentStatus": "Retrying", "jobStatus": "FAILED"}, RUNNING,
                            {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    result, _ = _run(server, manifest)
    assert result.exit_code == 0


def test_deleted_by_someone_else(manifest):
    result, _ = _run(FakeApiServer([RUNNING, "DELETE"]), manifest)
    assert (result.exit_code, result.outcome) == (st.EXIT_DELETED, "deleted")


def test_timeout_deletes_the_rayjob(manifest):
    server = FakeApiServer([RUNNING])  # then nothing more happens
    result, out = _run(server, manifest, timeout_s=0.5)
    assert (result.exit_code, result.outcome) == (st.EXIT_DEADLINE, "timeout")
    assert [name for name, _ in server.deleted] == ["m2rl-paper-math"]
    assert server.deleted[0][1]["propagationPolicy"] == "Foreground"
    assert "deleting it" in out


def test_cancelling_the_step_deletes_the_rayjob(manifest):
    def sigterm_once(server):
        if not getattr(server, "_signalled", False):
            server._signalled = True
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    server = FakeApiServer([RUNNING, RUNNING], on_watch=sigterm_once)
    result, out = _run(server, manifest)
    assert (result.exit_code, result.outcome) == (st.EXIT_STOPPED, "cancelled")
    assert [name for name, _ in server.deleted] == ["m2rl-paper-math"]
    assert signal.getsignal(signal.SIGTERM) is before, "the previous SIGTERM handler is restored"


def test_a_retried_step_adopts_the_existing_rayjob(manifest):
    server = FakeApiServer([{"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    custom, _ = _apis(server)
    custom.create_namespaced_custom_object("ray.io", "v1", NS, "rayjobs", dict(manifest))
    result, out = _run(server, manifest)
    assert result.exit_code == 0 and "already exists" in out


def test_api_errors_other_than_conflict_propagate(manifest):
    class Forbidden(FakeApiServer):
        def request(self, method, url, *a, **kw):
            if method == "POST":
                raise ApiException(status=403, reason="Forbidden")
            return super().request(method, url, *a, **kw)

    with pytest.raises(ApiException) as err:
        _run(Forbidden([]), manifest)
    assert err.value.status == 403


def test_launch_training_builds_and_runs(manifest):
    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    server = FakeApiServer([{"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    custom, core = _apis(server)
    out = io.StringIO()
    result = launch_training(spec, run="code", data="d", base="b", out="o", log=out,
                             launcher=RayJobLauncher(NS, custom, core, out=out, log_poll_s=0.01))
    assert result.exit_code == 0
    (created,) = server.objects.values()
    assert created["metadata"]["labels"]["m2rl.io/run"] == "code"
    assert "--run code" in created["spec"]["entrypoint"]


@pytest.mark.parametrize(
    ("status", "finished", "code"),
    [
        ({}, False, None),
        ({"jobDeploymentStatus": "Initializing"}, False, None),
        ({"jobDeploymentStatus": "Running", "jobStatus": "SUCCEEDED"}, False, None),
        ({"jobDeploymentStatus": "Suspended"}, False, None),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, True, 0),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, True, 1),
        ({"jobDeploymentStatus": "Failed", "jobStatus": "STOPPED"}, True, 143),
        ({"jobDeploymentStatus": "Failed", "reason": "AppFailed"}, True, 1),
        ({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}, True, 124),
        ({"jobDeploymentStatus": "Failed", "reason": "JobDeploymentStatusTransitionGracePeriodExceeded"}, True, 3),
    ],
)
def test_state_mapping(status, finished, code):
    state = RayJobState.from_object({"status": status})
    assert state.finished is finished
    assert exit_code(state) == code


def test_state_from_an_object_without_status():
    assert RayJobState.from_object(None) == RayJobState()
    assert RayJobState.from_object({"metadata": {}}).describe() == "deployment=New job=-"


def test_sigterm_handler_is_only_installed_on_the_main_thread(manifest):
    server = FakeApiServer([{"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    results = []
    t = threading.Thread(target=lambda: results.append(_run(server, manifest)[0]))
    t.start()
    t.join(30)
    assert results and results[0].exit_code == 0

"""A KFP v2beta1 REST API server on 127.0.0.1 for the tests: the endpoints `kfp.Client` 2.17 calls to create
a run from a pipeline package (`create_run_from_pipeline_package`), answering with the JSON shapes of the
`kfp_server_api` models.

- `GET  /apis/v2beta1/healthz` -> V2beta1GetHealthzResponse
- `GET  /apis/v2beta1/experiments?filter=&namespace=` -> V2beta1ListExperimentsResponse (the EQUALS-on-
  display_name filter `Client.get_experiment` sends)
- `POST /apis/v2beta1/experiments` (body V2beta1Experiment) -> V2beta1Experiment
- `POST /apis/v2beta1/runs` (body V2beta1Run: pipeline_spec {pipeline_spec, platform_spec}, runtime_config)
  -> V2beta1Run, state PENDING
- `GET  /apis/v2beta1/runs/{run_id}` -> V2beta1Run

Errors carry the body of the real API server, a google.rpc.Status (`code`, `message`, `details`), with the
gRPC code's HTTP status. Like a KFP deployment it can require a bearer token (401 without it, as the
gateway answers), run multi-user (experiments need a namespace; 403 outside `allowed_namespaces`) and
validate the pipeline spec of a run: schema version, pipeline name, every task's component and executor, the
runtime parameters against the root's input definitions.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/apis/v2beta1"
# gRPC codes the KFP API server maps its errors to, and their HTTP statuses (grpc-gateway).
INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, UNAUTHENTICATED = 3, 5, 7, 16
HTTP_STATUS = {INVALID_ARGUMENT: 400, NOT_FOUND: 404, PERMISSION_DENIED: 403, UNAUTHENTICATED: 401}
PARAMETER_TYPES = {"STRING": str, "NUMBER_INTEGER": int, "NUMBER_DOUBLE": (int, float), "BOOLEAN": bool,
                   "LIST": list, "STRUCT": dict}
EPOCH = "1970-01-01T00:00:00Z"


class KfpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class Request:
    """One request the server answered (for the tests to check what the client sent)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class KfpApiServer:
    """The server's state and settings; `start()` serves it on a free loopback port, `stop()` ends it."""

    token: str | None = None  # when set, every request needs `Authorization: Bearer <token>`
    multi_user: bool = False
    allowed_namespaces: tuple[str, ...] = ()  # multi-user: the namespaces the caller may use
    schema_versions: tuple[str, ...] = ("2.1.0",)  # pipeline spec schema versions the server runs
    on_run: Callable[[dict[str, Any]], None] | None = None  # called with each run it creates, before answering
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def start(self) -> KfpApiServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                req = Request(method, url.path, parse_qs(url.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(req)
                    try:
                        status, answer = 200, server._route(req)
                    except KfpError as exc:
                        status, answer = HTTP_STATUS[exc.code], {"code": exc.code, "message": exc.message,
                                                                 "details": []}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kfp-api", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def calls(self, method: str, path: str) -> list[Request]:
        """The requests to `method` `PREFIX + path`, oldest first."""
        return [r for r in self.requests if r.method == method and r.path == PREFIX + path]

    # --- the API -------------------------------------------------------------------------------------------

    def _route(self, req: Request) -> dict[str, Any]:
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            raise KfpError(UNAUTHENTICATED, "Request header error: there is no user identity header.")
        path = req.path.removeprefix(PREFIX)
        if req.method == "GET" and path == "/healthz":
            return {"multi_user": self.multi_user, "pipeline_store": "database"}
        if path == "/experiments":
            return self._list_experiments(req.query) if req.method == "GET" else self._create_experiment(req.body)
        if req.method == "POST" and path == "/runs":
            return self._create_run(req.body)
        if req.method == "GET" and path.startswith("/runs/"):
            run_id = path.removeprefix("/runs/")
            if run_id not in self.runs:
                raise KfpError(NOT_FOUND, f"Failed to get run: ResourceNotFoundError: Run {run_id} not found")
            return self.runs[run_id]
        raise KfpError(NOT_FOUND, f"Not Found: {req.method} {req.path}")

    def _namespace(self, namespace: str, what: str) -> str:
        if not self.multi_user:
            return ""
        if not namespace:
            raise KfpError(INVALID_ARGUMENT, f"Invalid input error: {what}: namespace is required in multi-user mode")
        if namespace not in self.allowed_namespaces:
            raise KfpError(PERMISSION_DENIED, f"Failed to authorize with API: PermissionDenied: User is not "
                                              f"authorized to access namespace {namespace}")
        return namespace

    def _list_experiments(self, query: dict[str, list[str]]) -> dict[str, Any]:
        namespace = self._namespace(query.get("namespace", [""])[0], "Failed to list experiments")
        found = [e for e in self.experiments.values() if e["namespace"] == namespace]
        for raw in query.get("filter", []):
            for p in json.loads(raw).get("predicates", []):
                if p.get("operation") not in (1, "EQUALS"):
                    raise KfpError(INVALID_ARGUMENT, f"Invalid input error: unsupported filter operation {p}")
                value = p.get("stringValue", p.get("string_value"))
                found = [e for e in found if e.get(p["key"]) == value]
        # proto3 JSON leaves out empty fields: no experiments -> {}
        return {"experiments": found, "total_size": len(found)} if found else {}

    def _create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = (body or {}).get("display_name") or ""
        if not name:
            raise KfpError(INVALID_ARGUMENT, "Invalid input error: Experiment display_name is empty")
        namespace = self._namespace(body.get("namespace") or "", "Failed to create experiment")
        if any(e["display_name"] == name and e["namespace"] == namespace for e in self.experiments.values()):
            raise KfpError(INVALID_ARGUMENT, f"Failed to create experiment: {name} already exists")
        exp = {"experiment_id": str(uuid.uuid4()), "display_name": name, "description": body.get("description") or "",
               "created_at": _now(), "namespace": namespace, "storage_state": "AVAILABLE",
               "last_run_created_at": EPOCH}
        self.experiments[exp["experiment_id"]] = exp
        return exp

    def _create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        body = body or {}
        exp = self.experiments.get(body.get("experiment_id") or "")
        if exp is None:
            raise KfpError(NOT_FOUND, f"Failed to create a run: experiment {body.get('experiment_id')!r} not found")
        self._namespace(exp["namespace"], "Failed to create a run")
        if not body.get("display_name"):
            raise KfpError(INVALID_ARGUMENT, "Invalid input error: The run name is empty")
        spec = body.get("pipeline_spec")
        if not isinstance(spec, dict):
            raise KfpError(INVALID_ARGUMENT, "Invalid input error: Failed to create a run: pipeline spec is missing")
        pipeline = spec.get("pipeline_spec", spec) if "platform_spec" in spec else spec
        parameters = (body.get("runtime_config") or {}).get("parameters") or {}
        self._validate(pipeline, parameters)
        run_id = str(uuid.uuid4())
        run = {
            "experiment_id": exp["experiment_id"], "run_id": run_id, "display_name": body["display_name"],
            "storage_state": "AVAILABLE", "description": body.get("description") or "", "pipeline_spec": spec,
            "runtime_config": body.get("runtime_config") or {}, "service_account": body.get("service_account") or "",
            "created_at": _now(), "scheduled_at": _now(), "finished_at": EPOCH, "state": "PENDING",
            "state_history": [{"update_time": _now(), "state": "PENDING"}],
        }
        self.runs[run_id] = run
        exp["last_run_created_at"] = run["created_at"]
        if self.on_run is not None:
            self.on_run(run)
        return run

    def _validate(self, pipeline: dict[str, Any], parameters: dict[str, Any]) -> None:
        def bad(msg: str) -> KfpError:
            return KfpError(INVALID_ARGUMENT, f"Invalid input error: Failed to create a run: {msg}")

        version = pipeline.get("schemaVersion")
        if version not in self.schema_versions:
            raise bad(f"unsupported pipeline spec schemaVersion {version!r} (this server runs "
                      f"{', '.join(self.schema_versions)})")
        if not (pipeline.get("pipelineInfo") or {}).get("name"):
            raise bad("pipelineInfo.name is empty")
        components = pipeline.get("components") or {}
        executors = ((pipeline.get("deploymentSpec") or {}).get("executors")) or {}
        tasks = ((pipeline.get("root") or {}).get("dag") or {}).get("tasks") or {}
        if not tasks:
            raise bad("the root DAG has no tasks")
        for name, task in tasks.items():
            comp = (task.get("componentRef") or {}).get("name")
            if comp not in components:
                raise bad(f"task {name}: component {comp!r} is not defined")
            label = components[comp].get("executorLabel")
            if label not in executors:
                raise bad(f"component {comp}: executor {label!r} is not defined")
        inputs = ((pipeline.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
        for key, value in parameters.items():
            if key not in inputs:
                raise bad(f"runtime parameter {key!r} is not an input of the pipeline")
            want = PARAMETER_TYPES.get(inputs[key].get("parameterType"), object)
            if not isinstance(value, want):
                raise bad(f"runtime parameter {key!r} is not of type {inputs[key].get('parameterType')}")
        for key, definition in inputs.items():
            if key not in parameters and "defaultValue" not in definition and not definition.get("isOptional"):
                raise bad(f"runtime parameter {key!r} is required")

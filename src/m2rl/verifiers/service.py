"""The reward service: OpenRLHF's HTTP remote-reward protocol over the verifiers (`m2rl serve-rewards`).

POST / (any path but /health) with JSON `{"query": [...], "prompts": [...], "labels": [...]}` (each
query the decoded prompt + response, each label an encoded record) answers `{"rewards": [...],
"scores": [...], "extra_logs": {name: [...]}}`, one value per query, scored through `score_batch`.
GET /health answers `{"status": "ok", "require_think_close": ..., ...}` (training checks the gate against
its spec before it starts).

Limits: at most `max_concurrent` requests score at once and at most `max_queue` more wait; beyond
that a request gets 503 with Retry-After. A body over `max_body_bytes` gets 413, more than
`max_items` queries 413, bad JSON or mismatched lists 400, a missing Content-Length 411; every error
body is `{"error": "..."}`. On a cluster this is the one place model-written code runs.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from m2rl.spec.data import DOMAINS
from m2rl.verifiers.adapters import response_of
from m2rl.verifiers.openrlhf_reward import THINK_ENV, env_flag, score_gated


@dataclass
class ServiceConfig:
    """Limits and scoring settings of the reward service."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_items: int = 4096
    max_concurrent: int = 4
    max_queue: int = 64
    workers: int | None = None
    timeout: float | None = None
    require_think_close: bool = field(default_factory=lambda: bool(env_flag(THINK_ENV)))  # rewards.require_think_close


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _parse(body: bytes, cfg: ServiceConfig) -> tuple[list[str], list[str], list[Any]]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _HTTPError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _HTTPError(400, "body must be a JSON object with `query`, `prompts` and `labels`")
    queries = data.get("query", data.get("queries"))
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise _HTTPError(400, "`query` must be a list of strings")
    if len(queries) > cfg.max_items:
        raise _HTTPError(413, f"{len(queries)} queries in one request; the limit is {cfg.max_items}")
    prompts = data.get("prompts")
    if prompts is None:
        prompts = [""] * len(queries)
    if not isinstance(prompts, list) or len(prompts) != len(queries):
        raise _HTTPError(400, f"`prompts` must be a list as long as `query` ({len(queries)})")
    labels = data.get("labels")
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise _HTTPError(400, f"`labels` must be a list as long as `query` ({len(queries)})")
    return queries, [p if isinstance(p, str) else "" for p in prompts], labels


def score_request(queries: list[str], prompts: list[str], labels: list[Any], cfg: ServiceConfig) -> dict[str, Any]:
    responses = [response_of(q, p) for q, p in zip(queries, prompts, strict=True)]
    scores, domains = score_gated(responses, labels, require_think_close=cfg.require_think_close,
                                  workers=cfg.workers, timeout=cfg.timeout)
    values = [s.value for s in scores]
    extra: dict[str, list[float]] = {}
    for d in DOMAINS:
        hit = [1.0 if dom == d else 0.0 for dom in domains]
        extra[f"m2rl/{d}/reward_sum"] = [v * h for v, h in zip(values, hit, strict=True)]
        extra[f"m2rl/{d}/count"] = hit
    extra["m2rl/timeout"] = [1.0 if s.details.get("timeout") else 0.0 for s in scores]
    extra["m2rl/error"] = [1.0 if s.details.get("error") else 0.0 for s in scores]
    return {"rewards": values, "scores": list(values), "extra_logs": extra}


class RewardServer(ThreadingHTTPServer):
    """A threaded HTTP server with an admission limit (concurrent + queued requests)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], cfg: ServiceConfig):
        super().__init__(address, _Handler)
        self.cfg = cfg
        self.slots = threading.BoundedSemaphore(cfg.max_concurrent)
        self.admit_lock = threading.Lock()
        self.admitted = 0  # requests scoring or waiting for a slot
        self.served = 0

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: RewardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path.rstrip("/") in ("/health", "/healthz"):
            srv = self.server
            self._send(200, {"status": "ok", "require_think_close": srv.cfg.require_think_close,
                             "in_flight": srv.admitted, "served": srv.served,
                             "max_concurrent": srv.cfg.max_concurrent, "max_queue": srv.cfg.max_queue})
        else:
            self._send(404, {"error": f"no such resource {self.path!r}; POST a scoring request, GET /health"})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        srv, cfg = self.server, self.server.cfg
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            self._send(411, {"error": "Content-Length is required"})
            return
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            self._send(400, {"error": f"bad Content-Length {length!r}"})
            return
        if n > cfg.max_body_bytes or n < 0:
            self.close_connection = True
            if 0 < n <= 2 * cfg.max_body_bytes:  # read (and drop) a moderately large body so the client sees the 413
                left = n
                while left > 0:
                    got = self.rfile.read(min(left, 1 << 20))
                    if not got:
                        break
                    left -= len(got)
            self._send(413, {"error": f"request body of {n} bytes is over the limit of {cfg.max_body_bytes}"})
            return
        with srv.admit_lock:
            full = srv.admitted >= cfg.max_concurrent + cfg.max_queue
            if not full:
                srv.admitted += 1
        if full:
            self.close_connection = True
            self._send(503, {"error": "the reward service is at capacity; retry later"}, {"Retry-After": "1"})
            return
        try:
            body = self.rfile.read(n)
            try:
                queries, prompts, labels = _parse(body, cfg)
            except _HTTPError as exc:
                self._send(exc.status, {"error": str(exc)})
                return
            with srv.slots:
                try:
                    result = score_request(queries, prompts, labels, cfg)
                except Exception as exc:
                    self._send(500, {"error": f"scoring failed: {type(exc).__name__}: {exc}"})
                    return
            srv.served += 1
            self._send(200, result)
        finally:
            with srv.admit_lock:
                srv.admitted -= 1


def make_server(host: str = "127.0.0.1", port: int = 5000, cfg: ServiceConfig | None = None) -> RewardServer:
    """A reward server bound to host:port (port 0: a free one; see `.url`). Call `serve_forever()`."""
    return RewardServer((host, port), cfg or ServiceConfig())


def warm(cfg: ServiceConfig) -> None:
    """Start the scoring workers now rather than on the first request."""
    from m2rl.verifiers.pool import default_workers, score_batch

    n = cfg.workers or default_workers()
    score_batch([{"label": "A", "verifier": {"type": "mcqa"}}] * n, ["Answer: A"] * n, workers=cfg.workers)


def serve(host: str = "127.0.0.1", port: int = 5000, cfg: ServiceConfig | None = None,
          ready: Any = None) -> None:
    """Run the reward service until interrupted; `ready(url)` is called once it accepts requests."""
    cfg = cfg or ServiceConfig()
    warm(cfg)
    server = make_server(host, port, cfg)
    if ready is not None:
        ready(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

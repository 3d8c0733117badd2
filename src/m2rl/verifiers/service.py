"""The reward service: OpenRLHF's HTTP remote-reward protocol over the verifiers (`m2rl serve-rewards`).

POST / (any path but /health and /metrics) with JSON `{"query": [...], "prompts": [...], "labels": [...]}`
(each query the decoded prompt + response, each label an encoded record) answers `{"rewards": [...],
"scores": [...], "extra_logs": {name: [...]}}`, one value per query, scored through `score_batch`.
GET /health answers `{"status": "ok", "require_think_close": ..., ...}` (training checks the gate against
its spec before it starts); GET /metrics is the Prometheus text exposition.

It runs on uvicorn (its h11 protocol, subclassed) and Starlette, single process, one event loop; scoring
runs in threads over the shared scoring pool. Untrusted clients are bounded:

- HTTP: a request's headers must arrive within `header_timeout` seconds (else 408 and the connection is
  closed; an idle keep-alive connection closes after `keep_alive`), its body within `body_timeout` (408);
  headers over `max_header_bytes` get 431; malformed HTTP (a negative or non-numeric Content-Length, bad
  framing) gets 400; `Transfer-Encoding` together with `Content-Length` gets 400 (no request smuggling);
  a POST without Content-Length gets 411; over `max_connections` open connections a new one gets 503.
- The body is read whole before the request is admitted, so a slow client holds a socket, never scoring
  capacity. A body over `max_body_bytes` gets 413 (before it is read), JSON nested deeper than
  `max_json_depth` 400, bad JSON or mismatched lists 400, more than `max_items` queries 413.
- Scoring budget: each item costs the hard time limit the pool will enforce on it, set by the server, not
  the label: a label's per-test timeout is clamped to `max_test_seconds`, an item's limit is its verifier's
  bound capped at `max_item_seconds` (or `timeout` when given); `inline_safe` verifiers cost
  `INLINE_COST`. A request costing more than `max_request_seconds` gets 413 with the figure.
- Admission by work: at most `max_concurrent` requests score at once and at most `max_queue` more wait,
  and the admitted requests' cost stays under `max_work_seconds` (one request is always admitted on an
  idle server); beyond that 503 with Retry-After.
- SIGTERM/SIGINT: stop accepting, finish in-flight and queued requests within `grace` seconds, then answer
  503 to what is left, kill the scoring workers and their sandboxes (the pool), and exit 0.

Every error body is `{"error": "..."}`. On a cluster this is the one place model-written code runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h11
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn import Config, Server
from uvicorn.protocols.http.h11_impl import H11Protocol

from m2rl.spec.data import DOMAINS
from m2rl.verifiers.adapters import response_of
from m2rl.verifiers.openrlhf_reward import THINK_ENV, env_flag, score_gated

log = logging.getLogger("m2rl.rewards")

INLINE_COST = 0.01  # seconds charged for an item of an `inline_safe` verifier (scored in the request thread)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class ServiceConfig:
    """Limits and scoring settings of the reward service."""

    max_body_bytes: int = 64 * 1024 * 1024
    max_items: int = 4096
    max_concurrent: int = 4
    max_queue: int = 64
    workers: int | None = None
    timeout: float | None = None  # hard limit per item (None: the verifier's, capped at max_item_seconds)
    require_think_close: bool = field(default_factory=lambda: bool(env_flag(THINK_ENV)))  # rewards.require_think_close
    header_timeout: float = 10.0  # seconds for a request's headers to arrive
    body_timeout: float = 60.0  # seconds for its body to arrive
    keep_alive: float = 5.0  # idle seconds before a keep-alive connection is closed
    max_header_bytes: int = 64 * 1024
    max_connections: int = 2048
    max_json_depth: int = 64
    max_test_seconds: float = 10.0  # a label's per-test timeout is clamped to this
    max_item_seconds: float = 300.0  # an item's hard limit is at most this (unless `timeout` says otherwise)
    max_request_seconds: float = 14400.0  # worst-case scoring seconds one request may cost (else 413)
    max_work_seconds: float = 57600.0  # worst-case scoring seconds of all admitted requests (else 503)
    grace: float = 30.0  # seconds in-flight requests get after SIGTERM

    def check(self) -> None:
        positive = ("max_body_bytes", "max_items", "max_concurrent", "header_timeout", "body_timeout",
                    "keep_alive", "max_header_bytes", "max_connections", "max_json_depth", "max_test_seconds",
                    "max_item_seconds", "max_request_seconds", "max_work_seconds")
        bad = [n for n in positive if not getattr(self, n) > 0]
        if self.max_queue < 0 or self.grace < 0:
            bad.append("max_queue/grace")
        if self.timeout is not None and not self.timeout > 0:
            bad.append("timeout")
        if bad:
            raise ValueError(f"reward service limits must be positive: {', '.join(bad)}")


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, reason: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.reason = reason


# --- metrics (Prometheus text exposition format 0.0.4; prometheus_client is not a dependency) ------------

class Metrics:
    """Counters, gauges and one histogram, thread-safe, rendered as Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._hist = [0] * (len(LATENCY_BUCKETS) + 1)
        self._hist_sum = 0.0
        self._gauges: dict[str, Callable[[], float]] = {}
        for name, kind, text in (
            ("m2rl_reward_requests_total", "counter", "HTTP requests answered, by status code and path kind."),
            ("m2rl_reward_rejections_total", "counter", "Requests refused before or instead of scoring, by reason."),
            ("m2rl_reward_items_total", "counter", "Items scored."),
            ("m2rl_reward_item_timeouts_total", "counter", "Items that ran past their hard time limit."),
            ("m2rl_reward_item_errors_total", "counter", "Items that scored 0 with an error (bad label, dead worker)."),
            ("m2rl_reward_clamped_labels_total", "counter", "Labels whose per-test timeout was clamped."),
            ("m2rl_reward_sandbox_kills_total", "counter",
             "Sandboxed programs killed: test_timeout (by the sandbox), item_timeout (worker and sandbox killed "
             "by the pool), shutdown (processes killed when the grace period ran out)."),
        ):
            self._help[name] = (kind, text)
            self._values[name] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + value

    def observe(self, seconds: float) -> None:
        with self._lock:
            for i, le in enumerate(LATENCY_BUCKETS):
                if seconds <= le:
                    self._hist[i] += 1
                    break
            else:
                self._hist[-1] += 1
            self._hist_sum += seconds

    def gauge(self, name: str, text: str, fn: Callable[[], float]) -> None:
        self._help[name] = ("gauge", text)
        self._gauges[name] = fn

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values[name].get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            for name, series in self._values.items():
                kind, text = self._help[name]
                out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for key, v in sorted(series.items()):
                    out.append(f"{name}{_labels(key)} {_num(v)}")
            name = "m2rl_reward_request_duration_seconds"
            out += [f"# HELP {name} Latency of scoring requests (POST, body read to response), any status.",
                    f"# TYPE {name} histogram"]
            acc = 0
            for le, n in zip(LATENCY_BUCKETS, self._hist, strict=False):
                acc += n
                out.append(f'{name}_bucket{{le="{_num(le)}"}} {acc}')
            acc += self._hist[-1]
            out += [f'{name}_bucket{{le="+Inf"}} {acc}', f"{name}_sum {_num(self._hist_sum)}",
                    f"{name}_count {acc}"]
        for name, fn in self._gauges.items():
            kind, text = self._help[name]
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {_num(fn())}"]
        return "\n".join(out) + "\n"


def _labels(key: tuple[tuple[str, str], ...]) -> str:
    if not key:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in key)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(key, esc, strict=True)) + "}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# --- parsing and the scoring plan ----------------------------------------------------------------------

def _depth_over(obj: Any, limit: int) -> bool:
    """Whether `obj` (parsed JSON) nests lists/objects deeper than `limit` (iterative, no recursion)."""
    todo = [(obj, 1)]
    while todo:
        node, d = todo.pop()
        if isinstance(node, dict):
            node = list(node.values())
        elif not isinstance(node, list):
            continue
        if d > limit:
            return True
        todo.extend((x, d + 1) for x in node if isinstance(x, (list, dict)))
    return False


def _loads(body: bytes | str, cfg: ServiceConfig, what: str) -> Any:
    try:
        data = json.loads(body)
    except RecursionError:
        raise _HTTPError(400, f"{what} is nested too deeply (the limit is {cfg.max_json_depth})", "too_deep") from None
    except ValueError as exc:
        raise _HTTPError(400, f"{what} is not valid JSON: {exc}", "bad_json") from None
    if _depth_over(data, cfg.max_json_depth):
        raise _HTTPError(400, f"{what} is nested too deeply (the limit is {cfg.max_json_depth})", "too_deep")
    return data


def _parse(body: bytes, cfg: ServiceConfig) -> tuple[list[str], list[str], list[Any]]:
    data = _loads(body, cfg, "body")
    if not isinstance(data, dict):
        raise _HTTPError(400, "body must be a JSON object with `query`, `prompts` and `labels`")
    queries = data.get("query", data.get("queries"))
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise _HTTPError(400, "`query` must be a list of strings")
    if len(queries) > cfg.max_items:
        raise _HTTPError(413, f"{len(queries)} queries in one request; the limit is {cfg.max_items}", "too_many_items")
    prompts = data.get("prompts")
    if prompts is None:
        prompts = [""] * len(queries)
    if not isinstance(prompts, list) or len(prompts) != len(queries):
        raise _HTTPError(400, f"`prompts` must be a list as long as `query` ({len(queries)})")
    labels = data.get("labels")
    if not isinstance(labels, list) or len(labels) != len(queries):
        raise _HTTPError(400, f"`labels` must be a list as long as `query` ({len(queries)})")
    return queries, [p if isinstance(p, str) else "" for p in prompts], labels


BAD_LABEL = "<label nested too deeply>"  # what a label that cannot be decoded safely is replaced by (scores 0)


@dataclass
class Plan:
    """A request's labels as the server will score them, and what that may cost."""

    labels: list[Any]  # decoded records (per-test timeout clamped), or the original text when it does not decode
    limits: list[float | None]  # each item's hard limit (None: the verifier's own, within the cap); 0 = no pool
    cost: float  # worst-case scoring seconds
    clamped: int  # labels whose per-test timeout was clamped


def plan_request(labels: list[Any], cfg: ServiceConfig) -> Plan:
    """Decode the labels, clamp per-test timeouts to the server's, and price every item in seconds."""
    from m2rl.registry import VERIFIERS
    from m2rl.verifiers.labels import LabelError, decode_label
    from m2rl.verifiers.pool import item_timeout
    from m2rl.verifiers.registry import RegistryError

    out: list[Any] = []
    limits: list[float | None] = []
    cost, clamped = 0.0, 0
    for lab in labels:
        try:
            if isinstance(lab, str | bytes):
                raw = lab.decode("utf-8", "replace") if isinstance(lab, bytes) else lab
                if _depth_over(json.loads(raw), cfg.max_json_depth):
                    raise RecursionError
            rec = decode_label(lab)
            if isinstance(rec["verifier"], Mapping) and _depth_over(rec["verifier"], cfg.max_json_depth):
                raise RecursionError
            own = VERIFIERS.entry(rec["verifier"]["type"], "verifier.type").meta
        except RecursionError:
            out.append(BAD_LABEL)
            limits.append(0.0)
            continue
        except (LabelError, RegistryError, ValueError, TypeError):
            out.append(lab)  # scored 0 with the reason by score_labeled, at no cost
            limits.append(0.0)
            continue
        meta = dict(rec["verifier"])
        t = meta.get("timeout")
        if isinstance(t, int | float) and not isinstance(t, bool) and t > cfg.max_test_seconds:
            meta["timeout"] = cfg.max_test_seconds
            clamped += 1
        elif isinstance(t, str):
            try:
                if float(t) > cfg.max_test_seconds:
                    meta["timeout"] = cfg.max_test_seconds
                    clamped += 1
            except ValueError:
                pass
        rec["verifier"] = meta
        out.append(rec)
        if own.get("inline_safe"):
            limits.append(0.0)
            cost += INLINE_COST
            continue
        if cfg.timeout is not None:
            limit: float | None = float(cfg.timeout)
            cost += limit
        else:
            bound = item_timeout(meta)
            limit = None if bound <= cfg.max_item_seconds else cfg.max_item_seconds
            cost += min(bound, cfg.max_item_seconds)
        limits.append(limit)
    return Plan(out, limits, cost, clamped)


def score_request(queries: list[str], prompts: list[str], labels: list[Any], cfg: ServiceConfig,
                  plan: Plan | None = None) -> dict[str, Any]:
    """Score one request (OpenRLHF's payload) as the service does: the response dict."""
    return _score_items(queries, prompts, labels, cfg, plan)[0]


def _score_items(queries: list[str], prompts: list[str], labels: list[Any], cfg: ServiceConfig,
                 plan: Plan | None = None) -> tuple[dict[str, Any], list[Any]]:
    plan = plan or plan_request(labels, cfg)
    responses = [response_of(q, p) for q, p in zip(queries, prompts, strict=True)]
    # items whose verifier bound is over the server's cap run with the cap as their hard limit
    capped = [i for i, lim in enumerate(plan.limits) if lim is not None and lim > 0 and cfg.timeout is None]
    over = set(capped)
    rest = [i for i in range(len(queries)) if i not in over]
    scores: list[Any] = [None] * len(queries)
    domains: list[str | None] = [None] * len(queries)
    groups = [(rest, cfg.timeout)] + ([(capped, cfg.max_item_seconds)] if capped else [])
    errors: list[BaseException] = []

    def run(idx: list[int], limit: float | None) -> None:
        try:
            got, doms = score_gated([responses[i] for i in idx], [plan.labels[i] for i in idx],
                                    require_think_close=cfg.require_think_close, workers=cfg.workers,
                                    timeout=limit)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the request thread
            errors.append(exc)
            return
        for i, s, d in zip(idx, got, doms, strict=True):
            scores[i], domains[i] = s, d

    helpers = [threading.Thread(target=run, args=g, daemon=True) for g in groups[1:] if g[0]]
    for t in helpers:
        t.start()
    if groups[0][0]:
        run(*groups[0])
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    values = [s.value for s in scores]
    extra: dict[str, list[float]] = {}
    for d in DOMAINS:
        hit = [1.0 if dom == d else 0.0 for dom in domains]
        extra[f"m2rl/{d}/reward_sum"] = [v * h for v, h in zip(values, hit, strict=True)]
        extra[f"m2rl/{d}/count"] = hit
    extra["m2rl/timeout"] = [1.0 if s.details.get("timeout") else 0.0 for s in scores]
    extra["m2rl/error"] = [1.0 if s.details.get("error") else 0.0 for s in scores]
    return {"rewards": values, "scores": list(values), "extra_logs": extra}, scores


# --- the HTTP protocol: header timeout, connection cap, JSON errors for malformed HTTP --------------------

def _raw_response(status: int, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    phrase = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
              501: "Not Implemented", 503: "Service Unavailable"}.get(status, "Error")
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n").encode() + body


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header read timeout, a connection cap and JSON 4xx for bad HTTP."""

    service: RewardServer  # set on the subclass made per server

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._cycle_bytes = 0
        cfg = self.service.cfg
        if len(self.connections) > cfg.max_connections:
            self.service.reject("too_many_connections")
            transport.write(_raw_response(503, f"over {cfg.max_connections} open connections; retry later"))
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._cycle_bytes = 0
        self._header_timer = self.loop.call_later(self.service.cfg.header_timeout, self._on_header_timeout)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._cycle_bytes:
            self.service.reject("header_timeout")
            self.transport.write(_raw_response(
                408, f"request headers did not arrive within {self.service.cfg.header_timeout:g}s"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._cycle_bytes += len(data)
        super().data_received(data)
        if self._header_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's headers get the same deadline (keep-alive included)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        exc = sys.exc_info()[1]  # called from uvicorn's `except h11.RemoteProtocolError`
        status = getattr(exc, "error_status_hint", 400) if isinstance(exc, h11.RemoteProtocolError) else 400
        detail = f"malformed HTTP request: {exc}" if exc is not None else msg
        self.service.reject("header_too_large" if status == 431 else "bad_http")
        self._disarm()
        self.transport.write(_raw_response(status, detail))
        self.transport.close()


class _Uvicorn(Server):
    """uvicorn's Server that drains with a deadline, kills the scoring pool, and exits 0 on SIGTERM."""

    def __init__(self, config: Config, service: RewardServer):
        super().__init__(config)
        self.service = service

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        # as uvicorn's, without re-raising the signal afterwards: the pool is stopped and we exit cleanly
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.service._loop = asyncio.get_running_loop()
        self.service._expired = asyncio.Event()
        await super().startup(sockets=sockets)
        self.service._started.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        svc = self.service
        svc.draining = True
        log.info("reward service: draining (grace %.0fs, %d requests admitted)", svc.cfg.grace, svc.admitted)
        watcher = asyncio.ensure_future(svc._drain_deadline())
        try:
            await super().shutdown(sockets=sockets)
        finally:
            watcher.cancel()
            await asyncio.get_running_loop().run_in_executor(None, svc.stop_pool)


class RewardServer:
    """The reward service bound to a socket: `serve_forever()` (blocks), `shutdown()`, `server_close()`."""

    def __init__(self, address: tuple[str, int], cfg: ServiceConfig):
        cfg.check()
        self.cfg = cfg
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(2048)
        self.sock.setblocking(False)
        self.server_address = self.sock.getsockname()
        self.admit_lock = threading.Lock()
        self.admitted = 0  # requests scoring or waiting for a slot
        self.admitted_work = 0.0  # their worst-case scoring seconds
        self.scoring = 0
        self.served = 0
        self.draining = False
        self.metrics = Metrics()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._expired: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._started = threading.Event()
        self._server: _Uvicorn | None = None
        self._pool_stopped = False
        m = self.metrics
        m.gauge("m2rl_reward_queue_depth", "Admitted requests waiting for a scoring slot.",
                lambda: max(0, self.admitted - self.scoring))
        m.gauge("m2rl_reward_in_flight", "Requests being scored.", lambda: self.scoring)
        m.gauge("m2rl_reward_admitted_work_seconds", "Worst-case scoring seconds of the admitted requests.",
                lambda: self.admitted_work)
        m.gauge("m2rl_reward_open_connections", "Open HTTP connections.",
                lambda: len(self._server.server_state.connections) if self._server else 0)
        m.gauge("m2rl_reward_draining", "1 while the service drains after SIGTERM.", lambda: int(self.draining))
        self.app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "HEAD", "POST", "PUT",
                                                                                       "DELETE", "PATCH", "OPTIONS"])])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def reject(self, reason: str) -> None:
        self.metrics.inc("m2rl_reward_rejections_total", reason=reason)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def _config(self) -> Config:
        cfg = self.cfg
        proto = type("RewardProtocol", (_Protocol,), {"service": self})
        return Config(self.app, http=proto, ws="none", lifespan="off", loop="asyncio", access_log=False,
                      log_level="warning", proxy_headers=False, server_header=False,
                      timeout_keep_alive=max(1, int(round(cfg.keep_alive))),
                      h11_max_incomplete_event_size=cfg.max_header_bytes,
                      timeout_graceful_shutdown=int(cfg.grace) + 5)

    def serve_forever(self) -> None:
        self._server = _Uvicorn(self._config(), self)
        self._server.run(sockets=[self.sock])

    def shutdown(self) -> None:
        """Drain and stop `serve_forever` (from another thread), as SIGTERM does."""
        if self._server is not None:
            self._server.should_exit = True
        deadline = time.monotonic() + self.cfg.grace + 15
        while self._server is not None and self._server.started and time.monotonic() < deadline \
                and not self._pool_stopped:
            time.sleep(0.05)

    def server_close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    async def _drain_deadline(self) -> None:
        await asyncio.sleep(self.cfg.grace)
        if self.admitted:
            log.warning("reward service: grace period over; failing %d requests", self.admitted)
        assert self._expired is not None
        self._expired.set()
        await asyncio.get_running_loop().run_in_executor(None, self.stop_pool)

    def stop_pool(self) -> None:
        """Stop the scoring pools: their workers and every sandbox they run are killed."""
        if self._pool_stopped:
            return
        from m2rl.verifiers import pool

        kids = pool._children_map()
        workers = [p for size_pool in list(pool._POOLS.values()) for p in size_pool.worker_pids()]
        todo, procs = list(workers), 0
        while todo:
            for c in kids.get(todo.pop(), ()):
                procs += 1
                todo.append(c)
        if procs and self.admitted:
            self.metrics.inc("m2rl_reward_sandbox_kills_total", procs, reason="shutdown")
        pool.shutdown_pools()
        self._pool_stopped = True

    # ---- requests --------------------------------------------------------------------------------------
    async def _endpoint(self, request: Request) -> Response:
        resp: Response | None = None
        path = request.url.path.rstrip("/")
        size = sum(len(k) + len(v) + 4 for k, v in request.scope["headers"])
        if size > self.cfg.max_header_bytes:  # h11 bounds only a header block still arriving; this, a whole one
            self.reject("header_too_large")
            resp = _error(431, f"request headers of {size} bytes are over the limit of {self.cfg.max_header_bytes}",
                          close=True)
        elif request.method in ("GET", "HEAD"):
            if path in ("/health", "/healthz"):
                resp = JSONResponse(self.health())
            elif path == "/metrics":
                resp = Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
            else:
                resp = _error(404, f"no such resource {request.url.path!r}; POST a scoring request, "
                                   "GET /health or /metrics")
            self.metrics.inc("m2rl_reward_requests_total", code=str(resp.status_code), kind=request.method.lower())
            return resp
        if resp is not None:
            pass
        elif request.method != "POST":
            resp = _error(405, f"{request.method} is not supported; POST a scoring request")
        else:
            start = time.monotonic()
            resp = await self._post(request)
            self.metrics.observe(time.monotonic() - start)
        self.metrics.inc("m2rl_reward_requests_total", code=str(resp.status_code), kind="score")
        return resp

    def health(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"status": "draining" if self.draining else "ok", "require_think_close": cfg.require_think_close,
                "in_flight": self.admitted, "served": self.served, "max_concurrent": cfg.max_concurrent,
                "max_queue": cfg.max_queue, "max_request_seconds": cfg.max_request_seconds,
                "max_work_seconds": cfg.max_work_seconds, "admitted_work_seconds": self.admitted_work}

    async def _post(self, request: Request) -> Response:
        cfg = self.cfg
        try:
            body = await self._read_body(request)
            loop = asyncio.get_running_loop()
            queries, prompts, labels, plan = await loop.run_in_executor(None, _parse_and_plan, body, cfg)
        except _HTTPError as exc:
            self.reject(exc.reason)
            return _error(exc.status, str(exc), close=True)
        except ClientDisconnect:
            self.reject("client_disconnect")
            return _error(400, "client disconnected before the body arrived", close=True)
        if plan.clamped:
            self.metrics.inc("m2rl_reward_clamped_labels_total", plan.clamped)
        if plan.cost > cfg.max_request_seconds:
            self.reject("budget")
            return _error(413, f"this request may take up to {plan.cost:.0f}s of scoring ({len(queries)} items at "
                               f"the server's limits: {cfg.max_test_seconds:g}s per test, {cfg.max_item_seconds:g}s "
                               f"per item); the limit is {cfg.max_request_seconds:g}s per request: split it")
        with self.admit_lock:
            if self.draining:
                full, why = True, "the reward service is shutting down; retry on another replica"
            elif self.admitted >= cfg.max_concurrent + cfg.max_queue:
                full, why = True, "the reward service is at capacity; retry later"
            elif self.admitted and self.admitted_work + plan.cost > cfg.max_work_seconds:
                full, why = True, (f"the reward service is at capacity ({self.admitted_work:.0f}s of scoring "
                                   f"admitted, {plan.cost:.0f}s asked, limit {cfg.max_work_seconds:g}s); retry later")
            else:
                full, why = False, ""
                self.admitted += 1
                self.admitted_work += plan.cost
        if full:
            self.reject("shutting_down" if self.draining else "capacity")
            return _error(503, why, headers={"Retry-After": "1"})
        try:
            return await self._score(queries, prompts, labels, plan)
        finally:
            with self.admit_lock:
                self.admitted -= 1
                self.admitted_work = max(0.0, self.admitted_work - plan.cost) if self.admitted else 0.0

    async def _read_body(self, request: Request) -> bytes:
        cfg = self.cfg
        headers = request.headers
        if "transfer-encoding" in headers and "content-length" in headers:
            raise _HTTPError(400, "both Transfer-Encoding and Content-Length: refused (ambiguous framing)", "bad_http")
        length = headers.get("content-length")
        if length is None:
            raise _HTTPError(411, "Content-Length is required", "length_required")
        n = int(length)  # h11 accepts only digits
        too_big = n > cfg.max_body_bytes
        if too_big and n > 2 * cfg.max_body_bytes:
            raise _HTTPError(413, f"request body of {n} bytes is over the limit of {cfg.max_body_bytes}",
                             "body_too_large")
        chunks: list[bytes] = []

        async def read() -> None:
            async for chunk in request.stream():
                if not too_big:  # a moderately large body is read and dropped, so the client sees the 413
                    chunks.append(chunk)

        assert self._expired is not None
        reader, expired = asyncio.ensure_future(read()), asyncio.ensure_future(self._expired.wait())
        try:
            done, _ = await asyncio.wait({reader, expired}, timeout=cfg.body_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
            if not reader.done():
                reader.cancel()
        if reader not in done:
            if expired in done:
                raise _HTTPError(503, "the reward service shut down while the body was arriving", "shutting_down")
            raise _HTTPError(408, f"request body did not arrive within {cfg.body_timeout:g}s", "body_timeout")
        reader.result()  # ClientDisconnect
        if too_big:
            raise _HTTPError(413, f"request body of {n} bytes is over the limit of {cfg.max_body_bytes}",
                             "body_too_large")
        return b"".join(chunks)

    async def _score(self, queries: list[str], prompts: list[str], labels: list[Any], plan: Plan) -> Response:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.cfg.max_concurrent)
        assert self._expired is not None and self._loop is not None
        expired = asyncio.ensure_future(self._expired.wait())
        try:
            got_slot = asyncio.ensure_future(self._slots.acquire())
            done, _ = await asyncio.wait({got_slot, expired}, return_when=asyncio.FIRST_COMPLETED)
            if got_slot not in done:
                got_slot.cancel()
                self.reject("shutting_down")
                return _error(503, "the reward service shut down before this request was scored",
                              headers={"Retry-After": "1"})
            try:
                self.scoring += 1
                result = self._loop.create_future()
                _run_in_thread(self._loop, result, _score_items, queries, prompts, labels, self.cfg, plan)
                done, _ = await asyncio.wait({result, expired}, return_when=asyncio.FIRST_COMPLETED)
                if result not in done:
                    self.reject("shutting_down")
                    return _error(503, "the reward service shut down while scoring this request (grace "
                                       f"{self.cfg.grace:g}s over); it was not scored", headers={"Retry-After": "1"})
                try:
                    out, scores = result.result()
                except Exception as exc:
                    return _error(500, f"scoring failed: {type(exc).__name__}: {exc}")
            finally:
                self.scoring -= 1
                self._slots.release()
        finally:
            expired.cancel()
        self._count(scores)
        self.served += 1
        return JSONResponse(out)

    def _count(self, scores: list[Any]) -> None:
        m = self.metrics
        m.inc("m2rl_reward_items_total", len(scores))
        for s in scores:
            d = s.details
            if d.get("timeout"):
                m.inc("m2rl_reward_item_timeouts_total")
                m.inc("m2rl_reward_sandbox_kills_total", reason="item_timeout")
            if d.get("error"):
                m.inc("m2rl_reward_item_errors_total")
            tests = d.get("tests")
            if isinstance(tests, list):
                n = sum(1 for t in tests if isinstance(t, dict) and t.get("status") == "timeout")
                if n:
                    m.inc("m2rl_reward_sandbox_kills_total", n, reason="test_timeout")


def _parse_and_plan(body: bytes, cfg: ServiceConfig) -> tuple[list[str], list[str], list[Any], Plan]:
    queries, prompts, labels = _parse(body, cfg)
    return queries, prompts, labels, plan_request(labels, cfg)


def _run_in_thread(loop: asyncio.AbstractEventLoop, fut: asyncio.Future, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` in a daemon thread (a thread stuck in a killed pool never blocks the exit)."""

    def deliver(value: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    def run() -> None:
        try:
            value, exc = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the request
            value, exc = None, e
        with contextlib.suppress(RuntimeError):  # the loop is gone: the service has exited
            loop.call_soon_threadsafe(deliver, value, exc)

    threading.Thread(target=run, name="m2rl-reward-score", daemon=True).start()


def _error(status: int, message: str, *, headers: dict[str, str] | None = None, close: bool = False) -> Response:
    h = dict(headers or {})
    if close:
        h["Connection"] = "close"
    return JSONResponse({"error": message}, status_code=status, headers=h)


def make_server(host: str = "127.0.0.1", port: int = 5000, cfg: ServiceConfig | None = None) -> RewardServer:
    """A reward server bound to host:port (port 0: a free one; see `.url`). Call `serve_forever()`."""
    return RewardServer((host, port), cfg or ServiceConfig())


def warm(cfg: ServiceConfig) -> None:
    """Start the scoring workers now rather than on the first request."""
    from m2rl.verifiers.pool import default_workers, score_batch

    n = cfg.workers or default_workers()  # math runs on the pool (mcqa, inline, would start no worker)
    score_batch([{"label": "1", "verifier": {"type": "math"}}] * n, ["Answer: 1"] * n, workers=cfg.workers)


def serve(host: str = "127.0.0.1", port: int = 5000, cfg: ServiceConfig | None = None,
          ready: Any = None) -> None:
    """Run the reward service until SIGTERM/SIGINT; `ready(url)` is called once it accepts requests."""
    cfg = cfg or ServiceConfig()
    cfg.check()
    warm(cfg)
    server = make_server(host, port, cfg)
    if ready is not None:
        threading.Thread(target=lambda: server._started.wait() and ready(server.url), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        server.stop_pool()
        server.server_close()

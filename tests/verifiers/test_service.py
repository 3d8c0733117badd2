"""The reward service over real HTTP on 127.0.0.1: OpenRLHF-shaped payloads of every domain, limits."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from m2rl.verifiers import encode_label
from m2rl.verifiers.service import ServiceConfig, make_server, warm
from tests.conftest import free_port, wait_http
from tests.verifiers.domain_cases import ALL_DOMAINS, cases


def chatml(rec: dict) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rec["prompt"])
    return turns + "<|im_start|>assistant\n"


def payload(items) -> dict:
    return {"query": [chatml(r) + resp + "<|im_end|>" for r, resp in items],
            "prompts": [chatml(r) for r, _ in items], "labels": [encode_label(r) for r, _ in items]}


def post(url: str, body: bytes | dict, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def server():
    cfg = ServiceConfig(max_body_bytes=2_000_000, max_items=64, max_concurrent=2, max_queue=4, workers=2, timeout=30)
    warm(cfg)  # the pool's workers up before the first request, as `serve` does
    srv = make_server("127.0.0.1", 0, cfg)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_health(server):
    with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
        body = json.loads(r.read())
    assert r.status == 200 and body["status"] == "ok" and body["max_concurrent"] == 2


def test_mixed_batch_of_every_domain(server):
    items, want, doms = [], [], []
    for domain in ALL_DOMAINS:
        for rec, good, bad in cases(domain, 3):
            items += [(rec, good), (rec, bad)]
            want += [1.0, 0.0]
            doms += [domain, domain]
    status, body = post(server.url + "/get_reward", payload(items))
    assert status == 200, body
    assert body["rewards"] == want and body["scores"] == want
    for d in ALL_DOMAINS:
        assert body["extra_logs"][f"m2rl/{d}/count"] == [1.0 if x == d else 0.0 for x in doms]


def test_concurrent_requests(server):
    per_domain = {d: cases(d, 4) for d in ALL_DOMAINS}

    def one(i: int) -> tuple[int, list[float], list[float]]:
        d = ALL_DOMAINS[i % len(ALL_DOMAINS)]
        rec, good, bad = per_domain[d][i % 4]
        items = [(rec, good), (rec, bad)]
        deadline = time.monotonic() + 120  # 503 means retry (Retry-After); a loaded CI box may need a while
        while True:
            status, body = post(server.url, payload(items))
            if status != 503 or time.monotonic() > deadline:
                return status, body.get("rewards"), [1.0, 0.0]
            time.sleep(0.2)

    with ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(24)))
    for status, got, want in results:
        assert status == 200 and got == want


def test_errors_are_clear_4xx(server):
    status, body = post(server.url, b"x" * 2_000_001)
    assert status == 413 and "over the limit" in body["error"]
    status, body = post(server.url, {"query": ["a"] * 65, "prompts": [""] * 65, "labels": ["x"] * 65})
    assert status == 413 and "limit is 64" in body["error"]
    status, body = post(server.url, b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = post(server.url, {"query": ["a", "b"], "prompts": [""], "labels": ["x", "y"]})
    assert status == 400 and "prompts" in body["error"]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/")  # a claimed 1 GB body is refused before it is sent
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "over the limit" in json.loads(r.read())["error"]
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/")
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 411
    conn.close()


def test_bad_label_scores_zero_not_the_request(server):
    rec, good, _ = cases("math", 1)[0]
    body = payload([(rec, good)])
    body["query"].append("Answer: 1")
    body["prompts"].append("")
    body["labels"].append("not an m2rl label")
    status, out = post(server.url, body)
    assert status == 200 and out["rewards"] == [1.0, 0.0] and out["extra_logs"]["m2rl/error"] == [0.0, 1.0]


def test_full_queue_gets_503():
    srv = make_server("127.0.0.1", 0, ServiceConfig(max_concurrent=1, max_queue=0, workers=1))
    with srv.admit_lock:
        srv.admitted = 1  # one request is being scored
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        status, body = post(srv.url, {"query": [], "prompts": [], "labels": []})
        assert status == 503 and "capacity" in body["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_cli_serve_rewards():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "m2rl.cli", "serve-rewards", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=60)
        rec, good, bad = cases("science", 1)[0]
        status, body = post(f"http://127.0.0.1:{port}", payload([(rec, good), (rec, bad)]))
        assert status == 200 and body["rewards"] == [1.0, 0.0]
        rec, good, _ = cases("math", 1)[0]
        assert post(f"http://127.0.0.1:{port}", payload([(rec, good)]))[1]["rewards"] == [1.0]
        kids = _descendants(proc.pid)
        assert kids  # the zygote and its worker
    finally:
        proc.terminate()  # SIGTERM drains, then stops the pool (its workers and sandboxes): allow for a loaded box
        proc.wait(30)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in kids)  # nothing outlives the service


def _descendants(pid: int) -> list[int]:
    from m2rl.verifiers.pool import _children_map

    kids, todo, out = _children_map(), [pid], []
    while todo:
        for c in kids.get(todo.pop(), ()):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(("env", "args", "gate"), [
    (None, [], False), ("1", [], True), (None, ["--require-think-close"], True),
    ("1", ["--no-require-think-close"], False),
])
def test_cli_serve_rewards_think_gate(env, args, gate, monkeypatch):
    """`--require-think-close` (the chart's rewards.requireThinkClose) over $M2RL_REQUIRE_THINK_CLOSE."""
    from typer.testing import CliRunner

    import m2rl.verifiers.service as service
    from m2rl.cli import app

    if env is None:
        monkeypatch.delenv(service.THINK_ENV, raising=False)
    else:
        monkeypatch.setenv(service.THINK_ENV, env)
    seen = {}
    monkeypatch.setattr(service, "serve", lambda host, port, cfg, ready=None: seen.update(cfg=cfg))
    r = CliRunner().invoke(app, ["serve-rewards", *args])
    assert r.exit_code == 0, r.output
    assert seen["cfg"].require_think_close is gate

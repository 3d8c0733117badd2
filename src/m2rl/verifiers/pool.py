"""`score_batch`: score many responses on a pool of worker processes with a hard per-item timeout.

The pool is a set of long-lived worker processes, forked by a warm zygote process that has imported
every verifier (`m2rl.verifiers._zygote`), and one dispatcher thread. Items go to idle workers in small chunks; each item's clock starts
when its worker begins it. An item that runs past its timeout gets a 0 with `timeout: true`, and its
worker is killed (its process group and every process it started) and replaced; an item whose worker
dies gets a 0 with the exit code. The rest of that worker's chunk goes back in the queue, so one bad
item never takes the batch down. No signals are used in the caller: `score_batch` is safe in any
thread, and many threads may share one pool (the OpenRLHF hook scores one sample per thread).
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from m2rl.registry import VERIFIERS
from m2rl.verifiers.api import VerifierError, record_verifier, score
from m2rl.verifiers.registry import RegistryError, Score, extra_modules

DEFAULT_TIMEOUT = 10.0  # seconds per item, for verifiers that state none
STARTUP_TIMEOUT = 120.0
MAX_CHUNK = 16
MODULES_ENV = "M2RL_VERIFIER_MODULES"  # extra verifier modules the workers import (comma-separated)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def item_timeout(meta: Mapping[str, Any]) -> float:
    """The default time limit of one item: its verifier's registered `item_timeout(meta)`, else
    `DEFAULT_TIMEOUT` (also when the type is unknown: the item then scores 0 at once)."""
    try:
        own = VERIFIERS.entry(str(meta.get("type"))).meta
    except RegistryError:
        return DEFAULT_TIMEOUT
    return _timeout_of(own, meta)


def _timeout_of(own: Mapping[str, Any], meta: Mapping[str, Any]) -> float:
    """The time limit an item of a verifier with registry metadata `own` gets by default."""
    limit = own.get("item_timeout")
    return float(limit(meta)) if limit is not None else DEFAULT_TIMEOUT


@dataclass
class _Task:
    tid: int
    record: Any
    response: Any
    require_close: bool
    timeout: float
    future: Future = field(default_factory=Future)


class _Zygote:
    """The warm process that forks workers (see `m2rl.verifiers._zygote`)."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env[MODULES_ENV] = ",".join(modules)
        self.proc = subprocess.Popen([sys.executable, "-m", "m2rl.verifiers._zygote"], stdin=theirs,
                                     env=env, close_fds=True)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(STARTUP_TIMEOUT)
        try:
            ok = self.sock.recv(1) == b"R"
        except OSError:
            ok = False
        if not ok:
            self.close()
            raise RuntimeError("the scoring zygote did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self) -> tuple[int, Connection]:
        self.sock.sendall(b"f")
        msg, fds, _, _ = socket.recv_fds(self.sock, 4, 1)
        if len(msg) != 4 or len(fds) != 1:
            raise RuntimeError("the scoring zygote failed to fork a worker")
        return int.from_bytes(msg, "little"), Connection(fds[0])

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class _Worker:
    pid: int
    conn: Any
    started: float
    ready: bool = False
    inflight: collections.deque = field(default_factory=collections.deque)
    deadline: float = 0.0


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = collections.defaultdict(list)
    try:
        names = os.listdir("/proc")
    except OSError:
        return kids
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) > 1:
            kids[int(rest[1])].append(int(name))
    return kids


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (and their process groups).

    A sandbox harness (`m2rl.verifiers.sandbox_harness`) started by one of them is left to itself, with
    what it runs: it gets SIGTERM when its scorer dies (PR_SET_PDEATHSIG), kills its sandbox and removes
    the sandbox's folder and cgroup, which a SIGKILL would leave to the next scorer's sweep."""
    from m2rl.verifiers.sandbox import HARNESS

    kids = _children_map()
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(kids.get(p, ()))
    mark = HARNESS.encode()
    parent = {k: p for p, ks in kids.items() for k in ks}
    spared = [p for p in seen if p != pid and mark in _cmdline(p) and mark not in _cmdline(parent.get(p, 0))]
    while spared:  # each harness and everything under it
        p = spared.pop()
        if p in seen:
            seen.discard(p)
            spared.extend(kids.get(p, ()))
    for p in [pid, *(seen - {pid})]:  # the scorer first: its death is what the harness waits for
        if p not in seen:
            continue
        try:
            pgid = os.getpgid(p)
        except OSError:
            pgid = None
        if pgid is not None and pgid == p:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


class ScoringPool:
    """Worker processes plus a dispatcher thread; `submit` is thread-safe."""

    def __init__(self, workers: int | None = None):
        self.size = max(1, int(workers or default_workers()))
        self._zygote: _Zygote | None = None
        self.modules = tuple(extra_modules())  # verifier modules its workers import beyond the package
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._workers: list[_Worker] = []
        self._closed = False
        self._next_tid = 0
        self._start_failures = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._loop, name="m2rl-scoring-pool", daemon=True)
        self._thread.start()

    # ---- caller side -------------------------------------------------------------------------
    def submit(self, records: Sequence[Any], responses: Sequence[Any], timeouts: Sequence[float],
               require_think_close: bool = False) -> list[Future]:
        tasks = []
        with self._lock:
            if self._closed:
                raise RuntimeError("scoring pool is closed")
            for rec, resp, t in zip(records, responses, timeouts, strict=True):
                self._next_tid += 1
                tasks.append(_Task(self._next_tid, rec, resp, require_think_close, float(t)))
            self._pending.extend(tasks)
        self._wake()
        return [t.future for t in tasks]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._thread.join(timeout=10)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._workers]

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    # ---- dispatcher thread -------------------------------------------------------------------
    def _start_worker(self) -> _Worker | None:
        try:
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = None
                self._zygote = _Zygote(self.modules)
            pid, conn = self._zygote.fork()
        except (OSError, RuntimeError):
            self._start_failures += 1
            return None
        w = _Worker(pid, conn, time.monotonic())
        self._workers.append(w)
        return w

    def _retire(self, w: _Worker) -> None:
        kill_tree(w.pid)
        try:
            w.conn.close()
        except OSError:
            pass
        if w in self._workers:
            self._workers.remove(w)

    def _assign(self) -> None:
        if self._start_failures >= 3 and not any(w.ready for w in self._workers):
            while self._pending:
                self._pending.popleft().future.set_result(
                    Score(0.0, {"reason": "scoring workers fail to start", "error": True}))
            return
        want = min(self.size, len([w for w in self._workers if w.inflight]) + len(self._pending))
        while len(self._workers) < want:
            if self._start_worker() is None:
                break
        idle = [w for w in self._workers if w.ready and not w.inflight]
        for w in idle:
            if not self._pending:
                break
            busy = len(self._workers) or 1
            n = max(1, min(MAX_CHUNK, len(self._pending) // (4 * busy)))
            chunk = [self._pending.popleft() for _ in range(min(n, len(self._pending)))]
            try:
                w.conn.send([(t.tid, t.record, t.response, t.require_close) for t in chunk])
            except Exception as exc:
                if isinstance(exc, OSError):  # the worker is gone: requeue, replace it
                    self._pending.extendleft(reversed(chunk))
                    self._retire(w)
                    continue
                for t in chunk:  # an item that cannot be sent to a worker at all (does not pickle)
                    self._fail_or_send(w, t, exc)
                if w.inflight:
                    w.deadline = time.monotonic() + w.inflight[0].timeout
                continue
            w.inflight.extend(chunk)
            w.deadline = time.monotonic() + chunk[0].timeout

    def _fail_or_send(self, w: _Worker, t: _Task, exc: Exception) -> None:
        try:
            w.conn.send([(t.tid, t.record, t.response, t.require_close)])
        except Exception:
            t.future.set_result(Score(0.0, {"reason": f"item cannot be sent to a worker: {exc}", "error": True}))
            return
        w.inflight.append(t)

    def _on_message(self, w: _Worker) -> None:
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            self._on_death(w)
            return
        if not w.ready:
            if isinstance(msg, tuple) and msg and msg[0] == "ready":
                w.ready = True
                self._start_failures = 0
            return
        tid, value, details = msg
        if not w.inflight or w.inflight[0].tid != tid:  # cannot happen: results come in order
            self._on_death(w, reason="worker answered out of order")
            return
        task = w.inflight.popleft()
        task.future.set_result(Score(value, details))
        if w.inflight:
            w.deadline = time.monotonic() + w.inflight[0].timeout

    def _on_death(self, w: _Worker, reason: str | None = None) -> None:
        if w.inflight:
            task = w.inflight.popleft()
            why = reason or "the scoring worker died on this item"
            task.future.set_result(Score(0.0, {"reason": why, "error": True}))
            self._pending.extendleft(reversed(w.inflight))
            w.inflight.clear()
        elif not w.ready:
            self._start_failures += 1
        self._retire(w)

    def _on_timeout(self, w: _Worker) -> None:
        task = w.inflight.popleft()
        task.future.set_result(Score(0.0, {"reason": f"timed out after {task.timeout:g}s", "timeout": True}))
        self._pending.extendleft(reversed(w.inflight))
        w.inflight.clear()
        self._retire(w)

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            inflight = [t for w in self._workers for t in w.inflight]  # on a worker when the pool closed
            for w in list(self._workers):
                w.inflight.clear()
                self._retire(w)
            if self._zygote is not None:
                self._zygote.close()
            failed = Score(0.0, {"reason": "scoring pool closed", "error": True})
            with self._lock:
                pending = inflight + list(self._pending)
                self._pending.clear()
            for t in pending:
                if not t.future.done():
                    t.future.set_result(failed)

    def _serve(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                self._assign()
            now = time.monotonic()
            limits = [w.deadline for w in self._workers if w.inflight]
            limits += [w.started + STARTUP_TIMEOUT for w in self._workers if not w.ready]
            wait_for = max(0.0, min(limits) - now) if limits else None
            by_conn = {w.conn: w for w in self._workers}
            try:
                ready = wait([*by_conn, self._wake_r], timeout=wait_for)
            except OSError:
                ready = []
            for obj in ready:
                if obj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                w = by_conn[obj]
                with self._lock:
                    # drain everything this worker has sent, then refill it at once
                    for _ in range(4 * MAX_CHUNK):
                        if w not in self._workers:
                            break
                        self._on_message(w)
                        if w not in self._workers or not w.conn.poll(0):
                            break
                    if w in self._workers and w.ready and not w.inflight and self._pending:
                        self._assign()
            now = time.monotonic()
            with self._lock:
                for w in list(self._workers):
                    if w.inflight and now >= w.deadline:
                        self._on_timeout(w)
                    elif not w.ready and now >= w.started + STARTUP_TIMEOUT:
                        self._start_failures += 1
                        self._retire(w)


_POOLS: dict[int, ScoringPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(workers: int | None = None) -> ScoringPool:
    """The shared pool with `workers` processes (one per size, started on first use)."""
    size = max(1, int(workers or default_workers()))
    with _POOLS_LOCK:
        pool = _POOLS.get(size)
        if pool is not None and pool.modules != tuple(extra_modules()):  # a verifier registered since
            pool.close()
            pool = None
        if pool is None or pool._closed:
            pool = _POOLS[size] = ScoringPool(size)
        return pool


@atexit.register
def shutdown_pools() -> None:
    """Stop every shared pool (their workers die with them)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for p in pools:
        p.close()


def score_batch(
    records: Sequence[Mapping[str, Any]],
    responses: Sequence[Any],
    workers: int | None = None,
    timeout: float | None = None,
    *,
    require_think_close: bool = False,
    pool: ScoringPool | None = None,
) -> list[Score]:
    """Score `responses[i]` against `records[i]` on worker processes; results in input order.

    `workers`: processes (None: one per available core; 0: score in this process, without a time
    limit). `timeout`: hard limit in seconds per item (None: each verifier's default, see
    `item_timeout`). An item that runs over scores 0 with `details["timeout"] = True`; one whose worker
    crashes scores 0 with the reason. Raises VerifierError (naming the index) for a malformed record.
    `pool`: a ScoringPool of your own (default: the shared pool of `workers` processes).

    Verifiers marked `inline_safe` (`mcqa`, `tool_calls`: linear-time text scans and JSON parsing, no
    evaluation, no code) are scored in the calling thread while the workers run the rest: a process
    round trip costs more than they do. Their time is bounded by their algorithms (the adversarial
    tests feed them 1 MB of backtracking bait), not by a kill.
    """
    if len(records) != len(responses):
        raise ValueError(f"score_batch: {len(records)} records but {len(responses)} responses")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"score_batch: timeout must be > 0 seconds, got {timeout}")
    if workers is not None and workers < 0:
        raise ValueError(f"score_batch: workers must be >= 0, got {workers}")
    timeouts, inline = [], []
    for i, rec in enumerate(records):  # each record's verifier read once: its type, time limit, inline flag
        try:
            vtype, meta = record_verifier(rec)
            own = VERIFIERS.entry(vtype, "verifier.type").meta
        except VerifierError as exc:
            raise VerifierError(f"score_batch: item {i}: {exc}") from None
        except RegistryError as exc:
            raise VerifierError(f"score_batch: item {i}: record {rec.get('id')!r}: {exc}") from None
        timeouts.append(float(timeout) if timeout is not None else _timeout_of(own, meta))
        inline.append(bool(own.get("inline_safe")))
    if not records:
        return []
    if workers == 0:
        return [score(r, x, require_think_close=require_think_close) for r, x in zip(records, responses, strict=True)]
    if not any(inline):
        futures = (pool or get_pool(workers)).submit(records, responses, timeouts, require_think_close)
        return [f.result() for f in futures]
    out: list[Score | None] = [None] * len(records)
    remote = [i for i, flag in enumerate(inline) if not flag]
    futures = ((pool or get_pool(workers)).submit([records[i] for i in remote], [responses[i] for i in remote],
                                                  [timeouts[i] for i in remote], require_think_close)
               if remote else [])
    for i, flag in enumerate(inline):  # scored here while the workers run the rest
        if flag:
            out[i] = score(records[i], responses[i], require_think_close=require_think_close)
    for i, f in zip(remote, futures, strict=True):
        out[i] = f.result()
    return [s if s is not None else Score(0.0) for s in out]


"""Run untrusted Python programs against tests, isolated from the machine that scores them.

`run_tests(code, tests, ...)` runs one program on a list of tests and returns one `TestRun` per test
that ran. The program runs in a child interpreter (`sandbox_harness.py`, started with `python -I -S`)
that never sees the expected outputs: after each test it reports the program's stdout (or, for
function tests, its return value as JSON) and waits for the scorer's "next" or "stop". So a program
cannot read the answers out of the harness's memory, and pass-all scoring stops at the first failure.

Isolation, local backend (see the "Sandbox" section of README.md):

- `namespaces` mode (root, or any user the kernel lets create namespaces): new mount, network, PID,
  IPC and UTS namespaces. The program sees a private root: a size-limited tmpfs holding read-only,
  nosuid binds of /usr (and /bin, /lib, ...), the Python installation and its site-packages, a few
  files of /etc and /dev, a private /proc and /tmp, and its working folder /sandbox. Nothing of the
  host's files outside those binds is visible, and nothing it writes reaches the host disk. The network
  namespace has only a loopback device that is down: no network at all. It runs as a dedicated uid of
  its own (so RLIMIT_NPROC counts only its own processes), with no capabilities and no_new_privs. The
  harness is PID 1 of the namespace: after every test it kills every process left in it, and when it
  exits the kernel kills whatever remains (children that setsid/double-fork included).
- `basic` mode (no namespaces allowed, e.g. an unprivileged container): resource limits, its own
  process group, a clean environment, a fresh scratch folder as working directory (removed
  afterwards), a dedicated uid when the scorer runs as root, and cleanup of every process of that uid
  (or, without root, of every descendant through a child subreaper). Files and network are NOT
  isolated in this mode; use namespaces or the remote backend for untrusted code at scale.

Both modes: RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC, RLIMIT_NOFILE, no core files, a
wall-clock limit per test (the whole process tree killed), an overall wall-clock limit on the harness
(its process group killed by the scorer), an empty environment (PATH, HOME, LANG only).

The remote backend (`RemoteBackend(url)`, or `M2RL_SANDBOX_URL`) posts each test to a
SandboxFusion-compatible `POST /run_code` service instead.
"""

from __future__ import annotations

import json
import marshal
import math
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from m2rl.verifiers import sandbox_harness
from m2rl.verifiers.sandbox_harness import SAFE_ENV, SYSTEM_DIRS


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed program (per test process unless said otherwise)."""

    memory_mb: int = 1024  # RLIMIT_AS of the program
    file_mb: int = 16  # RLIMIT_FSIZE: the largest file (stdout included) it may write
    nproc: int = 32  # RLIMIT_NPROC: processes of the sandbox uid at once
    nofile: int = 128  # RLIMIT_NOFILE
    scratch_mb: int = 64  # size of the private tmpfs (root, /tmp, /sandbox) in namespaces mode
    output_bytes: int = 1 << 20  # stdout kept per test (more is cut, and the test fails)
    startup_s: float = 5.0  # time allowed for the harness to start and finish besides the tests


@dataclass
class TestRun:
    """What one test of a program did."""

    __test__ = False  # not a pytest test class

    index: int
    status: str  # ok | runtime_error | timeout | memory | file_limit | output_limit | signal | sandbox_error
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""  # the last few KB
    result: Any = None  # function tests: the return value decoded from JSON
    has_result: bool = False
    elapsed_s: float = 0.0


@dataclass
class SandboxResult:
    """All test runs of one program, how it was isolated, and an error of the sandbox itself."""

    runs: list[TestRun] = field(default_factory=list)
    isolation: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


Judge = Callable[[int, TestRun], bool]


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program)."""


def _m2rl_source_roots() -> set[str]:
    here = os.path.dirname(os.path.abspath(__file__))  # .../m2rl/verifiers
    pkg = os.path.dirname(here)
    return {os.path.dirname(pkg)}


def _python_paths() -> list[str]:
    """The import path the program gets: the interpreter's stdlib and site-packages, not the repo."""
    hidden = _m2rl_source_roots()
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    out: list[str] = []
    for p in sys.path:
        if not p or not os.path.isabs(p) or not os.path.exists(p):
            continue
        real = os.path.realpath(p)
        packages = "site-packages" in real or "dist-packages" in real
        if real in hidden and not packages:
            continue
        if not packages and not any(real == x or real.startswith(x.rstrip("/") + "/") for x in prefixes):
            continue  # a script's folder, a PYTHONPATH entry, the current directory: not the program's
        if real not in out:
            out.append(real)
    return out


def _bind_roots(paths: Sequence[str]) -> list[str]:
    """The smallest set of directories that covers `paths` (outside the system dirs)."""
    dirs = sorted({p if os.path.isdir(p) else os.path.dirname(p) for p in paths}, key=len)
    out: list[str] = []
    for d in dirs:
        if any(d == s or d.startswith(s.rstrip("/") + "/") for s in
               [*out, *(f"/{x}" for x in SYSTEM_DIRS)]):
            continue
        out.append(d)
    return out


_UID_LOCK = threading.Lock()


def _fresh_uid() -> int:
    """A uid no account uses, unique per sandbox in practice (for RLIMIT_NPROC and cleanup)."""
    with _UID_LOCK:
        return random.SystemRandom().randrange(1_900_000_000, 2_100_000_000)


def _world_traversable(path: str) -> bool:
    """Whether a dropped uid could import from `path` (every parent o+x, the folder o+rx)."""
    p = os.path.realpath(path)
    try:
        while True:
            st = os.stat(p)
            if not st.st_mode & 0o001:
                return False
            parent = os.path.dirname(p)
            if parent == p:
                return True
            p = parent
    except OSError:
        return False


def _pids_of_uid(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def _kill_uid(uid: int) -> None:
    for _ in range(50):
        pids = _pids_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


HARNESS = os.path.abspath(sandbox_harness.__file__)


class LocalBackend:
    """Runs programs on this machine in the sandbox harness (see the module doc)."""

    def __init__(self, mode: str = "auto", python: str | None = None) -> None:
        if mode not in ("auto", "namespaces", "basic"):
            raise ValueError(f"sandbox mode must be auto, namespaces or basic, got {mode!r}")
        self.mode = mode
        self.python = python or sys.executable

    def run(self, code: str, tests: Sequence[Mapping[str, Any]], *, fn_name: str | None,
            timeout: float, limits: Limits, judge: Judge | None) -> SandboxResult:
        scratch = tempfile.mkdtemp(prefix="m2rl-sbx-")
        os.chmod(scratch, 0o755)
        is_root = os.geteuid() == 0
        py_paths = _python_paths()
        uid = _fresh_uid() if is_root else None
        # without namespaces the program sees the host's files: a dropped uid could not import the
        # standard library when it lives somewhere private (e.g. pyenv under /root)
        basic_uid = uid if uid is not None and all(_world_traversable(p) for p in py_paths) else None
        if uid is not None:
            os.chown(scratch, uid, uid)
        job = {"code": code, "tests": [dict(t) for t in tests], "fn_name": fn_name, "timeout": float(timeout),
               "limits": asdict(limits), "mode": self.mode, "scratch": scratch, "uid": uid,
               "basic_uid": basic_uid, "sys_path": py_paths, "binds": _bind_roots(py_paths)}
        payload = marshal.dumps(job)
        result = SandboxResult()
        proc = None
        try:
            proc = subprocess.Popen(
                [self.python, "-I", "-S", "-B", HARNESS, scratch], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=dict(SAFE_ENV), cwd=scratch, start_new_session=True,
                close_fds=True)
            self._converse(proc, payload, len(tests), timeout, limits, judge, result)
        except OSError as exc:
            result.error = f"sandbox failed to start: {exc}"
        finally:
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # before reaping: the pgid cannot be reused
                except OSError:
                    pass
                for f in (proc.stdin, proc.stdout, proc.stderr):
                    try:
                        f.close()
                    except OSError:
                        pass
                proc.wait()
            if result.isolation.get("mode") == "basic" and result.isolation.get("uid") is not None:
                _kill_uid(result.isolation["uid"])
            shutil.rmtree(scratch, ignore_errors=True)
        return result

    def _converse(self, proc: subprocess.Popen, payload: bytes, n_tests: int, timeout: float,
                  limits: Limits, judge: Judge | None, result: SandboxResult) -> None:
        deadline = time.monotonic() + limits.startup_s + n_tests * (timeout + 1.0)
        fd = proc.stdout.fileno()
        buf = bytearray()

        def read_exact(n: int) -> bytes | None | bool:
            """`n` bytes from the harness; None on the wall-clock limit, False when it exited."""
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    return None
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return False
                buf.extend(chunk)
            out = bytes(buf[:n])
            del buf[:n]
            return out

        def read_msg() -> dict | None | bool:
            """The harness's next message (a length line, then marshal data)."""
            while b"\n" not in buf:
                if len(buf) > 32:
                    return False
                got = read_exact(len(buf) + 1)
                if not got:
                    return got
                buf[:0] = got
            nl = buf.index(b"\n")
            size = int(buf[:nl])
            del buf[:nl + 1]
            data = read_exact(size)
            if not data:
                return data
            return marshal.loads(data)

        def send(data: bytes) -> bool:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                return True
            except (BrokenPipeError, OSError):
                return False

        if not send(b"%d\n" % len(payload) + payload):
            result.error = "sandbox harness exited before reading the job"
            return
        hello = read_msg()
        if not hello:
            result.error = self._harness_error(proc, hello)
            return
        result.isolation = hello
        if "error" in result.isolation:
            result.error = result.isolation.pop("error")
            return
        for _ in range(n_tests):
            d = read_msg()
            if not d:
                result.error = self._harness_error(proc, d)
                return
            run = TestRun(index=d["index"], status=d["status"], returncode=d.get("returncode"),
                          stdout=d.get("stdout", ""), stderr=d.get("stderr", ""), result=d.get("result"),
                          has_result="result" in d, elapsed_s=d.get("elapsed_s", 0.0))
            result.runs.append(run)
            go_on = judge(run.index, run) if judge is not None else True
            if not send(b"next\n" if go_on else b"stop\n") or not go_on:
                return

    @staticmethod
    def _harness_error(proc: subprocess.Popen, msg: dict | None | bool) -> str:
        if msg is None:
            return "sandbox wall-clock limit reached (harness killed)"
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            err = proc.stderr.read(4000).decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            err = ""
        return "sandbox harness exited early" + (f": {err.splitlines()[-1]}" if err else "")


class RemoteBackend:
    """Posts each test to a SandboxFusion-compatible `POST {url}/run_code` service.

    Request: {code, language: "python", stdin, run_timeout, memory_limit_MB}. Response: {status,
    message, run_result: {status: Finished|TimeLimitExceeded|Error, return_code, stdout, stderr,
    execution_time}}. Function tests send the program wrapped in a small driver that prints the
    return value as JSON after a marker line.
    """

    MARKER = "\x00m2rl-result\x00"

    def __init__(self, url: str, request_timeout_s: float = 60.0) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/run_code") else url + "/run_code"
        self.request_timeout_s = request_timeout_s

    def _driver(self, code: str, fn_name: str, test: Mapping[str, Any]) -> str:
        call = json.dumps({"args": test.get("args", []), "kwargs": test.get("kwargs", {})})
        return (
            "import json as _j, sys as _s\n"
            f"_src = {code!r}\n"
            "_ns = {'__name__': '__main__'}\n"
            "try:\n    exec(compile(_src, 'solution.py', 'exec'), _ns)\n"
            "except SystemExit:\n    pass\n"
            f"_c = _j.loads({call!r})\n"
            f"_f = {fn_name!r}\n"
            "_fn = getattr(_ns['Solution'](), _f) if 'Solution' in _ns and hasattr(_ns['Solution'], _f) "
            "else _ns[_f]\n"
            "_r = _fn(*_c['args'], **_c['kwargs'])\n"
            "def _d(o):\n"
            "    if isinstance(o, (set, frozenset)):\n"
            "        try:\n            return sorted(o)\n        except TypeError:\n            return list(o)\n"
            "    return repr(o)\n"
            f"_s.stdout.write('\\n' + {self.MARKER!r} + _j.dumps(_r, default=_d) + '\\n')\n"
        )

    def run(self, code: str, tests: Sequence[Mapping[str, Any]], *, fn_name: str | None,
            timeout: float, limits: Limits, judge: Judge | None) -> SandboxResult:
        import urllib.error
        import urllib.request

        result = SandboxResult(isolation={"mode": "remote", "url": self.url})
        for i, test in enumerate(tests):
            program = self._driver(code, fn_name, test) if fn_name else code
            body = {"code": program, "language": "python", "stdin": "" if fn_name else test.get("stdin", ""),
                    "run_timeout": float(timeout), "compile_timeout": float(timeout),
                    "memory_limit_MB": int(limits.memory_mb)}
            req = urllib.request.Request(self.url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=self.request_timeout_s + timeout) as resp:
                    data = json.loads(resp.read().decode("utf-8", "replace"))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                result.error = f"remote sandbox {self.url}: {exc}"
                return result
            run = self._to_run(i, data, fn_name is not None, limits, time.monotonic() - t0)
            if run.status == "sandbox_error":
                result.error = f"remote sandbox {self.url}: {data.get('message') or 'SandboxError'}"
                return result
            result.runs.append(run)
            if judge is not None and not judge(i, run):
                break
        return result

    def _to_run(self, i: int, data: Mapping[str, Any], fn: bool, limits: Limits, elapsed: float) -> TestRun:
        if data.get("status") == "SandboxError":
            return TestRun(index=i, status="sandbox_error")
        rr = data.get("run_result") or {}
        stdout = str(rr.get("stdout") or "")[: limits.output_bytes]
        rc = rr.get("return_code")
        status = {"Finished": "ok" if rc == 0 else "runtime_error",
                  "TimeLimitExceeded": "timeout"}.get(rr.get("status"), "runtime_error")
        run = TestRun(index=i, status=status, returncode=rc, stdout=stdout,
                      stderr=str(rr.get("stderr") or "")[-4000:], elapsed_s=elapsed)
        if fn and status == "ok":
            head, sep, tail = stdout.rpartition("\n" + self.MARKER)
            if sep:
                run.stdout = head
                try:
                    run.result, run.has_result = json.loads(tail.strip()), True
                except ValueError:
                    run.status = "runtime_error"
            else:
                run.status = "runtime_error"
        return run


def default_backend() -> LocalBackend | RemoteBackend:
    """`RemoteBackend(M2RL_SANDBOX_URL)` when that variable is set, else the local sandbox."""
    url = os.environ.get("M2RL_SANDBOX_URL", "").strip()
    if url:
        return RemoteBackend(url)
    return LocalBackend(os.environ.get("M2RL_SANDBOX_MODE", "auto"))


def run_tests(code: str, tests: Sequence[Mapping[str, Any]], *, fn_name: str | None = None,
              timeout: float = 5.0, limits: Limits | None = None, judge: Judge | None = None,
              backend: LocalBackend | RemoteBackend | None = None) -> SandboxResult:
    """Run `code` on each test in order; `judge(index, run)` returning False stops the run.

    A test is `{"stdin": text}` (stdout tests) or `{"args": [...], "kwargs": {...}}` (with
    `fn_name`: call `fn_name`, or `Solution().fn_name` when the program defines a class
    `Solution`). `timeout` is the wall-clock limit per test in seconds (CPU time is limited to it too).
    """
    if not tests:
        return SandboxResult()
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"sandbox timeout must be a positive number of seconds, got {timeout!r}")
    backend = backend or default_backend()
    return backend.run(code, tests, fn_name=fn_name, timeout=float(timeout), limits=limits or Limits(),
                       judge=judge)


def run_program(code: str, stdin: str = "", *, timeout: float = 5.0, limits: Limits | None = None,
                backend: LocalBackend | RemoteBackend | None = None) -> tuple[TestRun | None, SandboxResult]:
    """Run one program once on `stdin`: its run (None when the sandbox failed) and the whole result."""
    res = run_tests(code, [{"stdin": stdin}], timeout=timeout, limits=limits, backend=backend)
    return (res.runs[0] if res.runs else None), res


_PROBE: dict[str, dict[str, Any]] = {}


def probe(mode: str = "auto") -> dict[str, Any]:
    """How the local sandbox isolates programs here (runs one trivial program; cached)."""
    if mode not in _PROBE:
        _, res = run_program("print(1)", backend=LocalBackend(mode))
        info = dict(res.isolation)
        if res.error:
            info["error"] = res.error
        _PROBE[mode] = info
    return _PROBE[mode]



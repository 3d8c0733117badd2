"""The sandbox's limits on the whole program (cgroup, tmpfs inodes, seccomp), its result channel, and
what is left after its scorer is killed. Bounded: at most about 1 GiB of memory and a few seconds each,
loopback only. Each test skips, saying why, where the host lacks what it needs."""

from __future__ import annotations

import errno
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m2rl.verifiers import sandbox
from m2rl.verifiers.pool import _cmdline
from m2rl.verifiers.types.unit_test import result_matches, values_match, verify_unit_test

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@pytest.fixture(scope="module")
def isolation():
    return sandbox.probe()


@pytest.fixture(scope="module")
def cg(isolation):
    if not isolation.get("cgroup"):
        pytest.skip(f"no program cgroup on this host: {isolation.get('cgroup_error')}")
    return isolation["cgroup"]


@pytest.fixture(scope="module")
def ns(isolation):
    if isolation.get("mode") != "namespaces":
        pytest.skip(f"namespaces unavailable here ({isolation.get('namespaces_error') or 'not root'})")
    return isolation


@pytest.fixture(scope="module")
def seccomp(isolation):
    if not isolation.get("seccomp"):
        pytest.skip(f"no seccomp filter on this host: {isolation.get('seccomp_error')}")
    return isolation


@pytest.fixture(params=["auto", "basic"])
def backend(request):
    return sandbox.LocalBackend(request.param)


def _ppids() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
                out[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    return out


def _descendants(root: int) -> dict[int, int]:
    """Every descendant of `root`: pid -> depth (1 for a child)."""
    ppid = _ppids()
    kids: dict[int, list[int]] = {}
    for p, pp in ppid.items():
        kids.setdefault(pp, []).append(p)
    out, todo = {}, [(root, 0)]
    while todo:
        p, d = todo.pop()
        for k in kids.get(p, ()):
            if k not in out:
                out[k] = d + 1
                todo.append((k, d + 1))
    return out


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Sampler:
    """Samples, every few ms while a sandbox runs, the memory its processes take from the host."""

    def __init__(self) -> None:
        self.peak_rss = 0  # KiB, all processes of the sandbox at once
        self.harness_hwm = 0  # KiB, the largest VmHWM of a root process of the harness (harness, PID 1)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            total = 0
            for pid, depth in _descendants(me).items():
                if b"sandbox_harness.py" not in _cmdline(pid):
                    continue
                total += _status_kib(pid, "VmRSS")
                if depth == 1 or (depth == 2 and self.pid_ns):
                    self.harness_hwm = max(self.harness_hwm, _status_kib(pid, "VmHWM"))
            self.peak_rss = max(self.peak_rss, total)
            time.sleep(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    pid_ns = False


# --- what probe() states --------------------------------------------------------------------------

def test_probe_states_the_program_limits(isolation):
    assert isolation["program_limits"] in ("cgroup", "per-process rlimits only (no cgroup: see cgroup_error)")
    if isolation["cgroup"]:
        assert isolation["cgroup"]["version"] in (1, 2) and "memory" in isolation["cgroup"]["controllers"]
        assert isolation["cgroup"]["memory_mb"] == sandbox.Limits().program_memory_mb
    else:
        assert isolation["cgroup_error"]
    assert isinstance(isolation["seccomp"], bool) and (isolation["seccomp"] or isolation["seccomp_error"])
    if os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup/memory") and os.access("/sys/fs/cgroup/memory", os.W_OK):
        assert isolation["cgroup"], isolation.get("cgroup_error")  # root with a writable v1 memory hierarchy


def test_without_cgroups_or_seccomp_the_fallback_is_stated(monkeypatch):
    monkeypatch.setattr(sandbox, "_CGROUP_HOST", ["cgroup v2: no memory controller delegated to /x"])
    monkeypatch.setattr(sandbox, "_SECCOMP", {"bpf": None, "error": "ImportError: no pyseccomp"})
    r, res = sandbox.run_program("print(1)")
    assert r.stdout == "1\n" and res.isolation["cgroup"] is None
    assert res.isolation["cgroup_error"] == "cgroup v2: no memory controller delegated to /x"
    assert res.isolation["program_limits"].startswith("per-process rlimits only")
    assert res.isolation["seccomp"] is False and "pyseccomp" in res.isolation["seccomp_error"]


# --- memory of the whole program ------------------------------------------------------------------

FOUR_CHILDREN = """
import os, time
r, w = os.pipe()
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            b = bytearray(b'\\x01') * (900 << 20)  # every page touched
            os.write(w, b'1')
            time.sleep(2)
        except MemoryError:
            os.write(w, b'0')
        os._exit(0)
    kids.append(pid)
os.close(w)
statuses = [os.waitpid(p, 0)[1] for p in kids]
got = b''
while True:
    c = os.read(r, 16)
    if not c:
        break
    got += c
print(got.count(b'1'), [s & 0x7f for s in statuses])
"""


def test_four_900_mib_children_stay_within_the_program_budget(cg, backend):
    limits = sandbox.Limits()  # 1 GiB per process (RLIMIT_AS) and 1 GiB for the program
    with _Sampler() as s:
        s.pid_ns = backend.mode != "basic"
        res = sandbox.run_tests(FOUR_CHILDREN, [{"stdin": ""}], timeout=10, limits=limits, backend=backend)
    assert res.error is None, res.error
    assert s.peak_rss <= (limits.program_memory_mb + 96) * 1024, f"{s.peak_rss // 1024} MiB taken"
    r = res.runs[0]
    if r.status == "ok":  # at most one child can hold its 900 MiB at a time; the rest were OOM-killed
        held, _ = r.stdout.split(" ", 1)
        assert int(held) <= 1, r.stdout
    else:  # the OOM killer chose the parent itself
        assert r.status in ("memory", "signal"), (r.status, r.stderr)


MEMFDS = """
import os
chunk = b'\\x01' * (8 << 20)
n = 0
try:
    while n < 1500:
        fd = os.memfd_create('x')
        os.write(fd, chunk)
        os.write(fd, chunk)  # 16 MiB: RLIMIT_FSIZE
        n += 16
        print(n, flush=True)
except OSError as e:
    print('stopped', e, flush=True)
"""


def test_memfd_counts_against_the_program_budget(cg, backend):
    limits = sandbox.Limits(program_memory_mb=256, nofile=128)
    res = sandbox.run_tests(MEMFDS, [{"stdin": ""}], timeout=10, limits=limits, backend=backend)
    assert res.error is None, res.error
    held = [int(x) for x in res.runs[0].stdout.split() if x.isdigit()]
    assert held and max(held) <= 256, (res.runs[0].status, res.runs[0].stdout[-200:])


SYSV_SHM = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
n = 0
while n < 1024:
    sid = libc.shmget(0, 32 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if sid < 0:
        print('shmget', ctypes.get_errno(), flush=True)
        break
    addr = libc.shmat(sid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        print('shmat', ctypes.get_errno(), flush=True)
        break
    ctypes.memset(addr, 1, 32 << 20)
    libc.shmdt(addr)  # the segment keeps its pages
    n += 32
    print(n, flush=True)
"""


def test_sysv_shm_counts_against_the_program_budget(cg, ns):
    # namespaces mode only: in basic mode the segments would be the host's (a private IPC namespace
    # takes them away with the program)
    limits = sandbox.Limits(program_memory_mb=256)
    res = sandbox.run_tests(SYSV_SHM, [{"stdin": ""}], timeout=10, limits=limits)
    assert res.error is None, res.error
    held = [int(x) for x in res.runs[0].stdout.split() if x.isdigit()]
    assert max(held, default=0) <= 256, (res.runs[0].status, res.runs[0].stdout[-200:])
    assert res.runs[0].status in ("memory", "signal"), res.runs[0].status


def test_spinning_processes_share_the_cpu_quota(cg):
    if "cpu" not in cg["controllers"]:
        pytest.skip("no cpu controller for program cgroups here")
    code = ("import os, time\nkids = []\nfor _ in range(3):\n    pid = os.fork()\n    if pid == 0:\n"
            "        end = time.monotonic() + 2.0\n        while time.monotonic() < end:\n            pass\n"
            "        os._exit(0)\n    kids.append(pid)\nfor p in kids:\n    os.waitpid(p, 0)\n"
            "t = os.times()\nprint(t.children_user + t.children_system)\n")
    res = sandbox.run_tests(code, [{"stdin": ""}], timeout=8, limits=sandbox.Limits(cpus=0.2))
    r = res.runs[0]
    assert r.status == "ok", r.stderr
    # 3 spinners for >= 2 s of wall clock on 0.2 cores: about 0.4 s of CPU (unthrottled: up to 6 s)
    assert float(r.stdout) <= 0.2 * 2.0 * 1.5 + 0.3, r.stdout


# --- files ----------------------------------------------------------------------------------------

def test_inode_creation_stops_at_its_limit(ns):
    code = ("import os\nn = 0\ntry:\n    while n < 200000:\n        open(f'f{n}', 'w').close()\n        n += 1\n"
            "except OSError as e:\n    print(n, e.errno)\nelse:\n    print(n, 0)\n")
    limits = sandbox.Limits(scratch_inodes=2000)
    r, _ = sandbox.run_program(code, limits=limits, timeout=10)
    n, err = map(int, r.stdout.split())
    assert err == errno.ENOSPC and n < limits.scratch_inodes, r.stdout


# --- seccomp --------------------------------------------------------------------------------------

SYSCALLS = {"x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250, "ptrace": 101,
                       "process_vm_readv": 310, "clone": 56, "setns": 308},
            "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219, "ptrace": 117,
                        "process_vm_readv": 270, "clone": 220, "setns": 268}}


def _nr():
    nr = SYSCALLS.get(platform.machine())
    if nr is None:
        pytest.skip(f"syscall numbers of {platform.machine()} not listed here")
    return nr


def _key_users() -> set[int]:
    try:
        with open("/proc/key-users") as f:
            return {int(line.split(":")[0]) for line in f if line.strip()}
    except OSError:
        pytest.skip("/proc/key-users unavailable (no keyring support)")


def test_no_key_survives_a_program(seccomp):
    nr = _nr()
    code = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
c = ctypes.c_char_p
out = []
for _ in range(20):
    r = libc.syscall({nr['add_key']}, c(b'user'), c(b'm2rl-key'), c(b'secret'), 6, -4)  # the user keyring
    out.append((r, ctypes.get_errno()))
r = libc.syscall({nr['keyctl']}, 1, c(b'm2rl-ring'))  # KEYCTL_JOIN_SESSION_KEYRING
out.append((r, ctypes.get_errno()))
r = libc.syscall({nr['request_key']}, c(b'user'), c(b'm2rl-key'), None, 0)
out.append((r, ctypes.get_errno()))
print(sorted(set(out)))
"""
    r, res = sandbox.run_program(code)
    assert r.status == "ok", r.stderr
    assert r.stdout.strip() == f"[(-1, {errno.EPERM})]", r.stdout
    uid = res.isolation.get("uid")
    if uid is not None:
        assert uid not in _key_users()


def test_seccomp_refuses_ptrace_namespaces_and_foreign_sockets(seccomp, backend):
    nr = _nr()
    code = f"""
import ctypes, os, socket, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
def sys_(*a):
    r = libc.syscall(*a)
    return 'ok' if r >= 0 else os.strerror(ctypes.get_errno())
def sock(*a):
    try:
        socket.socket(*a).close()
        return 'ok'
    except OSError as e:
        return e.strerror
out = {{}}
out['ptrace'] = sys_({nr['ptrace']}, 0, 0, 0, 0)  # PTRACE_TRACEME
out['process_vm_readv'] = sys_({nr['process_vm_readv']}, os.getppid(), None, 0, None, 0, 0)
out['unshare_user'] = 'ok' if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())
out['unshare_net'] = 'ok' if libc.unshare(0x40000000) == 0 else os.strerror(ctypes.get_errno())
out['clone_newpid'] = sys_({nr['clone']}, 0x20000000 | 17, 0, 0, 0, 0)
out['setns'] = sys_({nr['setns']}, 0, 0)
out['vsock'] = sock(40, socket.SOCK_STREAM)
out['packet'] = sock(17, socket.SOCK_RAW)
out['netlink'] = sock(16, socket.SOCK_RAW)
out['raw_inet'] = sock(socket.AF_INET, socket.SOCK_RAW, 1)
out['inet'] = sock(socket.AF_INET, socket.SOCK_STREAM)
out['unix'] = sock(socket.AF_UNIX, socket.SOCK_STREAM)
a, b = socket.socketpair()
a.sendall(b'x')
out['socketpair'] = b.recv(1).decode()
t = threading.Thread(target=lambda: None)
t.start()
t.join()
out['subprocess'] = subprocess.run(['/bin/echo', 'sub'], capture_output=True, text=True).stdout.strip()
pid = os.fork()
if pid == 0:
    os._exit(7)
out['fork'] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(out)
"""
    r, _ = sandbox.run_program(code, backend=backend)
    assert r.status == "ok", r.stderr
    out = eval(r.stdout)  # the program's own dict of strings and ints
    denied = os.strerror(errno.EPERM)
    for key in ("ptrace", "process_vm_readv", "unshare_user", "unshare_net", "clone_newpid", "setns", "raw_inet"):
        assert out[key] == denied, (key, out)
    for key in ("vsock", "packet", "netlink"):
        assert out[key] == os.strerror(errno.EAFNOSUPPORT), (key, out)
    assert (out["inet"], out["unix"], out["socketpair"], out["subprocess"], out["fork"]) == ("ok", "ok", "x", "sub", 7)


# --- the result channel ---------------------------------------------------------------------------

BOMB = """
import os, time
def f(x):
    if x == 0:
        os.write(3, b'(\\x00\\x00\\x00\\x04')  # marshal: a tuple of 2**26 items (512 MiB once parsed)
        return 1
    time.sleep(0.6)
    return 2
"""


def test_fd3_bomb_leaves_the_harness_small(backend):
    with _Sampler() as s:
        s.pid_ns = backend.mode != "basic"
        res = sandbox.run_tests(BOMB, [{"args": [0]}, {"args": [1]}], fn_name="f", backend=backend)
    assert res.error is None, res.error
    assert res.runs[0].status == "runtime_error" and not res.runs[0].has_result
    assert res.runs[1].status == "ok" and res.runs[1].result == 2
    assert 0 < s.harness_hwm < 64 * 1024, f"harness peak {s.harness_hwm // 1024} MiB"


def test_results_are_json_and_bounded():
    code = "def f(x):\n    return {'big': 10 ** 400, 'huge': 10 ** 5000, 'f': 1.5, 'nan': float('nan'), 't': (1, 'é')}[x]\n"
    res = sandbox.run_tests(code, [{"args": [k]} for k in ("big", "huge", "f", "t")], fn_name="f")
    assert [r.status for r in res.runs] == ["ok"] * 4
    assert res.runs[0].result == 10 ** 400 and res.runs[2].result == 1.5 and res.runs[3].result == [1, "é"]
    huge = res.runs[1].result
    assert isinstance(huge, sandbox.HugeInt) and huge != 10 ** 5000 and not values_match(huge, 1.0)
    res = sandbox.run_tests("def f():\n    return 'x' * (2 << 20)\n", [{"args": []}], fn_name="f")
    assert res.runs[0].status == "output_limit" and not res.runs[0].has_result
    assert sandbox.parse_result(b"[" * 200_000, 1 << 20) == (None, False)
    assert sandbox.parse_result(b"1" * 5000, 1 << 20)[0] == sandbox.HugeInt("1" * 5000)
    assert sandbox.parse_result(b"[1]" + b" " * 100, 64) == (None, False)


def test_huge_numbers_are_just_wrong_or_right():
    assert not values_match(10 ** 400, 1.5) and not values_match(1.5, 10 ** 400)
    assert not values_match(10 ** 400, math.inf) and not values_match(10 ** 400, math.nan)
    assert values_match(10 ** 400, 10 ** 400) and values_match(10 ** 400 + 1, 10 ** 400)
    assert not values_match(2 * 10 ** 400, 10 ** 400) and not result_matches(10 ** 400, "1e400")
    code = "def f(x):\n    return 10 ** 400 if x == 0 else x\n"
    meta = {"unit_tests": {"inputs": [[0], [3]], "outputs": [1.0, 3], "fn_name": "f"}, "reward": "fraction"}
    s = verify_unit_test(f"```python\n{code}```", "", meta)
    assert s.value == 0.5 and [t["passed"] for t in s.details["tests"]] == [False, True], s.details


# --- the scorer's death ---------------------------------------------------------------------------

def _start_scorer(mode: str) -> tuple[subprocess.Popen, str, int]:
    """A scorer process running a program that sleeps; (scorer, scratch folder, harness pid)."""
    env = dict(os.environ, M2RL_SANDBOX_MODE=mode, PYTHONPATH=str(REPO / "src"))
    script = ("from m2rl.verifiers import sandbox\n"
              "sandbox.run_program('import time\\ntime.sleep(60)', timeout=30)\n")
    scorer = subprocess.Popen([sys.executable, "-c", script], env=env)
    depth = 3 if mode == "auto" and sandbox.probe().get("mode") == "namespaces" else 2
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        procs = _descendants(scorer.pid)
        if max(procs.values(), default=0) >= depth:  # the test process runs
            harness = next(p for p, d in procs.items() if d == 1)
            scratch = _cmdline(harness).split(b"\0")[-2].decode()
            return scorer, scratch, harness
        time.sleep(0.02)
    scorer.kill()
    raise AssertionError("the scorer's sandbox did not start")


def _left_behind(scratch: str, cgroups: list[str]) -> list[str]:
    left = [f"process {p}" for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if scratch.encode() in _cmdline(p)]
    left += [p for p in (scratch, scratch + ".lock", *cgroups) if os.path.exists(p)]
    return left


def _cgroups_of(scratch: str) -> list[str]:
    host = sandbox.cgroup_host()
    if not isinstance(host, sandbox.CgroupHost):
        return []
    return [os.path.join(p, os.path.basename(scratch)) for p in host.parents]


@pytest.mark.parametrize("mode", ["auto", "basic"])
def test_scorer_sigkill_leaves_no_process_and_no_folder(mode):
    scorer, scratch, _ = _start_scorer(mode)
    cgroups = _cgroups_of(scratch)
    assert os.path.isdir(scratch) and all(os.path.isdir(d) for d in cgroups)
    time.sleep(0.2)
    scorer.kill()
    scorer.wait()
    deadline = time.monotonic() + 2.0
    while _left_behind(scratch, cgroups) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _left_behind(scratch, cgroups) == []


@pytest.mark.parametrize("mode", ["auto", "basic"])
def test_next_scorer_removes_what_a_killed_sandbox_left(mode, monkeypatch):
    scorer, scratch, harness = _start_scorer(mode)
    cgroups = _cgroups_of(scratch)
    os.kill(scorer.pid, signal.SIGSTOP)  # it cannot clean up
    os.killpg(harness, signal.SIGKILL)  # nor can the harness: the kill_tree of a timed-out worker
    deadline = time.monotonic() + 5
    while any(scratch.encode() in _cmdline(p) for p in _descendants(scorer.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    scorer.kill()
    scorer.wait()
    assert os.path.isdir(scratch) and os.path.exists(scratch + ".lock")
    while time.time() - os.stat(scratch + ".lock").st_mtime < 2.1:  # `sweep_stale` spares young locks
        time.sleep(0.05)
    monkeypatch.setitem(sandbox._SWEEP, "at", -math.inf)
    r, _ = sandbox.run_program("print(1)")  # the next program of a scorer sweeps first
    assert r.stdout == "1\n"
    assert _left_behind(scratch, cgroups) == []


@pytest.mark.parametrize("mode", ["auto", "basic"])
def test_kill_tree_of_a_worker_leaves_no_sandbox_behind(mode):
    from m2rl.verifiers.pool import kill_tree

    scorer, scratch, _ = _start_scorer(mode)  # a scoring worker whose item timed out
    cgroups = _cgroups_of(scratch)
    kill_tree(scorer.pid)
    scorer.wait()
    deadline = time.monotonic() + 2.0
    while _left_behind(scratch, cgroups) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _left_behind(scratch, cgroups) == []

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

Limits on the program, not the process: where the host lets this process create cgroups (v2 with the
memory controller delegated to it, or v1 hierarchies it may write), every program gets one cgroup that
its harness joins before any of its processes exist: memory (anonymous, page cache, tmpfs, memfd and
SysV shared memory, kernel memory; no swap) `Limits.program_memory_mb`, `pids.max` `Limits.pids`, and a
CPU quota of `Limits.cpus` cores; it is emptied and removed afterwards. Where it cannot, only the
per-process limits above apply, and `probe()` says so (`cgroup: None`, `cgroup_error`). A seccomp
filter (libseccomp through `pyseccomp`, compiled once per scorer into BPF that each test process loads
last) refuses keyrings, ptrace, process_vm_*, namespace creation, io_uring, bpf, perf and socket
families other than AF_UNIX / AF_INET / AF_INET6 (and raw or packet sockets of those). The harness
asks for SIGTERM when its scorer dies and then removes everything; a scorer's first program (and one
every `SWEEP_EVERY_S`) removes the folders and cgroups of sandboxes whose scorer was killed.

The remote backend (`RemoteBackend(url)`, or `M2RL_SANDBOX_URL`) posts each test to a
SandboxFusion-compatible `POST /run_code` service instead.
"""

from __future__ import annotations

import errno
import fcntl
import json
import marshal
import math
import os
import random
import select
import shutil
import signal
import stat
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

    memory_mb: int = 1024  # RLIMIT_AS of each process
    file_mb: int = 16  # RLIMIT_FSIZE: the largest file (stdout included) it may write
    nproc: int = 32  # RLIMIT_NPROC: processes of the sandbox uid at once
    nofile: int = 128  # RLIMIT_NOFILE
    scratch_mb: int = 64  # size of the private tmpfs (root, /tmp, /sandbox) in namespaces mode
    scratch_inodes: int = 4096  # nr_inodes of that tmpfs: files, folders and links it may hold
    program_memory_mb: int = 1024  # the program's cgroup: all its processes, page cache, shm, tmpfs
    pids: int = 40  # the program's cgroup: processes and threads at once, the harness's two included
    cpus: float = 1.0  # the program's cgroup: CPU quota, in cores
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


# --- program cgroups -------------------------------------------------------------------------------

CGROUP_CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
SCRATCH_PREFIX = "m2rl-sbx-"


@dataclass(frozen=True)
class CgroupHost:
    """Where this process can make program cgroups: version 1 or 2, and the parent folder of each
    hierarchy (v2: one; v1: one per mounted controller hierarchy), controllers in use."""

    version: int
    parents: tuple[str, ...]
    controllers: tuple[str, ...]


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _cgroup_mounts() -> tuple[tuple[str, str] | None, dict[str, tuple[str, str]]]:
    """(root, mount point) of the cgroup2 mount, and of each v1 controller's hierarchy."""
    v2, v1 = None, {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            where = (fields[3], fields[4])
            if tail[0] == "cgroup2" and v2 is None:
                v2 = where
            elif tail[0] == "cgroup":
                for opt in tail[2].split(","):
                    if opt in CGROUP_CONTROLLERS:
                        v1.setdefault(opt, where)
    return v2, v1


def _under(where: tuple[str, str], path: str) -> str | None:
    root, mnt = where
    if root == "/":
        return mnt + path if path != "/" else mnt
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return mnt + path[len(root):]
    return None


def _find_cgroup_host() -> CgroupHost | str:
    """This process's own cgroups and whether it may make children there (a str says why not)."""
    try:
        own: dict[str, str] = {}
        for line in _read("/proc/self/cgroup").splitlines():
            hid, ctrls, path = line.split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["" if hid == "0" else hid]):
                own.setdefault(c, path)
        v2, v1 = _cgroup_mounts()
    except (OSError, ValueError) as exc:
        return f"cgroups unreadable: {exc}"
    why = []
    if v2 is not None and "" in own:
        d = _under(v2, own[""])
        try:
            have = _read(f"{d}/cgroup.controllers").split() if d else []
        except OSError:
            have = []
        use = tuple(c for c in CGROUP_CONTROLLERS if c in have)
        if "memory" in use:
            try:
                enabled = _read(f"{d}/cgroup.subtree_control").split()
                for c in use:
                    if c not in enabled:
                        _write(f"{d}/cgroup.subtree_control", f"+{c}")
                if os.access(d, os.W_OK):
                    return CgroupHost(2, (d,), use)
                why.append(f"cgroup v2: {d} is not writable")
            except OSError as exc:  # EBUSY: processes in a non-leaf cgroup, no delegation
                why.append(f"cgroup v2: cannot enable {'/'.join(use)} for child cgroups of {d}: {exc.strerror}")
        else:
            why.append(f"cgroup v2: no memory controller delegated to {d}")
    parents: dict[str, str] = {}
    for c in CGROUP_CONTROLLERS:
        if c in v1 and c in own:
            d = _under(v1[c], own[c])
            if d and os.path.isdir(d) and os.access(d, os.W_OK):
                parents[c] = d
    if "memory" in parents:
        return CgroupHost(1, tuple(dict.fromkeys(parents.values())), tuple(parents))
    why.append("cgroup v1: no writable memory hierarchy" if v1 else "no cgroup v1 hierarchies")
    return "; ".join(why)


_CGROUP_HOST: list[CgroupHost | str] = []


def cgroup_host() -> CgroupHost | str:
    """`CgroupHost` (cached per process), or why program cgroups are unavailable here."""
    if not _CGROUP_HOST:
        _CGROUP_HOST.append(_find_cgroup_host())
    return _CGROUP_HOST[0]


def _cgroup_make(host: CgroupHost, name: str, limits: Limits) -> list[str]:
    """One cgroup per hierarchy for a program, its limits set; the folders (OSError when refused)."""
    made: list[str] = []
    mem = int(limits.program_memory_mb) << 20
    quota = max(1000, int(limits.cpus * CPU_PERIOD_US))
    try:
        for parent in host.parents:
            d = os.path.join(parent, name)
            os.mkdir(d)
            made.append(d)
            has = set(os.listdir(d))
            if host.version == 2:
                _write(f"{d}/memory.max", str(mem))
                if "memory.swap.max" in has:
                    _write(f"{d}/memory.swap.max", "0")
                if "pids.max" in has:
                    _write(f"{d}/pids.max", str(int(limits.pids)))
                if "cpu.max" in has:
                    _write(f"{d}/cpu.max", f"{quota} {CPU_PERIOD_US}")
                continue
            if "memory.limit_in_bytes" in has:
                _write(f"{d}/memory.limit_in_bytes", str(mem))
                if "memory.memsw.limit_in_bytes" in has:  # memory + swap: no swap beyond the budget
                    _write(f"{d}/memory.memsw.limit_in_bytes", str(mem))
            if "pids.max" in has:
                _write(f"{d}/pids.max", str(int(limits.pids)))
            if "cpu.cfs_quota_us" in has:
                _write(f"{d}/cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(f"{d}/cpu.cfs_quota_us", str(quota))
    except OSError:
        _cgroup_remove(made)
        raise
    return made


def _cgroup_pids(d: str) -> list[int]:
    try:
        return [int(x) for x in _read(f"{d}/cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def _cgroup_remove(dirs: Sequence[str], wait_s: float = 1.0) -> bool:
    """Kill whatever is left in the cgroups and remove them; False if one is still busy after `wait_s`."""
    deadline = time.monotonic() + wait_s
    ok = True
    for d in dirs:
        if os.path.exists(f"{d}/cgroup.kill"):
            try:
                _write(f"{d}/cgroup.kill", "1")
            except OSError:
                pass
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    ok = False
                    break
            for pid in _cgroup_pids(d):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.002)
    return ok


def _oom_kills(dirs: Sequence[str]) -> int:
    """How many processes the memory cgroup's OOM killer has killed so far."""
    for d in dirs:
        for name in ("memory.events", "memory.oom_control"):
            try:
                text = _read(f"{d}/{name}")
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    return 0


# --- seccomp ---------------------------------------------------------------------------------------

DENIED_SYSCALLS = (
    "add_key", "keyctl", "request_key",  # kernel keyrings outlive the program
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "unshare", "setns",  # namespaces (clone with namespace flags below)
    "io_uring_setup", "io_uring_enter", "io_uring_register",  # io_uring bypasses syscall filters
    "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at",
    "mount", "umount2", "pivot_root", "kexec_load", "kexec_file_load", "init_module", "finit_module",
    "delete_module",
)
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
SOCK_RAW, SOCK_PACKET = 3, 10

_SECCOMP: dict[str, Any] = {}


def _build_seccomp() -> bytes:
    try:  # libseccomp's own Python bindings where installed (Debian's python3-seccomp), else the
        import seccomp as sc  # same API through ctypes (PyPI's pyseccomp)
    except ImportError:
        import pyseccomp as sc

    f = sc.SyscallFilter(sc.ALLOW)  # other architectures (int 0x80, x32) are killed: libseccomp's default
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        f.add_rule(deny, name)
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of a filter's reach: libc falls back to clone
    for flag in NAMESPACE_FLAGS:
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    nofamily = sc.ERRNO(errno.EAFNOSUPPORT)
    for family in (0, *range(3, AF_INET6)):
        f.add_rule(nofamily, "socket", sc.Arg(0, sc.EQ, family))
    f.add_rule(nofamily, "socket", sc.Arg(0, sc.GT, AF_INET6))
    f.add_rule(nofamily, "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
    for family in (AF_INET, AF_INET6):
        for kind in (SOCK_RAW, SOCK_PACKET):
            f.add_rule(deny, "socket", sc.Arg(0, sc.EQ, family), sc.Arg(1, sc.MASKED_EQ, 0xF, kind))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def seccomp_filter() -> tuple[bytes | None, str | None]:
    """The sandbox's seccomp program as BPF (built once per process with libseccomp), or None and why."""
    if not _SECCOMP:
        try:
            _SECCOMP["bpf"], _SECCOMP["error"] = _build_seccomp(), None
        except Exception as exc:  # no pyseccomp, no libseccomp.so.2, a libseccomp too old
            _SECCOMP["bpf"], _SECCOMP["error"] = None, f"{type(exc).__name__}: {exc}"
    return _SECCOMP["bpf"], _SECCOMP["error"]


# --- function results ------------------------------------------------------------------------------

INT_DIGITS = 4300  # CPython's int/str conversion limit: longer integers are not converted


class HugeInt:
    """An integer of more digits than `INT_DIGITS` in a result: equal only to the same digits."""

    __slots__ = ("digits",)

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HugeInt) and other.digits == self.digits

    def __hash__(self) -> int:
        return hash(self.digits)

    def __repr__(self) -> str:
        return f"<int of {len(self.digits.lstrip('-'))} digits>"


def _parse_int(text: str) -> int | HugeInt:
    return int(text) if len(text) <= INT_DIGITS else HugeInt(text)


def parse_result(raw: bytes, cap: int) -> tuple[Any, bool]:
    """A function test's return value from the program's bytes: (value, True), or (None, False) when
    they are over `cap` or not JSON. Bounded: JSON is parsed in linear time and memory, nesting stops
    at the recursion limit, huge integers are not converted."""
    if not isinstance(raw, bytes) or len(raw) > cap:
        return None, False
    try:
        return json.loads(raw, parse_int=_parse_int), True
    except (ValueError, RecursionError, MemoryError):
        return None, False


# --- what killed scorers left behind ---------------------------------------------------------------

SWEEP_EVERY_S = 30.0
_SWEEP = {"at": -math.inf}
_SWEEP_LOCK = threading.Lock()


def sweep_stale(tmp: str | None = None, min_age_s: float = 2.0) -> list[str]:
    """Remove the scratch folders (and their cgroups) of sandboxes whose scorer is gone: each live
    scorer holds an flock on `<folder>.lock`, which the kernel drops when the scorer dies. Returns the
    folders removed."""
    tmp = tmp or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = os.listdir(tmp)
    except OSError:
        return removed
    now, me = time.time(), os.geteuid()
    for name in names:
        if not name.startswith(SCRATCH_PREFIX) or name.endswith(".lock"):
            continue
        path = os.path.join(tmp, name)
        try:
            fd = os.open(path + ".lock", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:  # the scorer died before taking its lock
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and now - st.st_mtime > 60 and (me == 0 or st.st_uid == me):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            continue
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_uid != me or st.st_mode & 0o022 or now - st.st_mtime < min_age_s:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its scorer is alive
                continue
            # the lock names the program's cgroups: only folders of this name, under a cgroup mount
            dirs = [d for d in os.read(fd, 1 << 16).decode("utf-8", "replace").splitlines()
                    if os.path.basename(d) == name and d.startswith("/sys/fs/cgroup/")]
            _cgroup_remove(dirs, wait_s=0.5)
            shutil.rmtree(path, ignore_errors=True)
            try:
                os.unlink(path + ".lock")
            except OSError:
                pass
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def _maybe_sweep() -> None:
    with _SWEEP_LOCK:
        if time.monotonic() - _SWEEP["at"] < SWEEP_EVERY_S:
            return
        _SWEEP["at"] = time.monotonic()
    sweep_stale()


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
        _maybe_sweep()
        scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        lock = os.open(scratch + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while this scorer lives: see `sweep_stale`
        os.chmod(scratch, 0o755)
        host = cgroup_host()
        cgroups: list[str] = []
        cg_info: dict[str, Any] = {"cgroup": None}
        if isinstance(host, CgroupHost):
            try:
                cgroups = _cgroup_make(host, os.path.basename(scratch), limits)
                os.write(lock, "".join(d + "\n" for d in cgroups).encode())
            except OSError as exc:
                cg_info["cgroup_error"] = f"cgroup v{host.version} refused: {exc}"
        else:
            cg_info["cgroup_error"] = host
        bpf, seccomp_error = seccomp_filter()
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
               "basic_uid": basic_uid, "sys_path": py_paths, "binds": _bind_roots(py_paths),
               "scorer_pid": os.getpid(), "lock": scratch + ".lock", "seccomp_bpf": bpf,
               "cgroup_procs": [f"{d}/cgroup.procs" for d in cgroups], "in_cgroup": False}
        result = SandboxResult()
        proc = None
        try:
            proc = subprocess.Popen(
                [self.python, "-I", "-S", "-B", HARNESS, scratch], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=dict(SAFE_ENV), cwd=scratch, start_new_session=True,
                close_fds=True)
            if cgroups:  # before the job is sent: the harness forks nothing before it has read it
                try:
                    for d in cgroups:
                        _write(f"{d}/cgroup.procs", str(proc.pid))
                    job["in_cgroup"] = True
                except OSError as exc:
                    cg_info["cgroup_error"] = f"moving the harness into {d}: {exc.strerror}"
            payload = marshal.dumps(job)
            self._converse(proc, payload, len(tests), timeout, limits, judge, result, cgroups)
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
            removed = _cgroup_remove(cgroups)
            shutil.rmtree(scratch, ignore_errors=True)
            if removed:  # else the lock file stays and names the cgroups for the next sweep
                os.unlink(scratch + ".lock")
            os.close(lock)
        if result.isolation:
            result.isolation.pop("oom_adj", None)
            if job["in_cgroup"] and isinstance(host, CgroupHost):
                cg_info["cgroup"] = {"version": host.version, "controllers": list(host.controllers),
                                     "memory_mb": limits.program_memory_mb, "pids": limits.pids,
                                     "cpus": limits.cpus}
            cg_info["program_limits"] = ("cgroup" if cg_info["cgroup"] else
                                         "per-process rlimits only (no cgroup: see cgroup_error)")
            cg_info["seccomp"] = bpf is not None
            if seccomp_error:
                cg_info["seccomp_error"] = seccomp_error
            if result.isolation.get("mode") == "namespaces":
                cg_info["scratch_inodes"] = limits.scratch_inodes
            result.isolation.update(cg_info)
        return result

    def _converse(self, proc: subprocess.Popen, payload: bytes, n_tests: int, timeout: float,
                  limits: Limits, judge: Judge | None, result: SandboxResult, cgroups: Sequence[str]) -> None:
        deadline = time.monotonic() + limits.startup_s + n_tests * (timeout + 1.0)
        fd = proc.stdout.fileno()
        buf = bytearray()
        max_msg = 4 * limits.output_bytes + (1 << 20)  # stdout and the result, escaped, and the rest
        oom_seen = _oom_kills(cgroups) if cgroups else 0

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
            try:
                size = int(buf[:nl])
            except ValueError:
                return False
            if not 0 < size <= max_msg:
                return False
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
            if "result_json" in d:
                run.result, run.has_result = parse_result(d["result_json"], limits.output_bytes)
                if not run.has_result:
                    run.status = "runtime_error"
                    run.stderr += "\n(the function returned nothing readable)"
            if cgroups and run.status == "signal" and run.returncode == -signal.SIGKILL:
                kills = _oom_kills(cgroups)
                if kills > oom_seen:  # the program's memory budget was spent
                    run.status, oom_seen = "memory", kills
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



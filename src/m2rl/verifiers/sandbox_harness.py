"""The sandbox harness: started as `python -I -S -B sandbox_harness.py` by `m2rl.verifiers.sandbox`.

Standard library only (it runs without site-packages, and its start-up time is part of every program's
cost). Protocol on its stdin/stdout (each message a length line, then `marshal` data: `json` alone would
double the start-up time): the scorer sends the job; the harness answers its isolation facts, then one
record per test, and reads "next" or "stop"
after each. It never receives the expected outputs. Marshal carries only what the scorer or the harness
itself wrote: what the program writes on fd 3 (a function's return value, as JSON made by `_h_json`) is
passed on as raw bytes, cut at `output_bytes`, and parsed by the scorer (`sandbox.parse_result`), never
here, where the harness runs as root.

The scorer moves the harness into the program's cgroup before it sends the job (so before any process
of the program exists; the move overlaps the interpreter's start-up). The harness asks for SIGTERM when
the scorer dies (PR_SET_PDEATHSIG) and then kills the sandbox and removes its folder and cgroup. Each
test process loads the scorer's seccomp filter (BPF, made with libseccomp) last, after no_new_privs.

Namespaces mode: the harness unshares mount, network, PID, IPC and UTS namespaces, builds the private
root on a tmpfs mounted over the scratch folder, and forks PID 1 of the new PID namespace, which
chroots, mounts /proc and forks one process per test. Basic mode: the harness forks the test
processes itself, as a child subreaper.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, which doubles the start-up time
import io
import marshal
import math
import os
import resource
import select
import sys
import time
import types

# --------------------------------------------------------------------------------------------------
# Constants shared with m2rl.verifiers.sandbox.

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
MNT_DETACH = 2

ROOT_INSIDE_WORKDIR = "/sandbox"
SYSTEM_DIRS = ("usr", "bin", "lib", "lib64", "lib32", "libx32", "sbin")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf", "host.conf", "mime.types")
DEV_FILES = ("null", "zero", "full", "random", "urandom")
SAFE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8"}


def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enc(s: str | None) -> bytes | None:
    return None if s is None else s.encode()


def _mount(libc, src, target, fstype, flags, data=None) -> None:
    _check(libc.mount(_enc(src), _enc(target), _enc(fstype), flags, _enc(data)), f"mount {target}")


def _bind(libc, src: str, target: str, readonly: bool = True) -> None:
    _mount(libc, src, target, None, MS_BIND)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (MS_RDONLY if readonly else 0)
    if src.startswith("/dev/"):
        flags &= ~MS_NODEV
    _mount(libc, None, target, None, flags)


def _h_build_root(libc, job: dict) -> None:
    """The private root, in the new mount namespace: a tmpfs on the scratch folder (the host sees none of it)."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    root = job["scratch"]
    lim = job["limits"]
    _mount(libc, "m2rl-sandbox", root, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(lim['scratch_mb'])}m,nr_inodes={int(lim['scratch_inodes'])},mode=755")
    for name in SYSTEM_DIRS:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), root + host)
        elif os.path.isdir(host):
            os.mkdir(root + host)
            _bind(libc, host, root + host)
    for path in job["binds"]:
        os.makedirs(root + path, exist_ok=True)
        _bind(libc, path, root + path)
    # exist_ok: a bound Python installation may live under one of these (a venv in /tmp, say)
    os.makedirs(root + "/etc", exist_ok=True)
    for name in ETC_FILES:
        if os.path.isfile("/etc/" + name):
            open(root + "/etc/" + name, "w").close()
            _bind(libc, "/etc/" + name, root + "/etc/" + name)
    with open(root + "/etc/passwd", "w") as f:
        f.write(f"root:x:0:0::/:/bin/false\nsandbox:x:{job['uid']}:{job['uid']}::{ROOT_INSIDE_WORKDIR}:/bin/false\n")
    os.makedirs(root + "/dev", exist_ok=True)
    for name in DEV_FILES:
        if os.path.exists("/dev/" + name):
            open(root + "/dev/" + name, "w").close()
            _bind(libc, "/dev/" + name, root + "/dev/" + name, readonly=False)
    os.makedirs(root + "/proc", exist_ok=True)
    for d, mode in (("/tmp", 0o1777), (ROOT_INSIDE_WORKDIR, 0o755)):
        os.makedirs(root + d, exist_ok=True)
        os.chmod(root + d, mode)
    os.chown(root + ROOT_INSIDE_WORKDIR, job["uid"], job["uid"])


def _h_pids_of_uid(uid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    out.append(int(name))
            except OSError:
                pass
    return out


def _h_children(me: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
                if int(stat[stat.rindex(b")") + 2:].split()[1]) == me:
                    out.append(int(name))
            except (OSError, ValueError):
                pass
    return out


def _h_reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _h_cleanup(ctx: dict, child: int) -> None:
    """Kill every process the test left behind and reap them."""
    if ctx["pid_ns"] and os.getpid() == 1:  # PID 1 of our own namespace: kill(-1) reaches only the sandbox
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        return
    try:
        os.killpg(child, signal.SIGKILL)
    except OSError:
        pass
    _h_kill_until_gone(lambda: _h_pids_of_uid(ctx["uid"]) if ctx["uid"] is not None else _h_children(os.getpid()))
    _h_reap_all()


def _h_kill_until_gone(find) -> None:
    """SIGKILL the processes `find()` names (never this one) and reap them, until none is left (at most 1 s)."""
    me = os.getpid()
    for _ in range(200):
        victims = set(find())
        victims.discard(me)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        _h_reap_all()
        if not victims:
            break
        time.sleep(0.005)


def _plain(o, depth: int = 0):
    """A return value as plain data: lists, dicts, numbers, text; repr() for the rest."""
    if o is None or isinstance(o, (bool, int, float, str)):
        return o
    if depth > 100:
        return repr(o)
    if isinstance(o, (list, tuple)):
        return [_plain(x, depth + 1) for x in o]
    if isinstance(o, (set, frozenset)):
        items = [_plain(x, depth + 1) for x in o]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(o, dict):
        return {k if isinstance(k, str) else repr(k): _plain(v, depth + 1) for k, v in o.items()}
    return repr(o)


def _h_json(o, out: list) -> None:
    """`_plain` data as JSON text (the C string encoder of `_json`: importing `json` costs 30 ms)."""
    import _json

    if o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))
    elif isinstance(o, float):
        out.append("NaN" if o != o else "Infinity" if o == math.inf else "-Infinity" if o == -math.inf
                   else float.__repr__(o))
    elif isinstance(o, str):
        out.append(_json.encode_basestring_ascii(o))
    elif isinstance(o, list):
        out.append("[")
        for i, x in enumerate(o):
            if i:
                out.append(",")
            _h_json(x, out)
        out.append("]")
    else:  # a dict with text keys (`_plain` made it so)
        out.append("{")
        for i, (k, v) in enumerate(o.items()):
            if i:
                out.append(",")
            out.append(_json.encode_basestring_ascii(k))
            out.append(":")
            _h_json(v, out)
        out.append("}")


def _send(fd: int, obj) -> None:
    data = marshal.dumps(obj)
    os.write(fd, b"%d\n" % len(data) + data)


def _h_child(ctx: dict, test: dict, fds: tuple[int, int, int, int]) -> None:
    """The test process: drop everything, then run the program as __main__. Never returns."""
    code = 1
    try:
        libc = ctx["libc"]
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if ctx["oom_adj"]:  # the harness is never the memory cgroup's OOM victim; the test may be
            try:
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write("0")
            except OSError:
                pass
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it: writing past the limit ends the test
        if os.getpid() != 1 and not ctx["pid_ns"]:
            os.setpgid(0, 0)  # basic mode: one killpg stops a fork bomb at once
        lim, t = ctx["limits"], ctx["timeout"]
        cpu = int(math.ceil(t)) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim["file_mb"] << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim["nofile"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        nproc = lim["nproc"]
        if ctx["uid"] is None and ctx["mode"] == "basic":  # shared uid: count what it already runs
            nproc += len(os.listdir("/proc"))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.closerange(4, 1 << 16)
        if ctx["uid"] is not None:
            os.setgroups([])
            os.setresgid(ctx["uid"], ctx["uid"], ctx["uid"])
            os.setresuid(ctx["uid"], ctx["uid"], ctx["uid"])
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        resource.setrlimit(resource.RLIMIT_AS, (lim["memory_mb"] << 20,) * 2)
        if ctx["seccomp"] is not None:  # last: the filter refuses what the steps above needed
            _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctx["seccomp"], 0, 0), "seccomp")
        os.environ.clear()
        os.environ.update(SAFE_ENV)
        os.environ["HOME"] = os.getcwd()
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8",
                                                     errors="replace")
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                                       errors="backslashreplace")
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                                       errors="backslashreplace", line_buffering=True)
        sys.argv = ["solution.py"]
        sys.path[:] = ["", *ctx["sys_path"]]
        main = types.ModuleType("__main__")
        main.__file__ = "solution.py"
        sys.modules["__main__"] = main
        # `exit()` works as in LiveCodeBench (its `from sys import *` makes it `sys.exit`); without `site`
        # it would be undefined. `quit()` stays undefined: LCB's reliability_guard sets it to None.
        main.__builtins__ = dict(vars(__builtins__) if isinstance(__builtins__, types.ModuleType)
                                 else __builtins__, exit=sys.exit)
        code = 0
        try:
            exec(compile(ctx["code"], "solution.py", "exec"), main.__dict__)
            if ctx["fn_name"] is not None:
                ns, name = main.__dict__, ctx["fn_name"]
                sol = ns.get("Solution")
                fn = getattr(sol(), name) if isinstance(sol, type) and hasattr(sol, name) else ns[name]
                value = fn(*test.get("args", []), **test.get("kwargs", {}))
                sys.set_int_max_str_digits(0)  # a huge int is sent whole; the scorer bounds its parsing
                text: list = []
                _h_json(_plain(value), text)
                os.write(3, "".join(text).encode())
        except SystemExit as exc:
            c = exc.code
            if not isinstance(c, (int, type(None))):
                print(c, file=sys.stderr)
            code = 0 if c is None else c if isinstance(c, int) else 1
            if ctx["fn_name"] is None:  # say that the program ended by SystemExit (a stdio test's `result`)
                try:
                    os.write(3, b"E%d" % code)
                except OSError:  # the program closed fd 3: a plain exit status then
                    pass
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            code = code or 1
    finally:
        os._exit(code & 0xFF if isinstance(code, int) else 1)


def _h_wait(pid: int, timeout: float) -> tuple[int | None, bool]:
    """Wait for `pid` up to `timeout` s: (wait status or None, timed out)."""
    deadline = time.monotonic() + timeout
    try:
        pfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pfd = None
    try:
        while True:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                return status, False
            left = deadline - time.monotonic()
            if left <= 0:
                return None, True
            if pfd is not None:
                select.select([pfd], [], [], left)
            else:
                time.sleep(min(left, 0.002))
    finally:
        if pfd is not None:
            os.close(pfd)


def _h_read(fd: int, cap: int) -> tuple[bytes, bool]:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, n = [], 0
    while n <= cap:
        b = os.read(fd, min(1 << 20, cap + 1 - n))
        if not b:
            break
        chunks.append(b)
        n += len(b)
    data = b"".join(chunks)
    return data[:cap], len(data) > cap


def _h_run_test(ctx: dict, index: int, test: dict) -> dict:
    fds = []
    for name in ("in", "out", "err", "res"):
        fds.append(os.memfd_create(f"m2rl-{name}", os.MFD_CLOEXEC if hasattr(os, "MFD_CLOEXEC") else 0))
    os.write(fds[0], str(test.get("stdin", "")).encode("utf-8", "surrogateescape"))
    os.lseek(fds[0], 0, os.SEEK_SET)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _h_child(ctx, test, tuple(fds))
    if not ctx["pid_ns"]:
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
    status, timed_out = _h_wait(pid, ctx["timeout"])
    elapsed = time.monotonic() - t0
    _h_cleanup(ctx, pid)
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    cap = ctx["limits"]["output_bytes"]
    out, cut = _h_read(fds[1], cap)
    err, _ = _h_read(fds[2], 1 << 16)
    res, res_cut = _h_read(fds[3], cap)
    for fd in fds:
        os.close(fd)
    rec: dict = {"index": index, "elapsed_s": round(elapsed, 4),
                 "stdout": out.decode("utf-8", "replace"), "stderr": err[-4000:].decode("utf-8", "replace")}
    if timed_out:
        rec["status"] = "timeout"
    elif status is None:
        rec["status"] = "sandbox_error"
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        rec["returncode"] = -sig
        rec["status"] = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "file_limit"}.get(sig, "signal")
    else:
        rc = os.WEXITSTATUS(status)
        rec["returncode"] = rc
        rec["status"] = "ok" if rc == 0 else "runtime_error"
        if rc and "MemoryError" in rec["stderr"]:
            rec["status"] = "memory"
    if cut and rec["status"] == "ok":
        rec["status"] = "output_limit"
    if ctx["fn_name"] is not None and rec["status"] == "ok":
        # the program's bytes, not parsed here: the scorer reads them as JSON (`sandbox.parse_result`)
        if res_cut:
            rec["status"] = "output_limit"
        else:
            rec["result_json"] = res
    elif ctx["fn_name"] is None and res and rec["status"] in ("ok", "runtime_error"):
        # a stdin/stdout program that raised SystemExit: `result` is {"system_exit": status}; the exit
        # status itself is reported as it was (the scorer decides what a SystemExit means). Format:
        # b"E" and at most 12 digits, checked byte by byte.
        code = int(res[1:]) if 2 <= len(res) <= 13 and res[:1] == b"E" and res[1:].isdigit() else None
        if code is not None and code & 0xFF == rec.get("returncode"):
            rec["result"] = {"system_exit": code}
    return rec


def _h_serve(ctx: dict, out_fd: int, in_file) -> None:
    """PID 1 (namespaces) or the harness itself (basic): run the tests one by one."""
    if os.getpid() == 1:
        _mount(ctx["libc"], "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    else:
        ctx["libc"].prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for i, test in enumerate(ctx["tests"]):
        rec = _h_run_test(ctx, i, test)
        _send(out_fd, rec)
        if in_file.readline().strip() != b"next":
            break


_STATE: dict = {}  # what `_h_abandon` needs: the job, PID 1 of the namespace


def _h_cgroup_pids(job: dict) -> list[int]:
    out: list[int] = []
    for procs in job["cgroup_procs"]:
        try:
            with open(procs) as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _h_abandon(*_args) -> None:
    """The scorer died (PR_SET_PDEATHSIG): kill the whole sandbox, remove its folder, lock file and
    cgroup, exit. Nobody else would until the next scorer's sweep."""
    job, me = _STATE["job"], os.getpid()
    pid1 = _STATE.get("pid1")
    try:
        if pid1:
            try:
                os.kill(pid1, signal.SIGKILL)  # the kernel kills the rest of the PID namespace
                os.waitpid(pid1, 0)
            except OSError:
                pass
        def victims() -> set[int]:
            found = set(_h_cgroup_pids(job))
            if not pid1:  # basic mode: the test processes are ours, or the sandbox uid's
                found.update(_h_pids_of_uid(job["basic_uid"]) if job["basic_uid"] is not None
                             else _h_children(me))
            return found

        _h_kill_until_gone(victims)
        import shutil

        if pid1:  # the tmpfs over the scratch folder exists in this mount namespace only
            _libc().umount2(job["scratch"].encode(), MNT_DETACH)
        shutil.rmtree(job["scratch"], ignore_errors=True)
        for path in (job["lock"],):
            try:
                os.unlink(path)
            except OSError:
                pass
        for procs in job["cgroup_procs"]:  # leave the cgroup for its parent, then remove it
            d = os.path.dirname(procs)
            try:
                with open(os.path.join(os.path.dirname(d), "cgroup.procs"), "w") as f:
                    f.write(str(me))
                os.rmdir(d)
            except OSError:
                pass
    finally:
        os._exit(1)


def _h_join(job: dict, info: dict) -> None:
    """Die with the scorer; in the program's cgroup, never be its OOM victim."""
    libc = _libc()
    _STATE["job"] = job
    signal.signal(signal.SIGTERM, _h_abandon)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != job["scorer_pid"]:  # it died before the prctl
        _h_abandon()
    if job["in_cgroup"] and os.geteuid() == 0:
        try:  # the memory cgroup's OOM killer then picks a test process, never the harness
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("-1000")
            info["oom_adj"] = True
        except OSError:
            pass


def _h_seccomp(bpf: bytes | None):
    """The `struct sock_fprog` of the scorer's BPF program (a pointer for prctl), or None."""
    if not bpf:
        return None
    import ctypes

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    _STATE["seccomp_keep"] = (buf, prog)
    return ctypes.byref(prog)


def _h_main() -> None:
    # argv[1] is the scratch folder: it marks every process of this sandbox in `ps` (and for tests)
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    in_file = os.fdopen(in_fd, "rb", buffering=0)
    n = int(in_file.readline())
    raw = bytearray()
    while len(raw) < n:
        chunk = in_file.read(n - len(raw))
        if not chunk:
            sys.exit(2)
        raw.extend(chunk)
    job = marshal.loads(bytes(raw))  # the scorer's job: trusted input
    info = {"mode": "basic", "uid": job["basic_uid"], "scratch": job["scratch"], "network": False,
            "filesystem": False, "pid_namespace": False, "dedicated_uid": job["basic_uid"] is not None,
            "rlimits": ["CPU", "AS", "FSIZE", "NPROC", "NOFILE", "CORE"]}
    _h_join(job, info)
    ctx = dict(job, libc=_libc(), oom_adj=info.get("oom_adj", False), seccomp=_h_seccomp(job["seccomp_bpf"]))
    if job["mode"] in ("auto", "namespaces") and job["uid"] is not None:
        libc = ctx["libc"]
        try:
            _check(libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        except OSError as exc:
            if job["mode"] == "namespaces":
                _send(out_fd, {"error": f"namespaces unavailable: {exc}"})
                return
            info["namespaces_error"] = str(exc)
        else:
            try:
                _h_build_root(libc, job)
            except OSError as exc:  # inside new namespaces already: no way back to basic mode
                _send(out_fd, {"error": f"sandbox root could not be built: {exc}"})
                return
            info.update(mode="namespaces", uid=job["uid"], dedicated_uid=True, network=True, filesystem=True,
                        pid_namespace=True)
    elif job["mode"] == "namespaces":
        _send(out_fd, {"error": "namespaces mode needs root"})
        return
    ctx["uid"] = info["uid"]
    ctx["mode"] = info["mode"]
    ctx["pid_ns"] = info["pid_namespace"]
    _send(out_fd, info)
    if info["mode"] != "namespaces":
        _h_serve(ctx, out_fd, in_file)
        if os.getppid() != job["scorer_pid"]:  # the scorer died meanwhile (its SIGTERM may come late)
            _h_abandon()
        return
    pid = os.fork()  # PID 1 of the new PID namespace
    if pid == 0:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            ctx["libc"].prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            os.chroot(job["scratch"])
            os.chdir(ROOT_INSIDE_WORKDIR)
            _h_serve(ctx, out_fd, in_file)
            code = 0
        except BaseException as exc:  # reported through the harness's stderr
            os.write(2, f"sandbox PID 1 failed: {exc!r}\n".encode())
            code = 3
        os._exit(code)
    _STATE["pid1"] = pid
    _, status = os.waitpid(pid, 0)
    if os.getppid() != job["scorer_pid"]:  # the scorer died meanwhile (its SIGTERM may come late)
        _STATE["pid1"] = None
        _h_abandon()
    sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else 0)


if __name__ == "__main__":
    _h_main()

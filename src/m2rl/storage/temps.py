"""Temp names that a rerun can clean up: who owns a temp, whether the owner still lives, and the sweep.

Every local write goes through a temp name beside its destination `<dir>/<name>`:

- `.<name>.tmp-<pid>-<rand>`: the file or folder being written;
- `.<name>.tmp-<pid>-<rand>.lock`: its lease, created (and `flock`ed) before the temp and removed after it;
  it records the owner (host, pid, process start time);
- `.<name>.old-<pid>-<rand>`: the previous destination, only between the two renames of an overwrite where
  the filesystem cannot exchange two names in one step (`renameat2(RENAME_EXCHANGE)`).

The owner is alive while it holds the lease's `flock` (the kernel drops it when the process dies, SIGKILL
included, so a reused pid is never mistaken for the owner). Where the filesystem refuses locks, the lease's
recorded owner is checked instead: same host, and a process with that pid and that start time. A temp
without a lease (written by an older m2rl, or caught between the lease's creation and the temp's) is the
owner's while a process with the pid in its name runs on this host.

`sweep(dest)`, run by every writer before it starts, removes the dead owners' temps and leases of that one
destination and recovers an interrupted overwrite: with the destination absent, the newest dead `.old-*`
becomes the destination again; with the destination present, the `.old-*` is removed. It logs each action
(warning level: it only acts after a crash) and returns them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("m2rl.storage")

TMP_TAG, OLD_TAG, LOCK_SUFFIX = ".tmp-", ".old-", ".lock"
_PID = re.compile(r"^(\d+)(?:-|$)")


# -- owners ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Owner:
    """A process, identified across pid reuse: host name, pid and start time (`<boot id>-<clock ticks>` from
    /proc; empty where there is no /proc)."""

    host: str
    pid: int
    start: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}" + (f" (started {self.start})" if self.start else "")


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (`<boot id>-<clock ticks since boot>`); '' where /proc is absent, None
    when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            return "" if pid_running(pid) else None
        return None
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    if fields and fields[0] in ("Z", "X"):  # a zombie has exited; it only waits for its parent
        return None
    return f"{_boot_id()}-{fields[19]}"  # field 22 of stat, the 20th after the name


def pid_running(pid: int) -> bool:
    """Whether a process with this pid exists on this host (any owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_owner() -> Owner:
    """This process."""
    return Owner(socket.gethostname(), os.getpid(), process_start(os.getpid()) or "")


def owner_alive(owner: Owner) -> bool | None:
    """Whether `owner` still runs: True or False on this host, None (cannot tell) for another host."""
    if owner.host != socket.gethostname():
        return None
    start = process_start(owner.pid)
    if start is None:
        return False
    return not owner.start or not start or start == owner.start


# -- leases ------------------------------------------------------------------------------------------
def _lock_alive(lock: Path) -> bool:
    """Whether the owner of a lease still holds it (see module doc)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot open it (permissions): not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:  # no locks on this filesystem: judge by the recorded owner
            try:
                rec = json.loads(os.read(fd, 4096) or b"{}")
                alive = owner_alive(Owner(str(rec["host"]), int(rec["pid"]), str(rec.get("start", ""))))
            except (ValueError, KeyError, TypeError):
                return False
            return alive is not False
        return False  # we got the lock: its owner is gone (closing the fd releases it)
    finally:
        os.close(fd)


class Lease:
    """The temp name of one write to `dest`, owned by this process while the lease is held (a context
    manager: the lock file is created and locked on entry, removed on exit)."""

    def __init__(self, dest: str | os.PathLike):
        self.dest = Path(dest)
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        name = self.dest.name
        self.tmp = self.dest.with_name(f".{name}{TMP_TAG}{self.token}")
        self.old = self.dest.with_name(f".{name}{OLD_TAG}{self.token}")
        self.lock = self.dest.with_name(f".{name}{TMP_TAG}{self.token}{LOCK_SUFFIX}")
        self._fd: int | None = None

    def __enter__(self) -> Lease:
        import fcntl

        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with contextlib.suppress(OSError):  # a filesystem without locks: the recorded owner decides
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            o = current_owner()
            os.write(fd, json.dumps({"host": o.host, "pid": o.pid, "start": o.start}).encode())
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.lock)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- the sweep ---------------------------------------------------------------------------------------
def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def sweep(dest: str | os.PathLike) -> list[str]:
    """Remove what dead writers of `dest` left beside it and recover an interrupted overwrite (module doc).
    Returns one line per action, each also logged."""
    dest = Path(dest)
    parent, name = dest.parent, dest.name
    tmp_prefix, old_prefix = f".{name}{TMP_TAG}", f".{name}{OLD_TAG}"
    try:
        entries = [e for e in os.scandir(parent) if e.name.startswith((tmp_prefix, old_prefix))]
    except (FileNotFoundError, NotADirectoryError):
        return []
    by_token: dict[str, list[Path]] = {}
    for e in entries:
        rest = e.name[len(tmp_prefix if e.name.startswith(tmp_prefix) else old_prefix) :]
        token = rest[: -len(LOCK_SUFFIX)] if rest.endswith(LOCK_SUFFIX) else rest
        by_token.setdefault(token, []).append(parent / e.name)
    actions: list[str] = []
    olds: list[Path] = []
    for token, paths in sorted(by_token.items()):
        lock = parent / f"{tmp_prefix}{token}{LOCK_SUFFIX}"
        if lock.exists():
            if _lock_alive(lock):
                continue
            why = "its owner no longer holds its lock"
        else:
            m = _PID.match(token)
            if m and pid_running(int(m.group(1))):
                continue
            why = f"no process {m.group(1)} runs here" if m else "it has no owner"
        for p in sorted(paths, key=lambda p: p.name.endswith(LOCK_SUFFIX)):  # the lease goes last
            if p.name.startswith(old_prefix):
                olds.append(p)
            elif p.name.endswith(LOCK_SUFFIX):
                if len(paths) == 1:
                    actions.append(f"removed the stale lease {p}")
                _remove(p)
            else:
                _remove(p)
                actions.append(f"removed the stale temp {p} ({why})")
    olds.sort(key=lambda p: p.stat().st_mtime_ns if p.exists() else 0, reverse=True)
    for p in olds:
        if not (dest.exists() or dest.is_symlink()):
            os.replace(p, dest)
            actions.append(f"restored {dest} from {p} (an overwrite was interrupted between its two renames)")
        else:
            _remove(p)
            actions.append(f"removed {p}, the previous copy of {dest} left by an interrupted overwrite")
    for a in actions:
        log.warning("m2rl storage: %s", a)
    return actions


# -- one-step overwrite ------------------------------------------------------------------------------
_RENAME_EXCHANGE = 1 << 1
_AT_FDCWD = -100
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EPERM}


@lru_cache(maxsize=1)
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing local names in one step (Linux `renameat2(RENAME_EXCHANGE)`); False where the platform
    or the filesystem cannot (the caller then falls back to two renames)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


@contextlib.contextmanager
def temp_file(dest: str | os.PathLike) -> Iterator[Path]:
    """A temp name for a file write to `dest` (stale ones swept first); the caller renames it into place. On
    exit the temp (if still there) and its lease are removed."""
    dest = Path(dest)
    sweep(dest)
    with Lease(dest) as lease:
        try:
            yield lease.tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                lease.tmp.unlink()

"""The zygote: a warm process that forks scoring workers on request (`python -m m2rl.verifiers._zygote`).

It imports every verifier (and the modules named in `M2RL_VERIFIER_MODULES`) and warms math-verify once, then serves its parent over the socket on fd 0:
each request byte "f" forks one worker and answers with the worker's pid and, as SCM_RIGHTS, the
parent's end of a socket pair the worker talks through (`multiprocessing.connection.Connection`).
Unlike multiprocessing's forkserver it never re-imports the caller's main script.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def _warm() -> None:
    import importlib

    from m2rl.verifiers import _worker  # noqa: F401 - imports every verifier

    for mod in filter(None, os.environ.get("M2RL_VERIFIER_MODULES", "").split(",")):
        importlib.import_module(mod)  # verifiers registered outside the package (plugins, tests)
    from m2rl.verifiers.api import score

    try:
        score({"label": "1/2", "verifier": {"type": "math"}}, "Answer: $\\frac{2}{4}$")
    except Exception:
        pass


def main() -> None:
    from m2rl.verifiers._worker import _die_with_parent

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    _warm()
    ctl = socket.socket(fileno=os.dup(0))
    os.close(0)
    ctl.sendall(b"R")
    while True:
        try:
            req = ctl.recv(1)
        except OSError:
            return
        if not req:
            return
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                ctl.close()
                ours.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                from multiprocessing.connection import Connection

                from m2rl.verifiers._worker import worker_main

                worker_main(Connection(theirs.detach()))
            finally:
                os._exit(0)
        theirs.close()
        try:
            socket.send_fds(ctl, [pid.to_bytes(4, "little")], [ours.fileno()])
        except OSError:
            return
        finally:
            ours.close()


if __name__ == "__main__":
    sys.exit(main())

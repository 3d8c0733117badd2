"""The scoring worker process: receives chunks of items, sends one result per item.

Forked by the zygote (`m2rl.verifiers._zygote`), which has imported every verifier, so a replacement
worker starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from m2rl.verifiers.api import score
from m2rl.verifiers.registry import Score, verifier_names

verifier_names()  # import every shipped verifier now, in the forkserver


def _die_with_parent() -> None:
    """SIGKILL this process when its parent goes away (Linux prctl)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _plain(details: Any) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(details, default=str))
    except (TypeError, ValueError):
        return {"reason": "details not serialisable", "repr": repr(details)[:500]}


def worker_main(conn: Any) -> None:
    _die_with_parent()
    try:
        os.setpgrp()  # its own process group: a timeout kills the worker with whatever it started
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    conn.send(("ready", os.getpid()))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for tid, record, response, require_close in chunk:
            try:
                s = score(record, response, require_think_close=require_close)
            except Exception as exc:
                s = Score(0.0, {"reason": f"{type(exc).__name__}: {str(exc)[:300]}"})
            try:
                conn.send((tid, s.value, s.details))
            except OSError:  # the parent is gone
                return
            except Exception:  # details that do not pickle
                conn.send((tid, s.value, _plain(s.details)))

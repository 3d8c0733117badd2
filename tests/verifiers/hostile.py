"""Test-only verifiers that misbehave (the pool's workers import this module by name)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from m2rl.verifiers.registry import Score, register_verifier


@register_verifier("test_sleep")
def sleep_verifier(response: str, label: str, meta) -> Score:
    time.sleep(float(meta.get("seconds", 3600)))
    return Score(1.0, {"slept": True})


@register_verifier("test_exit")
def exit_verifier(response: str, label: str, meta) -> Score:
    os._exit(3)


@register_verifier("test_orphan")
def orphan_verifier(response: str, label: str, meta) -> Score:
    """Starts a child in its own session that would outlive the worker, writes its pid, then hangs."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True)
    with open(meta["pidfile"], "w") as f:
        f.write(str(child.pid))
    time.sleep(3600)
    return Score(1.0)


@register_verifier("test_echo")
def echo_verifier(response: str, label: str, meta) -> Score:
    return Score(1.0 if response == label else 0.0, {"pid": os.getpid()})

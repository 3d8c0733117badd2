"""Sandbox throughput: `unit_test` programs per second, against a peer without isolation.

    python benchmarks/sandbox.py [--programs 200] [--workers 2]

Programs: the reference solutions of the builtin code records (3-5 stdin/stdout tests each) and a
trivial program with 4 tests. Rows: the `unit_test` verifier in the sandbox's namespaces mode (when
available) and basic mode, and the peer: one plain `python -I` subprocess per test (no limits, no
isolation, the way a naive verifier runs code), the scorer comparing stdout the same way. Columns:
programs/s with `--workers` threads, wall-clock p50/p99 per program, CPU ms per program (this process
and its children: what bounds the rate on an idle machine), and the ratio to the peer. Where program
cgroups are available, a row without them (`no cgroup`) and the scorer's own cost of making and
removing one program cgroup show the cgroup overhead per program.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from m2rl.data.builtin import generate, generate_problems
from m2rl.verifiers import sandbox
from m2rl.verifiers.types.unit_test import extract_program, stdout_matches, verify_unit_test


def cpu_s() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def naive(response: str, meta: dict) -> float:
    program = extract_program(response)
    tests = meta["unit_tests"]
    for stdin, want in zip(tests["inputs"], tests["outputs"], strict=True):
        r = subprocess.run([sys.executable, "-I", "-c", program], input=stdin, capture_output=True, text=True,
                           timeout=5)
        if r.returncode != 0 or not stdout_matches(r.stdout, want):
            return 0.0
    return 1.0


def measure(fn, items, workers: int) -> dict:
    lat: list[float] = []

    def one(item):
        t = time.perf_counter()
        v = fn(*item)
        lat.append(time.perf_counter() - t)
        return v

    c0, t0 = cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        values = list(ex.map(one, items))
    wall = time.perf_counter() - t0
    if any(v != 1.0 for v in values):
        raise SystemExit(f"a reference solution failed: {values}")
    lat.sort()
    return {"rate": len(items) / wall, "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000,
            "cpu": (cpu_s() - c0) / len(items) * 1000}


def cgroup_cost(n: int = 200) -> float | None:
    """CPU ms to make (limits set) and remove one program cgroup, as the scorer does per program."""
    host = sandbox.cgroup_host()
    if not isinstance(host, sandbox.CgroupHost):
        return None
    c0 = cpu_s()
    for i in range(n):
        sandbox._cgroup_remove(sandbox._cgroup_make(host, f"{sandbox.SCRATCH_PREFIX}bench-{os.getpid()}-{i}",
                                                    sandbox.Limits()))
    return (cpu_s() - c0) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    n = args.programs
    recs, probs = generate("code", 0, min(n, 400)), generate_problems("code", 0, min(n, 400))
    refs = [(f"```python\n{p.solution}```\n", r["verifier"]) for r, p in zip(recs, probs, strict=True)]
    refs = (refs * (n // len(refs) + 1))[:n]
    trivial = [("```python\nprint(input())\n```",
                {"type": "unit_test", "unit_tests": {"inputs": ["x\n"] * 4, "outputs": ["x\n"] * 4}})] * n

    modes = []
    info = sandbox.probe("auto")
    if info.get("mode") == "namespaces":
        modes.append("namespaces")
    modes.append("basic")
    if info.get("cgroup"):
        modes.append(f"{modes[0]}, no cgroup")
    print(f"{n} programs, {args.workers} worker threads, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"program limits: {info.get('program_limits')} {info.get('cgroup') or info.get('cgroup_error')}, "
          f"seccomp: {info.get('seccomp')}")
    print(f"{'programs':<26} {'runner':<32} {'programs/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'vs peer':>8}")
    for label, items in (("builtin references", refs), ("trivial, 4 tests", trivial)):
        peer = measure(naive, items, args.workers)
        rows = [("peer: python per test", peer)]
        for mode in modes:
            base, _, no_cgroup = mode.partition(", ")
            os.environ["M2RL_SANDBOX_MODE"] = "auto" if base == "namespaces" else base
            saved = list(sandbox._CGROUP_HOST)
            if no_cgroup:
                sandbox._CGROUP_HOST[:] = ["turned off by the benchmark"]
            try:
                rows.append((f"sandbox ({mode})", measure(lambda r, m: verify_unit_test(r, "", m).value,
                                                          items, args.workers)))
            finally:
                sandbox._CGROUP_HOST[:] = saved
        for runner, m in rows:
            print(f"{label:<26} {runner:<32} {m['rate']:>10.1f} {m['p50']:>8.1f} {m['p99']:>8.1f} {m['cpu']:>8.1f} "
                  f"{m['rate'] / peer['rate']:>7.2f}x")
    os.environ.pop("M2RL_SANDBOX_MODE", None)
    cost = cgroup_cost()
    if cost is not None:
        print(f"scorer's cost of one program cgroup (mkdir, limits, rmdir): {cost:.2f} ms CPU")


if __name__ == "__main__":
    main()

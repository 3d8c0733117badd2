"""Evaluation benchmark: the hf backend's batched generation against a one-prompt-at-a-time loop.

    python benchmarks/eval_cpu.py [--model smollm2-135m-instruct] [--prompts 16] [--batch 8]
                                  [--max-new-tokens 48] [--k 1] [--threads N]

Both sides run the same `HFGenerator` (same model, chat template, sampling: temperature 1.0, top_p 0.7)
on the same builtin eval prompts (ordered longest first, as the stage batches them), in this process one
after the other: the batched side sends
`--batch` prompts per `generate` call (left padding, `num_return_sequences=K`), the peer one prompt per
call (what a naive eval loop does). Tokens are the generated tokens up to each sequence's EOS, so
padding is not counted as work. Prints a table with tokens/s and the ratio (goal: >= 3x).
"""

from __future__ import annotations

import argparse
import time


def _prompts(generator, n: int) -> list[str]:
    from m2rl.evaluate import get_benchmark
    from m2rl.spec.evaluate import BenchmarkSpec

    recs = []
    for domain in ("math", "science", "if", "code", "agent"):
        recs += get_benchmark(f"builtin_{domain}").loader(BenchmarkSpec(name=f"builtin_{domain}"))[: n]
    prompts = [generator.render(r["prompt"]) for r in recs[:: max(1, len(recs) // n)][:n]]
    # longest first, as the evaluate stage orders its batches (similar lengths share a batch: little padding)
    return sorted(prompts, key=lambda p: -len(generator.tokenizer(p, add_special_tokens=False)["input_ids"]))


def _run(generator, prompts: list[str], batch: int, k: int, sampling) -> tuple[float, int]:
    start_tokens = generator.generated_tokens
    t = time.perf_counter()
    for i in range(0, len(prompts), batch):
        generator.generate(prompts[i : i + batch], k, sampling, seed=i)
    return time.perf_counter() - t, generator.generated_tokens - start_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--k", type=int, default=1, help="Samples per prompt (num_return_sequences).")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own; on a CPU shared with other jobs, 1 avoids "
                         "OpenMP threads waiting on each other)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from m2rl.evaluate.backends import BackendOptions
    from m2rl.evaluate.backends.hf import HFGenerator
    from m2rl.evaluate.registry import Sampling
    from m2rl.models import resolve_model

    folder = resolve_model(args.model)
    gen = HFGenerator(folder, BackendOptions(batch_size=args.batch), device="cpu")
    prompts = _prompts(gen, args.prompts)
    sampling = Sampling(temperature=1.0, top_p=0.7, max_new_tokens=args.max_new_tokens)
    _run(gen, prompts[:2], 2, args.k, Sampling(1.0, 0.7, 4))  # warm-up (first-call allocations)
    rows = []
    for label, batch in ((f"batched ({args.batch} prompts/call)", args.batch), ("one prompt at a time", 1)):
        seconds, tokens = _run(gen, prompts, batch, args.k, sampling)
        rows.append((label, seconds, tokens, tokens / seconds))
    print(f"model {args.model} ({folder}), {len(prompts)} prompts x K={args.k}, up to {args.max_new_tokens} new "
          f"tokens, torch threads {torch.get_num_threads()}")
    print(f"{'mode':<30} {'seconds':>9} {'tokens':>8} {'tokens/s':>9} {'ratio':>7}")
    peer = rows[1][3]
    for label, seconds, tokens, tps in rows:
        print(f"{label:<30} {seconds:>9.2f} {tokens:>8d} {tps:>9.1f} {tps / peer:>6.2f}x")


if __name__ == "__main__":
    main()

"""Evaluation benchmark: the hf backend's batched generation against a one-prompt-at-a-time loop.

    python benchmarks/eval_cpu.py [--model smollm2-135m-instruct] [--prompts 8] [--batch 8]
                                  [--max-new-tokens 128] [--k 1] [--threads N]

Both sides run the same `HFGenerator` (same model, chat template, sampling: temperature 1.0, top_p 0.7)
on the same builtin eval prompts (ordered longest first, as the stage batches them), in this process,
alternating group by group: the batched side sends `--batch` prompts per `generate` call (left padding,
`num_return_sequences=K`), the peer the same prompts one per call (what a naive eval loop does).
Tokens are the generated tokens up to each sequence's EOS, so padding is not counted as work. Prints a table with tokens/s and the ratio (goal: >= 3x).
"""

from __future__ import annotations

import argparse
import time


def _prompts(generator, n: int) -> list[str]:
    from m2rl.evaluate import get_benchmark
    from m2rl.spec.evaluate import BenchmarkSpec

    recs = []
    # domains whose prompts have similar lengths (70-160 tokens): one batch of a length-sorted eval run;
    # agent prompts (600-800 tokens) form their own batches in a real run
    for domain in ("math", "science", "if", "code"):
        recs += get_benchmark(f"builtin_{domain}").loader(BenchmarkSpec(name=f"builtin_{domain}"))[: n]
    prompts = [generator.render(r["prompt"]) for r in recs[:: max(1, len(recs) // n)][:n]]
    # longest first, as the evaluate stage orders its batches (similar lengths share a batch: little padding)
    return sorted(prompts, key=lambda p: -len(generator.tokenizer(p, add_special_tokens=False)["input_ids"]))


def _interleaved(generator, prompts: list[str], batch: int, k: int, sampling) -> dict[str, tuple[float, int]]:
    """Per group of `batch` prompts: one batched call, then the same prompts one call each; times summed.

    Alternating keeps both sides under the same machine load (a CPU shared with other jobs drifts a lot).
    """
    acc = {"batched": [0.0, 0], "single": [0.0, 0]}

    def timed(side: str, group: list[str], seed: int) -> None:
        n0, t = generator.generated_tokens, time.perf_counter()
        generator.generate(group, k, sampling, seed=seed)
        acc[side][0] += time.perf_counter() - t
        acc[side][1] += generator.generated_tokens - n0

    for i in range(0, len(prompts), batch):
        group = prompts[i : i + batch]
        timed("batched", group, i)
        for j, p in enumerate(group):
            timed("single", [p], i + j)
    return {side: (v[0], v[1]) for side, v in acc.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16, help="Prompts per generate call (the evaluate spec's default batch_size)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
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
    gen.generate(prompts[:2], args.k, Sampling(1.0, 0.7, 4), seed=0)  # warm-up (first-call allocations)
    res = _interleaved(gen, prompts, args.batch, args.k, sampling)
    rows = [(f"batched ({args.batch} prompts/call)", *res["batched"]), ("one prompt at a time", *res["single"])]
    rows = [(label, seconds, tokens, tokens / seconds) for label, seconds, tokens in rows]
    print(f"model {args.model} ({folder}), {len(prompts)} prompts x K={args.k}, up to {args.max_new_tokens} new "
          f"tokens, torch threads {torch.get_num_threads()}")
    print(f"{'mode':<30} {'seconds':>9} {'tokens':>8} {'tokens/s':>9} {'ratio':>7}")
    peer = rows[1][3]
    for label, seconds, tokens, tps in rows:
        print(f"{label:<30} {seconds:>9.2f} {tokens:>8d} {tps:>9.1f} {tps / peer:>6.2f}x")


if __name__ == "__main__":
    main()

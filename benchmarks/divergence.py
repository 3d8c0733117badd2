"""Divergence benchmark: time and peak RSS of the policy-KL analysis for SmolLM2-135M-size models.

    python benchmarks/divergence.py [--prompts 6] [--max-prompt-words 500] [--keep DIR]

Builds a base with SmolLM2-135M's shapes (random weights, bf16; SmolLM2's tokenizer from the packaged
model) and two experts (base + a sparse task vector, `benchmarks/analysis.py`'s builder), plus a mixed and a
merged model, and eval folders whose prompts range from short to long (like the builtin agent prompts with
their tool lists). Then measures, each in its own process:
- m2rl: the `divergence` analysis (every model loaded once, each prompt's KV cache reused for every
  continuation scored against it, logits only at continuation positions);
- peer: the simple way: for every (policy, reference) pair, both models run over right-padded batches of
  8 prompt+continuation sequences and full logits are taken at the continuation positions.
Both compute the same 8 KL pairs (each expert against the base; mix and merge against the base and each
expert) on the same continuations; the table prints seconds, peak RSS, ratios and the largest relative
difference between the two sets of KL values.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis import build, report_child, run_child  # noqa: E402  (the geometry benchmark's builder and runner)

BENCH = "builtin_agent"
KL_TOKENS = 16
PAIRS_OF = {"single-0": ["base"], "single-1": ["base"], "mix": ["base", "single-0", "single-1"],
            "merge-average": ["base", "single-0", "single-1"]}
MODEL_DIR = {"single-0": "single-0", "single-1": "single-1", "mix": "single-0", "merge-average": "single-1"}


def setup(root: Path, prompts: int, max_words: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m2rl.evaluate import summarize
    from m2rl.models import resolve_model

    build(root, 2)
    tok_src = resolve_model("smollm2-135m-instruct")
    for f in tok_src.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")) or f.name == "chat_template.jinja":
            shutil.copy2(f, root / "base" / f.name)
    lengths = np.linspace(20, max_words, prompts).astype(int)
    rng = np.random.default_rng(0)
    words = ["tool", "call", "weather", "city", "name", "value", "json", "schema", "number", "string"]
    prompt_text = [" ".join(rng.choice(words, int(n))) for n in lengths]  # the same problems for every model
    for model in ("base", *PAIRS_OF):
        rows = {c: [] for c in ("problem_id", "sample_index", "domain", "prompt", "response", "score", "details",
                                "answer")}
        for i, text in enumerate(prompt_text):
            rows["problem_id"].append(f"agent-{i:03d}")
            rows["sample_index"].append(0)
            rows["domain"].append("agent")
            rows["prompt"].append(text)
            rows["response"].append(" ".join(rng.choice(words, 40)))
            rows["score"].append(0.0)
            rows["details"].append("{}")
            rows["answer"].append("")
        folder = root / "eval" / model
        (folder / BENCH).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(rows), folder / BENCH / "samples.parquet")
        metrics = {**summarize([[0.0]] * prompts, [[""]] * prompts, resamples=10, seed=0), "domain": "agent",
                   "sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": KL_TOKENS}}
        (folder / "metrics.json").write_text(json.dumps({"model": model, "benchmarks": {BENCH: metrics}}))


def models_arg(root: Path) -> dict:
    out = {}
    for name, folder in MODEL_DIR.items():
        entry = {"uri": str(root / folder), "paradigm": name.split("-")[0] if name != "mix" else "mix"}
        if name.startswith("single"):
            entry["domain"] = f"d{name[-1]}"
        if name.startswith("merge"):
            entry["merge_method"] = "average"
        out[name] = entry
    return out


def run_m2rl(root: Path, prompts: int) -> dict:
    from m2rl.analysis import analyze

    evals = {m: str(root / "eval" / m) for m in ("base", *PAIRS_OF)}
    t = time.perf_counter()
    analyze({"analyses": ["divergence"], "kl_prompts": prompts, "kl_max_new_tokens": KL_TOKENS},
            models_arg(root), str(root / "base"), evals, {}, str(root / "out"))
    seconds = time.perf_counter() - t
    d = json.loads((root / "out" / "analysis.json").read_text())["analyses"]["divergence"]
    return {"seconds": seconds, "kl": {f"{p['model']}|{p['reference']}": p["kl"] for p in d["pairs"]}}


def run_peer(root: Path, prompts: int) -> dict:
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from m2rl.analysis.analyses.divergence import render_prompt

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(root / "base"))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def load(folder: str):
        return AutoModelForCausalLM.from_pretrained(str(root / folder), dtype=torch.float32).eval()

    def logprobs(model, batch):
        width = max(len(p) + len(r) for p, r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, r) in enumerate(batch):
            ids[i, : len(p) + len(r)] = torch.tensor(p + r)
            attn[i, : len(p) + len(r)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=attn).logits.float()
        return [torch.log_softmax(logits[i, len(p) - 1 : len(p) + len(r) - 1], -1) for i, (p, r) in enumerate(batch)]

    kl = {}
    for policy, refs in PAIRS_OF.items():
        table = pq.read_table(root / "eval" / policy / BENCH / "samples.parquet").to_pylist()[:prompts]
        seqs = [(tok(render_prompt(tok, r["prompt"]), add_special_tokens=False)["input_ids"],
                 tok(r["response"], add_special_tokens=False)["input_ids"][:KL_TOKENS]) for r in table]
        p_model = load(MODEL_DIR[policy])
        for ref in refs:
            r_model = load(MODEL_DIR.get(ref, ref))
            total, tokens = 0.0, 0
            for i in range(0, len(seqs), 8):
                batch = seqs[i : i + 8]
                for lp, lr in zip(logprobs(p_model, batch), logprobs(r_model, batch), strict=True):
                    total += float((lp.exp() * (lp - lr)).sum(-1).clamp_min(0).sum())
                    tokens += lp.shape[0]
            kl[f"{policy}|{ref}"] = total / tokens
            del r_model
        del p_model
    return {"seconds": time.perf_counter() - t, "kl": kl}


def child(which: str, root: str, prompts: int) -> None:
    report_child((run_m2rl if which == "m2rl" else run_peer)(Path(root), prompts))


def measure(which: str, root: Path, prompts: int) -> dict:
    return run_child(__file__, "--child", which, "--root", str(root), "--prompts", str(prompts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-prompt-words", type=int, default=500)
    ap.add_argument("--keep", help="Folder for the checkpoints (kept; default: a temporary folder).")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.root, args.prompts)
        return
    with tempfile.TemporaryDirectory(prefix="m2rl-bench-divergence-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        setup(root, args.prompts, args.max_prompt_words)
        print(f"built base + 2 experts and {args.prompts} prompts (20-{args.max_prompt_words} words) "
              f"in {time.perf_counter() - t:.0f} s")
        m, p = measure("m2rl", root, args.prompts), measure("peer", root, args.prompts)
    diff = max(abs(m["kl"][k] - p["kl"][k]) / max(abs(p["kl"][k]), 1e-12) for k in p["kl"])
    for k in p["kl"]:
        print(f"  KL {k:<24} m2rl {m['kl'][k]:.6e}  peer {p['kl'][k]:.6e}")
    print(f"{len(p['kl'])} KL pairs; max relative |KL(m2rl) - KL(peer)| = {diff:.2e}")
    print(f"{'divergence':<44} {'seconds':>8} {'peak RSS MiB':>13} {'time ratio':>11} {'RSS ratio':>10}")
    for label, r in (("m2rl (models once, prompt KV cache reused)", m), ("peer: per pair, padded full logits", p)):
        print(f"{label:<44} {r['seconds']:>8.1f} {r['peak_rss_mb']:>13.0f} {r['seconds'] / p['seconds']:>10.2f}x "
              f"{r['peak_rss_mb'] / p['peak_rss_mb']:>9.2f}x")


if __name__ == "__main__":
    main()

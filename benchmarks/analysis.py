"""Analysis benchmark: time and peak RSS of the weight analyses for 5 experts of SmolLM2-135M size.

    python benchmarks/analysis.py [--experts 5] [--keep DIR]

Builds a base checkpoint with SmolLM2-135M's shapes (random weights, bf16, 135M parameters) and 5
experts = base + a sparse random task vector (written tensor by tensor), then measures, each in its
own process so that peak RSS is its own:
- m2rl: the `geometry` analysis (norms per module type, exact and projected cosine, sign agreement,
  top-1% footprint Jaccard), streaming row chunks through `CheckpointReader`;
- peer: the same numbers computed the simple way: every state dict loaded in memory, task vectors
  flattened and stacked in float32 (one Gram matrix, int8 signs, exact top-1% masks).
Prints a table with seconds, peak RSS, and the ratios, plus the largest cosine difference between the two.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
               num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
               tie_word_embeddings=True, rms_norm_eps=1e-5)


def build(root: Path, experts: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from m2rl.checkpoint import CheckpointReader, ShardedWriter, copy_side_files

    base = root / "base"
    if not (base / "config.json").exists():
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(**SMOLLM2)).to(torch.bfloat16)
        model.save_pretrained(base, safe_serialization=True)
        del model
    reader = CheckpointReader(base)
    for e in range(experts):
        out = root / f"single-{e}"
        if (out / "config.json").exists():
            continue
        g = torch.Generator().manual_seed(100 + e)
        w = ShardedWriter(out, max_shard_bytes=100 << 20)
        for name in reader.names():
            t = reader.get(name).float()
            mask = torch.rand(t.shape, generator=g) < 0.05
            w.add(name, (t + torch.randn(t.shape, generator=g) * 0.01 * mask).to(torch.bfloat16))
        w.finish()
        copy_side_files(base, out)


def run_m2rl(root: Path, experts: int) -> dict:
    from m2rl.analysis import analyze

    models = {f"single-{e}": {"uri": str(root / f"single-{e}"), "paradigm": "single", "domain": f"d{e}"}
              for e in range(experts)}
    t = time.perf_counter()
    analyze({"analyses": ["geometry"], "projection_dim": 1024, "footprint_top_percent": 1.0}, models,
            str(root / "base"), {}, {}, str(root / "out"))
    seconds = time.perf_counter() - t
    g = json.loads((root / "out" / "analysis.json").read_text())["analyses"]["geometry"]
    return {"seconds": seconds, "cosine": g["cosine"], "params": g["params"]}


def run_peer(root: Path, experts: int) -> dict:
    import torch
    from safetensors.torch import load_file

    t = time.perf_counter()

    def state(folder: Path) -> dict:
        out = {}
        for f in sorted(folder.glob("*.safetensors")):
            out.update(load_file(f))
        return out

    base = state(root / "base")
    taus = []
    for e in range(experts):
        sd = state(root / f"single-{e}")
        taus.append(torch.cat([(sd[n].float() - base[n].float()).reshape(-1) for n in sorted(base)]))
        del sd
    stack = torch.stack(taus)  # (experts, params) float32
    del taus
    gram = (stack @ stack.T).double()
    norms = gram.diagonal().sqrt()
    cosine = (gram / norms[:, None] / norms[None, :]).tolist()
    signs = torch.empty(stack.shape, dtype=torch.int8)
    for i in range(experts):
        signs[i] = torch.sign(stack[i]).to(torch.int8)
    _ = [[int((signs[i] == signs[j]).sum()) for j in range(experts)] for i in range(experts)]
    k = max(1, int(0.01 * stack.shape[1]))
    masks = torch.zeros(stack.shape, dtype=torch.bool)
    for i in range(experts):
        masks[i, stack[i].abs().topk(k).indices] = True
    _ = [[int((masks[i] & masks[j]).sum()) for j in range(experts)] for i in range(experts)]
    return {"seconds": time.perf_counter() - t, "cosine": cosine, "params": int(stack.shape[1])}


def report_child(result: dict) -> None:
    """In a measured child: print its result with its own peak RSS, as the last line."""
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(script: str, *args: str) -> dict:
    """Run `script *args` in a fresh process and return what its `report_child` printed."""
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(which: str, root: str, experts: int) -> None:
    report_child((run_m2rl if which == "m2rl" else run_peer)(Path(root), experts))


def measure(which: str, root: Path, experts: int) -> dict:
    return run_child(__file__, "--child", which, "--root", str(root), "--experts", str(experts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experts", type=int, default=5)
    ap.add_argument("--keep", help="Folder for the checkpoints (kept; default: a temporary folder).")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.root, args.experts)
        return
    with tempfile.TemporaryDirectory(prefix="m2rl-bench-analysis-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build(root, args.experts)
        size = sum(f.stat().st_size for f in (root / "base").glob("*.safetensors")) / 2**20
        print(f"built base + {args.experts} experts ({size:.0f} MiB each, bf16) in {time.perf_counter() - t:.0f} s")
        m, p = measure("m2rl", root, args.experts), measure("peer", root, args.experts)
    diff = max(abs(a - b) for ra, rb in zip(m["cosine"], p["cosine"], strict=True) for a, b in zip(ra, rb, strict=True))
    print(f"{m['params']:,} parameters per model; max |cosine(m2rl) - cosine(peer)| = {diff:.2e}")
    print(f"{'analysis':<40} {'seconds':>8} {'peak RSS MiB':>13} {'time ratio':>11} {'RSS ratio':>10}")
    for label, r in (("m2rl geometry (streaming)", m), ("peer: all state dicts in memory", p)):
        print(f"{label:<40} {r['seconds']:>8.1f} {r['peak_rss_mb']:>13.0f} {r['seconds'] / p['seconds']:>10.2f}x "
              f"{r['peak_rss_mb'] / p['peak_rss_mb']:>9.2f}x")


if __name__ == "__main__":
    main()

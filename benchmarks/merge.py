"""Merge benchmark: wall time and peak RSS of M2RL's merge against mergekit, on the same inputs.

    python benchmarks/merge.py [--work work/bench] [--experts 5] [--sigma 1e-3] [--no-mergekit]
                               [--only 'dare_ties' 'ties (tensor)' ...]

Creates (once, cached under --work) a base and N "RL experts" of SmolLM2-135M's shapes (134.5M
parameters, tied embeddings): random weights, each expert = base + sigma * rms(W) * N(0, 1) per
tensor. They are stored in float32 so that a magnitude trim has (almost) no ties and the two tools'
outputs can be compared entry by entry; in bf16 many |tau| would tie and mergekit keeps an arbitrary
subset of them. mergekit is installed (LGPL, never vendored) into its own venv
(--work/mergekit-venv, `pip install mergekit torch==<this torch>`), the first time.

Each merge runs in its own fresh process; peak RSS is that process's VmHWM (ru_maxrss would inherit
this parent's peak across fork + exec). Wall time is the whole process, imports included, for both.
Rows: task_arithmetic, ties (tensor scope, mergekit's definition), dare_ties, and M2RL's ties with
global scope (no mergekit equivalent). max|diff| is the largest difference between the two outputs
over every tensor, where the definitions coincide (dare_ties: different random draws and estimators,
see m2rl/merge/methods/dare.py), and the fraction of entries that differ by more than 1e-6.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# SmolLM2-135M (HuggingFaceTB/SmolLM2-135M config.json)
SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5,
               rope_theta=100000.0, tie_word_embeddings=True)

REPORT = """
import atexit, json, os, sys, time
T0 = time.perf_counter()
def _report():
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    sys.stderr.write("@@BENCH " + json.dumps({"peak_rss_mb": hwm / 1024, "inner_s": time.perf_counter() - T0}) + "\\n")
atexit.register(_report)
"""

M2RL_CHILD = REPORT + """
from m2rl.merge import merge
base, models, method, params, out = json.loads(sys.argv[1])
merge(base, models, method, params, out, track=False)
"""

MERGEKIT_CHILD = REPORT + """
from mergekit.scripts.run_yaml import main
sys.argv = ["mergekit-yaml"] + sys.argv[1:]
try:
    main()
except SystemExit as e:
    if e.code:
        raise
"""


def shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    out = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        out.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i),
        })
    return out


def make_models(root: Path, experts: int, sigma: float) -> tuple[Path, list[Path]]:
    """Base + experts (cached: rebuilt only when the recipe changes)."""
    import torch
    from safetensors.torch import save_file

    recipe = {"shapes": "smollm2-135m", "experts": experts, "sigma": sigma, "dtype": "float32", "v": 1}
    stamp = root / "recipe.json"
    base, exps = root / "base", [root / f"expert-{i}" for i in range(experts)]
    if stamp.exists() and json.loads(stamp.read_text()) == recipe:
        return base, exps
    names = shapes(SMOLLM2)
    g = torch.Generator().manual_seed(0)
    base_sd = {}
    for n, s in names.items():
        base_sd[n] = torch.ones(s) if n.endswith("norm.weight") else 0.02 * torch.randn(s, generator=g)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 0, **SMOLLM2}
    for k, folder in enumerate([base, *exps]):
        folder.mkdir(parents=True, exist_ok=True)
        if k == 0:
            sd = base_sd
        else:
            sd = {}
            for n, w in base_sd.items():
                rms = float(w.pow(2).mean().sqrt())
                sd[n] = w + sigma * rms * torch.randn(w.shape, generator=g)
        save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(cfg, indent=2))
        print(f"  wrote {folder}", file=sys.stderr)
        del sd
    stamp.write_text(json.dumps(recipe))
    return base, exps


def ensure_mergekit(venv: Path) -> Path | None:
    """mergekit in its own venv (torch pinned to this interpreter's version); None with a reason printed."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import mergekit"], capture_output=True).returncode == 0:
        return py
    import torch

    torch_v = torch.__version__.split("+")[0]
    print(f"installing mergekit into {venv} (torch=={torch_v}) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "mergekit", f"torch=={torch_v}"], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"mergekit could not be installed ({exc}); reporting M2RL alone", file=sys.stderr)
        return None
    return py


def run_child(cmd: list[str]) -> dict:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("@@BENCH ")][-1]
    return {"seconds": wall, **json.loads(line[len("@@BENCH "):])}


def max_abs_diff(a: Path, b: Path) -> tuple[float, float]:
    """(largest |a - b|, fraction of entries with |a - b| > 1e-6) over every tensor of two checkpoint
    folders, one tensor at a time."""
    from m2rl.merge.io import SafetensorsSource

    sa, sb = SafetensorsSource(a), SafetensorsSource(b)
    if set(sa.tensors) != set(sb.tensors):
        missing = sorted(set(sa.tensors) ^ set(sb.tensors))[:3]
        raise RuntimeError(f"outputs differ in tensor names, e.g. {missing}")
    worst, off, total = 0.0, 0, 0
    for n, info in sa.tensors.items():
        rows = info.shape[0] if info.shape else 1
        d = (sa.read_rows(n, 0, rows).double() - sb.read_rows(n, 0, rows).double()).abs()
        worst = max(worst, float(d.max()))
        off += int((d > 1e-6).sum())
        total += d.numel()
    return worst, off / total


def mergekit_config(method: str, base: Path, experts: list[Path], params: dict) -> dict:
    return {"merge_method": method, "base_model": str(base), "dtype": "float32", "out_dtype": "float32",
            "parameters": params, "models": [{"model": str(e), "parameters": {"weight": 1.0}} for e in experts]}


# (row label, m2rl method, m2rl params, mergekit method, mergekit parameters, comparable)
CASES = [
    ("task_arithmetic", "task_arithmetic", {"scale": 1.0}, "task_arithmetic", {}, True),
    ("ties (tensor)", "ties", {"density": 0.2, "scope": "tensor"}, "ties", {"density": 0.2}, True),
    ("dare_ties", "dare_ties", {"drop_rate": 0.9, "density": 0.2, "seed": 0}, "dare_ties", {"density": 0.1}, False),
    ("ties (global)", "ties", {"density": 0.2, "scope": "global"}, None, None, False),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(REPO / "work" / "bench"), help="Scratch folder (models, venv, outputs).")
    ap.add_argument("--experts", type=int, default=5)
    ap.add_argument("--sigma", type=float, default=1e-3)
    ap.add_argument("--no-mergekit", action="store_true", help="Measure M2RL alone.")
    ap.add_argument("--only", nargs="+", choices=[c[0] for c in CASES], metavar="ROW",
                    help=f"Run only these rows (of: {', '.join(repr(c[0]) for c in CASES)}).")
    args = ap.parse_args()
    import yaml

    work = Path(args.work)
    print("preparing models ...", file=sys.stderr)
    base, experts = make_models(work / "merge-models", args.experts, args.sigma)
    size_mb = (base / "model.safetensors").stat().st_size / 2**20
    mk = None if args.no_mergekit else ensure_mergekit(work / "mergekit-venv")
    outs = work / "merge-out"
    rows = []
    for label, method, params, mk_method, mk_params, comparable in CASES:
        if args.only and label not in args.only:
            continue
        m2_out = outs / f"m2rl-{method}-{params.get('scope', '')}"
        arg = json.dumps([str(base), [str(e) for e in experts], method, params, str(m2_out)])
        print(f"m2rl {label} ...", file=sys.stderr)
        m2 = run_child([sys.executable, "-c", M2RL_CHILD, arg])
        row = {"label": label, "m2rl": m2, "mergekit": None, "diff": None}
        if mk is not None and mk_method is not None:
            cfg_path = outs / f"mergekit-{mk_method}.yaml"
            cfg_path.parent.mkdir(parents=True, exist_ok=True)
            cfg_path.write_text(yaml.safe_dump(mergekit_config(mk_method, base, experts, mk_params)))
            mk_out = outs / f"mergekit-{mk_method}"
            print(f"mergekit {label} ...", file=sys.stderr)
            row["mergekit"] = run_child([str(mk), "-c", MERGEKIT_CHILD, str(cfg_path), str(mk_out), "--random-seed",
                                         "0", "--no-copy-tokenizer", "--no-write-model-card", "--quiet"])
            row["diff"] = max_abs_diff(m2_out, mk_out) if comparable else None
        rows.append(row)
        print(f"  {json.dumps({k: v for k, v in row.items() if k != 'label'})}", file=sys.stderr)

    n_params = sum(math.prod(s) for s in shapes(SMOLLM2).values())
    print(f"\nbase + {args.experts} experts, {n_params / 1e6:.1f}M parameters each ({size_mb:.0f} MB float32 "
          f"files), sigma {args.sigma:g}; torch threads: default; one process per merge")
    head = (f"{'merge':<17}{'m2rl s':>8}{'mergekit s':>12}{'time x':>8}{'m2rl MB':>9}{'mergekit MB':>13}"
            f"{'RSS x':>7}{'max|diff|':>11}{'frac>1e-6':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        m2, mk_r = r["m2rl"], r["mergekit"]
        if mk_r is None:
            cells = ["-", "-", "-", "-"]
        else:
            cells = [f"{mk_r['seconds']:.1f}", f"{m2['seconds'] / mk_r['seconds']:.2f}",
                     f"{mk_r['peak_rss_mb']:.0f}", f"{m2['peak_rss_mb'] / mk_r['peak_rss_mb']:.2f}"]
        diff, frac = ("n/a", "n/a") if r["diff"] is None else (f"{r['diff'][0]:.2e}", f"{r['diff'][1]:.1e}")
        print(f"{r['label']:<17}{m2['seconds']:>8.1f}{cells[0]:>12}{cells[1]:>8}{m2['peak_rss_mb']:>9.0f}"
              f"{cells[2]:>13}{cells[3]:>7}{diff:>11}{frac:>11}")
    print("time x, RSS x: m2rl / mergekit (goals: <= 1.0 and <= 0.5); dare_ties: m2rl = DARE(p=0.9) then TIES "
          "trim 0.2, mergekit = its dare_ties (density 0.1, no trim): not comparable entry by entry.\n"
          "ties: float32 deltas of nearby weights are quantised, so many |tau| tie at a tensor's threshold; "
          "m2rl keeps every tied entry, mergekit's argsort an arbitrary k of them: the entries that differ.")


if __name__ == "__main__":
    main()

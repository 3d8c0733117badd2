"""Streaming: a merge never holds two whole models (peak RSS, VmHWM, measured in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import save_file

N_TENSORS, ROWS, COLS = 5, 4096, 2048  # 5 x 32 MB: a 160 MB float32 model

CHILD = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from m2rl.merge import merge
    from safetensors.torch import load_file

    def status_mb(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

    # VmHWM, not getrusage's ru_maxrss: the latter inherits the parent's peak across fork + exec
    def rss_mb():
        return status_mb("VmRSS")

    def peak_mb():
        return status_mb("VmHWM")

    base, e1, e2, out = sys.argv[1:5]
    before = rss_mb()
    merge(base, [e1, e2], "task_arithmetic", {}, out + "/ta", chunk_elems=1 << 18, track=False)
    merge(base, [e1, e2], "ties", {"scope": "global", "density": 0.2}, out + "/ties", chunk_elems=1 << 18,
          track=False)
    merged = peak_mb() - before
    held = [{k: v.clone() for k, v in load_file(f + "/model.safetensors").items()} for f in (base, e1)]
    two_models = peak_mb() - before
    print(json.dumps({"merge_mb": merged, "two_models_mb": two_models}))
""")


def _model(folder, seed, base=None):
    folder.mkdir()
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(N_TENSORS):
        name = f"model.layers.{i}.mlp.up_proj.weight"
        noise = torch.randn(ROWS, COLS, generator=g)
        sd[name] = 0.02 * noise if base is None else base[name] + 1e-3 * noise
    sd["model.norm.weight"] = torch.ones(COLS) if base is None else base["model.norm.weight"] + 1e-3
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return sd


def test_merge_peak_memory_is_far_below_two_models(tmp_path):
    base = _model(tmp_path / "base", 0)
    _model(tmp_path / "e1", 1, base)
    _model(tmp_path / "e2", 2, base)
    del base
    model_mb = N_TENSORS * ROWS * COLS * 4 / 2**20
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "base"), str(tmp_path / "e1"), str(tmp_path / "e2"),
         str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    # the measurement sees whole models when they are held ...
    assert got["two_models_mb"] > 1.8 * model_mb
    # ... and the merges (task arithmetic, then global TIES over 3 x 160 MB inputs) grew the process by
    # less than half of one model
    assert got["merge_mb"] < 0.5 * model_mb, got
    assert (tmp_path / "out" / "ties" / "model.safetensors.index.json").exists()

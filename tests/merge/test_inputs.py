"""Bad inputs: a clear error naming the first problem, and no output (nor temp folder) left behind."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2rl.merge import MergeError, merge
from m2rl.registry import RegistryError

from .conftest import make_expert


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _run_fails(base, experts, tmp_path, method="ties", params=None, match=None):
    out = tmp_path / "out" / "merged"
    with pytest.raises((MergeError, RegistryError), match=match) as exc:
        merge(str(base), [str(e) for e in experts], method, params or {}, str(out), track=False)
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    print(exc.value)
    return str(exc.value)


def test_missing_tensor_is_named(tiny, tmp_path):
    base, experts = tiny
    bad = _copy(experts[1], tmp_path / "bad")
    sd = load_file(str(bad / "model.safetensors"))
    del sd["model.layers.1.mlp.up_proj.weight"]
    save_file(sd, str(bad / "model.safetensors"))
    msg = _run_fails(base, [experts[0], bad], tmp_path, match="is missing tensor")
    assert "'model.layers.1.mlp.up_proj.weight'" in msg and str(bad) in msg


def test_extra_tensor_and_shape_mismatch_are_named(tiny, tmp_path):
    base, experts = tiny
    extra = _copy(experts[0], tmp_path / "extra")
    sd = load_file(str(extra / "model.safetensors"))
    sd["model.bonus.weight"] = torch.zeros(3)
    save_file(sd, str(extra / "model.safetensors"))
    assert "'model.bonus.weight'" in _run_fails(base, [extra], tmp_path, match="lacks")
    shaped = _copy(experts[0], tmp_path / "shaped")
    sd = load_file(str(shaped / "model.safetensors"))
    sd["model.norm.weight"] = torch.ones(65)
    sd["model.layers.0.input_layernorm.weight"] = torch.ones(66)  # the first mismatch in name order
    save_file(sd, str(shaped / "model.safetensors"))
    msg = _run_fails(base, [experts[1], shaped], tmp_path, match="shape")
    assert "'model.layers.0.input_layernorm.weight'" in msg and "[66]" in msg and "[64]" in msg


def test_architecture_mismatch(tiny, tmp_path):
    base, experts = tiny
    other = _copy(experts[0], tmp_path / "qwen")
    cfg = json.loads((other / "config.json").read_text())
    cfg["architectures"] = ["Qwen3ForCausalLM"]
    (other / "config.json").write_text(json.dumps(cfg))
    assert "Qwen3ForCausalLM" in _run_fails(base, [other], tmp_path, match="architectures")


def test_missing_shard(tiny, tmp_path):
    base, experts = tiny
    sharded = _copy(experts[0], tmp_path / "sharded")
    sd = load_file(str(sharded / "model.safetensors"))
    names = sorted(sd)
    (sharded / "model.safetensors").unlink()
    save_file({n: sd[n] for n in names[:10]}, str(sharded / "model-00001-of-00002.safetensors"))
    wm = {n: ("model-00001-of-00002.safetensors" if i < 10 else "model-00002-of-00002.safetensors")
          for i, n in enumerate(names)}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    msg = _run_fails(base, [sharded], tmp_path, match="missing")
    assert "model-00002-of-00002.safetensors" in msg


def test_truncated_file(tiny, tmp_path):
    base, experts = tiny
    cut = _copy(experts[2], tmp_path / "cut")
    f = cut / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-1000])
    msg = _run_fails(base, [experts[0], cut], tmp_path, match="truncated")
    assert str(f) in msg


def test_nan_delta_leaves_no_output(tiny, tmp_path):
    base, experts = tiny

    def poison(sd):
        sd["model.layers.1.self_attn.q_proj.weight"][3, 5] = float("nan")

    nan = make_expert(base, tmp_path / "nan", 3, tweak=poison)
    # global TIES reads everything in its first pass; task arithmetic fails in the middle of writing
    for method, params in (("ties", {"scope": "global"}), ("task_arithmetic", {})):
        msg = _run_fails(base, [experts[0], nan], tmp_path, method=method, params=params, match="NaN")
        assert "'model.layers.1.self_attn.q_proj.weight'" in msg and str(nan) in msg


def test_bad_method_and_params(tiny, tmp_path):
    base, experts = tiny
    _run_fails(base, experts, tmp_path, method="slerpish", match="unknown merge method 'slerpish'")
    assert "params.density" in _run_fails(base, experts, tmp_path, params={"density": 1.5}, match="density")
    assert "params.denisty: unknown parameter" in _run_fails(base, experts, tmp_path, params={"denisty": 0.5})
    _run_fails(base, experts[:1], tmp_path, method="model_stock", match="at least 2")
    _run_fails(tmp_path / "nowhere", experts, tmp_path, match="not found")


def test_failure_keeps_previous_output(tiny, tmp_path):
    """A failed re-run leaves the earlier complete output untouched."""
    base, experts = tiny
    out = tmp_path / "kept"
    merge(str(base), [str(e) for e in experts], "average", {}, str(out), track=False)
    before = (out / "merge_card.json").read_text()
    nan = make_expert(base, tmp_path / "nan2", 4, tweak=lambda sd: sd["model.norm.weight"].fill_(float("inf")))
    with pytest.raises(MergeError):
        merge(str(base), [str(nan)], "average", {}, str(out), track=False)
    assert (out / "merge_card.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".kept")) == []

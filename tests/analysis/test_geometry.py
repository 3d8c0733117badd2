"""Weight-space geometry on checkpoints with planted task vectors and known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from m2rl.analysis import AnalysisError, analyze
from m2rl.analysis.analyses.geometry import module_type, task_vector_geometry
from m2rl.analysis.stage import build_context
from m2rl.checkpoint import ShardedWriter

SHAPES = {
    "model.embed_tokens.weight": (64, 16),
    "model.layers.0.self_attn.q_proj.weight": (16, 16),
    "model.layers.0.mlp.up_proj.weight": (32, 16),
    "model.layers.0.post_attention_layernorm.weight": (16,),
    "lm_head.weight": (64, 16),
}


def write_ckpt(folder, tensors, shard_bytes=4096):
    w = ShardedWriter(folder, max_shard_bytes=shard_bytes)
    for name, t in tensors.items():
        w.add(name, t)
    w.finish()
    (folder / "config.json").write_text(json.dumps({"model_type": "fake"}))
    return folder


def base_tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}


def random_tau(seed, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) * scale for n, s in SHAPES.items()}


def make(tmp_path, taus: dict[str, dict[str, torch.Tensor]], base=None):
    base = base or base_tensors()
    write_ckpt(tmp_path / "base", base)
    models = {}
    for name, tau in taus.items():
        write_ckpt(tmp_path / name, {n: base[n] + tau[n] for n in base})
        models[name] = {"uri": str(tmp_path / name), "paradigm": "single" if name.startswith("single-") else "merge"}
    return models, str(tmp_path / "base")


def geometry_of(tmp_path, taus, **params):
    models, base = make(tmp_path, taus)
    analyze({"analyses": ["geometry"], **params}, models, base, {}, {}, str(tmp_path / "out"))
    return json.loads((tmp_path / "out" / "analysis.json").read_text())["analyses"]["geometry"]


def test_identical_models_cosine_one_and_opposite_minus_one(tmp_path):
    tau = random_tau(1)
    neg = {n: -t for n, t in tau.items()}
    g = geometry_of(tmp_path, {"single-math": tau, "single-code": dict(tau), "merge-neg": neg},
                    projection_dim=64)
    i = {n: k for k, n in enumerate(g["models"])}
    a, b, c = i["single-math"], i["single-code"], i["merge-neg"]
    assert g["cosine"][a][b] == pytest.approx(1.0, abs=1e-9)
    assert g["cosine"][a][c] == pytest.approx(-1.0, abs=1e-9)
    # the sketch is linear: identical stays 1 and a sign flip stays -1 exactly, whatever d
    assert g["cosine_projected"][a][b] == pytest.approx(1.0, abs=1e-9)
    assert g["cosine_projected"][a][c] == pytest.approx(-1.0, abs=1e-9)
    assert g["sign_agreement"][a][b] == 1.0 and g["sign_agreement"][a][c] == 0.0
    assert g["overlap"][a][b] == 1.0 and g["overlap"][a][c] == 1.0  # same |tau| -> same footprint
    assert g["norms"]["single-math"]["overall"] == pytest.approx(g["norms"]["merge-neg"]["overall"])


def test_norms_and_cosines_match_brute_force(tmp_path):
    taus = {"single-math": random_tau(1), "single-code": random_tau(2), "merge-avg": random_tau(3)}
    g = geometry_of(tmp_path, taus, projection_dim=4096)
    base = base_tensors()
    flat = {}
    for name, tau in taus.items():
        # what is on disk: (base + tau) - base in float32, as the analysis sees it
        flat[name] = torch.cat([((base[n] + tau[n]) - base[n]).reshape(-1) for n in SHAPES]).double().numpy()
    for name in taus:
        assert g["norms"][name]["overall"] == pytest.approx(np.linalg.norm(flat[name]), rel=1e-9)
        attn = (base["model.layers.0.self_attn.q_proj.weight"] + taus[name]["model.layers.0.self_attn.q_proj.weight"]
                - base["model.layers.0.self_attn.q_proj.weight"])
        assert g["norms"][name]["attention"] == pytest.approx(float(attn.double().norm()), rel=1e-9)
        assert set(g["norms"][name]) == {"overall", "attention", "mlp", "embeddings", "norms"}
    names = g["models"]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            exact = flat[a] @ flat[b] / np.linalg.norm(flat[a]) / np.linalg.norm(flat[b])
            assert g["cosine"][i][j] == pytest.approx(exact, abs=1e-9)
            # random vectors are near-orthogonal; the sketch to 4096 dims keeps that within its 1/sqrt(d) noise
            assert abs(g["cosine_projected"][i][j] - exact) < 0.12
            sa, sb = np.sign(flat[a]), np.sign(flat[b])
            both = (sa != 0) & (sb != 0)
            assert g["sign_agreement"][i][j] == pytest.approx(np.mean(sa[both] == sb[both]))
    assert g["params"] == sum(int(np.prod(s)) for s in SHAPES.values())


def test_planted_footprint_gives_planted_jaccard(tmp_path):
    n_total = sum(int(np.prod(s)) for s in SHAPES.values())
    top_percent = 5.0
    keep = int(np.ceil(top_percent / 100 * n_total))
    rng = np.random.default_rng(0)
    perm = rng.permutation(n_total)
    shared = keep // 3
    pos_a = perm[:keep]
    pos_b = np.concatenate([perm[:shared], perm[keep : 2 * keep - shared]])

    def planted(pos, seed):
        flat = np.random.default_rng(seed).uniform(-1e-4, 1e-4, n_total)  # small noise everywhere
        flat[pos] = np.random.default_rng(seed + 1).uniform(1.0, 2.0, len(pos)) * rng.choice([-1, 1], len(pos))
        out, at = {}, 0
        for name, shape in SHAPES.items():
            size = int(np.prod(shape))
            out[name] = torch.tensor(flat[at : at + size], dtype=torch.float32).reshape(shape)
            at += size
        return out

    g = geometry_of(tmp_path, {"single-math": planted(pos_a, 1), "single-code": planted(pos_b, 2)},
                    footprint_top_percent=top_percent)
    expected = shared / (2 * keep - shared)
    assert g["overlap"][0][1] == pytest.approx(expected)
    assert g["footprint_fraction"]["single-math"] == pytest.approx(keep / n_total)


def test_streaming_chunks_give_the_same_answer(tmp_path):
    taus = {"single-math": random_tau(1), "single-code": random_tau(2)}
    models, base = make(tmp_path, taus)
    ctx = build_context({"projection_dim": 32, "footprint_top_percent": 10.0}, models, base, {}, {})
    whole = task_vector_geometry(ctx, list(ctx.models), chunk_elements=1 << 20)
    rows = task_vector_geometry(ctx, list(ctx.models), chunk_elements=40)  # a few rows at a time
    for key in ("cosine", "sign_agreement", "overlap"):
        assert np.allclose(np.array(whole[key], dtype=float), np.array(rows[key], dtype=float), atol=1e-9), key
    for m in whole["norms"]:
        assert whole["norms"][m]["overall"] == pytest.approx(rows["norms"][m]["overall"], rel=1e-12)


def test_shape_mismatch_names_model_and_tensor(tmp_path):
    base = base_tensors()
    write_ckpt(tmp_path / "base", base)
    bad = dict(base)
    bad["model.layers.0.mlp.up_proj.weight"] = torch.zeros(8, 16)
    write_ckpt(tmp_path / "single-math", bad)
    with pytest.raises(AnalysisError, match="single-math.*up_proj"):
        analyze({"analyses": ["geometry"]}, {"single-math": {"uri": str(tmp_path / "single-math")}},
                str(tmp_path / "base"), {}, {}, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "analysis.json").exists()


def test_module_types():
    assert module_type("model.layers.3.self_attn.k_proj.weight") == "attention"
    assert module_type("model.layers.3.post_attention_layernorm.weight") == "norms"
    assert module_type("model.layers.3.mlp.down_proj.weight") == "mlp"
    assert module_type("model.embed_tokens.weight") == "embeddings"
    assert module_type("lm_head.weight") == "embeddings"
    assert module_type("transformer.h.0.ln_1.weight") == "norms"

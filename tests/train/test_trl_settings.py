"""The trl backend's share of the paper's settings: weight decay and Adam betas in TRL 1.16's GRPOConfig,
importance sampling refused (no vLLM rollout to correct), the think gate in its reward function, prompts
with tool schemas rendered the way TRL can take them, and the expert step a merge takes kept."""

from __future__ import annotations

import functools
import json

import pytest

from m2rl.records import render_chat, write_records
from m2rl.train import TrainError, describe, plan, train
from m2rl.train.backends.trl import DomainReward, _dataset_rows, make_grpo_config
from m2rl.verifiers import trl_reward
from tests.train.conftest import domain_records, tiny_spec, tool_record, tools_tokenizer


def test_weight_decay_and_betas_reach_grpo_config(tmp_path):
    spec = tiny_spec(tmp_path, weight_decay=0.1, adam_betas=[0.9, 0.98])
    cfg = make_grpo_config(plan(spec, "math", "d.parquet", "random:tiny", str(tmp_path / "o")), tmp_path / "c")
    assert (cfg.weight_decay, cfg.adam_beta1, cfg.adam_beta2) == (0.1, 0.9, 0.98)
    default = make_grpo_config(plan(tiny_spec(tmp_path), "math", "d.parquet", "random:tiny", str(tmp_path / "o")),
                               tmp_path / "c")
    assert (default.weight_decay, default.adam_beta1, default.adam_beta2) == (0.0, 0.9, 0.999)  # TRL's own


def test_importance_sampling_is_refused_by_trl(tmp_path):
    spec = tiny_spec(tmp_path, importance_sampling={"level": "token"})
    with pytest.raises(TrainError, match="train.importance_sampling: the trl backend.s hf rollouts sample with the trained model"):
        describe(spec, "math", "d.parquet", "random:tiny", str(tmp_path / "out"))


def test_more_than_one_node_is_refused_by_trl(tmp_path):
    spec = tiny_spec(tmp_path, nodes=2)
    with pytest.raises(TrainError, match="train.nodes: the trl backend trains in one process on one machine, got 2"):
        describe(spec, "math", "d.parquet", "random:tiny", str(tmp_path / "out"))


def test_reward_function_gates_on_think_close():
    rec = domain_records("math", 1)[0]
    cols = {"label": [rec["label"]] * 2, "verifier": [json.dumps(rec["verifier"])] * 2, "domain": ["math"] * 2}
    completions = [[{"role": "assistant", "content": f"Answer: {rec['label']}"}],
                   [{"role": "assistant", "content": f"<think>ok</think>Answer: {rec['label']}"}]]
    assert trl_reward.reward_func(prompts=["p"] * 2, completions=completions, m2rl_workers=0, **cols) == [1.0, 1.0]
    gated = DomainReward(functools.partial(trl_reward.reward_func, require_think_close=True))
    seen = {}
    out = gated(prompts=["p"] * 2, completions=completions, m2rl_workers=0, log_metric=seen.__setitem__, **cols)
    assert out == [0.0, 1.0] and seen == {"domain_reward/math": 0.5}


def test_dataset_rows_render_tools_for_trl(tmp_path):
    """TRL 1.16 renders conversational prompts with its own `tools=` (callables it runs), never a row's
    schemas: a job with tool records gets every prompt rendered as text, tools included."""
    tok = tools_tokenizer()
    spec = tiny_spec(tmp_path, rollout_batch_size=2)
    plain = domain_records("math", 1)
    write_records(tmp_path / "plain.parquet", plain)
    job = plan(spec, "mix", str(tmp_path / "plain.parquet"), "random:tiny", str(tmp_path / "o"))
    job.data_local = tmp_path / "plain.parquet"
    rows, _ = _dataset_rows(job, tok)
    assert rows[0]["prompt"] == plain[0]["prompt"]  # no tools anywhere: conversational, TRL renders it

    mixed = [tool_record(), *plain]
    write_records(tmp_path / "mixed.parquet", mixed)
    job.data_local = tmp_path / "mixed.parquet"
    rows, _ = _dataset_rows(job, tok)
    by_id = {r["id"]: r for r in rows}
    agent = by_id["agent-tools-1"]["prompt"]
    assert isinstance(agent, str) and '"name": "book_meeting_room"' in agent and "# Tools" in agent
    assert by_id[plain[0]["id"]]["prompt"] == render_chat(tok, plain[0]["prompt"])  # one form per job

    n_tools = len(render_chat(tok, mixed[0]["prompt"], mixed[0]["tools"], tokenize=True))
    n_bare = len(render_chat(tok, mixed[0]["prompt"], tokenize=True))
    short = tiny_spec(tmp_path, rollout_batch_size=2, max_prompt_len=(n_tools + n_bare) // 2)
    job = plan(short, "mix", str(tmp_path / "mixed.parquet"), "random:tiny", str(tmp_path / "o"))
    job.data_local = tmp_path / "mixed.parquet"
    with pytest.raises(TrainError, match=r"every agent prompt .* \(1\) is longer than"):  # the schemas count
        _dataset_rows(job, tok)


def test_trl_run_with_tools_keeps_the_expert_step(tmp_path, tmp_cache, monkeypatch):
    """Two GRPO steps on agent records, one with tools (prompts rendered as text for TRL), scored with the
    spec's think gate; step 1 is the step merge.expert_steps names: kept at `steps/1` past the end-of-run
    cleanup and listed in the card."""
    from m2rl.merge import MergeError
    from m2rl.merge.stage import expert_checkpoint
    from m2rl.train.backends import trl as backend

    seen = []
    real = backend.trl_reward.reward_func

    def recording(*args, require_think_close=False, **kwargs):
        seen.append((require_think_close, kwargs["completions"][0]))
        return real(*args, require_think_close=require_think_close, **kwargs)

    monkeypatch.setattr(backend.trl_reward, "reward_func", recording)
    write_records(tmp_path / "agent.parquet", [tool_record(), *domain_records("agent", 1)])
    spec = tiny_spec(tmp_path, rollout_batch_size=2)
    spec = spec.model_copy(update={"merge": spec.merge.model_copy(update={"expert_steps": {"agent": 1}}),
                                   "rewards": spec.rewards.model_copy(update={"require_think_close": True})})
    out = tmp_path / "artifacts" / "models" / "single-agent"
    result = train(spec, "agent", str(tmp_path / "agent.parquet"), "random:tiny", str(out))
    assert len(seen) == 2 and all(gate for gate, _ in seen)  # one reward call per GRPO step, gated
    assert all(isinstance(c, str) for _, c in seen)  # text prompts in, text completions out
    ckpts = tmp_path / "artifacts" / "checkpoints" / "single-agent"
    assert result.steps == 2 and result.card["step_checkpoints"] == {"1": str(ckpts / "steps" / "1")}
    assert sorted(p.name for p in ckpts.iterdir()) == ["steps"]
    kept = ckpts / "steps" / "1"
    assert any(kept.glob("*.safetensors")) and (kept / "config.json").is_file() and not (kept / "optimizer.pt").exists()
    assert expert_checkpoint(str(out), 1) == str(kept) and expert_checkpoint(str(out), None) == str(out)
    with pytest.raises(MergeError, match=r"merge.expert_steps: .* has no checkpoint of step 5; steps that exist: 1, 2"):
        expert_checkpoint(str(out), 5)

"""The paper's settings on the OpenRLHF path: optimizer and truncated importance sampling flags parsed by
OpenRLHF 0.11.2's own parser, the paper preset's command, the think gate in the reward hook and the reward
service, tool schemas in the prompt file, and the expert step a merge takes kept by the backend."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from m2rl.spec import SpecError, load_spec, spec_from_dict
from m2rl.train import TrainError, describe, plan
from m2rl.train.openrlhf_args import openrlhf_args
from tests.train.conftest import domain_records, tool_record, tools_tokenizer
from tests.train.test_openrlhf import PAPER, PATHS

REPO = Path(__file__).resolve().parents[2]
PRESET = REPO / "examples" / "qwen3-4b-paper.yaml"


def _paper(**train):
    return spec_from_dict({**PAPER, "train": {**PAPER["train"], **train}})


def test_optimizer_and_truncated_is_flags_parse(openrlhf_parser):
    spec = _paper(weight_decay=0.1, adam_betas=[0.9, 0.98],
                  importance_sampling={"level": "token", "mode": "clip", "low": 0.0, "high": 2.0})
    argv = openrlhf_args(spec.train, steps=10, paths=PATHS, run_name="x")
    args, warnings = openrlhf_parser.parse(argv)
    assert warnings == []
    assert args.actor.adam.weight_decay == 0.1 and list(args.actor.adam.betas) == [0.9, 0.98]
    adv = args.algo.advantage
    assert (adv.is_correction_level, adv.is_correction_mode, adv.is_correction_gating) == ("token", "clip", "ratio")
    assert list(adv.is_correction_threshold) == [0.0, 2.0]

    masked = _paper(importance_sampling={"level": "sequence", "mode": "mask", "low": 0.5, "high": 5.0})
    args, _ = openrlhf_parser.parse(openrlhf_args(masked.train, steps=10, paths=PATHS, run_name="x"))
    assert args.algo.advantage.is_correction_level == "seq" and args.algo.advantage.is_correction_mode == "mask"

    default, _ = openrlhf_parser.parse(openrlhf_args(_paper().train, steps=10, paths=PATHS, run_name="x"))
    assert default.algo.advantage.is_correction_level == "off"  # off unless the spec asks
    assert default.actor.adam.weight_decay == 0.0 and list(default.actor.adam.betas) == [0.9, 0.95]  # OpenRLHF's


def test_settings_openrlhf_cannot_honour_fail_with_the_field():
    spec = _paper(importance_sampling={"level": "sequence", "mode": "clip"})
    with pytest.raises(TrainError, match="train.importance_sampling: OpenRLHF clips token-level weights only"):
        describe(spec, "math", "s3://b/d.parquet", "s3://b/base", "s3://b/out")
    with pytest.raises(SpecError, match="train.importance_sampling: .*low: must be below high"):
        _paper(importance_sampling={"level": "token", "low": 2.0, "high": 1.0})
    with pytest.raises(SpecError, match=r"train.adam_betas: .*each beta must be in \[0, 1\)"):
        _paper(adam_betas=[0.9, 1.0])


def _preset():
    try:
        return load_spec(PRESET)
    except SpecError as exc:
        data_fields = ("balance", "prompt_template", "placeholder_sources")
        if all(e.startswith("data.") and any(f in e for f in data_fields) for e in exc.errors):
            pytest.skip(f"the data stage's fields (data.balance: natural, prompt_template, placeholder_sources) "
                        f"are not in this tree yet: {exc.errors}")
        raise


@pytest.mark.parametrize(("run", "steps"), [("math", 400), ("science", 400), ("mix", 2000)])
def test_paper_preset_command_carries_the_papers_settings(openrlhf_parser, run, steps):
    spec = _preset()
    cmd = describe(spec, run, f"s3://m2rl-studies/runs/data/train/{run}.parquet", spec.base_model,
                   f"s3://m2rl-studies/runs/models/{'mix' if run == 'mix' else 'single-' + run}")
    assert cmd[:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
    args, warnings = openrlhf_parser.parse(cmd[3:])
    assert warnings == []
    assert args.data.max_samples == steps * 128 and args.train.num_episodes == 1
    assert args.rollout.batch_size == 128 and args.rollout.n_samples_per_prompt == 16
    assert args.train.batch_size == 2048 and args.rollout.temperature == 1.0
    assert args.rollout.max_new_tokens == 32768 and args.data.max_len == 2048 + 32768
    assert args.actor.adam.lr == 2e-6 and args.actor.lr_scheduler == "constant" and args.actor.lr_warmup_ratio == 0
    assert list(args.actor.adam.betas) == [0.9, 0.98] and args.actor.adam.weight_decay == 0.1
    assert list(args.actor.eps_clip_low_high) == [0.2, 0.28] and args.actor.entropy_coef == 0.0
    assert args.algo.kl.init_coef == 0.0 and "--ref.num_nodes" not in cmd  # KL 0: no reference model
    adv = args.algo.advantage
    assert adv.estimator == "group_norm"
    assert (adv.is_correction_level, adv.is_correction_mode, adv.is_correction_gating) == ("token", "clip", "ratio")
    assert list(adv.is_correction_threshold) == [0.0, 2.0]
    assert args.ckpt.save_steps == 20 and args.ckpt.save_hf
    assert not args.data.apply_chat_template  # prompts arrive rendered with their tools


def test_paper_preset_rewards_merges_and_expert_steps():
    from m2rl.merge import get_method
    from m2rl.merge.registry import parse_params
    from m2rl.train.backends.openrlhf import reward_env

    spec = _preset()
    assert spec.rewards.require_think_close
    job = plan(spec, "science", "s3://b/science.parquet", spec.base_model, "s3://b/models/single-science")
    assert reward_env(job) == {"M2RL_REQUIRE_THINK_CLOSE": "1", "M2RL_ENV_PARAMS": json.dumps(
        {"workplace_assistant": {"data": "s3://m2rl-studies/data/workbench/csv_data/processed", "max_turns": 6}},
        sort_keys=True)}  # the agent file and the `env` verifier read the environments' params from it
    assert job.keep_steps == (200,)  # MergeLM/run.sh merges science at iter_0000199: after 200 steps
    for d in ("math", "code", "if", "agent"):
        assert spec.merge.expert_steps[d] == 400
        assert plan(spec, d, "s3://b/d.parquet", spec.base_model, f"s3://b/models/single-{d}").keep_steps == ()
    params = {m.label: parse_params(get_method(m.method), m.params).model_dump() for m in spec.merge.methods}
    assert params["ties"]["density"] == 0.2 and params["ties"]["scope"] == "global"
    assert params["ties_dare"]["drop_rate"] == 0.2 and params["ties_dare"]["density"] == 0.2
    assert params["ties_dare"]["scope"] == "global" and params["ties_dare"]["rescale"]
    assert params["ta_dare"]["drop_rate"] == 0.2 and params["ta_dare"]["rescale"]
    assert params["sce"]["select_topk"] == 1.0
    assert sorted(params) == ["average", "sce", "ta_dare", "task_arithmetic", "ties", "ties_dare"]
    assert spec.data.balance == "natural"


@pytest.mark.parametrize(("step", "message"), [
    (401, "merge.expert_steps.math: step 401 is beyond the 400 steps"),
    (210, "merge.expert_steps.math: step 210 is never saved: checkpoints are saved every train.save_steps = 20"),
])
def test_an_expert_step_that_is_never_saved_fails_before_launch(step, message):
    """The spec refuses it when it loads (`m2rl validate`); a spec changed after loading, at train planning."""
    raw = {**PAPER, "train": {**PAPER["train"], "steps": 400}, "merge": {"expert_steps": {"math": step}}}
    with pytest.raises(SpecError) as err:
        spec_from_dict(raw)
    assert any(re.match(re.escape(message), e) for e in err.value.errors), err.value.errors
    spec = spec_from_dict({**raw, "merge": {}})
    spec.merge.expert_steps = {"math": step}
    with pytest.raises(TrainError, match=message):
        plan(spec, "math", "s3://b/d.parquet", "s3://b/base", "s3://b/out")


def _hook():
    from m2rl.train.backends.openrlhf import reward_hook_path

    spec = importlib.util.spec_from_file_location("reward_func", reward_hook_path())
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


def _math_call():
    from m2rl.verifiers import encode_label

    rec = domain_records("math", 1)[0]
    prompt = "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
    return rec, prompt, encode_label(rec)


def test_reward_hook_gates_on_think_close(monkeypatch):
    hook = _hook()
    rec, prompt, label = _math_call()
    plain, thought = f"Answer: {rec['label']}", f"<think>short</think>Answer: {rec['label']}"

    def reward(response: str) -> float:
        return float(hook.reward_func([prompt + response + "<|im_end|>"], [prompt], [label])["rewards"][0])

    monkeypatch.delenv("M2RL_SPEC_YAML", raising=False)
    monkeypatch.delenv("M2RL_REQUIRE_THINK_CLOSE", raising=False)
    assert reward(plain) == 1.0 and reward(thought) == 1.0  # off by default: unchanged
    monkeypatch.setenv("M2RL_REQUIRE_THINK_CLOSE", "1")
    assert reward(plain) == 0.0 and reward(thought) == 1.0
    monkeypatch.setenv("M2RL_REQUIRE_THINK_CLOSE", "0")
    assert reward(plain) == 1.0
    # In a RayJob the workers carry the spec itself (m2rl.k8s.rayjob), not the backend's variable.
    monkeypatch.delenv("M2RL_REQUIRE_THINK_CLOSE")
    monkeypatch.setenv("M2RL_SPEC_YAML", spec_from_dict({"rewards": {"require_think_close": True}}).model_dump_json())
    assert reward(plain) == 0.0 and reward(thought) == 1.0
    monkeypatch.setenv("M2RL_REQUIRE_THINK_CLOSE", "maybe")
    with pytest.raises(ValueError, match="M2RL_REQUIRE_THINK_CLOSE must be 1 or 0"):
        reward(plain)


def _serve(cfg):
    from m2rl.verifiers.service import make_server

    server = make_server("127.0.0.1", 0, cfg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _post(url: str, payload: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("gate", [False, True])
def test_reward_service_gates_and_training_checks_it(gate, monkeypatch):
    from m2rl.train.backends.openrlhf import check_reward_service
    from m2rl.verifiers.service import ServiceConfig

    monkeypatch.setenv("M2RL_REQUIRE_THINK_CLOSE", "1" if gate else "0")
    cfg = ServiceConfig(workers=0)
    assert cfg.require_think_close is gate  # the service's setting comes from its environment by default
    server = _serve(cfg)
    try:
        rec, prompt, label = _math_call()
        plain, thought = f"Answer: {rec['label']}", f"<think>x</think>Answer: {rec['label']}"
        out = _post(server.url + "/get_reward", {"query": [prompt + plain, prompt + thought], "prompts": [prompt] * 2,
                                                 "labels": [label, label]})
        assert out["rewards"] == ([0.0, 1.0] if gate else [1.0, 1.0])
        assert out["extra_logs"]["m2rl/math/count"] == [1.0, 1.0]  # a gated sample still counts for its domain
        check_reward_service(server.url + "/get_reward", gate)
        with pytest.raises(TrainError, match=f"scores with require_think_close={gate}, but rewards.require_think_close"):
            check_reward_service(server.url + "/get_reward", not gate)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TrainError, match="train.reward_url: .* did not answer"):
        check_reward_service(server.url, gate, timeout=2)


def test_prompt_file_renders_tools_as_openrlhf_reads_it(tmp_path):
    """OpenRLHF 0.11.2's preprocess_data takes the prompt text as is without --data.apply_chat_template (its
    own template call passes no tools), so the file holds each prompt rendered with its record's tools."""
    from m2rl.records import write_records
    from m2rl.train.backends.openrlhf import write_prompts

    records = [tool_record(), *domain_records("math", 1)]
    write_records(tmp_path / "mix.parquet", records)
    spec = spec_from_dict({**PAPER, "train": {**PAPER["train"], "rollout_batch_size": 2, "train_batch_size": None,
                                              "micro_rollout_batch_size": 1, "mix_steps": 1}})
    job = plan(spec, "mix", str(tmp_path / "mix.parquet"), "base", str(tmp_path / "out"))
    job.data_local = tmp_path / "mix.parquet"
    write_prompts(job, tmp_path / "prompts.jsonl", tools_tokenizer())
    rows = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text().splitlines()}
    agent, math = rows["agent-tools-1"]["prompt"], rows[records[1]["id"]]["prompt"]
    assert isinstance(agent, str) and agent.endswith("<|im_start|>assistant\n")
    assert '"name": "book_meeting_room"' in agent and agent.startswith("<|im_start|>system\n# Tools")
    assert "<tools>" not in math and records[1]["prompt"][-1]["content"] in math


def test_openrlhf_backend_keeps_the_expert_step(tmp_path, tmp_cache, train_data, openrlhf_parser, monkeypatch):
    """End to end against the stand-in OpenRLHF entry: the think gate reaches the reward hook inside OpenRLHF,
    and the step merge.expert_steps names is kept at `steps/<n>` through the rotation and the end-of-run
    cleanup, listed in the card, and found by the merge."""
    from m2rl.merge.stage import expert_checkpoint
    from m2rl.train import train
    from tests.train.conftest import OPENRLHF_CACHE

    fake = Path(__file__).resolve().parent / "fake_openrlhf"
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("M2RL_TEST_OPENRLHF_CACHE", str(OPENRLHF_CACHE))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("M2RL_REQUIRE_THINK_CLOSE", raising=False)
    spec = spec_from_dict({
        "name": "orl", "base_model": "random:tiny", "artifact_root": str(tmp_path / "artifacts"),
        "work_dir": str(tmp_path / "work"), "merge": {"expert_steps": {"math": 1}},
        "rewards": {"require_think_close": True},
        "train": {"backend": "openrlhf", "samples_per_prompt": 2, "rollout_batch_size": 1, "steps": 3,
                  "micro_rollout_batch_size": 1, "micro_train_batch_size": 1, "save_steps": 1, "gpus_per_node": 1,
                  "vllm": {"num_engines": 1}, "max_prompt_len": 2304, "max_new_tokens": 16, "keep_checkpoints": 1},
    })
    out, ckpts = tmp_path / "artifacts" / "models" / "single-math", tmp_path / "ckpts"
    result = train(spec, "math", str(train_data["math"]), "random:tiny", str(out), checkpoint_dir=str(ckpts))
    assert result.steps == 3
    # the stand-in answers half its samples right but never closes a think block: the gate reached the hook
    assert [p["reward"] for p in result.card["reward_curve"]] == [0.0, 0.0, 0.0]
    kept = ckpts / "steps" / "1"
    assert result.card["step_checkpoints"] == {"1": str(kept)}
    assert sorted(p.name for p in ckpts.iterdir()) == ["steps"]  # the rest is dropped at the end
    assert any(kept.glob("*.safetensors")) and (kept / "config.json").is_file()
    assert expert_checkpoint(str(out), 1) == str(kept) and expert_checkpoint(str(out), 3) == str(out)


def test_kept_openrlhf_steps_survive_the_hf_rotation(tmp_path):
    from m2rl.train.backends.openrlhf import keep_openrlhf_steps
    from m2rl.train.checkpoints import kept_steps, prune_openrlhf_hf

    for step in (20, 40, 60):
        hf = tmp_path / f"global_step{step}_hf"
        hf.mkdir()
        (hf / "model.safetensors").write_bytes(b"w%d" % step)
        (hf / "config.json").write_text("{}")
    assert keep_openrlhf_steps(tmp_path, (40,)) == [40]
    prune_openrlhf_hf(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["global_step60_hf", "steps"]
    assert kept_steps(tmp_path) == [40] and (tmp_path / "steps" / "40" / "model.safetensors").read_bytes() == b"w40"
    assert keep_openrlhf_steps(tmp_path, (40,)) == []  # step 40's HF copy is gone; the kept one stays

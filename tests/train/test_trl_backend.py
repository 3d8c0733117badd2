"""TRL backend: GRPO steps of a tiny random model on the CPU, rewards from the verifiers, metrics in MLflow,
a checkpoint that loads, kill-and-resume; the spec -> GRPOConfig mapping; bad input fails before launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from m2rl import tracking
from m2rl.spec import DOMAINS
from m2rl.train import TrainError, plan, train
from m2rl.train.backends.trl import DomainReward, make_grpo_config
from m2rl.train.checkpoints import PROGRESS_FILE
from tests.train.conftest import tiny_spec

REPO = Path(__file__).resolve().parents[2]


def _metric_history(run_id: str, key: str) -> dict[int, float]:
    import mlflow

    return {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run_id, key)}


def test_grpo_config_mapping_is_accepted_by_trl(tmp_path):
    spec = tiny_spec(tmp_path, samples_per_prompt=4, rollout_batch_size=6, train_batch_size=12, kl_coef=0.02,
                     clip_low=0.1, clip_high=0.3, max_new_tokens=24, temperature=0.7, top_p=0.9, steps=5,
                     save_steps=2, lr_warmup_ratio=0.1, advantage_estimator="dr_grpo", micro_train_batch_size=4)
    job = plan(spec, "math", "d.parquet", "random:tiny", str(tmp_path / "out"))
    cfg = make_grpo_config(job, tmp_path / "ckpt")
    assert cfg.num_generations == 4 and cfg.generation_batch_size == 24
    # one optimizer step = 12 samples in 3 micro-batches of 4; one generation of 24 feeds 6 micro-batches
    assert cfg.per_device_train_batch_size == 4 and cfg.gradient_accumulation_steps == 3
    assert cfg.steps_per_generation == 6
    assert cfg.max_steps == 10 and cfg.save_steps == 4  # 2 optimizer steps per GRPO step
    assert (cfg.beta, cfg.epsilon, cfg.epsilon_high) == (0.02, 0.1, 0.3)
    assert (cfg.max_completion_length, cfg.temperature, cfg.top_p) == (24, 0.7, 0.9)
    assert cfg.learning_rate == 1e-5 and cfg.lr_scheduler_type.value == "constant_with_warmup"
    assert cfg.scale_rewards == "none" and cfg.loss_type == "dr_grpo"
    assert cfg.use_cpu and cfg.report_to in ([], "none", ["none"])
    assert not getattr(cfg, "activation_checkpointing", cfg.gradient_checkpointing)


def test_micro_batch_must_divide_an_optimizer_step(tmp_path):
    from m2rl.train import TrainError, describe

    spec = tiny_spec(tmp_path, samples_per_prompt=4, rollout_batch_size=3, micro_train_batch_size=5)
    with pytest.raises(TrainError, match=r"train.micro_train_batch_size: 5 must divide .* \(12"):
        describe(spec, "math", "d.parquet", "random:tiny", str(tmp_path / "out"))


def test_domain_reward_logs_each_domain_mean():
    seen = {}

    def adapter(prompts, completions, **kw):
        return [1.0, 0.0, 1.0, None]

    rewards = DomainReward(adapter)(
        prompts=["p"] * 4, completions=["c"] * 4, domain=["math", "math", "code", "code"],
        log_metric=lambda name, value: seen.__setitem__(name, value),
    )
    assert rewards == [1.0, 0.0, 1.0, None]
    assert seen == {"domain_reward/math": 0.5, "domain_reward/code": 1.0}


def test_mix_two_grpo_steps_on_all_domains(tmp_path, tmp_cache, train_data, mlflow_store):
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # 5 prompts (1 per domain), 5 prompts x 2 samples per step: every step scores all five domains.
    spec = tiny_spec(tmp_path, kl_coef=0.01)
    out = tmp_path / "artifacts" / "models" / "mix"
    with tracking.stage_run("train", model="mix"):  # the caller opens the run (the stage glue, the CLI)
        result = train(spec, "mix", str(train_data["mix"]), "random:tiny", str(out))

    assert result.steps == 2 and result.paradigm == "mix" and result.device == "cpu"
    card = json.loads((out / "train_card.json").read_text())
    assert card["run"] == "mix" and card["domains"] == list(DOMAINS) and card["steps"] == 2
    assert card["num_devices"] == 1 and card["backend"] == "trl"
    assert card["gpu_hours"] == pytest.approx(card["wall_seconds"] / 3600, rel=1e-3)
    assert [p["step"] for p in card["reward_curve"]] == [1, 2]
    for point in card["reward_curve"]:
        assert set(point["domains"]) == set(DOMAINS)
        assert all(0.0 <= v <= 1.0 for v in point["domains"].values())
        # the overall reward is the mean over the 5 prompts x 2 samples: 2 samples per domain
        assert point["reward"] == pytest.approx(sum(point["domains"].values()) / 5, abs=1e-6)

    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.tags["m2rl.paradigm"] == "mix" and run.data.tags["m2rl.stage"] == "train"
    assert run.data.metrics["cost/gpu_hours"] == pytest.approx(card["gpu_hours"])
    for d in DOMAINS:
        hist = _metric_history(result.mlflow_run_id, f"train/{d}/reward")
        assert sorted(hist) == [1, 2]
        assert hist[1] == pytest.approx(card["reward_curve"][0]["domains"][d])
    for key in ("train/reward", "train/kl", "train/entropy", "train/response_length", "train/throughput"):
        assert sorted(_metric_history(result.mlflow_run_id, key)) == [1, 2], key

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], add_generation_prompt=True,
                                  return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert model.generate(ids, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2
    assert not (tmp_path / "artifacts" / "checkpoints" / "mix").exists()  # periodic ones dropped at the end


def test_kill_mid_run_then_rerun_resumes(tmp_path, tmp_cache, train_data, mlflow_store):
    import mlflow

    spec = tiny_spec(tmp_path, steps=4, rollout_batch_size=2, samples_per_prompt=4, max_new_tokens=32)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    out, ckpts = tmp_path / "artifacts" / "models" / "single-math", tmp_path / "ckpts"
    argv = [sys.executable, "-m", "m2rl.cli", "train", str(spec_path), "--run", "math",
            "--data", str(train_data["math"]), "--base", "random:tiny", "--out", str(out), "--checkpoints", str(ckpts)]
    log = open(tmp_path / "first.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=REPO)
    deadline = time.monotonic() + 120
    try:
        while not list(ckpts.glob(f"checkpoint-*/{PROGRESS_FILE}")):
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written at the output
    done = max(json.loads(p.read_text())["step"] for p in ckpts.glob(f"checkpoint-*/{PROGRESS_FILE}"))
    assert 1 <= done < 4

    with tracking.stage_run("train", model="single-math"):
        result = train(spec, "math", str(train_data["math"]), "random:tiny", str(out), checkpoint_dir=str(ckpts))
    assert result.resumed_from_step >= done and result.steps == 4
    card = json.loads((out / "train_card.json").read_text())
    assert card["resumed_from_step"] == result.resumed_from_step
    assert [p["step"] for p in card["reward_curve"]] == [1, 2, 3, 4]  # steps before the kill kept
    assert all(set(p["domains"]) == {"math"} for p in card["reward_curve"])
    hist = _metric_history(result.mlflow_run_id, "train/math/reward")
    assert sorted(hist) == [1, 2, 3, 4]
    assert mlflow.get_run(result.mlflow_run_id).data.tags["m2rl.resumed_from_step"] == str(result.resumed_from_step)


def test_bad_input_fails_before_launch(tmp_path, tmp_cache, train_data, mlflow_store):
    spec = tiny_spec(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(TrainError, match="run: 'chemistry' is neither a domain"):
        train(spec, "chemistry", str(train_data["math"]), "random:tiny", str(out))
    with pytest.raises(TrainError, match="data: .*missing.parquet: train records not found"):
        train(spec, "math", str(tmp_path / "missing.parquet"), "random:tiny", str(out))
    with pytest.raises(TrainError, match="record 'builtin-code-00000' has domain 'code'"):
        train(spec, "math", str(train_data["mix"]), "random:tiny", str(out))
    with pytest.raises(TrainError, match="base: .*model folder not found"):
        train(spec, "math", str(train_data["math"]), "./no/such/model", str(out))
    with pytest.raises(TrainError, match="train.advantage_estimator: the trl backend runs GRPO"):
        train(tiny_spec(tmp_path, advantage_estimator="gae"), "math", str(train_data["math"]), "random:tiny",
              str(out))
    with pytest.raises(TrainError, match="train.use_kl_loss"):
        train(tiny_spec(tmp_path, kl_coef=0.1, use_kl_loss=False), "math", str(train_data["math"]),
              "random:tiny", str(out))
    assert not out.exists()


def test_cli_missing_data_split_fails_before_launch(tmp_path, mlflow_store):
    """`m2rl train` defaults --data to <artifact_root>/data/train/<run>.parquet; without the data stage's
    output it exits 2 naming the missing split, and writes nothing."""
    from typer.testing import CliRunner

    from m2rl.cli import app

    spec = tiny_spec(tmp_path)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["train", str(spec_path), "--run", "science"])
    assert result.exit_code == 2
    missing = tmp_path / "artifacts" / "data" / "train" / "science.parquet"
    assert f"data: {missing}: train records not found" in result.output
    assert not (tmp_path / "artifacts" / "models").exists()
    bad = spec_path.read_text().replace("samples_per_prompt: 2", "samples_per_prompt: 0")
    spec_path.write_text(bad)
    result = CliRunner().invoke(app, ["train", str(spec_path), "--run", "science"])
    assert result.exit_code == 2 and "train.samples_per_prompt: must be >= 1" in result.output

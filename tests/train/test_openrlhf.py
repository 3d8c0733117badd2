"""OpenRLHF backend: the argument list parses with OpenRLHF 0.11.2's own parser; golden paper commands."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2rl import tracking
from m2rl.spec import SpecError, spec_from_dict
from m2rl.train import TrainError, describe
from m2rl.train.openrlhf_args import OpenRLHFPaths, openrlhf_args
from m2rl.train.openrlhf_parser import OpenRLHFArgsError

REPO = Path(__file__).resolve().parents[2]

# Paper-shaped settings (Qwen3-4B, OpenRLHF) for the golden command: lr 2e-6 constant, 16 samples per prompt,
# rollout batch 128; the released values (400 / 2000 steps, ...) are the preset's (test_paper_settings.py).
PAPER = {
    "name": "paper", "base_model": "s3://bucket/models/qwen3-4b-sft", "artifact_root": "s3://bucket/runs",
    "train": {
        "backend": "openrlhf", "lr": 2e-6, "lr_scheduler": "constant", "samples_per_prompt": 16,
        "rollout_batch_size": 128, "train_batch_size": 2048, "micro_train_batch_size": 4,
        "micro_rollout_batch_size": 16, "steps": 200, "mix_steps": 400, "max_prompt_len": 2048,
        "max_new_tokens": 16384, "temperature": 1.0, "clip_low": 0.2, "clip_high": 0.28, "kl_coef": 0.0,
        "save_steps": 20, "zero_stage": 3, "nodes": 1, "gpus_per_node": 8,
        "vllm": {"num_engines": 8, "tensor_parallel_size": 1, "gpu_memory_utilization": 0.6, "colocate": True},
    },
    "data": {"balance": "equal"},
}
PATHS = OpenRLHFPaths(
    pretrain="/models/base", prompt_data="/job/prompts.jsonl", output_dir="/job/hf", ckpt_path="/job/ckpt",
    reward="/opt/m2rl/verifiers/openrlhf_reward.py", tensorboard_dir="/job/tb",
)


def golden(steps: int, name: str) -> list[str]:
    return [
        "--actor.num_nodes", "1", "--actor.num_gpus_per_node", "8",
        "--vllm.num_engines", "8", "--vllm.tensor_parallel_size", "1", "--vllm.gpu_memory_utilization", "0.6",
        "--train.colocate_all", "--vllm.enable_sleep", "--ds.enable_sleep",
        "--actor.model_name_or_path", "/models/base", "--reward.remote_url", "/opt/m2rl/verifiers/openrlhf_reward.py",
        "--data.prompt_dataset", "/job/prompts.jsonl", "--data.input_key", "prompt", "--data.label_key", "label",
        "--data.max_samples", str(steps * 128), "--train.num_episodes", "1",
        "--data.max_len", "18432", "--rollout.max_new_tokens", "16384",
        "--rollout.batch_size", "128", "--rollout.n_samples_per_prompt", "16", "--rollout.micro_batch_size", "16",
        "--rollout.temperature", "1.0", "--rollout.top_p", "1.0",
        "--train.batch_size", "2048", "--train.micro_batch_size", "4", "--train.max_epochs", "1",
        "--train.seed", "42",
        "--algo.advantage.estimator", "group_norm", "--algo.kl.init_coef", "0.0", "--algo.kl.estimator", "k3",
        "--algo.kl.use_loss", "--actor.eps_clip_low_high", "0.2", "0.28",
        "--actor.adam.lr", "2e-06", "--actor.adam.weight_decay", "0.0", "--actor.lr_scheduler", "constant", "--actor.lr_warmup_ratio", "0.0",
        "--actor.min_lr_ratio", "0.0", "--actor.max_norm", "1.0",
        "--ds.zero_stage", "3", "--ds.param_dtype", "bf16", "--ds.attn_implementation", "flash_attention_2",
        "--actor.gradient_checkpointing_enable", "--ds.packing_samples",
        "--ckpt.path", "/job/ckpt", "--ckpt.save_steps", "20", "--ckpt.max_num", "2", "--ckpt.save_hf",
        "--ckpt.load_enable", "--ckpt.output_dir", "/job/hf",
        "--logger.logging_steps", "1", "--logger.tensorboard_dir", "/job/tb", "--logger.wandb.run_name", name,
    ]


@pytest.mark.parametrize(("run", "steps", "name"), [("math", 200, "single-math"), ("mix", 400, "mix")])
def test_paper_commands_are_golden_and_parse(openrlhf_parser, run, steps, name):
    spec = spec_from_dict(PAPER)
    job_steps = spec.train.mix_steps if run == "mix" else spec.train.steps
    argv = openrlhf_args(spec.train, steps=job_steps, paths=PATHS, run_name=name)
    assert argv == golden(steps, name)
    args, warnings = openrlhf_parser.parse(argv)
    assert warnings == []
    assert args.rollout.n_samples_per_prompt == 16 and args.rollout.batch_size == 128
    assert args.train.batch_size == 2048 and args.train.micro_batch_size == 4
    assert args.actor.adam.lr == 2e-6 and args.actor.lr_scheduler == "constant"
    assert args.actor.lr_warmup_ratio == 0.0
    assert args.algo.advantage.estimator == "group_norm" and args.algo.kl.init_coef == 0.0
    assert list(args.actor.eps_clip_low_high) == [0.2, 0.28]
    assert args.data.max_samples == steps * 128 and args.train.num_episodes == 1
    assert args.data.max_len == 2048 + 16384 and args.rollout.max_new_tokens == 16384
    assert args.reward.remote_url == ["/opt/m2rl/verifiers/openrlhf_reward.py"]
    assert args.ckpt.load_enable and args.ckpt.save_hf and args.ckpt.save_steps == 20
    assert args.train.colocate_all and args.vllm.enable_sleep and args.ds.enable_sleep
    assert args.ds.zero_stage == 3 and args.ds.packing_samples
    assert args.critic.model_name_or_path is None  # GRPO: no critic


def test_kl_settings_and_reward_service_parse(openrlhf_parser):
    spec = spec_from_dict({**PAPER, "train": {
        **PAPER["train"], "kl_coef": 0.001, "kl_estimator": "k2", "use_kl_loss": False, "ref_offload": True,
        "lr_scheduler": "cosine_with_min_lr", "lr_warmup_ratio": 0.05, "min_lr_ratio": 0.1, "entropy_coef": 0.0,
        "bf16": False, "packing_samples": False, "gradient_checkpointing": False, "nodes": 2,
        "vllm": {"num_engines": 4, "tensor_parallel_size": 4, "colocate": True},
        "reward_url": "http://m2rl-rewards.m2rl.svc:8000/get_reward",
    }})
    argv = openrlhf_args(spec.train, steps=10, paths=PATHS, run_name="x")
    args, warnings = openrlhf_parser.parse(argv)
    assert args.ref.num_nodes == 2 and args.ref.num_gpus_per_node == 8 and args.ref.offload
    assert args.actor.num_nodes == 2 and args.vllm.tensor_parallel_size == 4
    assert args.algo.kl.init_coef == 0.001 and args.algo.kl.estimator == "k2" and not args.algo.kl.use_loss
    assert args.actor.lr_scheduler == "cosine_with_min_lr" and args.actor.min_lr_ratio == 0.1
    assert args.actor.entropy_coef == 0.0 and args.ds.param_dtype == "fp16"
    assert not args.ds.packing_samples and not args.actor.gradient_checkpointing_enable
    assert args.reward.remote_url == ["http://m2rl-rewards.m2rl.svc:8000/get_reward"]
    assert any("Recommend setting k2 to 'k1'" in w for w in warnings)  # OpenRLHF's own advice is surfaced


def test_backend_options_extra_args_reach_the_command_and_parse(openrlhf_parser, tmp_path):
    train = {**PAPER["train"], "backend_options": {"extra_args": ["--vllm.enforce_eager", "--actor.adam.betas",
                                                                  "0.9", "0.98"]}}
    spec = spec_from_dict({**PAPER, "train": train})
    cmd = describe(spec, "math", "s3://b/data/train/math.parquet", spec.base_model, "s3://b/models/single-math")
    assert cmd[-4:] == ["--vllm.enforce_eager", "--actor.adam.betas", "0.9", "0.98"]
    args, _ = openrlhf_parser.parse(cmd[3:])
    assert args.vllm.enforce_eager and list(args.actor.adam.betas) == [0.9, 0.98]
    with pytest.raises(SpecError, match=r"train.backend_options.extra_arg: unknown parameter.*did you mean 'extra_args'"):
        spec_from_dict({**PAPER, "train": {**PAPER["train"], "backend_options": {"extra_arg": []}}})


def test_renamed_flag_fails(openrlhf_parser):
    argv = openrlhf_args(spec_from_dict(PAPER).train, steps=200, paths=PATHS, run_name="x")
    old_style = [a.replace("--rollout.n_samples_per_prompt", "--n_samples_per_prompt") for a in argv]
    with pytest.raises(OpenRLHFArgsError, match="unrecognized arguments: --n_samples_per_prompt"):
        openrlhf_parser.parse(old_style)


def test_openrlhf_own_checks_run(openrlhf_parser):
    argv = openrlhf_args(spec_from_dict(PAPER).train, steps=200, paths=PATHS, run_name="x")
    i = argv.index("--rollout.n_samples_per_prompt")
    argv[i + 1] = "1"
    with pytest.raises(OpenRLHFArgsError, match="group_norm requires n_samples_per_prompt > 1"):
        openrlhf_parser.parse(argv)
    assert "--rollout.n_samples_per_prompt" in openrlhf_parser.option_strings()


def test_dry_run_prints_the_paper_command_and_it_parses(openrlhf_parser, tmp_path, monkeypatch):
    from m2rl.cli import app

    monkeypatch.setenv("M2RL_CACHE", str(tmp_path / "cache"))
    spec = REPO / "examples" / "qwen3-4b-paper.yaml"
    if not spec.exists():
        pytest.skip("examples/qwen3-4b-paper.yaml not present")
    for run, steps in (("math", 400), ("mix", 2000)):
        # math names its data and output; mix takes the artifact layout's defaults
        where = ["--data", f"s3://m2rl-studies/runs/data/train/{run}.parquet", "--out",
                 f"s3://m2rl-studies/runs/models/single-{run}"] if run == "math" else []
        result = CliRunner().invoke(app, ["train", str(spec), "--run", run, *where, "--dry-run"])
        assert result.exit_code == 0, result.output
        cmd = shlex.split(result.output.strip().splitlines()[-1])
        assert cmd[:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
        args, _ = openrlhf_parser.parse(cmd[3:])
        assert args.data.max_samples == steps * 128 and args.rollout.n_samples_per_prompt == 16
        assert not args.actor.model_name_or_path.startswith("s3://")  # the pod trains from a local copy
        assert args.logger.wandb.run_name == ("single-math" if run == "math" else "mix")
        assert args.ckpt.path.endswith(f"/train/{args.logger.wandb.run_name}/ckpt")  # S3 checkpoints: mirrored


@pytest.mark.parametrize(("train", "field"), [
    ({"micro_train_batch_size": 3}, "train.train_batch_size"),
    ({"micro_rollout_batch_size": 4096}, "train.micro_rollout_batch_size"),
    ({"vllm": {"num_engines": 2}}, "train.vllm"),
])
def test_bad_batches_fail_before_launch(train, field, tmp_path):
    spec = spec_from_dict({**PAPER, "train": {**PAPER["train"], **train}})
    with pytest.raises(TrainError, match=field):
        describe(spec, "math", "s3://b/d.parquet", "s3://b/base", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("train", "message"), [
    ({"samples_per_prompt": 0}, "train.samples_per_prompt: must be >= 1"),
    ({"samples_per_prompt": 1}, "train: samples_per_prompt: group_norm (GRPO)"),
    ({"rollout_batch_size": 3, "samples_per_prompt": 3, "train_batch_size": 2}, "train_batch_size: 2 must divide"),
    ({"advantage_estimator": "ppo"}, "advantage_estimator: 'ppo' is not one of"),
])
def test_bad_spec_values_fail_with_field(train, message):
    with pytest.raises(SpecError) as err:
        spec_from_dict({**PAPER, "train": {**PAPER["train"], **train}})
    assert message in str(err.value)


def _good_response(rec: dict) -> str:
    """A response the record's verifier accepts (math, science, agent, code); None for if."""
    v = rec["verifier"]
    if rec["domain"] in ("math", "science"):
        return f"Let me think.\nAnswer: {rec['label']}"
    if rec["domain"] == "agent":
        return "".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in v["ground_truth"])
    if rec["domain"] == "code":
        table = dict(zip(v["unit_tests"]["inputs"], v["unit_tests"]["outputs"], strict=True))
        return f"```python\nimport sys\nprint({table!r}[sys.stdin.read()], end='')\n```"
    return None


def test_prompt_file_and_reward_hook_as_openrlhf_calls_it(tmp_path, tmp_cache):
    """OpenRLHF's way: the hook file loaded by path, called one sample at a time from threads, each query
    the decoded prompt + response with special tokens kept, labels from the prompt file, records of every
    domain; the per-domain rewards come back through the averaged extra_logs."""
    from concurrent.futures import ThreadPoolExecutor

    from transformers import AutoTokenizer

    from m2rl import verifiers
    from m2rl.models import resolve_model
    from m2rl.records import render_chat, write_records
    from m2rl.spec import DOMAINS
    from m2rl.train import plan
    from m2rl.train.backends.openrlhf import reward_hook_path, write_prompts
    from m2rl.train.metrics import map_openrlhf_scalars
    from tests.train.conftest import domain_records

    records = [r for d in DOMAINS for r in domain_records(d, 2)]
    write_records(tmp_path / "mix.parquet", records)
    spec = spec_from_dict({**PAPER, "train": {**PAPER["train"], "rollout_batch_size": 4, "train_batch_size": None,
                                              "micro_rollout_batch_size": 1, "steps": 3, "mix_steps": 4}})
    job = plan(spec, "mix", str(tmp_path / "mix.parquet"), "base", str(tmp_path / "out"))
    job.data_local = tmp_path / "mix.parquet"
    tok = AutoTokenizer.from_pretrained(resolve_model("random:tiny"))
    n = write_prompts(job, tmp_path / "prompts.jsonl", tok)
    rows = [json.loads(line) for line in (tmp_path / "prompts.jsonl").read_text().splitlines()]
    assert n == len(rows) == 4 * 4  # mix_steps x rollout_batch_size prompts, --data.max_samples
    assert {r["datasource"] for r in rows} == set(DOMAINS)
    by_id = {r["id"]: r for r in records}
    labels = {}
    for row in rows:
        # rendered here (the chat template, with tools), as OpenRLHF then takes it without --data.apply_chat_template
        assert row["prompt"] == render_chat(tok, by_id[row["id"]]["prompt"], by_id[row["id"]].get("tools"))
        decoded = verifiers.decode_label(row["label"])  # the verifier metadata travels in the label
        assert decoded["verifier"] == by_id[row["id"]]["verifier"] and decoded["domain"] == row["datasource"]
        labels[row["id"]] = row["label"]
    assert set(labels) == set(by_id)  # 16 prompts out of 10 records: every record is in the file

    spec_ = importlib.util.spec_from_file_location("reward_func", reward_hook_path())
    hook = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(hook)
    calls = []
    for rec in records:
        prompt = tok.apply_chat_template(rec["prompt"], tokenize=False, add_generation_prompt=True)
        for response in (_good_response(rec), "I do not know."):
            if response is None:
                continue
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            ids += tok(response + tok.eos_token, add_special_tokens=False)["input_ids"]
            query = tok.decode(ids, skip_special_tokens=False)  # as OpenRLHF's SingleTurnAgentExecutor
            assert query.endswith("<|im_end|>")
            calls.append((rec, response, query, prompt))
    with ThreadPoolExecutor(max_workers=8) as pool:  # asyncio.to_thread, one sample per call
        outs = list(pool.map(lambda c: hook.reward_func([c[2]], [c[3]], [labels[c[0]["id"]]]), calls))
    sums: dict[str, list[float]] = {}
    for (rec, response, _, _), out in zip(calls, outs, strict=True):
        reward = float(out["rewards"].flatten()[0])
        assert reward == pytest.approx(verifiers.score(rec, response).value), (rec["domain"], response)
        expect = 1.0 if response == _good_response(rec) else 0.0
        if rec["domain"] != "if":
            assert reward == expect, (rec["domain"], response)
        for key, val in out["extra_logs"].items():
            sums.setdefault(key, []).append(float(val.flatten()[0]))
    # OpenRLHF averages every extra log over the step's samples; the bridge recovers per-domain means.
    means = {f"train/{k}": sum(v) / len(v) for k, v in sums.items()}
    per_domain = map_openrlhf_scalars(means, list(DOMAINS))
    for d in ("math", "science", "agent", "code"):
        assert per_domain[f"train/{d}/reward"] == pytest.approx(0.5), d  # one good, one bad per record
    assert 0.0 <= per_domain["train/if/reward"] <= 1.0


def test_openrlhf_backend_runs_bridges_metrics_and_resumes(tmp_path, tmp_cache, train_data, mlflow_store,
                                                           openrlhf_parser, monkeypatch):
    """The backend end to end against a stand-in OpenRLHF entry (tests/train/fake_openrlhf: OpenRLHF's
    real parser, then a simulated run writing TensorBoard events and checkpoints): the prompt file, the
    verifiers' reward file, the TensorBoard -> MLflow bridge with per-domain rewards, the HF output and
    the train card; a run that dies after step 1 is resumed from its checkpoint by the rerun."""
    import os

    import mlflow

    from m2rl.spec import DOMAINS
    from m2rl.train import train
    from tests.train.conftest import OPENRLHF_CACHE

    fake = Path(__file__).resolve().parent / "fake_openrlhf"
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("M2RL_TEST_OPENRLHF_CACHE", str(OPENRLHF_CACHE))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a Ray cluster is "there": no local head started
    monkeypatch.setenv("M2RL_TEST_OPENRLHF_FAIL_AFTER", "1")
    spec = spec_from_dict({
        "name": "orl", "base_model": "random:tiny", "artifact_root": str(tmp_path / "artifacts"),
        "work_dir": str(tmp_path / "work"),
        "train": {"backend": "openrlhf", "samples_per_prompt": 2, "rollout_batch_size": 5, "mix_steps": 2,
                  "micro_rollout_batch_size": 1, "micro_train_batch_size": 1, "save_steps": 1, "nodes": 1,
                  "gpus_per_node": 1, "vllm": {"num_engines": 1}, "max_prompt_len": 2304, "max_new_tokens": 16,
                  "keep_checkpoints": 1},
    })
    out, ckpts = tmp_path / "artifacts" / "models" / "mix", tmp_path / "ckpts"
    with pytest.raises(RuntimeError, match="openrlhf exited with 1"):
        train(spec, "mix", str(train_data["mix"]), "random:tiny", str(out), checkpoint_dir=str(ckpts))
    assert not out.exists() and (ckpts / "_actor" / "latest").read_text() == "global_step1"
    assert (ckpts / "global_step1_hf").is_dir() and json.loads((ckpts / "m2rl_progress.json").read_text())["step"] == 1

    monkeypatch.setenv("M2RL_TEST_OPENRLHF_FAIL_AFTER", "0")
    with tracking.stage_run("train", model="mix"):  # the caller opens the run (the stage glue, the CLI)
        result = train(spec, "mix", str(train_data["mix"]), "random:tiny", str(out), checkpoint_dir=str(ckpts))
    assert result.resumed_from_step == 1 and result.steps == 2 and result.device == "gpu"
    assert result.num_devices == 1 and result.gpu_hours == pytest.approx(result.wall_seconds / 3600)
    card = json.loads((out / "train_card.json").read_text())
    assert card["backend"] == "openrlhf" and card["steps"] == 2 and card["resumed_from_step"] == 1
    assert card["command"][:2] == ["-m", "openrlhf.cli.train_ppo_ray"]
    assert any(out.glob("*.safetensors")) and (out / "config.json").is_file()
    assert not ckpts.exists()  # the periodic checkpoints are dropped once the run is complete
    # Step 1's events (before the failure, same scratch) are bridged again, as the TRL backend re-logs its
    # history: the curve covers the whole run. Each step: all 5 prompts x 2 samples, one right one wrong.
    assert [p["step"] for p in card["reward_curve"]] == [1, 2]
    point = card["reward_curve"][1]
    assert point["domains"]["math"] == 0.5 and point["domains"]["science"] == 0.5
    assert set(point["domains"]) == set(DOMAINS)
    for d in DOMAINS:
        hist = {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(result.mlflow_run_id,
                                                                                   f"train/{d}/reward")}
        assert sorted(hist) == [1, 2] and hist[2] == point["domains"][d]
    metrics = mlflow.get_run(result.mlflow_run_id).data.metrics
    assert metrics["train/reward"] == pytest.approx(point["reward"])
    assert metrics["train/kl"] == pytest.approx(0.002) and metrics["train/throughput"] == pytest.approx(10 / 2.0)
    assert metrics["cost/gpu_hours"] == pytest.approx(card["gpu_hours"])


def test_openrlhf_hf_checkpoints_are_rotated(tmp_path):
    from m2rl.train.checkpoints import prune_openrlhf_hf

    for step in (20, 40, 100, 60):
        (tmp_path / f"global_step{step}_hf").mkdir()
    (tmp_path / "_actor").mkdir()
    dropped = prune_openrlhf_hf(tmp_path, keep=2)
    assert sorted(p.name for p in dropped) == ["global_step20_hf", "global_step40_hf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_actor", "global_step100_hf", "global_step60_hf"]


def test_rayjob_entrypoint_and_runtime_env(monkeypatch):
    """A KubeRay RayJob runs the same `m2rl train` entry as a GPU pod, with the tracking env passed on."""
    from m2rl.train.backends.openrlhf import rayjob_entrypoint, runtime_env

    cmd = rayjob_entrypoint("s3://b/spec.yaml", "mix", "s3://b/data/train/mix.parquet", "s3://b/base",
                            "s3://b/models/mix")
    assert shlex.split(cmd) == ["m2rl", "train", "s3://b/spec.yaml", "--run", "mix", "--data",
                                "s3://b/data/train/mix.parquet", "--base", "s3://b/base", "--out", "s3://b/models/mix"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("M2RL_PARENT_RUN_ID", "abc")
    env = runtime_env({"M2RL_REWARD_WORKERS": "16"})["env_vars"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["M2RL_PARENT_RUN_ID"] == "abc"
    assert env["M2RL_REWARD_WORKERS"] == "16"

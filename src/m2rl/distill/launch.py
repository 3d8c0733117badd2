"""The GPU backend of the distill stage: one pod runs a vLLM server per teacher and TRL's trainer.

`launch_plan(spec, data, teachers, base, out)` lays the job out on `distill.gpus` student GPUs plus
`distill.vllm.teacher_gpus` for each teacher without a URL in `distill.vllm.teacher_urls`:

- each teacher: `vllm serve <teacher> --port <p> --served-model-name teacher-<domain> ...` on its own GPUs
  (OpenAI-compatible; TRL reads its `prompt_logprobs` from `/v1/completions`);
- the student: `accelerate launch --num_processes <gpus> -m m2rl.distill.gpu_entry ...` with TRL's
  DistillationConfig flags (vLLM generation colocated, `teacher_server_urls` routing each domain to its
  server); `m2rl.distill.server.parse_trainer_args` is TRL's own parser of that list.

`run_launch` starts the servers, waits for their `/health`, runs the trainer, and stops the servers.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl import storage
from m2rl.distill.stage import DistillError
from m2rl.spec import StudySpec

TRAINER_MODULE = "m2rl.distill.gpu_entry"


@dataclass(frozen=True)
class Process:
    """One process of the pod: its argv, the GPUs it sees, and (servers) the URL it answers on."""

    name: str
    argv: list[str]
    gpus: list[int]
    url: str | None = None

    def line(self) -> str:
        env = f"CUDA_VISIBLE_DEVICES={','.join(map(str, self.gpus))} " if self.gpus else ""
        return env + shlex.join(self.argv)


@dataclass
class LaunchPlan:
    """The teacher servers to start and the trainer command."""

    servers: list[Process]
    trainer: Process
    teacher_urls: dict[str, str]
    num_gpus: int
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [*(s.line() for s in self.servers), self.trainer.line()]


def teacher_server_argv(spec: StudySpec, domain: str, model: str, port: int) -> list[str]:
    """`vllm serve` of one teacher: scores sequences (prompt log-probs), temperature applied to them."""
    t, v = spec.distill, spec.distill.vllm
    return ["vllm", "serve", model, "--port", str(port), "--served-model-name", f"teacher-{domain}",
            "--tensor-parallel-size", str(v.teacher_gpus), "--gpu-memory-utilization", str(v.teacher_gpu_memory_utilization),
            "--max-model-len", str(t.max_prompt_len + t.max_new_tokens), "--max-logprobs", "1",
            "--logprobs-mode", "processed_logprobs", "--dtype", "bfloat16" if t.bf16 else "float32"]


def trainer_argv(spec: StudySpec, data: str, base: str, out: str, teacher_urls: dict[str, str],
                 output_dir: str) -> list[str]:
    """The arguments of `m2rl.distill.gpu_entry` (TRL's config flags, the routing, the entry's own)."""
    from m2rl.distill.stage import config_kwargs

    t = spec.distill
    kwargs = config_kwargs(spec, output_dir, world=t.gpus, cpu=False)
    kwargs.pop("use_cpu")
    from trl import DistillationConfig

    if "activation_checkpointing" in DistillationConfig.__dataclass_fields__:
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    kwargs.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=t.vllm.gpu_memory_utilization,
                  vllm_tensor_parallel_size=t.vllm.tensor_parallel_size, vllm_enable_sleep_mode=True,
                  vllm_max_model_length=t.max_prompt_len + t.max_new_tokens, loss_top_k=1, loss_add_tail=True,
                  teacher_server_urls=json.dumps(teacher_urls))
    argv = ["--records", data, "--student", base, "--out", out, "--spec_json", spec.model_dump_json()]
    for k, v in kwargs.items():
        argv += [f"--{k}", str(v).lower() if isinstance(v, bool) else str(v)]
    return argv


def launch_plan(spec: StudySpec, data: str, teachers: dict[str, str], base: str, out: str,
                output_dir: str | None = None) -> LaunchPlan:
    t, v = spec.distill, spec.distill.vllm
    student_gpus = list(range(t.gpus))
    servers, urls, next_gpu, port = [], {}, t.gpus, v.teacher_port
    for domain in spec.domains:
        if domain in v.teacher_urls:
            urls[domain] = v.teacher_urls[domain]
            continue
        gpus = list(range(next_gpu, next_gpu + v.teacher_gpus))
        url = f"http://127.0.0.1:{port}"
        servers.append(Process(f"teacher-{domain}", teacher_server_argv(spec, domain, teachers[domain], port), gpus, url))
        urls[domain] = url
        next_gpu, port = next_gpu + v.teacher_gpus, port + 1
    pod = spec.kubernetes.gpu_step.gpus
    if pod and next_gpu > pod:
        raise DistillError(f"distill.gpus: {t.gpus} student GPUs and {len(servers)} teacher servers of "
                           f"{v.teacher_gpus} (distill.vllm.teacher_gpus) need {next_gpu} GPUs, but a GPU pod has {pod} "
                           "(kubernetes.gpu_step.gpus); lower them or give distill.vllm.teacher_urls")
    out_dir = output_dir or str(Path(spec.work_dir) / "distill" / "checkpoints")
    argv = ["accelerate", "launch", "--num_processes", str(t.gpus), "-m", TRAINER_MODULE,
            *trainer_argv(spec, data, base, out, urls, out_dir)]
    return LaunchPlan(servers, Process("trainer", argv, student_gpus), urls, next_gpu)


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"teacher server for {url} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    raise TimeoutError(f"teacher server {url} not healthy after {timeout:.0f}s (distill.vllm.server_timeout)")


def _env(gpus: list[int], run_id: str | None) -> dict[str, str]:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(map(str, gpus)))
    if run_id:
        env["MLFLOW_RUN_ID"] = run_id
    return env


def run_launch(spec: StudySpec, data: str, teachers: dict[str, str], base: str, out_dir: Path, ckpt: str,
               work: Path, run_id: str | None) -> dict[str, Any]:
    """Run the plan in this pod; returns the card's backend fields (the trainer writes `out_dir`)."""
    from m2rl.distill.stage import _resolve

    local = {d: str(_resolve(ref, f"distill.teachers.{d}", None)) for d, ref in teachers.items()
             if d not in spec.distill.vllm.teacher_urls}  # vLLM serves local folders
    student = str(_resolve(base, "base", None))
    if storage.is_s3(ckpt):  # TRL writes its checkpoints locally; a rerun in the same pod (volume) resumes
        ckpt = str(work / "checkpoints")
    plan = launch_plan(spec, data, local, student, str(out_dir), output_dir=str(ckpt))
    procs: list[subprocess.Popen] = []
    try:
        for s in plan.servers:
            log = open(work / f"{s.name}.log", "ab")  # noqa: SIM115 (closed with the process)
            procs.append(subprocess.Popen(s.argv, env=_env(s.gpus, None), stdout=log, stderr=subprocess.STDOUT))
        for s, p in zip(plan.servers, procs, strict=True):
            wait_healthy(s.url, spec.distill.vllm.server_timeout, p)
        for domain, url in plan.teacher_urls.items():
            if domain in spec.distill.vllm.teacher_urls:
                wait_healthy(url, spec.distill.vllm.server_timeout)
        rc = subprocess.run(plan.trainer.argv, env=_env(plan.trainer.gpus, run_id), stdout=sys.stderr).returncode
        if rc != 0:
            raise RuntimeError(f"the distillation trainer exited with code {rc} (command: {plan.trainer.line()[:200]} ...)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    summary = json.loads((out_dir / "distill_summary.json").read_text())
    return {**summary, "device": "gpu", "num_devices": plan.num_gpus, "teacher_urls": plan.teacher_urls}

"""Backend `openrlhf`: OpenRLHF's Ray PPO entry running GRPO on GPU pods (the cluster default).

The stage writes the job's prompts as OpenRLHF JSONL (the prompt rendered by the base's chat template with
the record's tools, `m2rl.records.render_chat`, since OpenRLHF's `--data.apply_chat_template` passes no
`tools=`; the verifier label JSON; the domain as `datasource`), builds the argument list from the spec
(`m2rl.train.openrlhf_args`), and runs
`python -m openrlhf.cli.train_ppo_ray`, a Ray driver, two ways:

- one GPU pod (no `RAY_ADDRESS`): a local Ray head is started for the run (`ray start --head` on
  127.0.0.1, the pod's GPUs, the dashboard for job submission), the command is submitted to it as a Ray
  job through the Jobs API that `ray job submit` calls (`JobSubmissionClient.submit_job`, the entrypoint one
  shell-quoted string run from the stage's working directory, the reward env in its runtime env), its log
  is followed into the stage's stdout and `openrlhf.log`, and the head is stopped after it. Any end but
  SUCCEEDED (the driver failed or was killed: FAILED; `ray job stop`: STOPPED) fails the stage; an
  interrupted stage stops the job first. Submitting rather than running the driver as a plain child
  gives the run what a RayJob's driver has: Ray's job supervisor owns the driver (kills its process
  group with it), its log and status stay queryable in the pod (`ray job logs/status/stop`), and it is
  the same Jobs API path KubeRay's submitter uses;
- inside a Ray cluster (`RAY_ADDRESS` set: a KubeRay RayJob, whose entrypoint is
  `m2rl train --spec-env M2RL_SPEC_YAML ...`, `m2rl.k8s.train_command`, run by Ray's job supervisor): this
  stage is already the job's driver process, so OpenRLHF runs as its child and joins that cluster.

While it trains, the stage follows OpenRLHF's TensorBoard event files into MLflow (`tb_bridge`) and
mirrors its periodic checkpoints (`--ckpt.path`, DeepSpeed states + HF weights) to the checkpoint URI;
a rerun restores them and OpenRLHF resumes (`--ckpt.load_enable`). Rewards: M2RL's verifiers through
their OpenRLHF reward file (`m2rl/verifiers/openrlhf_reward.py`, `reward_func(queries, prompts, labels)`,
loaded by path; it also reports each domain's reward in `extra_logs`), or the reward service when
`train.reward_url` is set. `rewards.require_think_close` reaches the hook as `M2RL_REQUIRE_THINK_CLOSE` (set
for OpenRLHF and the Ray head this backend starts; in a RayJob the hook reads the spec the job carries), and a
reward service is asked (`GET /health`) to score the same way before the run starts. When the job's records
include environment records (multi-turn episodes, `m2rl.envs`), the run takes M2RL's agent file instead
(`--train.agent_func_path m2rl/train/openrlhf_agent.py`, OpenRLHF's `MultiTurnAgentExecutor`): it plays
each environment record's episode and scores every single-turn record through the same reward hook; the
spec's `envs:` reach it as `M2RL_ENV_PARAMS`, and the prompts are rendered by a template that renders tool
calls (`m2rl.models.ensure_tool_calling`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from m2rl import storage
from m2rl.registry import TRAIN_BACKENDS, StrictModel
from m2rl.train import checkpoints
from m2rl.train.job import BackendRun, TrainError, TrainJob
from m2rl.train.metrics import MetricSink, map_openrlhf_scalars
from m2rl.train.openrlhf_args import OpenRLHFPaths, check_openrlhf, openrlhf_command, world_size
from m2rl.train.registry import register_backend
from m2rl.train.tb_bridge import TensorBoardBridge

MIRROR_SECONDS = 60.0


def reward_hook_path() -> str:
    """Path of the reward file OpenRLHF loads (`--reward.remote_url <file>.py`): the verifiers' hook."""
    import m2rl.verifiers.openrlhf_reward as hook

    return str(Path(hook.__file__).resolve())


def agent_file_path() -> str:
    """Path of the agent file OpenRLHF loads (`--train.agent_func_path <file>.py`) for environment records."""
    import m2rl.train as train_pkg

    return str(Path(train_pkg.__file__).resolve().parent / "openrlhf_agent.py")


def has_env_records(data: str | Path | None) -> bool:
    """Whether a records file (present on local disk) holds environment records (`verifier.type == "env"`): only
    its `verifier` column is read, and a block is decoded only when its text can be one; cached per file version."""
    if not data or not Path(data).exists():
        return False
    stat = Path(data).stat()
    return _has_env_records(str(data), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _has_env_records(path: str, mtime_ns: int, size: int) -> bool:
    import pyarrow.parquet as pq

    from m2rl.envs import is_env_record

    for batch in pq.ParquetFile(path).iter_batches(columns=["verifier"], batch_size=8192):
        if any('"env"' in v and is_env_record(json.loads(v)) for v in batch.column(0).to_pylist() if v):
            return True
    return False


def planned_base(base: str) -> str:
    """Where the base model will be on local disk: an s3:// base is fetched to the cache (storage.fetch_dir)."""
    if storage.is_s3(base):
        import hashlib

        return str(storage.cache_dir() / "s3" / hashlib.sha256(base.encode()).hexdigest()[:16])
    return base


def job_paths(job: TrainJob) -> OpenRLHFPaths:
    """Where the job's files live inside the pod (under its scratch folder)."""
    remote_ckpt = storage.is_s3(job.checkpoint_dir)
    return OpenRLHFPaths(
        pretrain=str(job.base_local) if job.base_local else planned_base(job.base),
        prompt_data=str(job.scratch / "prompts.jsonl"),
        output_dir=str(job.scratch / "hf"),
        ckpt_path=str(job.scratch / "ckpt") if remote_ckpt else str(job.checkpoint_dir),
        reward=reward_hook_path(),
        tensorboard_dir=str(job.scratch / "tensorboard"),
        agent=agent_file_path() if has_env_records(job.data_local) else None,
    )


def write_prompts(job: TrainJob, path: str | Path, tokenizer: Any) -> int:
    """The job's prompt file: exactly steps x rollout_batch_size prompts, the records reshuffled every pass,
    each prompt rendered by `tokenizer`'s chat template with the record's tools."""
    from m2rl.envs import is_env_record
    from m2rl.models import ensure_tool_calling
    from m2rl.records import read_records, render_chat
    from m2rl.verifiers import encode_label

    records = read_records(job.data_local)
    if any(is_env_record(rec) for rec in records):  # episodes: the template renders tool calls and results
        ensure_tool_calling(tokenizer)
    rendered = [render_chat(tokenizer, rec["prompt"], rec.get("tools")) for rec in records]
    need = job.steps * job.train.rollout_batch_size
    rng = random.Random(job.train.seed)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    written, epoch = 0, 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < need:
            order = list(range(len(records)))
            rng.shuffle(order)
            for i in order[: need - written]:
                rec = records[i]
                f.write(json.dumps({"prompt": rendered[i], "label": encode_label(rec), "datasource": rec["domain"],
                                    "id": rec["id"], "epoch": epoch}, ensure_ascii=False) + "\n")
                written += 1
            epoch += 1
    os.replace(tmp, path)
    return written


def latest_step(ckpt_path: str | Path) -> int:
    """The global step of OpenRLHF's latest DeepSpeed checkpoint (`_actor/latest` names `global_step<N>`)."""
    latest = Path(ckpt_path) / "_actor" / "latest"
    if not latest.is_file():
        return 0
    tag = latest.read_text().strip()
    digits = "".join(ch for ch in tag if ch.isdigit())
    return int(digits) if tag.startswith("global_step") and digits else 0


def keep_openrlhf_steps(ckpt_path: str | Path, steps: tuple[int, ...]) -> list[int]:
    """Copy the `global_step<N>_hf` weights of each of `steps` that OpenRLHF has saved to `steps/<N>`."""
    done = []
    for n, folder in checkpoints.openrlhf_hf_checkpoints(ckpt_path):
        if n in steps:
            checkpoints.snapshot_step(folder, ckpt_path, n)
            done.append(n)
    return done


def runtime_env(extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The Ray runtime environment of the RayJob (the GPU image already holds OpenRLHF and M2RL)."""
    env = {
        "TOKENIZERS_PARALLELISM": "true",
        "NCCL_DEBUG": "WARN",
        "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
    }
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "M2RL_PARENT_RUN_ID", "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3", "M2RL_REWARD_WORKERS", "M2RL_REWARD_TIMEOUT"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    env.update(extra_env or {})
    return {"env_vars": env}


def reward_env(job: TrainJob) -> dict[str, str]:
    """Environment of OpenRLHF and its Ray workers that the reward hook reads (`m2rl/verifiers/openrlhf_reward.py`)."""
    from m2rl.envs import ENV_PARAMS_VAR
    from m2rl.verifiers.openrlhf_reward import THINK_ENV

    env = {THINK_ENV: "1" if job.spec.rewards.require_think_close else "0"}
    if job.spec.envs:  # the environments' params, for the agent file and the `env` verifier in workers
        env[ENV_PARAMS_VAR] = json.dumps(job.spec.envs, sort_keys=True)
    return env


def check_reward_service(url: str, require_think_close: bool, timeout: float = 30.0) -> None:
    """The reward service at `url` answers /health and scores with the spec's `rewards.require_think_close`."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    health = urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=timeout) as resp:  # noqa: S310 - the spec's own service URL
            info = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TrainError(f"train.reward_url: {health} did not answer: {exc}") from None
    served = info.get("require_think_close") if isinstance(info, dict) else None
    if served is not require_think_close:
        raise TrainError(
            f"train.reward_url: the reward service at {url} scores with require_think_close={served}, but "
            f"rewards.require_think_close is {require_think_close}; start it with "
            f"`m2rl serve-rewards` and M2RL_REQUIRE_THINK_CLOSE={int(require_think_close)}"
        )


def rayjob_entrypoint(spec_uri: str, run: str, data: str, base: str, out: str) -> str:
    """`m2rl train SPEC --run --data --base --out` as one shell string. `m2rl.k8s.build_rayjob` does not use it:
    its entrypoint is `m2rl.k8s.train_command` (the spec read from the job's env, `--spec-env`)."""
    return shlex.join(["m2rl", "train", spec_uri, "--run", run, "--data", data, "--base", base, "--out", out])


RAY_HOST = "127.0.0.1"  # the one-pod head serves this pod only
RAY_GCS_PORT = 6379
RAY_DASHBOARD_PORT = 8265
JOB_POLL_SECONDS = 1.0


def ray_cli() -> str:
    """The `ray` command of this interpreter's environment (the GPU image's venv), else the one on PATH."""
    local = Path(sys.executable).with_name("ray")
    return str(local) if local.is_file() else "ray"


def ray_start_head(num_gpus: int, env: dict[str, str]) -> None:
    """Start the pod's own Ray head (GCS, raylet, dashboard with the Jobs API) on 127.0.0.1."""
    cmd = [ray_cli(), "start", "--head", f"--node-ip-address={RAY_HOST}", f"--port={RAY_GCS_PORT}",
           "--include-dashboard=true", f"--dashboard-host={RAY_HOST}", f"--dashboard-port={RAY_DASHBOARD_PORT}",
           f"--num-gpus={num_gpus}", "--disable-usage-stats"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise TrainError(f"train: `ray start --head` failed with exit code {done.returncode}: "
                         + "\n".join((done.stdout + done.stderr).splitlines()[-20:]))


def run_and_follow(argv: list[str], log_path: Path, env: dict[str, str]) -> int:
    """Run `argv` as a child (this process is already a Ray driver's parent), its output to stdout and the log."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            log.write(line)
        return proc.wait()


def submit_and_follow(argv: list[str], log_path: Path, name: str, extra_env: dict[str, str]) -> tuple[str, str]:
    """Submit `argv` as a Ray job to the local head, follow its log into stdout and `log_path` until it ends;
    returns its final status (SUCCEEDED, FAILED, STOPPED) and Ray's message. Interrupted (SIGINT, an error),
    it stops the job before it returns."""
    import asyncio
    import uuid

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(f"http://{RAY_HOST}:{RAY_DASHBOARD_PORT}")
    entrypoint = f"cd {shlex.quote(os.getcwd())} && exec {shlex.join(argv)}"
    job_id = client.submit_job(entrypoint=entrypoint, submission_id=f"m2rl-{name}-{uuid.uuid4().hex[:8]}",
                               runtime_env=runtime_env(extra_env))
    finished = False

    async def follow() -> None:
        with open(log_path, "a", encoding="utf-8") as log:
            async for chunk in client.tail_job_logs(job_id):
                sys.stdout.write(chunk)
                sys.stdout.flush()
                log.write(chunk)

    try:
        asyncio.run(follow())
        info = client.get_job_info(job_id)
        while not info.status.is_terminal():  # the log stream can close a moment before the status is final
            time.sleep(JOB_POLL_SECONDS)
            info = client.get_job_info(job_id)
        finished = True
        status = info.status.value if isinstance(info.status, JobStatus) else str(info.status)
        lines = (info.message or "").strip().splitlines()
        return status, lines[0] if lines else ""
    finally:
        if not finished:
            with contextlib.suppress(RuntimeError, OSError):  # the error that got us here says more
                client.stop_job(job_id)


class OpenRLHFOptions(StrictModel):
    """Options of the openrlhf backend (`train.backend_options`)."""

    extra_args: list[str] = Field(
        default_factory=list,
        description="Arguments appended verbatim to the train_ppo_ray command (OpenRLHF 0.11.2 flag names).",
    )


@register_backend("openrlhf", params=OpenRLHFOptions)
class OpenRLHFBackend:
    """GRPO with OpenRLHF on GPUs (see the module doc)."""

    name = "openrlhf"
    device = "gpu"

    @staticmethod
    def command(job: TrainJob, python: str) -> list[str]:
        """The train_ppo_ray command of the job, backend options included."""
        opts = TRAIN_BACKENDS.parse_params("openrlhf", job.train.backend_options, "train.backend_options")
        return openrlhf_command(job.train, steps=job.steps, paths=job_paths(job), run_name=job.name,
                                python=python, extra_args=opts.extra_args)

    def num_devices(self, job: TrainJob) -> int:
        return world_size(job.train)

    def check(self, job: TrainJob) -> None:
        check_openrlhf(job.train)

    def describe(self, job: TrainJob) -> list[str]:
        return self.command(job, "python")

    def run(self, job: TrainJob, out_dir: Path, sink: MetricSink) -> BackendRun:
        import importlib.util

        if importlib.util.find_spec("openrlhf") is None:
            raise TrainError(
                "train.backend: openrlhf is not installed in this environment; it runs in the GPU image "
                "(pip install 'm2rl[gpu]'), or use backend: trl on the CPU"
            )
        if job.train.reward_url:  # before anything is fetched or started
            check_reward_service(job.train.reward_url, job.spec.rewards.require_think_close)
        paths = job_paths(job)
        remote = storage.is_s3(job.checkpoint_dir)
        Path(paths.ckpt_path).mkdir(parents=True, exist_ok=True)
        if remote:
            checkpoints.restore_from(job.checkpoint_dir, paths.ckpt_path)
        resumed_from = latest_step(paths.ckpt_path)
        progress = checkpoints.read_progress(paths.ckpt_path) or {}
        prior_wall = float(progress.get("wall_seconds", 0.0)) if resumed_from else 0.0
        from transformers import AutoTokenizer

        write_prompts(job, paths.prompt_data, AutoTokenizer.from_pretrained(paths.pretrain))
        env = {**os.environ, **reward_env(job)}
        shutil.rmtree(paths.output_dir, ignore_errors=True)
        argv = self.command(job, sys.executable)

        stop = threading.Event()
        bridge = TensorBoardBridge(
            paths.tensorboard_dir,
            lambda step, scalars: sink.log_step(step, map_openrlhf_scalars(scalars, job.domains)),
        )
        bridge_thread = bridge.follow(stop, interval=5.0)
        started = time.monotonic()
        mirror_thread = threading.Thread(
            target=self._checkpoint_loop,
            args=(stop, paths.ckpt_path, job.checkpoint_dir if remote else None, started, prior_wall,
                  job.train.keep_checkpoints, job.keep_steps),
            name="m2rl-ckpt-mirror", daemon=True,
        )
        mirror_thread.start()
        own_ray = not os.environ.get("RAY_ADDRESS")
        log_path = job.scratch / "openrlhf.log"
        failure = None
        try:
            if own_ray:
                ray_start_head(job.train.gpus_per_node, env)
                status, message = submit_and_follow(argv, log_path, job.name, reward_env(job))
                if status != "SUCCEEDED":
                    failure = f"openrlhf (Ray job on the local head) ended {status}: {message}"
            else:
                rc = run_and_follow(argv, log_path, env)
                if rc != 0:
                    failure = f"openrlhf exited with {rc}"
        finally:
            stop.set()
            bridge_thread.join(timeout=60)
            mirror_thread.join(timeout=600)
            if own_ray:
                self._ray("stop")
        if failure:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{failure}; last lines of {log_path}:\n" + "\n".join(tail))
        hf = Path(paths.output_dir)
        if not any(hf.glob("*.safetensors")):
            raise RuntimeError(f"openrlhf finished but wrote no *.safetensors into {hf}")
        for item in hf.iterdir():
            if item.is_file():
                shutil.copy2(item, out_dir / item.name)
        return BackendRun(
            steps=max(bridge.steps_seen, job.steps), reward_curve=sink.reward_curve(),
            resumed_from_step=resumed_from, prior_wall_seconds=prior_wall,
            extra={"command": argv[1:], "ray": "local head" if own_ray else os.environ.get("RAY_ADDRESS", "")},
        )

    @staticmethod
    def _ray(*args: str, env: dict[str, str] | None = None) -> None:
        subprocess.run([ray_cli(), *args], check=True, env=env)

    @staticmethod
    def _checkpoint_loop(
        stop: threading.Event, local: str, uri: str | None, started: float, prior_wall: float, keep: int,
        keep_steps: tuple[int, ...] = (),
    ) -> None:
        """At each new OpenRLHF checkpoint: copy the Hugging Face weights of the `keep_steps` saved so far to
        `steps/<step>`, record the wall time (for the cost of a resumed run), keep the latest `keep` Hugging
        Face copies, and mirror the checkpoints to `uri` (S3) when given; until the run ends."""
        seen = latest_step(local)
        while True:
            finished = stop.wait(MIRROR_SECONDS)
            step = latest_step(local)
            if step > seen:
                keep_openrlhf_steps(local, keep_steps)
                checkpoints.prune_openrlhf_hf(local, keep)
                checkpoints.write_progress(local, step, prior_wall + time.monotonic() - started)
                if uri is not None:
                    checkpoints.mirror_to(local, uri)
                seen = step
            if finished:
                return

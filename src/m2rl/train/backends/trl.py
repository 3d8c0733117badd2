"""Backend `trl`: TRL's GRPOTrainer on the CPU, the embedded default.

Spec fields map onto TRL's (samples_per_prompt -> num_generations, kl_coef -> beta, clip_low/high ->
epsilon/epsilon_high, max_new_tokens -> max_completion_length, ...). One GRPO step is one rollout of
`rollout_batch_size` prompts x `samples_per_prompt` completions, trained in `(rollout x samples) /
train_batch_size` optimizer steps, the way OpenRLHF counts its global steps. Rewards come from the
verifiers' TRL adapter (with the spec's `rewards.require_think_close`), wrapped to report each domain's mean
reward of the batch. Prompts are conversational, rendered by TRL with the base's chat template; when a
record carries tool schemas (`tools`), which TRL 1.16 cannot pass per row (its `tools=` are callables it
runs), every prompt of the job is rendered here instead (`m2rl.records.render_chat`, the same rendering as
evaluation and the openrlhf backend) and TRL tokenizes the text. Environment records (multi-turn episodes,
`m2rl.envs`) run through TRL's `environment_factory` (`m2rl.train.trl_envs`): every row names its environment
(single-turn rows a tool-less one), TRL runs the model's tool calls in it for up to the environments'
`max_turns`, prompts stay conversational and the tokenizer gets a template that renders and parses tool calls
(`m2rl.models.ensure_tool_calling`); an environment row's reward is its episode's outcome, a single-turn row's
its verifier's, in the same reward column (a single-turn record with its own tool schemas cannot join such a
run: TRL offers tools per environment, not per row). Metrics reach MLflow
through a callback (TRL's own reporting is off); checkpoints are TRL's `checkpoint-<n>` folders, marked
complete by `m2rl_progress.json`, and a rerun resumes from the latest.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from m2rl import progress as progress_events
from m2rl import storage
from m2rl.models import ensure_tool_calling
from m2rl.train import checkpoints, trl_cpu, trl_envs, trl_vllm
from m2rl.train.job import BackendRun, TrainError, TrainJob
from m2rl.train.metrics import TRL_DOMAIN_PREFIX, TRL_ENV_PREFIX, MetricSink, map_trl_logs
from m2rl.train.registry import TRAIN_BACKENDS, register_backend
from m2rl.verifiers import trl_reward

# HF scheduler names (transformers.SchedulerType) the trl backend accepts for `train.lr_scheduler`.
HF_SCHEDULERS = (
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
    "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay",
)
REWARD_NAME = "verifier"


def optimizer_steps_per_grpo_step(job: TrainJob) -> int:
    t = job.train
    rollout = t.rollout_batch_size * t.samples_per_prompt
    return rollout // (t.train_batch_size or rollout)


def samples_per_optimizer_step(job: TrainJob) -> int:
    t = job.train
    return t.rollout_batch_size * t.samples_per_prompt // optimizer_steps_per_grpo_step(job)


def micro_batch(job: TrainJob) -> int:
    """Samples per forward/backward pass: `train.micro_train_batch_size`, at most one optimizer step's batch."""
    return min(job.train.micro_train_batch_size, samples_per_optimizer_step(job))


def grpo_config_kwargs(job: TrainJob, output_dir: str | Path) -> dict[str, Any]:
    """GRPOConfig arguments (TRL 1.16 names) for the job's spec; plain values, no TRL import.

    One generation of `rollout_batch_size x samples_per_prompt` feeds `optimizer_steps_per_grpo_step`
    optimizer steps, each accumulated over micro-batches of `micro_batch` samples (TRL's
    per_device_train_batch_size x gradient_accumulation_steps): the memory of a pass is bounded by the micro
    batch, the update is the same."""
    t = job.train
    rollout = t.rollout_batch_size * t.samples_per_prompt
    per_step = optimizer_steps_per_grpo_step(job)
    micro = micro_batch(job)
    scheduler = t.lr_scheduler
    if scheduler == "constant" and t.lr_warmup_ratio > 0:
        scheduler = "constant_with_warmup"
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=job.steps * per_step,
        learning_rate=t.lr,
        lr_scheduler_type=scheduler,
        warmup_steps=t.lr_warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        max_grad_norm=t.max_norm,
        num_generations=t.samples_per_prompt,
        generation_batch_size=rollout,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=samples_per_optimizer_step(job) // micro,
        num_iterations=1,
        max_completion_length=t.max_new_tokens,
        temperature=t.temperature,
        top_p=t.top_p,
        beta=t.kl_coef,
        epsilon=t.clip_low,
        epsilon_high=t.clip_high,
        weight_decay=t.weight_decay,
        scale_rewards="none" if t.advantage_estimator == "dr_grpo" else "group",
        loss_type="dr_grpo" if t.advantage_estimator == "dr_grpo" else "dapo",
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=t.save_steps * per_step,
        save_total_limit=t.keep_checkpoints,
        report_to="none",
        use_cpu=True,
        bf16=t.bf16 and trl_cpu.bf16_matmuls(),  # CPU autocast where bf16 matmuls are native (trl_cpu)
        fp16=False,
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        shuffle_dataset=True,
        log_completions=False,
    )
    if t.adam_betas is not None:
        kwargs["adam_beta1"], kwargs["adam_beta2"] = t.adam_betas
    if scheduler == "cosine_with_min_lr":
        kwargs["lr_scheduler_kwargs"] = {"min_lr_rate": t.min_lr_ratio}
    kwargs.update(trl_vllm.grpo_kwargs(job, options(job)))  # the rollout engine's (none for hf)
    return kwargs


def options(job: TrainJob) -> trl_vllm.TrlOptions:
    """The job's `train.backend_options`, typed."""
    return TRAIN_BACKENDS.parse_params("trl", job.train.backend_options, "train.backend_options")


def make_grpo_config(job: TrainJob, output_dir: str | Path) -> Any:
    """TRL's GRPOConfig for the job (activation checkpointing named as the installed transformers names it)."""
    import dataclasses

    from trl import GRPOConfig

    kwargs = grpo_config_kwargs(job, output_dir)
    if "activation_checkpointing" in {f.name for f in dataclasses.fields(GRPOConfig)}:
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    return GRPOConfig(**kwargs)


class DomainReward:
    """TRL reward function: the verifiers' adapter for single-turn rows, the episode's outcome for rows played
    in an environment (TRL passes the rollouts' instances as `environments`), plus each domain's mean reward
    and the episodes' tool calls and errors via `log_metric`."""

    __name__ = REWARD_NAME

    def __init__(self, adapter: Callable[..., list[float | None]]):
        self.adapter = adapter

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        log_metric = kwargs.get("log_metric")
        envs = kwargs.get("environments") or [None] * len(completions)
        played = [getattr(e, "m2rl_env", None) for e in envs]
        single = [i for i, env in enumerate(played) if env is None]
        rewards: list[float | None] = [None] * len(completions)
        if single:
            def pick(v: Any) -> Any:
                return [v[i] for i in single] if isinstance(v, list) and len(v) == len(completions) else v

            cols = {k: pick(v) for k, v in kwargs.items() if k not in ("environments", "log_metric")}
            for i, r in zip(single, self.adapter(prompts=pick(prompts), completions=pick(completions), **cols),
                            strict=True):
                rewards[i] = r
        outcomes = [env.outcome() if env is not None else None for env in played]
        for i, out in enumerate(outcomes):
            if out is not None:
                rewards[i] = float(out.reward)
        if log_metric is not None and any(o is not None for o in outcomes):
            done = [o for o in outcomes if o is not None]
            log_metric(f"{TRL_ENV_PREFIX}tool_calls", sum(o.tool_calls for o in done) / len(done))
            log_metric(f"{TRL_ENV_PREFIX}tool_errors", sum(o.tool_errors for o in done) / len(done))
        domains = kwargs.get("domain")
        if log_metric is not None and domains is not None:
            by_domain: dict[str, list[float]] = defaultdict(list)
            for r, d in zip(rewards, domains, strict=True):
                if r is not None and not math.isnan(r):
                    by_domain[d].append(float(r))
            for d, vals in sorted(by_domain.items()):
                log_metric(f"{TRL_DOMAIN_PREFIX}{d}", sum(vals) / len(vals))
        return rewards


def _dataset_rows(job: TrainJob, tokenizer: Any, records: list[dict[str, Any]] | None = None,
                  environments: list[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Records -> TRL rows (conversational prompt + the reward columns; with environment records, each row's
    `environment`).

    Prompts over `train.max_prompt_len` tokens are dropped (TRL has no prompt truncation; a prompt cut from
    the left loses its instructions); a domain left with no prompt at all is an error, not a silent skip.
    The rows are repeated until they fill one rollout (TRL's sampler drops an incomplete batch).
    """
    from m2rl.records import iter_records, render_chat

    records = list(iter_records(job.data_local)) if records is None else records
    in_envs = bool(environments)
    if in_envs:
        own = next((rec for rec in records if rec.get("tools") and not trl_envs.is_env_record(rec)), None)
        if own is not None:
            raise TrainError(
                f"record {own['id']!r} ({job.data}): a single-turn record with its own tool schemas cannot share a "
                "trl run with environment records (TRL offers tools per environment, not per row); make it an "
                "environment record or train it in another run"
            )
    pre_render = not in_envs and any(rec.get("tools") for rec in records)
    rows, too_long = [], Counter()
    for j, rec in enumerate(records):
        # an episode's prompt as TRL renders it: with the tools its environment offers
        shown = trl_envs.offered_tools(rec, job.spec.envs) if in_envs else rec.get("tools")
        ids = render_chat(tokenizer, rec["prompt"], shown, tokenize=True)
        if len(ids) > job.train.max_prompt_len:
            too_long[rec["domain"]] += 1
            continue
        prompt = render_chat(tokenizer, rec["prompt"], rec.get("tools")) if pre_render else rec["prompt"]
        row = {
            "prompt": prompt, "label": rec["label"], "domain": rec["domain"], "id": rec["id"],
            "verifier": json.dumps(rec["verifier"], sort_keys=True, ensure_ascii=False),
        }
        if in_envs:
            row["environment"] = environments[j]
        rows.append(row)
    kept = Counter(r["domain"] for r in rows)
    for domain, n in sorted(too_long.items()):
        if not kept[domain]:
            raise TrainError(
                f"train.max_prompt_len: every {domain} prompt of {job.data} ({n}) is longer than "
                f"{job.train.max_prompt_len} tokens; raise train.max_prompt_len"
            )
    base = list(rows)
    while len(rows) < job.train.rollout_batch_size:
        rows.extend(base[: job.train.rollout_batch_size - len(rows)])
    return rows, sum(too_long.values())


@register_backend("trl", params=trl_vllm.TrlOptions)
class TrlBackend:
    """GRPO with TRL on the CPU (see the module doc)."""

    name = "trl"
    device = "cpu"

    def num_devices(self, job: TrainJob) -> int:
        return 1

    def check(self, job: TrainJob) -> None:
        t = job.train
        if t.advantage_estimator not in ("group_norm", "dr_grpo"):
            raise TrainError(
                f"train.advantage_estimator: the trl backend runs GRPO (group_norm or dr_grpo), "
                f"got {t.advantage_estimator!r}"
            )
        if t.kl_coef > 0 and not t.use_kl_loss:
            raise TrainError("train.use_kl_loss: the trl backend applies KL as a loss term only; "
                             "set use_kl_loss: true or kl_coef: 0")
        if t.kl_coef > 0 and t.kl_estimator != "k3":
            raise TrainError(f"train.kl_estimator: the trl backend's KL loss is k3, got {t.kl_estimator!r}")
        trl_vllm.check(job, options(job))
        per_optimizer_step = samples_per_optimizer_step(job)
        if per_optimizer_step % micro_batch(job):
            raise TrainError(
                f"train.micro_train_batch_size: {t.micro_train_batch_size} must divide the samples of one optimizer "
                f"step ({per_optimizer_step}: rollout_batch_size x samples_per_prompt / train_batch_size steps)"
            )
        if t.lr_scheduler not in HF_SCHEDULERS:
            raise TrainError(f"train.lr_scheduler: {t.lr_scheduler!r} is not one of {', '.join(HF_SCHEDULERS)}")
        if t.nodes > 1:
            raise TrainError(f"train.nodes: the trl backend trains in one process on one machine, got {t.nodes} "
                             "nodes; set nodes: 1 (or backend: openrlhf for a multi-node RayJob)")

    def describe(self, job: TrainJob) -> list[str]:
        kwargs = grpo_config_kwargs(job, job.scratch / "checkpoints")
        return ["trl.GRPOTrainer", f"--model={job.base}", f"--data={job.data}",
                *(f"--{k}={v}" for k, v in kwargs.items())]

    def run(self, job: TrainJob, out_dir: Path, sink: MetricSink) -> BackendRun:
        import warnings

        import torch
        import transformers
        from datasets import Dataset
        from transformers import AutoTokenizer, TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import GRPOTrainer

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
        if job.train.cpu_threads:
            torch.set_num_threads(job.train.cpu_threads)
        remote = storage.is_s3(job.checkpoint_dir)
        local_ckpt = job.scratch / "checkpoints" if remote else Path(job.checkpoint_dir)
        if remote:
            checkpoints.restore_from(job.checkpoint_dir, local_ckpt)
        local_ckpt.mkdir(parents=True, exist_ok=True)
        latest = checkpoints.latest_complete(local_ckpt)
        progress = checkpoints.read_progress(latest) if latest else None
        resumed_from = int(progress["step"]) if progress else 0
        prior_wall = float(progress["wall_seconds"]) if progress else 0.0

        adapter = functools.partial(trl_reward.reward_func,
                                    require_think_close=job.spec.rewards.require_think_close)
        tokenizer = AutoTokenizer.from_pretrained(str(job.base_local), padding_side="left", truncation_side="left")
        from m2rl.records import iter_records, render_chat

        records = list(iter_records(job.data_local))
        factories, environments = trl_envs.environment_factories(records, job.spec.envs)
        if factories:  # an agent's episodes: the template must render (and TRL parse) tool calls
            ensure_tool_calling(tokenizer)
        rows, too_long = _dataset_rows(job, tokenizer, records, environments)
        if too_long:
            print(f"train[{job.name}]: {too_long} prompts over train.max_prompt_len = {job.train.max_prompt_len} "
                  f"tokens left out", file=sys.stderr, flush=True)
        per_step = optimizer_steps_per_grpo_step(job)
        config = make_grpo_config(job, local_ckpt)
        if factories:
            os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is marked experimental
            config.max_tool_calling_iterations = trl_envs.max_tool_rounds(factories, job.spec.envs)
        started = time.monotonic()

        def grpo_step(global_step: int) -> int:
            return -(-global_step // per_step)

        class Progress(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                for entry in state.log_history:  # steps before a resume: re-log them into this run
                    if "step" in entry and "train_runtime" not in entry:
                        sink.log_step(grpo_step(entry["step"]), map_trl_logs(entry, job.domains))

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "train_runtime" not in logs:
                    step = grpo_step(state.global_step)
                    logged = sink.log_step(step, map_trl_logs(logs, job.domains))
                    if "train/reward" in logged:
                        per = " ".join(f"{d}={logged[f'train/{d}/reward']:.3f}" for d in job.domains
                                       if f"train/{d}/reward" in logged)
                        print(f"train[{job.name}] step {step}/{job.steps} reward={logged['train/reward']:.3f} "
                              f"({per}) len={logged.get('train/response_length', 0):.1f} "
                              f"{logged.get('train/step_seconds', 0):.1f}s", file=sys.stderr, flush=True)
                        progress_events.report(f"step {step}/{job.steps} reward={logged['train/reward']:.3f}",
                                               step=step, steps=job.steps, reward=logged["train/reward"])

            def on_save(self, args, state, control, **kw):
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    step = grpo_step(state.global_step)
                    if step in job.keep_steps:  # a step a merge takes: its weights stay past the rotation
                        checkpoints.snapshot_step(folder, args.output_dir, step)
                    checkpoints.write_progress(folder, step, prior_wall + time.monotonic() - started)
                if remote:
                    checkpoints.mirror_to(local_ckpt, job.checkpoint_dir)

        opts = options(job)
        if opts.rollout_engine == "vllm":
            progress_events.report("starting the vLLM rollout engine")
        with trl_vllm.colocated_engine(opts):
            trainer = GRPOTrainer(
                model=str(job.base_local),
                reward_funcs=[DomainReward(adapter)],
                args=config,
                train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer,
                callbacks=[Progress()],
                **({"environment_factory": factories} if factories else {}),
            )
        if opts.rollout_engine == "vllm":
            trl_vllm.install(trainer)
        trainer.remove_callback(PrinterCallback)
        with trl_cpu.completion_logprobs(), trl_cpu.compact_micro_batches(optimizer_steps_per_grpo_step(job) == 1):
            trainer.train(resume_from_checkpoint=str(latest) if latest else None)
        if trainer.state.global_step < config.max_steps:
            raise RuntimeError(
                f"trl stopped after {trainer.state.global_step} of {config.max_steps} optimizer steps"
            )
        extra: dict[str, Any] = {}
        if opts.rollout_engine == "vllm":  # the engine samples the trained policy: check it after a last refresh
            trainer.vllm_generation.sync_weights()
            probe = [list(render_chat(tokenizer, r["prompt"], r.get("tools"), tokenize=True)) for r in records[:4]]
            gap = trl_vllm.logprob_gap(trainer.vllm_generation.llm, trainer.model, probe)
            extra["rollout_logprob_gap"] = gap
            sink.log_step(grpo_step(trainer.state.global_step), {"train/rollout_logprob_gap": gap})
            print(f"train[{job.name}] rollout engine vs trained model: max |log-prob gap| {gap:.2e}",
                  file=sys.stderr, flush=True)
        model = trainer.model
        model.generation_config.do_sample = True
        model.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        return BackendRun(
            steps=grpo_step(trainer.state.global_step),
            reward_curve=sink.reward_curve(),
            resumed_from_step=resumed_from,
            prior_wall_seconds=prior_wall,
            extra={"prompts_over_max_len": too_long, "optimizer_steps": trainer.state.global_step, **extra},
        )

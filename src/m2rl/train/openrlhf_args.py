"""The argument list of OpenRLHF's Ray PPO entry (`python -m openrlhf.cli.train_ppo_ray`, 0.11.x) from the spec.

Flag names are OpenRLHF 0.11's dotted ones (`--rollout.n_samples_per_prompt`, `--actor.adam.lr`, ...);
tests parse the list with OpenRLHF's own parser (see `openrlhf_parser`), so a renamed flag fails a test,
not a cluster run. One GRPO step is one rollout batch; OpenRLHF has no max-steps flag, so the job's
prompt file holds exactly `steps x rollout_batch_size` prompts (`--data.max_samples`) for one episode.
"""

from __future__ import annotations

from dataclasses import dataclass

from m2rl.spec import TrainSpec
from m2rl.train.job import TrainError

OPENRLHF_PIN = "0.11.2"
ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"
INPUT_KEY, LABEL_KEY = "prompt", "label"


@dataclass(frozen=True)
class OpenRLHFPaths:
    """Where one OpenRLHF job reads and writes (paths inside the GPU pod / Ray job)."""

    pretrain: str  # base checkpoint folder (or HF id)
    prompt_data: str  # JSONL of {"prompt": <rendered prompt text>, "label": <verifier label JSON>, "datasource": <domain>}
    output_dir: str  # final Hugging Face weights (--ckpt.output_dir)
    ckpt_path: str  # periodic DeepSpeed + HF checkpoints, resumed from (--ckpt.path)
    reward: str  # the reward hook file (`reward_func(queries, prompts, labels)`); train.reward_url overrides it
    tensorboard_dir: str  # event files the MLflow bridge follows
    agent: str | None = None  # the agent file (`--train.agent_func_path`) when the data holds environment records


def world_size(t: TrainSpec) -> int:
    return t.nodes * t.gpus_per_node


def check_openrlhf(t: TrainSpec) -> None:
    """Batch and placement rules OpenRLHF asserts at launch (or that silently misbehave), checked up front."""
    gpus = world_size(t)
    rollout = t.rollout_batch_size * t.samples_per_prompt
    tbs = t.train_batch_size or rollout
    if tbs % (t.micro_train_batch_size * gpus):
        raise TrainError(
            f"train.train_batch_size: {tbs} must be divisible by micro_train_batch_size x GPUs "
            f"= {t.micro_train_batch_size} x {gpus} = {t.micro_train_batch_size * gpus}"
        )
    if rollout // t.micro_rollout_batch_size < gpus:
        raise TrainError(
            f"train.micro_rollout_batch_size: rollout_batch_size x samples_per_prompt / micro_rollout_batch_size "
            f"= {rollout} / {t.micro_rollout_batch_size} must be >= the {gpus} actor GPUs"
        )
    engines = t.vllm.num_engines * t.vllm.tensor_parallel_size
    if t.vllm.colocate and engines != gpus:
        raise TrainError(
            f"train.vllm: colocated vLLM needs num_engines x tensor_parallel_size = nodes x gpus_per_node, "
            f"got {t.vllm.num_engines} x {t.vllm.tensor_parallel_size} != {t.nodes} x {t.gpus_per_node}"
        )
    isc = t.importance_sampling
    if isc.level == "sequence" and isc.mode == "clip":
        raise TrainError(
            "train.importance_sampling: OpenRLHF clips token-level weights only (is_correction_mode clip needs "
            "is_correction_level token); use level: token, or mode: mask at the sequence level"
        )
    if t.samples_per_prompt < 2 and t.advantage_estimator in ("group_norm", "dr_grpo", "rloo", "reinforce_baseline"):
        raise TrainError(f"train.samples_per_prompt: {t.advantage_estimator} needs at least 2")


def openrlhf_args(t: TrainSpec, *, steps: int, paths: OpenRLHFPaths, run_name: str) -> list[str]:
    """The argv (after `python -m openrlhf.cli.train_ppo_ray`) for one GRPO run of `steps` steps."""
    check_openrlhf(t)
    rollout = t.rollout_batch_size * t.samples_per_prompt
    a: list[str] = []

    def flag(name: str, *values: object) -> None:
        a.append(f"--{name}")
        a.extend(str(v) for v in values)

    # Placement: actor (and reference when KL is on) on every GPU; vLLM engines colocated or beside.
    flag("actor.num_nodes", t.nodes)
    flag("actor.num_gpus_per_node", t.gpus_per_node)
    kl_on = t.kl_coef > 0
    if kl_on:
        flag("ref.num_nodes", t.nodes)
        flag("ref.num_gpus_per_node", t.gpus_per_node)
    flag("vllm.num_engines", t.vllm.num_engines)
    flag("vllm.tensor_parallel_size", t.vllm.tensor_parallel_size)
    flag("vllm.gpu_memory_utilization", t.vllm.gpu_memory_utilization)
    if t.vllm.colocate:
        flag("train.colocate_all")
        if t.vllm.enable_sleep:
            flag("vllm.enable_sleep")
            flag("ds.enable_sleep")
    # Model, reward, data.
    flag("actor.model_name_or_path", paths.pretrain)
    if paths.agent:  # every sample goes through the agent file, which routes single-turn ones to the hook
        if t.reward_url:
            raise TrainError("train.reward_url: the data holds environment records, which OpenRLHF runs through the "
                             "agent file (`--train.agent_func_path`) with the verifiers in-process; unset reward_url")
        flag("train.agent_func_path", paths.agent)
    else:
        flag("reward.remote_url", t.reward_url or paths.reward)
    # Prompts arrive rendered (`m2rl.records.render_chat`: the chat template with the record's tools), which
    # OpenRLHF's own `--data.apply_chat_template` cannot do (it passes no `tools=`): so no template flag here.
    flag("data.prompt_dataset", paths.prompt_data)
    flag("data.input_key", INPUT_KEY)
    flag("data.label_key", LABEL_KEY)
    flag("data.max_samples", steps * t.rollout_batch_size)
    flag("train.num_episodes", 1)
    flag("data.max_len", t.max_prompt_len + t.max_new_tokens)
    flag("rollout.max_new_tokens", t.max_new_tokens)
    # Rollout and batches.
    flag("rollout.batch_size", t.rollout_batch_size)
    flag("rollout.n_samples_per_prompt", t.samples_per_prompt)
    flag("rollout.micro_batch_size", t.micro_rollout_batch_size)
    flag("rollout.temperature", t.temperature)
    flag("rollout.top_p", t.top_p)
    flag("train.batch_size", t.train_batch_size or rollout)
    flag("train.micro_batch_size", t.micro_train_batch_size)
    flag("train.max_epochs", 1)
    flag("train.seed", t.seed)
    # GRPO: group advantages, clip-higher, KL as a loss (or in the reward) with its estimator.
    flag("algo.advantage.estimator", t.advantage_estimator)
    flag("algo.kl.init_coef", t.kl_coef)
    flag("algo.kl.estimator", t.kl_estimator)
    if t.use_kl_loss:
        flag("algo.kl.use_loss")
    flag("actor.eps_clip_low_high", t.clip_low, t.clip_high)
    if t.entropy_coef is not None:
        flag("actor.entropy_coef", t.entropy_coef)
    # Truncated importance sampling between the vLLM rollout policy and the actor (ratio-gated).
    isc = t.importance_sampling
    if isc.level != "off":
        flag("algo.advantage.is_correction_level", "seq" if isc.level == "sequence" else "token")
        flag("algo.advantage.is_correction_mode", isc.mode)
        flag("algo.advantage.is_correction_gating", "ratio")
        flag("algo.advantage.is_correction_threshold", isc.low, isc.high)
    # Optimizer and schedule.
    flag("actor.adam.lr", t.lr)
    flag("actor.adam.weight_decay", t.weight_decay)
    if t.adam_betas is not None:
        flag("actor.adam.betas", *t.adam_betas)
    flag("actor.lr_scheduler", t.lr_scheduler)
    flag("actor.lr_warmup_ratio", t.lr_warmup_ratio)
    flag("actor.min_lr_ratio", t.min_lr_ratio)
    flag("actor.max_norm", t.max_norm)
    # DeepSpeed.
    flag("ds.zero_stage", t.zero_stage)
    flag("ds.param_dtype", "bf16" if t.bf16 else "fp16")
    flag("ds.attn_implementation", t.attn_implementation)
    if t.gradient_checkpointing:
        flag("actor.gradient_checkpointing_enable")
    if t.packing_samples:
        flag("ds.packing_samples")
    if t.adam_offload:
        flag("ds.adam_offload")
    if kl_on and t.ref_offload:
        flag("ref.offload")
    # Checkpoints: periodic (DeepSpeed states + HF weights), resumed from, and the final HF folder.
    flag("ckpt.path", paths.ckpt_path)
    flag("ckpt.save_steps", t.save_steps)
    flag("ckpt.max_num", t.keep_checkpoints)
    flag("ckpt.save_hf")
    flag("ckpt.load_enable")
    flag("ckpt.output_dir", paths.output_dir)
    # Logging: TensorBoard events, bridged into MLflow.
    flag("logger.logging_steps", 1)
    flag("logger.tensorboard_dir", paths.tensorboard_dir)
    flag("logger.wandb.run_name", run_name)
    return a


def openrlhf_command(t: TrainSpec, *, steps: int, paths: OpenRLHFPaths, run_name: str,
                     python: str = "python", extra_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The whole command line: `python -m openrlhf.cli.train_ppo_ray <args> <extra_args>`."""
    return [python, "-m", ENTRY_MODULE, *openrlhf_args(t, steps=steps, paths=paths, run_name=run_name), *extra_args]

"""Test stand-in for `python -m openrlhf.cli.train_ppo_ray` (no GPU, no Ray, no vLLM).

It parses its argv with OpenRLHF 0.11.2's own parser (the cached wheel source, `M2RL_TEST_OPENRLHF_CACHE`),
then plays a GRPO run the way OpenRLHF's single-turn executor and trainer do: the prompt file's rows in
rollout batches, `n_samples_per_prompt` responses each (even samples answer the label, odd ones do not),
the reward file loaded by path and called one sample at a time with query = decoded prompt + response
(special tokens kept), `extra_logs` averaged over the step, scalars written with torch's SummaryWriter
under `<tensorboard_dir>/<run_name>` with OpenRLHF's tag names, DeepSpeed-style checkpoints
(`<ckpt.path>/_actor/global_step<N>` + `latest`) resumed with `--ckpt.load_enable`, and the final HF
weights (the pretrain folder's files) in `--ckpt.output_dir`. `M2RL_TEST_OPENRLHF_FAIL_AFTER=<k>` exits 1
after step k (a preempted pod); `M2RL_TEST_OPENRLHF_STEP_SECONDS=<s>` sleeps s seconds after each step.

`M2RL_TEST_OPENRLHF_RAY=<file>`: first join the Ray cluster as OpenRLHF's driver does (`ray.init()`, the
address from `RAY_ADDRESS`), check that it offers the GPUs the actor asks for (`--actor.num_nodes` x
`--actor.num_gpus_per_node`) and append one JSON line to <file>: this process's pid, `RAY_ADDRESS`, the Ray
job id and the cluster's resources.
"""

import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from transformers import AutoTokenizer

from m2rl.train.openrlhf_parser import load_parser
from m2rl.verifiers import decode_label

args, _ = load_parser(cache=os.environ["M2RL_TEST_OPENRLHF_CACHE"]).parse(sys.argv[1:])
rows = [json.loads(line) for line in Path(args.data.prompt_dataset).read_text().splitlines()]
spec = importlib.util.spec_from_file_location("reward_func", args.reward.remote_url[0])
hook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hook)
tok = AutoTokenizer.from_pretrained(args.actor.model_name_or_path)
if os.environ.get("M2RL_TEST_OPENRLHF_RAY"):
    import ray

    ray.init()
    gpus_needed = args.actor.num_nodes * args.actor.num_gpus_per_node
    resources = ray.cluster_resources()
    if resources.get("GPU", 0) < gpus_needed:
        sys.exit(f"the Ray cluster offers {resources.get('GPU', 0)} GPUs, the actor needs {gpus_needed}")
    with open(os.environ["M2RL_TEST_OPENRLHF_RAY"], "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "ray_address": os.environ.get("RAY_ADDRESS"),
                            "job_id": ray.get_runtime_context().get_job_id(), "resources": resources}) + "\n")
    ray.shutdown()
actor = Path(args.ckpt.path) / "_actor"
start = 0
if args.ckpt.load_enable and (actor / "latest").is_file():
    start = int((actor / "latest").read_text().strip()[len("global_step"):])
writer = SummaryWriter(log_dir=os.path.join(args.logger.tensorboard_dir, args.logger.wandb.run_name))
n = args.rollout.batch_size
fail_after = int(os.environ.get("M2RL_TEST_OPENRLHF_FAIL_AFTER", "0"))
for step in range(start + 1, min(args.data.max_samples, len(rows)) // n + 1):
    rewards, extra = [], {}
    for row in rows[(step - 1) * n : step * n]:
        prompt = row[args.data.input_key]  # OpenRLHF's preprocess_data: the text as is without --data.apply_chat_template
        if args.data.apply_chat_template:
            prompt = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        label = row[args.data.label_key]
        for k in range(args.rollout.n_samples_per_prompt):
            response = f"Answer: {decode_label(label)['label']}" if k % 2 == 0 else "no idea"
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            ids += tok(response + tok.eos_token, add_special_tokens=False)["input_ids"]
            out = hook.reward_func([tok.decode(ids, skip_special_tokens=False)], [prompt], [label])
            rewards.append(float(out["rewards"].flatten()[0]))
            for key, val in out["extra_logs"].items():
                extra.setdefault(key, []).append(float(val.flatten()[0]))
    status = {"reward": sum(rewards) / len(rewards), "kl": 0.001 * step, "policy_loss": 0.1, "response_length": 5.0,
              "ppo_clip_ratio": 0.0, "actor_lr": args.actor.adam.lr, "rollout/num_samples": float(len(rewards)),
              "timing/step_total": 2.0, **{k: sum(v) / len(v) for k, v in extra.items()}}
    for key, val in status.items():
        writer.add_scalar(f"train/{key}", val, step)
    writer.flush()
    if step % args.ckpt.save_steps == 0:
        (actor / f"global_step{step}").mkdir(parents=True, exist_ok=True)
        if args.ckpt.save_hf:  # the actor's HF weights at this step (here: the pretrain folder's files)
            hf = Path(args.ckpt.path) / f"global_step{step}_hf"
            hf.mkdir()
            for item in Path(args.actor.model_name_or_path).iterdir():
                if item.is_file():
                    shutil.copy2(item, hf / item.name)
        (actor / "latest").write_text(f"global_step{step}")
    if step == fail_after:
        sys.exit(1)
    time.sleep(float(os.environ.get("M2RL_TEST_OPENRLHF_STEP_SECONDS", "0")))
writer.close()
os.makedirs(args.ckpt.output_dir, exist_ok=True)
for item in Path(args.actor.model_name_or_path).iterdir():
    if item.is_file():
        shutil.copy2(item, Path(args.ckpt.output_dir) / item.name)

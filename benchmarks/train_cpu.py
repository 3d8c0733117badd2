"""Train-stage benchmark: seconds per GRPO step on the CPU (P prompts x 8 generations x 64 tokens per step).

    python benchmarks/train_cpu.py [--model smollm2-135m-instruct] [--steps 4] [--prompts 4] [--threads N]

Three contenders, each in its own process, measured in the same run:
- `plain_trl`, the peer: a plain TRL `GRPOTrainer` with the same model, prompts, GRPOConfig and the verifiers'
  TRL reward function, and nothing of M2RL around it (rollouts by `model.generate`);
- `m2rl_hf`: M2RL's `trl` backend (`m2rl.train.train`: data checks, the verifiers' reward through the
  per-domain wrapper, metrics to MLflow, periodic checkpoints, the train card), rollouts by `generate`;
- `m2rl_vllm`: the same with `train.backend_options.rollout_engine: vllm` (a colocated vLLM CPU engine,
  refreshed with the trained weights every step; eager, as the demo's; its start is in the wall column only).
A step's time is TRL's own `step_time` (generation + reward + loss + optimizer + weight refresh), the first
step excluded as warm-up; the wall column is the whole call (model and engine load, data, saving) divided by
the steps. Goal (issue 20): vllm rollouts at least 2x faster per step than the plain TRL path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATIONS, NEW_TOKENS = 8, 64


def _spec(root: Path, model: str, steps: int, threads: int | None, prompts: int, engine: str):
    from m2rl.spec import spec_from_dict

    return spec_from_dict({
        "name": "bench-train", "base_model": model, "artifact_root": str(root / "artifacts"),
        "work_dir": str(root / "work"), "paradigms": ["mix"],
        "data": {"domains": {"math": {}}},
        "train": {"backend": "trl", "backend_options": {"rollout_engine": engine,
                                                           **({"enforce_eager": True} if engine == "vllm" else {})},
                  "lr": 1e-6,
                  "samples_per_prompt": GENERATIONS, "rollout_batch_size": prompts, "micro_train_batch_size": 8,
                  "steps": steps, "max_prompt_len": 512, "max_new_tokens": NEW_TOKENS, "temperature": 1.0,
                  "save_steps": steps, "cpu_threads": threads},
    })


def _data(root: Path) -> Path:
    from m2rl.data import builtin
    from m2rl.records import write_records

    path = root / "math.parquet"
    write_records(path, builtin.generate("math", 0, 64)[:64])
    return path


def _m2rl(root: Path, model: str, steps: int, threads: int | None, prompts: int, engine: str = "hf") -> dict:
    import mlflow

    from m2rl import tracking
    from m2rl.names import run_model
    from m2rl.train import train

    spec = _spec(root, model, steps, threads, prompts, engine)
    data = _data(root)
    with tracking.command_run("train", spec, model=run_model("math")):
        t = time.perf_counter()
        res = train(spec, "math", str(data), model, str(root / "out"))
    wall = time.perf_counter() - t
    client = mlflow.MlflowClient()
    step_s = [m.value for m in sorted(client.get_metric_history(res.mlflow_run_id, "train/step_seconds"),
                                      key=lambda m: m.step)]
    lengths = [m.value for m in client.get_metric_history(res.mlflow_run_id, "train/response_length")]
    return {"step_seconds": step_s, "wall": wall, "length": statistics.mean(lengths) if lengths else 0.0}


def _plain_trl(root: Path, model: str, steps: int, threads: int | None, prompts: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from m2rl.models import resolve_model
    from m2rl.records import iter_records
    from m2rl.verifiers.trl_reward import reward_func

    if threads:
        torch.set_num_threads(threads)
    t = time.perf_counter()
    folder = resolve_model(model)
    rows = [{"prompt": r["prompt"], "label": r["label"], "verifier": json.dumps(r["verifier"]),
             "domain": r["domain"], "id": r["id"]} for r in iter_records(_data(root))]
    tok = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    cfg = GRPOConfig(
        output_dir=str(root / "plain"), max_steps=steps, learning_rate=1e-6, num_generations=GENERATIONS,
        generation_batch_size=GENERATIONS * prompts, per_device_train_batch_size=GENERATIONS * prompts,
        max_completion_length=NEW_TOKENS, temperature=1.0, beta=0.0, epsilon=0.2, epsilon_high=0.28,
        loss_type="dapo", logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, seed=42,
    )
    seen: list[dict] = []

    class Collect(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "step_time" in logs:
                seen.append(dict(logs))

    trainer = GRPOTrainer(model=str(folder), reward_funcs=[reward_func], args=cfg,
                          train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[Collect()])
    trainer.train()
    trainer.save_model(str(root / "plain-out"))
    wall = time.perf_counter() - t
    return {"step_seconds": [s["step_time"] for s in seen], "wall": wall,
            "length": statistics.mean(s["completions/mean_length"] for s in seen) if seen else 0.0}


CONTENDERS = {
    "plain_trl": _plain_trl,
    "m2rl_hf": _m2rl,
    "m2rl_vllm": lambda *a: _m2rl(*a, engine="vllm"),
}


def child(which: str, model: str, steps: int, threads: int | None, prompts: int) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix=f"m2rl-bench-{which}-") as tmp:
        res = CONTENDERS[which](Path(tmp), model, steps, threads, prompts)
    print("RESULT " + json.dumps(res), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model reference (m2rl.models)")
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per contender (the first is warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per GRPO step (default 4, the demo's)")
    ap.add_argument("--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS),
                    help="contenders to run (default all; plain_trl always runs, it is the peer)")
    ap.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.model, a.steps, a.threads, a.prompts)
        return
    from m2rl.models import resolve_model

    resolve_model(a.model)  # convert / build once, outside the timings
    results = {}
    names = ["plain_trl", *(n for n in a.only if n != "plain_trl")]
    for which in names:
        cmd = [sys.executable, __file__, "--child", which, "--model", a.model, "--steps", str(a.steps),
               "--prompts", str(a.prompts)]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{which} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        results[which] = json.loads(line[-1][len("RESULT "):])
    peer = results["plain_trl"]
    print(f"GRPO step on the CPU: {a.model}, {a.prompts} prompts x {GENERATIONS} generations x {NEW_TOKENS} "
          f"tokens, {a.steps} steps (first excluded), threads={a.threads or 'all'}")
    print(f"{'contender':<12} {'timed steps':>11} {'s/step (median)':>16} {'s/step (mean)':>14} "
          f"{'wall s/step':>12} {'mean len':>9} {'time vs peer':>13} {'speed-up':>9}")
    peer_med = statistics.median(peer["step_seconds"][1:] or peer["step_seconds"])
    for which in names:
        r = results[which]
        timed = r["step_seconds"][1:] or r["step_seconds"]
        med, mean = statistics.median(timed), statistics.mean(timed)
        print(f"{which:<12} {len(timed):>11} {med:>16.2f} {mean:>14.2f} {r['wall'] / a.steps:>12.2f} "
              f"{r['length']:>9.1f} {med / peer_med:>12.2f}x {peer_med / med:>8.2f}x")


if __name__ == "__main__":
    main()

"""Training metrics under one naming for every backend, logged live to the active MLflow run.

Names: `train/reward`, `train/<domain>/reward`, `train/kl`, `train/entropy`, `train/response_length`,
`train/clip_ratio`, `train/throughput` (samples per second), `train/loss`, `train/grad_norm`, `train/lr`,
`train/reward_std`, `train/step_seconds`, `train/env/tool_calls` and `train/env/tool_errors` (episodes in an
environment); the stage adds `cost/gpu_hours`. Backends translate their own
keys (TRL's log dict, OpenRLHF's TensorBoard tags) with the tables below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from m2rl.train.job import CurvePoint

# The per-domain reward of a batch, as the TRL reward wrapper reports it through `log_metric`.
TRL_DOMAIN_PREFIX = "domain_reward/"
# Episodes' mean tool calls and tool errors of a batch played in environments (same wrapper).
TRL_ENV_PREFIX = "env/"
ENV_METRICS = ("tool_calls", "tool_errors")

# TRL GRPOTrainer log keys -> M2RL metric names.
TRL_KEYS = {
    "reward": "train/reward",
    "reward_std": "train/reward_std",
    "kl": "train/kl",
    "entropy": "train/entropy",
    "completions/mean_length": "train/response_length",
    "completions/clipped_ratio": "train/truncated_ratio",
    "clip_ratio/region_mean": "train/clip_ratio",
    "loss": "train/loss",
    "grad_norm": "train/grad_norm",
    "learning_rate": "train/lr",
    "step_time": "train/step_seconds",
}

# OpenRLHF TensorBoard tags (`train/<status key>`, see openrlhf/utils/logging_utils.py) -> M2RL names.
OPENRLHF_TAGS = {
    "train/reward": "train/reward",
    "train/rollout/reward_std": "train/reward_std",
    "train/kl": "train/kl",
    "train/entropy_loss": "train/entropy",
    "train/response_length": "train/response_length",
    "train/rollout/truncated_rate": "train/truncated_ratio",
    "train/ppo_clip_ratio": "train/clip_ratio",
    "train/policy_loss": "train/loss",
    "train/actor_grad_norm": "train/grad_norm",
    "train/actor_lr": "train/lr",
    "train/timing/step_total": "train/step_seconds",
    "train/m2rl/timeout": "train/reward_timeout_ratio",
    "train/m2rl/error": "train/reward_error_ratio",
}
# Per-domain reward from the verifiers' reward hook `extra_logs`: OpenRLHF averages each key over all samples,
# so the hook reports `m2rl/<domain>/reward_sum` (reward if the sample is of that domain, else 0) and
# `m2rl/<domain>/count` (1 or 0); their ratio is the domain's mean reward.
OPENRLHF_DOMAIN_REWARD = "train/m2rl/{domain}/reward_sum"
OPENRLHF_DOMAIN_COUNT = "train/m2rl/{domain}/count"


def domain_metric(domain: str) -> str:
    return f"train/{domain}/reward"


def _finite(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class MetricSink:
    """Receives one step's metrics (already in M2RL names): logs them to MLflow and keeps the reward curve."""

    def __init__(self, domains: list[str], samples_per_step: int, run_id: str | None = None):
        """`run_id`: the MLflow run to log into (from any thread); None logs to the active run, if any."""
        import threading

        self.domains = list(domains)
        self.samples_per_step = samples_per_step
        self.run_id = run_id
        self._lock = threading.Lock()
        self.curve: dict[int, CurvePoint] = {}
        self.history: dict[int, dict[str, float]] = {}

    def log_step(self, step: int, metrics: Mapping[str, object]) -> dict[str, float]:
        """Log one step; returns the finite metrics that were logged."""
        with self._lock:
            return self._log_step(step, metrics)

    def _log_step(self, step: int, metrics: Mapping[str, object]) -> dict[str, float]:
        clean = {k: f for k, v in metrics.items() if (f := _finite(v)) is not None}
        if "train/step_seconds" in clean and clean["train/step_seconds"] > 0 and "train/throughput" not in clean:
            clean["train/throughput"] = self.samples_per_step / clean["train/step_seconds"]
        if not clean:
            return clean
        self.history.setdefault(step, {}).update(clean)
        if "train/reward" in clean:
            point = self.curve.setdefault(step, CurvePoint(step=step, reward=clean["train/reward"]))
            point.reward = clean["train/reward"]
        for d in self.domains:
            if domain_metric(d) in clean:
                point = self.curve.setdefault(step, CurvePoint(step=step, reward=math.nan))
                point.domains[d] = clean[domain_metric(d)]
        if len(self.domains) == 1 and "train/reward" in clean and domain_metric(self.domains[0]) not in clean:
            # A single-domain run: its overall reward is the domain's reward.
            clean[domain_metric(self.domains[0])] = clean["train/reward"]
            self.curve[step].domains[self.domains[0]] = clean["train/reward"]
        from m2rl import tracking

        tracking.log_batch(metrics=clean, step=step, run_id=self.run_id)
        return clean

    def reward_curve(self) -> list[CurvePoint]:
        return [p for _, p in sorted(self.curve.items()) if not math.isnan(p.reward)]


def map_trl_logs(logs: Mapping[str, object], domains: list[str]) -> dict[str, object]:
    """TRL's log dict -> M2RL metric names (per-domain rewards from the reward wrapper's log_metric)."""
    out: dict[str, object] = {}
    for key, name in TRL_KEYS.items():
        if key in logs:
            out[name] = logs[key]
    for d in domains:
        key = f"{TRL_DOMAIN_PREFIX}{d}"
        if key in logs and logs[key] is not None:
            out[domain_metric(d)] = logs[key]
    for m in ENV_METRICS:
        if logs.get(f"{TRL_ENV_PREFIX}{m}") is not None:
            out[f"train/env/{m}"] = logs[f"{TRL_ENV_PREFIX}{m}"]
    return out


def map_openrlhf_scalars(scalars: Mapping[str, float], domains: list[str]) -> dict[str, float]:
    """One step's OpenRLHF TensorBoard scalars -> M2RL metric names."""
    out: dict[str, float] = {}
    for tag, name in OPENRLHF_TAGS.items():
        if tag in scalars:
            out[name] = scalars[tag]
    for d in domains:
        total = scalars.get(OPENRLHF_DOMAIN_REWARD.format(domain=d))
        count = scalars.get(OPENRLHF_DOMAIN_COUNT.format(domain=d))
        if total is not None and count:
            out[domain_metric(d)] = total / count
    n = scalars.get("train/rollout/num_samples")
    secs = scalars.get("train/timing/step_total")
    if n and secs:
        out["train/throughput"] = n / secs
    return out

"""OpenRLHF 0.11.x custom reward: `--reward.remote_url <path of this file>` loads `reward_func`.

OpenRLHF calls `reward_func(queries, prompts, labels)` one sample at a time from worker threads
(`asyncio.to_thread`); each query is the decoded prompt + response with special tokens kept, each
label an M2RL record encoded by `m2rl.verifiers.encode_label` (so one hook scores every domain of a
mixed batch). The prompt is cut off the query, the response is scored through `score_batch` (worker
processes with a hard per-item timeout: thread-safe, no signals), and the result is
`{"rewards": tensor, "scores": tensor, "extra_logs": {name: tensor}}`.

`extra_logs` has the same keys on every call (OpenRLHF averages them over a step):
`m2rl/<domain>/reward_sum` and `m2rl/<domain>/count` for every domain (the reward and 1 if the sample
is of that domain, else 0; their ratio is the domain's mean reward), `m2rl/timeout` and `m2rl/error`.
Environment: `M2RL_REWARD_WORKERS` (processes), `M2RL_REWARD_TIMEOUT` (seconds per item).
"""

from __future__ import annotations

import os
from typing import Any

from m2rl.spec.data import DOMAINS
from m2rl.verifiers.adapters import response_of, score_labeled


def _env_number(name: str, kind: type) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        val = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if val <= 0:
        raise ValueError(f"{name} must be > 0, got {raw!r}")
    return val


def reward_func(queries: list[str], prompts: list[str], labels: list[str]) -> dict[str, Any]:
    """OpenRLHF's custom reward signature; returns {"rewards", "scores", "extra_logs"} as tensors."""
    import torch

    responses = [response_of(q, p) for q, p in zip(queries, prompts, strict=True)]
    scores, domains = score_labeled(responses, labels, workers=_env_number("M2RL_REWARD_WORKERS", int),
                                    timeout=_env_number("M2RL_REWARD_TIMEOUT", float))
    values = [s.value for s in scores]
    extra: dict[str, Any] = {}
    for d in DOMAINS:
        hit = [1.0 if dom == d else 0.0 for dom in domains]
        extra[f"m2rl/{d}/reward_sum"] = torch.tensor([v * h for v, h in zip(values, hit, strict=True)])
        extra[f"m2rl/{d}/count"] = torch.tensor(hit)
    extra["m2rl/timeout"] = torch.tensor([1.0 if s.details.get("timeout") else 0.0 for s in scores])
    extra["m2rl/error"] = torch.tensor([1.0 if s.details.get("error") else 0.0 for s in scores])
    rewards = torch.tensor(values, dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": extra}

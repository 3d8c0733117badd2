"""OpenRLHF 0.11.x custom reward: `--reward.remote_url <path of this file>` loads `reward_func`.

OpenRLHF calls `reward_func(queries, prompts, labels)` one sample at a time from worker threads
(`asyncio.to_thread`); each query is the decoded prompt + response with special tokens kept, each
label an M2RL record encoded by `m2rl.verifiers.encode_label` (so one hook scores every domain of a
mixed batch). The prompt is cut off the query, the response is scored through `score_batch` (worker
processes with a hard per-item timeout: thread-safe, no signals), and the result is
`{"rewards": tensor, "scores": tensor, "extra_logs": {name: tensor}}`.

`extra_logs` has the same keys on every call (OpenRLHF averages them over a step):
`m2rl/<domain>/reward_sum` and `m2rl/<domain>/count` for every domain (the reward and 1 if the sample
is of that domain, else 0; their ratio is the domain's mean reward), `m2rl/timeout`, `m2rl/error`, and
`m2rl/env/tool_calls` / `m2rl/env/tool_errors` (an episode's, from the agent file `openrlhf_agent.py`).
Environment: `M2RL_REWARD_WORKERS` (processes), `M2RL_REWARD_TIMEOUT` (seconds per item),
`M2RL_REQUIRE_THINK_CLOSE` (`1`: a response without `</think>` scores 0; the spec's
`rewards.require_think_close`, set by the openrlhf backend). When that is unset, the spec a RayJob carries
(`M2RL_SPEC_YAML`) says; else off.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from m2rl.spec.data import DOMAINS
from m2rl.verifiers.adapters import response_of, score_labeled
from m2rl.verifiers.registry import Score

THINK_ENV = "M2RL_REQUIRE_THINK_CLOSE"
SPEC_ENV = "M2RL_SPEC_YAML"  # the spec of a RayJob (m2rl.k8s.rayjob), in every worker's environment
THINK_REASON = "no </think>: the reasoning block is not closed"


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


def env_flag(name: str) -> bool | None:
    """A boolean environment variable (1/0, true/false, yes/no, on/off); None when unset."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false), got {os.environ[name]!r}")


@functools.lru_cache(maxsize=4)
def _spec_think(spec_text: str) -> bool:
    import yaml

    from m2rl.spec.study import SpecError, spec_from_dict

    try:
        return spec_from_dict(yaml.safe_load(spec_text), SPEC_ENV).rewards.require_think_close
    except (SpecError, yaml.YAMLError) as exc:
        raise ValueError(f"{SPEC_ENV}: not a valid spec: {exc}") from None


def require_think_close() -> bool:
    """The think gate in force: $M2RL_REQUIRE_THINK_CLOSE, else the RayJob's spec, else off."""
    flag = env_flag(THINK_ENV)
    if flag is not None:
        return flag
    spec = os.environ.get(SPEC_ENV)
    return _spec_think(spec) if spec else False


def score_gated(responses: list[str], labels: list[Any], *, require_think_close: bool, workers: int | None,
                timeout: float | None) -> tuple[list[Score], list[str | None]]:
    """`score_labeled` with the think gate: a response without `</think>` scores 0 (not even verified)."""
    if not require_think_close:
        return score_labeled(responses, labels, workers=workers, timeout=timeout)
    from m2rl.verifiers.reasoning import split_reasoning

    closed = [split_reasoning(r)[1] for r in responses]
    scores, domains = score_labeled([r if c else "" for r, c in zip(responses, closed, strict=True)], labels,
                                    workers=workers, timeout=timeout)
    gated = [s if c or s.details.get("error") else Score(0.0, {"reason": THINK_REASON})
             for s, c in zip(scores, closed, strict=True)]
    return gated, domains


def reward_func(queries: list[str], prompts: list[str], labels: list[str]) -> dict[str, Any]:
    """OpenRLHF's custom reward signature; returns {"rewards", "scores", "extra_logs"} as tensors."""

    responses = [response_of(q, p) for q, p in zip(queries, prompts, strict=True)]
    scores, domains = score_gated(responses, labels, require_think_close=require_think_close(),
                                  workers=_env_number("M2RL_REWARD_WORKERS", int),
                                  timeout=_env_number("M2RL_REWARD_TIMEOUT", float))
    return reward_result(scores, domains)


def reward_result(scores: list[Score], domains: list[str | None], tool_calls: list[int] | None = None,
                  tool_errors: list[int] | None = None) -> dict[str, Any]:
    """OpenRLHF's reward dict for scored samples: `rewards`, `scores` and the same `extra_logs` keys on every
    call (per-domain reward sums and counts, timeouts, errors, and an episode's tool calls and tool errors,
    0 for a single-turn sample), as tensors."""
    import torch

    values = [s.value for s in scores]
    extra: dict[str, Any] = {}
    for d in DOMAINS:
        hit = [1.0 if dom == d else 0.0 for dom in domains]
        extra[f"m2rl/{d}/reward_sum"] = torch.tensor([v * h for v, h in zip(values, hit, strict=True)])
        extra[f"m2rl/{d}/count"] = torch.tensor(hit)
    extra["m2rl/timeout"] = torch.tensor([1.0 if s.details.get("timeout") else 0.0 for s in scores])
    extra["m2rl/error"] = torch.tensor([1.0 if s.details.get("error") else 0.0 for s in scores])
    extra["m2rl/env/tool_calls"] = torch.tensor([float(n) for n in (tool_calls or [0] * len(scores))])
    extra["m2rl/env/tool_errors"] = torch.tensor([float(n) for n in (tool_errors or [0] * len(scores))])
    rewards = torch.tensor(values, dtype=torch.float32)
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": extra}

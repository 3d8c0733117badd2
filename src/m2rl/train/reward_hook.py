"""OpenRLHF reward hook: `--reward.remote_url <this file>` (OpenRLHF loads it by path, calls `reward_func`).

It delegates scoring to M2RL's verifiers hook (`m2rl.verifiers.openrlhf_reward.reward_func`; every
record's verifier metadata travels in the label as JSON, so one hook scores a mixed batch of all five
domains) and adds per-domain `extra_logs` so the per-domain reward curves reach TensorBoard (and from
there MLflow): OpenRLHF averages each extra log over all samples of a step, so for every domain `d` the
hook reports `m2rl/<d>/reward_sum` (the reward if the sample is of `d`, else 0) and `m2rl/<d>/count`
(1 or 0); the bridge divides them (`m2rl.train.metrics.map_openrlhf_scalars`).
"""

from __future__ import annotations

import json
from typing import Any

from m2rl.spec.data import DOMAINS


def _domain_of(label: str) -> str | None:
    from m2rl.verifiers import decode_label

    try:
        decoded = decode_label(label)
    except Exception:
        try:
            decoded = json.loads(label)
        except (TypeError, ValueError):
            return None
    if isinstance(decoded, dict):
        dom = decoded.get("domain")
        return dom if isinstance(dom, str) else None
    return getattr(decoded, "domain", None)


def _as_list(values: Any) -> list[float]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (int, float)):
        return [float(values)]
    return [float(v) for v in values]


def reward_func(queries: list[str], prompts: list[str], labels: list[str]) -> dict[str, Any]:
    """OpenRLHF's custom reward signature; returns {"rewards", "scores", "extra_logs"} as tensors."""
    import torch

    from m2rl.verifiers.openrlhf_reward import reward_func as verifier_reward_func

    result = verifier_reward_func(queries, prompts, labels)
    if not isinstance(result, dict):
        result = {"rewards": result, "scores": result}
    rewards = _as_list(result["rewards"])
    domains = [_domain_of(label) for label in labels]
    extra = dict(result.get("extra_logs") or {})
    for d in DOMAINS:
        hit = [1.0 if dom == d else 0.0 for dom in domains]
        extra[f"m2rl/{d}/reward_sum"] = torch.tensor([r * h for r, h in zip(rewards, hit, strict=True)])
        extra[f"m2rl/{d}/count"] = torch.tensor(hit)
    out = dict(result)
    out["rewards"] = torch.as_tensor(rewards, dtype=torch.float32)
    out.setdefault("scores", out["rewards"])
    out["extra_logs"] = extra
    return out

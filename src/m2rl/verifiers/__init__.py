"""Verifiable rewards: a registry of verifiers by `verifier.type`, each returning a Score in [0, 1].

- `score(record, response)`: one response, in this process (`m2rl.verifiers.api`).
- `score_batch(records, responses, workers=None, timeout=None)`: worker processes, a hard per-item
  timeout, results in order; a hanging or crashing item scores 0 with its reason (`m2rl.verifiers.pool`).
- `strip_reasoning(text)`: the text after the last `</think>` (every verifier scores only that).
- `encode_label(record)` / `decode_label(text)`: a record's verifier through OpenRLHF's label column.
- Adapters: `m2rl.verifiers.openrlhf_reward.reward_func` (OpenRLHF custom reward file),
  `m2rl.verifiers.trl_reward.reward_func` (TRL reward function), `m2rl.verifiers.service` (the HTTP
  reward service behind `m2rl serve-rewards`).

Verifiers: `math`, `mcqa`, `ifeval`, `unit_test`, `tool_calls` (one module each; see their docs).
"""

from __future__ import annotations

from m2rl.verifiers.api import VerifierError, check_record, score
from m2rl.verifiers.labels import LabelError, decode_label, encode_label
from m2rl.verifiers.pool import DEFAULT_TIMEOUT, ScoringPool, get_pool, item_timeout, score_batch
from m2rl.verifiers.reasoning import split_reasoning, strip_reasoning
from m2rl.verifiers.registry import Score, get_verifier, register_verifier, verifier_names

__all__ = [
    "DEFAULT_TIMEOUT",
    "LabelError",
    "Score",
    "ScoringPool",
    "VerifierError",
    "check_record",
    "decode_label",
    "encode_label",
    "get_pool",
    "get_verifier",
    "item_timeout",
    "register_verifier",
    "score",
    "score_batch",
    "split_reasoning",
    "strip_reasoning",
    "verifier_names",
]

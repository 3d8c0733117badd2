"""Evaluating environment records: each sample is an episode the model plays (`m2rl.envs.run_episodes`).

A benchmark's environment records (`verifier.type == "env"`, e.g. `agent`, or `builtin_agent` with the
multi-turn kind) are not answered in one generation: each of the K samples of a problem is an episode, and
every round of the episodes of a batch is one `generate` call of the backend (hf or vllm: the conversation so
far rendered by the model's chat template with the record's tool schemas, one completion each). The stored
response of a sample is the episode as JSON (`Episode.to_json()`: the transcript after the prompt, turns, tool
calls and errors, why it stopped, completion tokens). Scoring replays the transcript's calls on a fresh
sandbox (`m2rl.envs.score_transcript`, deterministic, so a reused sample scores as it was played) and puts the
episode's figures in the score's details. Budget: each turn samples up to the benchmark's `max_new_tokens`,
and an episode also stops once its completion tokens reach that number (or at its environment's
`max_turns`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from m2rl.envs import is_env_record, run_episodes, score_transcript
from m2rl.evaluate.registry import Sampling
from m2rl.verifiers.registry import Score

DEFAULT_MAX_TURNS = 8


def has_env_records(records: Sequence[Mapping[str, Any]]) -> bool:
    return any(is_env_record(r) for r in records)


def play(generator: Any, records: Sequence[Mapping[str, Any]], k: int, sampling: Sampling, seed: int,
         env_params: Mapping[str, Mapping[str, Any]] | None, max_turns: int = DEFAULT_MAX_TURNS
         ) -> list[list[str]]:
    """K episodes of each record, played in lock-step; per record its K responses (episodes as JSON)."""
    from m2rl.models import ensure_tool_calling

    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is not None:
        ensure_tool_calling(tokenizer)
    expanded = [rec for rec in records for _ in range(k)]
    turn = [0]

    def generate(conversations: list[list[dict[str, Any]]], tools: list[Any]) -> list[tuple[str, int]]:
        prompts = [generator.render(c, t) if t else generator.render(c) for c, t in zip(conversations, tools,
                                                                                          strict=True)]
        turn[0] += 1
        outs = generator.generate(prompts, 1, sampling, (seed + 7919 * turn[0]) & 0x7FFFFFFF)
        texts = [o[0] for o in outs]
        return [(t, _tokens(tokenizer, t)) for t in texts]

    episodes = run_episodes(expanded, generate, max_turns=max_turns, max_tokens=sampling.max_new_tokens,
                            env_params=env_params)
    responses = [json.dumps(ep.to_json(), ensure_ascii=False) for ep in episodes]
    return [responses[i * k:(i + 1) * k] for i in range(len(records))]


def _tokens(tokenizer: Any, text: str) -> int:
    if tokenizer is None:
        return len(text.split())
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def score(records: Sequence[Mapping[str, Any]], responses: Sequence[str],
          env_params: Mapping[str, Mapping[str, Any]] | None) -> Iterator[Score]:
    """The score of each episode response: its transcript replayed on a fresh sandbox, with the episode's
    turns, stop reason, tool calls and errors and the state diff in the details."""
    for rec, response in zip(records, responses, strict=True):
        try:
            episode = json.loads(response)
            messages = episode["messages"]
        except (ValueError, TypeError, KeyError):
            yield Score(0.0, {"reason": "the stored sample is not an episode (no messages)"})
            continue
        try:
            out = score_transcript(rec["verifier"], messages, env_params)
        except ValueError as exc:  # a record its environment cannot play (EnvError, bad params)
            yield Score(0.0, {"error": str(exc)})
            continue
        yield Score(out.reward, {
            "reason": "end state matches the ground truth" if out.reward >= 1 else "end state differs",
            "turns": episode.get("turns"), "stop": episode.get("stop"), "tool_calls": out.tool_calls,
            "tool_errors": out.tool_errors, "state_diff": out.state_diff,
            "completion_tokens": episode.get("completion_tokens"),
        })

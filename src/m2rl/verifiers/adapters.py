"""Shared pieces of the training adapters: cutting the prompt off a query, scoring decoded labels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from m2rl.verifiers.labels import LabelError, decode_label
from m2rl.verifiers.pool import score_batch
from m2rl.verifiers.registry import Score

# Special tokens a decoded query may end with (end of turn, end of text, padding), any number of them.
_TRAILING_SPECIAL = re.compile(
    r"(?:\s{0,4}(?:<\|[A-Za-z_]{1,24}\|>|</s>|<eos>|<end_of_turn>|<pad>|<\|endoftext\|>))+\s*\Z"
)
_TAILS = (64, 32, 16)


def response_of(query: str, prompt: str) -> str:
    """The response part of an OpenRLHF query (the decoded prompt + response, special tokens kept).

    The prompt is cut off where it ends in the query (exactly, or where its last characters are found
    when decoding changed its start, e.g. a left-truncated prompt); trailing end-of-turn / padding
    tokens are dropped.
    """
    query, prompt = str(query), str(prompt or "")
    if prompt and query.startswith(prompt):
        rest = query[len(prompt):]
    elif prompt:
        rest = query
        for size in _TAILS:  # the prompt's last characters, longest first, where decoding kept them
            tail = prompt[-size:]
            at = query.find(tail)
            if at >= 0:
                rest = query[at + len(tail):]
                break
    else:
        rest = query
    tail_start = max(0, len(rest) - 512)  # the trailing-token pattern only ever looks at the end
    m = _TRAILING_SPECIAL.search(rest, tail_start)
    return rest[: m.start()] if m else rest


def score_labeled(responses: Sequence[str], labels: Sequence[Any], *, workers: int | None = None,
                  timeout: float | None = None) -> tuple[list[Score], list[str | None]]:
    """Score responses against encoded labels; a label that does not decode scores 0 with the reason.

    Returns the scores and each item's domain (None when the label did not decode).
    """
    if len(responses) != len(labels):
        raise ValueError(f"{len(responses)} responses but {len(labels)} labels")
    scores: list[Score | None] = [None] * len(responses)
    domains: list[str | None] = [None] * len(responses)
    todo_records, todo_resp, todo_idx = [], [], []
    from m2rl.verifiers.api import VerifierError, check_record

    for i, (resp, lab) in enumerate(zip(responses, labels, strict=True)):
        try:
            rec = decode_label(lab)
            check_record(rec)
        except (LabelError, VerifierError) as exc:
            scores[i] = Score(0.0, {"reason": f"bad label: {exc}", "error": True})
            continue
        domains[i] = rec.get("domain") if isinstance(rec.get("domain"), str) else None
        todo_records.append(rec)
        todo_resp.append(resp)
        todo_idx.append(i)
    if todo_records:
        for i, s in zip(todo_idx, score_batch(todo_records, todo_resp, workers=workers, timeout=timeout),
                        strict=True):
            scores[i] = s
    return [s if s is not None else Score(0.0) for s in scores], domains

"""`score`: one record, one response, in this process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from m2rl.verifiers.reasoning import split_reasoning
from m2rl.verifiers.registry import RegistryError, Score, get_verifier


class VerifierError(ValueError):
    """A record that cannot be scored: no verifier block, no `type`, or an unknown type."""


def record_verifier(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(verifier type, verifier block) of a record; the block may be stored as JSON text."""
    if not isinstance(record, Mapping):
        raise VerifierError(f"record must be a mapping, got {type(record).__name__}")
    meta = record.get("verifier")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            raise VerifierError(f"record {record.get('id')!r}: verifier is not valid JSON") from None
    if not isinstance(meta, Mapping) or not isinstance(meta.get("type"), str):
        raise VerifierError(f"record {record.get('id')!r}: verifier must be a mapping with a string `type`")
    return meta["type"], dict(meta)


def check_record(record: Mapping[str, Any]) -> str:
    """The verifier type of a record whose verifier is registered; raises VerifierError otherwise."""
    vtype, _ = record_verifier(record)
    try:
        get_verifier(vtype)
    except RegistryError as exc:
        raise VerifierError(f"record {record.get('id')!r}: {exc}") from None
    return vtype


def _text(response: Any) -> str:
    if isinstance(response, str):
        text = response
    elif isinstance(response, bytes):
        text = response.decode("utf-8", "replace")
    elif response is None:
        text = ""
    else:
        text = str(response)
    # lone surrogates (from a bad decode) would break every encoder downstream
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def score(record: Mapping[str, Any], response: Any, *, require_think_close: bool = False) -> Score:
    """Score one response against a record (a mapping with `label` and `verifier`), in this process.

    The reasoning block is stripped first (the text after the last `</think>` is scored); with
    `require_think_close` a response without `</think>` scores 0. A verifier that raises scores 0 with
    the reason. No time limit here: `score_batch` gives each item a hard one.
    Raises VerifierError for a record without a known verifier type.
    """
    vtype, meta = record_verifier(record)
    try:
        fn = get_verifier(vtype)
    except RegistryError as exc:
        raise VerifierError(f"record {record.get('id')!r}: {exc}") from None
    text, closed = split_reasoning(_text(response))
    if require_think_close and not closed:
        return Score(0.0, {"reason": "no </think>: the reasoning block is not closed"})
    label = record.get("label")
    try:
        result = fn(text, "" if label is None else str(label), meta)
    except RecursionError:
        return Score(0.0, {"reason": f"{vtype}: input nested too deeply"})
    except Exception as exc:  # a verifier bug or hostile input: a 0 with the reason, never a crash
        return Score(0.0, {"reason": f"{vtype}: {type(exc).__name__}: {str(exc)[:300]}"})
    if not isinstance(result, Score):
        return Score(0.0, {"reason": f"{vtype}: verifier returned {type(result).__name__}, not Score"})
    return result

"""The `tool_calls` verifier: the model's tool calls match `verifier.ground_truth` (a list of {name, arguments}).

Calls are read from `<tool_call>{…}</tool_call>` blocks (Hermes/Qwen style; an unclosed last block
counts) and, when there are none, from OpenAI-style JSON in the response: `{"tool_calls": [{"function":
{"name", "arguments"}}]}`, a list of calls, or one call (fenced or bare). Arguments may be a dict or
JSON text. Calls compare by name and by their arguments after JSON normalisation (key order,
whitespace, `1` vs `1.0`).

Modes (`verifier.mode`): `exact` (default; the same calls in the same order), `unordered` (the same
multiset of calls), `f1` (partial credit: F1 of the matched calls; also what `verifier.reward:
fraction` selects).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier

MODES = ("exact", "unordered", "f1")
MAX_JSON_STARTS = 64
_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_decoder = json.JSONDecoder()


class ToolCallError(ValueError):
    """Ground truth that is not a list of {name, arguments}."""


def _norm(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise ToolCallError("arguments nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, dict):
        return {str(k): _norm(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v, depth + 1) for v in value]
    return str(value)


def _args(raw: Any) -> Any:
    if raw is None:
        return {}
    if isinstance(raw, str):
        s = raw.strip()
        if not s:
            return {}
        try:
            return json.loads(s)
        except ValueError:
            return s
    return raw


def canonical(name: Any, arguments: Any) -> tuple[str, str]:
    """A call's comparable form: (name, its arguments as canonical JSON)."""
    args = _norm(_args(arguments))
    return str(name).strip(), json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _call_of(obj: Any) -> tuple[str, str] | None:
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict) and "name" in fn:
        obj = fn
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    return canonical(name, args)


def _calls_of(obj: Any) -> list[tuple[str, str]] | None:
    if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
        obj = obj["tool_calls"]
    if isinstance(obj, list):
        calls = [_call_of(o) for o in obj]
        return [c for c in calls if c is not None] if calls and all(c is not None for c in calls) else None
    one = _call_of(obj)
    return [one] if one is not None else None


def _tagged(text: str) -> list[tuple[str, str]] | None:
    if _OPEN not in text:
        return None
    calls: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            break
        body_start = start + len(_OPEN)
        end = text.find(_CLOSE, body_start)
        body = text[body_start:] if end < 0 else text[body_start:end]
        pos = len(text) if end < 0 else end + len(_CLOSE)
        body = body.strip()
        if body.startswith("```"):
            body = body.strip("`").removeprefix("json").strip()
        try:
            obj = json.loads(body)
        except ValueError:
            calls.append(("<unparsable>", body[:200]))
            continue
        got = _calls_of(obj)
        calls.extend(got if got else [("<unparsable>", body[:200])])
    return calls


def _json_calls(text: str) -> list[tuple[str, str]]:
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`").strip()
        if s.startswith("json"):
            s = s[4:]
    try:
        got = _calls_of(json.loads(s))
        if got is not None:
            return got
    except ValueError:
        pass
    tried, pos = 0, 0
    while tried < MAX_JSON_STARTS:
        brace, bracket = text.find("{", pos), text.find("[", pos)
        cands = [p for p in (brace, bracket) if p >= 0]
        if not cands:
            break
        start = min(cands)
        tried += 1
        try:
            obj, end = _decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        got = _calls_of(obj)
        if got:
            return got
        pos = end
    return []


def parse_calls(text: str) -> list[tuple[str, str]]:
    """The model's tool calls in `text`, each as (name, canonical JSON arguments)."""
    tagged = _tagged(text)
    return tagged if tagged is not None else _json_calls(text)


def _ground_truth(meta: Any) -> list[tuple[str, str]]:
    gt = meta.get("ground_truth")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except ValueError:
            raise ToolCallError("verifier.ground_truth is not valid JSON") from None
    if isinstance(gt, dict):
        gt = [gt]
    if not isinstance(gt, list):
        raise ToolCallError("verifier.ground_truth must be a list of {name, arguments}")
    out = []
    for i, call in enumerate(gt):
        got = _call_of(call)
        if got is None:
            raise ToolCallError(f"verifier.ground_truth[{i}] has no name")
        out.append(got)
    return out


def _mode(meta: Any) -> str:
    mode = str(meta.get("mode") or "exact").lower()
    if mode in ("partial", "fraction"):
        mode = "f1"
    if meta.get("reward") == "fraction":
        mode = "f1"
    if mode not in MODES:
        raise ToolCallError(f"verifier.mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


class ToolCallsParams(StrictModel):
    """The `tool_calls` verifier's metadata."""

    ground_truth: list[Any] | dict[str, Any] | str | None = Field(
        default=None, description="Expected calls: a list of {name, arguments} (or its JSON text)."
    )
    mode: Literal["exact", "unordered", "f1", "partial", "fraction"] | None = Field(
        default=None, description="exact (default): same calls in order; unordered; f1 (partial credit)."
    )
    reward: Literal["binary", "fraction"] | None = Field(
        default=None, description="fraction: partial credit (the same as mode f1)."
    )


@register_verifier("tool_calls", params=ToolCallsParams, inline_safe=True)  # linear time, no evaluation
def verify_tool_calls(response: str, label: str, meta: Any) -> Score:
    expected = _ground_truth(meta)
    mode = _mode(meta)
    got = parse_calls(response)
    matched = sum((Counter(expected) & Counter(got)).values())
    details: dict[str, Any] = {"mode": mode, "calls": [n for n, _ in got], "expected": [n for n, _ in expected],
                               "matched": matched}
    if mode == "exact":
        value = 1.0 if got == expected else 0.0
    elif mode == "unordered":
        value = 1.0 if Counter(got) == Counter(expected) else 0.0
    else:
        if not got and not expected:
            value = 1.0
        elif not got or not expected:
            value = 0.0
        else:
            p, r = matched / len(got), matched / len(expected)
            value = 0.0 if matched == 0 else 2 * p * r / (p + r)
    if value < 1.0:
        details["reason"] = "no tool call found" if not got else "tool calls differ from the ground truth"
    return Score(value, details)


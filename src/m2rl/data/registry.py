"""The data-source registry: each source adapts its input into unified records, by name.

A source is a function `(source: SourceSpec, domain: str | None) -> Iterator[Row]` where a row is
either a record dict or a `Reject` (a bad input row with its file, line and reason). `domain` is the
domain the spec lists the source under; sources whose rows name their own domain (the Nemotron blend)
set `multi_domain = True`: the stage reads them once with `domain=None` and `domains=` the set of domains
the spec lists them under (so they can skip work for the others), and keeps only records of those domains.
A source whose option cannot be used (a placeholder dataset that cannot be loaded) raises
`SourceOptionError` naming the option; the stage reports it under the source's spec path.
Adding a source is one new file in `m2rl/data/sources/` with `@register_source("name")` (the `source`
registry of `m2rl.registry`; its `params` model types the source's `options`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Union

from m2rl.registry import SOURCES, StrictModel
from m2rl.spec.data import SourceSpec


@dataclass(frozen=True)
class Reject:
    """An input row that could not be adapted: where it was and why."""

    file: str
    line: int
    reason: str
    source: str = ""


class SourceOptionError(ValueError):
    """A source option that cannot be used; `option` is its path under the source (`options.x.y`)."""

    def __init__(self, option: str, reason: str):
        self.option, self.reason = option, reason
        super().__init__(f"{option}: {reason}")


Row = Union[dict[str, Any], Reject]
SourceFn = Callable[[SourceSpec, "str | None"], Iterator[Row]]

def register_source(name: str, *, params: type[StrictModel] | None = None, **meta: Any) -> Callable[[SourceFn], SourceFn]:
    """Register a source function under `name`; `params` types its `source.options`.

    `options_check(options, domain, where) -> list[str]` in `meta` adds problems that need the domain
    the spec lists the source under (e.g. the builtin source's problem kinds); the spec calls it on load.
    """
    return SOURCES.register(name, params=params, **meta)


def get_source(name: str) -> SourceFn:
    return SOURCES.get(name, "type")


def source_names() -> list[str]:
    return SOURCES.names()

"""The benchmark registry: each benchmark, by name, with its loader, domain, default K and sampling.

A benchmark is one file in `m2rl/evaluate/benchmarks/` that calls `@register_benchmark(...)` on its
loader (the `benchmark` registry of `m2rl.registry`; `params` types its `options`). A loader takes the run's `BenchmarkSpec` (for `path`, `options`) and returns unified records
(m2rl.records) whose prompt is already the paper's template and whose verifier block names the
verifier that scores them. Defaults are the paper's: temperature 1.0, top_p 0.7, up to 32,768 new
tokens; K per benchmark (16 for AIME, 4 for GPQA, 1 for IFEval/IFBench); the spec overrides each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from m2rl.registry import BENCHMARKS, StrictModel
from m2rl.spec.evaluate import BenchmarkSpec

Loader = Callable[[BenchmarkSpec], list[dict[str, Any]]]


class EvalError(ValueError):
    """Bad evaluation input (unknown benchmark, missing dataset file, model without weights)."""


@dataclass(frozen=True)
class Sampling:
    """How one benchmark samples: the same for every model of a study."""

    temperature: float = 1.0
    top_p: float = 0.7
    max_new_tokens: int = 32768


PAPER_SAMPLING = Sampling()


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: what it reads, how it prompts and scores, and its defaults."""

    name: str
    domain: str
    loader: Loader
    hub_id: str | None = None
    k: int = 1
    sampling: Sampling = field(default_factory=Sampling)
    votable: bool = False  # maj@K is reported when the extracted answers can be voted (math, mcqa)
    description: str = ""

    def resolve(self, spec: BenchmarkSpec) -> tuple[int, Sampling]:
        """K and sampling for a run: the spec's values where set, else the benchmark's defaults."""
        k = spec.k if spec.k is not None else self.k
        sampling = Sampling(
            temperature=spec.temperature if spec.temperature is not None else self.sampling.temperature,
            top_p=spec.top_p if spec.top_p is not None else self.sampling.top_p,
            max_new_tokens=spec.max_new_tokens if spec.max_new_tokens is not None else self.sampling.max_new_tokens,
        )
        return k, sampling


def register_benchmark(
    name: str,
    *,
    domain: str,
    hub_id: str | None = None,
    k: int = 1,
    sampling: Sampling = PAPER_SAMPLING,
    votable: bool = False,
    description: str = "",
    params: type[StrictModel] | None = None,
    options_check: Callable[..., list[str]] | None = None,
) -> Callable[[Loader], Loader]:
    """Register a loader under `name` (one call per benchmark name); `params` types its `options`,
    `options_check(options, domain, where)` adds problems `params` cannot express."""

    def deco(fn: Loader) -> Loader:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        bench = Benchmark(name=name, domain=domain, loader=fn, hub_id=hub_id, k=k, sampling=sampling,
                          votable=votable, description=doc)
        meta = {"options_check": options_check} if options_check else {}
        BENCHMARKS.register(name, params=params, description=doc, **meta)(bench)
        return fn

    return deco


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark `name`; a RegistryError names the known ones otherwise."""
    return BENCHMARKS.get(name, "benchmark")


def benchmark_names() -> list[str]:
    return BENCHMARKS.names()


def benchmark_options(spec: BenchmarkSpec) -> Any:
    """A benchmark's `options` validated against its `Params` (errors name each option)."""
    return BENCHMARKS.parse_params(spec.name, spec.options, "options")

"""The benchmark registry: each benchmark, by name, with its loader, domain, default K and sampling.

A benchmark is one file in `m2rl/evaluate/benchmarks/` that calls `@register_benchmark(...)` on its
loader (the `benchmark` registry of `m2rl.registry`; `params` types its `options`, a subclass of
`BenchmarkOptions`). A loader takes the run's `BenchmarkSpec` (for `path`, `options`) and returns unified
records (m2rl.records) whose prompt is already the paper's template (or the prompt a file already holds)
and whose verifier block names the verifier that scores them, as `Problems`: a list of those records that
carries the benchmark's card (`BenchmarkCard`: what was read, in which layout, which rows were skipped as
malformed and why, which were left out by the benchmark's rules). `load_benchmark(spec)` is the one entry
point: options validated, the loader run, a card attached even to a loader that returns a plain list.
Defaults are the paper's: temperature 1.0, top_p 0.7, up to 32,768 new tokens; K per benchmark (16 for
AIME, 4 for GPQA, 1 for IFEval/IFBench); the spec overrides each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from m2rl.registry import BENCHMARKS, RegistryError, StrictModel
from m2rl.spec.evaluate import BenchmarkSpec

Loader = Callable[[BenchmarkSpec], list[dict[str, Any]]]

# The share of a benchmark's rows that may be malformed (skipped, counted in its card) before the load
# fails; a spec sets another per benchmark with `options.max_bad_fraction`.
MAX_BAD_FRACTION = 0.05
CARD_BAD_ROWS = 5  # malformed rows the card (and a failed load's error) names one by one


class EvalError(ValueError):
    """Bad evaluation input (unknown benchmark, missing dataset file, model without weights)."""


class BenchmarkOptions(StrictModel):
    """Options every benchmark read from a dataset accepts."""

    max_bad_fraction: float = Field(
        default=MAX_BAD_FRACTION, ge=0, le=1,
        description="Largest share of malformed rows skipped (and counted in the card) before the load fails.",
    )


@dataclass
class BenchmarkCard:
    """How a benchmark's problems were read: its source and layout, and every row not turned into a problem."""

    benchmark: str
    source: str  # the path or hub dataset read
    layout: str = ""  # the column layout recognised (e.g. `math-ai/aime24`, `paper parquet (download_aime.py)`)
    rows: int = 0  # rows read
    problems: int = 0  # problems loaded
    max_bad_fraction: float = MAX_BAD_FRACTION
    skipped: dict[str, int] = field(default_factory=dict)  # malformed rows, by reason
    bad_rows: list[str] = field(default_factory=list)  # the first malformed rows, `row N: reason`
    excluded: dict[str, int] = field(default_factory=dict)  # rows left out by the benchmark's own rules, by rule
    details: dict[str, Any] = field(default_factory=dict)  # benchmark-specific (MMLU-Redux: error-type treatment)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, row: int, reason: str) -> None:
        """Count row `row` as malformed for `reason`."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.bad_rows) < CARD_BAD_ROWS:
            self.bad_rows.append(f"row {row}: {reason}")

    def exclude(self, rule: str) -> None:
        """Count one row left out by the benchmark's rule `rule` (not an error)."""
        self.excluded[rule] = self.excluded.get(rule, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "source": self.source, "layout": self.layout, "rows": self.rows,
                "problems": self.problems, "skipped": dict(self.skipped), "skipped_total": self.n_skipped,
                "bad_rows": list(self.bad_rows), "max_bad_fraction": self.max_bad_fraction,
                "excluded": dict(self.excluded), "details": dict(self.details)}

    def summary(self) -> list[str]:
        """The card as a few readable lines."""
        lines = [f"{self.benchmark}: {self.problems} problems from {self.rows} rows of {self.source}"
                 + (f" (layout: {self.layout})" if self.layout else "")]
        if self.skipped:
            lines.append(f"skipped {self.n_skipped} malformed row(s) (at most {self.max_bad_fraction:g} of the rows "
                         f"may be): " + "; ".join(f"{reason}: {n}" for reason, n in self.skipped.items()))
            lines += [f"  {row}" for row in self.bad_rows]
        else:
            lines.append("skipped 0 malformed rows")
        if self.excluded:
            lines.append("left out by the benchmark's rules: "
                         + "; ".join(f"{rule}: {n}" for rule, n in self.excluded.items()))
        for key, value in self.details.items():
            lines.append(f"{key}: {value}")
        return lines


class Problems(list):
    """A benchmark's unified records (a plain list to every caller) with `card`, how they were read."""

    def __init__(self, records: Iterable[dict[str, Any]], card: BenchmarkCard):
        super().__init__(records)
        self.card = card


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
    """Register a loader under `name` (one call per benchmark name); `params` types its `options`
    (default `BenchmarkOptions`), `options_check(options, domain, where)` adds problems `params` cannot express."""

    def deco(fn: Loader) -> Loader:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        bench = Benchmark(name=name, domain=domain, loader=fn, hub_id=hub_id, k=k, sampling=sampling,
                          votable=votable, description=doc)
        meta = {"options_check": options_check} if options_check else {}
        BENCHMARKS.register(name, params=params or BenchmarkOptions, description=doc, **meta)(bench)
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


def load_benchmark(spec: BenchmarkSpec, bench: Benchmark | None = None) -> Problems:
    """A benchmark's problems and card: its options checked (RegistryError naming each bad one), its loader run.

    A loader that returns a plain list (the builtin splits: records the data stage already validated) gets
    a card that counts them, with nothing skipped.
    """
    bench = bench or get_benchmark(spec.name)
    problems = BENCHMARKS.problems(spec.name, spec.options, where=spec.name,
                                   params_where=f"{spec.name}: options", domain=bench.domain)
    if problems:
        raise RegistryError(problems)
    records = bench.loader(spec)
    if isinstance(records, Problems):
        return records
    card = BenchmarkCard(spec.name, spec.path or f"the {spec.name} generator", rows=len(records), problems=len(records))
    return Problems(records, card)

"""The analysis registry: one module per analysis, each a function `fn(ctx) -> dict` (a JSON section).

An analysis reads what it needs from the `AnalysisContext` (checkpoints stream through
`CheckpointReader`, eval folders and train cards are loaded once) and returns a JSON-able dict that
lands in `analysis.json` under its name. When its inputs are absent it returns `{"skipped": reason}`.
An analysis with settings of its own registers a typed `Params` (pydantic, one description per field; `m2rl
list analysis` shows them) and reads them with `ctx.settings(name)`: the options given for it, defaults elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m2rl.analysis.inputs import AnalysisError, EvalFolder, ModelEntry
from m2rl.registry import ANALYSES, StrictModel
from m2rl.spec.analysis import AnalysisSpec

AnalysisFn = Callable[["AnalysisContext"], dict[str, Any]]


def register(name: str, params: type[StrictModel] | None = None) -> Callable[[AnalysisFn], AnalysisFn]:
    """Register an analysis function under `name` (the `analysis` registry of `m2rl.registry`), with its typed
    `params` (default none)."""
    return ANALYSES.register(name, params=params)


def get_analysis(name: str) -> AnalysisFn:
    return ANALYSES.get(name, "analysis.analyses")


@dataclass
class AnalysisContext:
    """Everything an analysis may read. `models` excludes the base; `evals` includes it (as `base`)."""

    params: AnalysisSpec
    base: ModelEntry
    models: dict[str, ModelEntry]
    evals: dict[str, EvalFolder]
    train_cards: dict[str, dict[str, Any]]
    domains: list[str]
    bootstrap: int = 1000
    cache: Path | None = None
    accuracy: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # analysis -> its Params, as given
    _paths: dict[str, Path] = field(default_factory=dict, repr=False)

    def model_path(self, name: str) -> Path:
        """Local checkpoint folder of a model (the base under its name), resolved once."""
        if name not in self._paths:
            from m2rl.models import ModelError, resolve_model

            entry = self.base if name == self.base.name else self.models[name]
            try:
                self._paths[name] = Path(resolve_model(entry.uri, self.cache))
            except (ModelError, OSError) as exc:
                raise AnalysisError(f"models.{name}: {exc}") from None
        return self._paths[name]

    def settings(self, name: str) -> StrictModel:
        """Analysis `name`'s typed Params: the options given for it (`analysis.options.<name>`), else defaults."""
        return ANALYSES.parse_params(name, self.options.get(name), where=f"analysis.options.{name}")

    def by_paradigm(self, paradigm: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.paradigm == paradigm]

    def expert_for(self, domain: str) -> ModelEntry | None:
        for m in self.by_paradigm("single"):
            if m.domain == domain:
                return m
        return None

    def bench_domain(self, bench: str) -> str:
        """A benchmark's domain, from whichever eval folder states it (else the builtin_<d> name)."""
        for ev in self.evals.values():
            d = ev.benchmarks.get(bench, {}).get("domain")
            if d:
                return str(d)
        if bench.startswith("builtin_"):
            return bench[len("builtin_") :]
        return "other"

    def own_domain_only(self, name: str) -> bool:
        """Whether model `name` is an expert evaluated on its own domain's benchmarks only (`evaluate.experts:
        own_domain`): it has no cell outside its domain, and some other eval folder has one."""
        entry, ev = self.models.get(name), self.evals.get(name)
        if entry is None or entry.paradigm != "single" or ev is None:
            return False
        domains = {self.bench_domain(b) for b in ev.benchmarks}
        return domains == {entry.domain} and any(set(o.benchmarks) - set(ev.benchmarks) for o in self.evals.values())

    def full_evals(self) -> dict[str, Any]:
        """The eval folders of every model evaluated on the study's whole benchmark list (`own_domain_only`
        experts left out)."""
        full = {n: ev for n, ev in self.evals.items() if not self.own_domain_only(n)}
        return full or dict(self.evals)

    def benchmarks(self) -> list[str]:
        """Benchmarks every eval folder shares (experts evaluated on their own domain only aside: they have a
        cell of these or none), in domain order, then name."""
        sets = [set(ev.benchmarks) for ev in self.full_evals().values()]
        common = set.intersection(*sets) if sets else set()
        rank = {d: i for i, d in enumerate(self.domains)}
        return sorted(common, key=lambda b: (rank.get(self.bench_domain(b), 99), b))

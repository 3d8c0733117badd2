"""Resolve every registered name a spec uses, with its parameters, when the spec is loaded.

Merge methods and their `params`, data sources and their `options` (and the verifier block of a source
that supplies one), benchmarks and their `options`, analyses, and the training and evaluation backends
with their `backend_options`, and the environments of `envs` with their params: each is looked up in its registry (`m2rl.registry`) and its parameters are
validated against the entry's `Params`. The walk reads the raw mapping, so a typo is reported together
with every other problem of the spec, one line each, by field path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from m2rl.names import DOMAINS
from m2rl.registry import (
    ANALYSES,
    BENCHMARKS,
    ENVIRONMENTS,
    EVAL_BACKENDS,
    MERGE_METHODS,
    SOURCES,
    TRAIN_BACKENDS,
    VERIFIERS,
    Registry,
)
from m2rl.spec.evaluate import EvaluateSpec
from m2rl.spec.train import TrainSpec

# The backends a section that names none gets: the spec models' own defaults.
DEFAULT_TRAIN_BACKEND = TrainSpec.model_fields["backend"].default
DEFAULT_EVAL_BACKEND = EvaluateSpec.model_fields["backend"].default


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _params(value: Any) -> Mapping[str, Any] | None:
    """Parameters to validate: a mapping (None when it is not one; pydantic reports its type)."""
    return value if isinstance(value, Mapping) else None


def _named(reg: Registry[Any], block: Mapping[str, Any], key: str, where: str, params_key: str | None,
           default: str | None = None, domain: str | None = None) -> list[str]:
    if key not in block and default is None:
        return []  # a missing required name is pydantic's to report
    name = block.get(key, default)
    params = _params(block.get(params_key, {})) if params_key else None
    return reg.problems(name, params, where=f"{where}.{key}" if where else key,
                        params_where=f"{where}.{params_key}" if params_key else None, domain=domain)


def name_problems(data: Mapping[str, Any]) -> list[str]:
    """Every unknown name and bad parameter of a raw spec mapping, one `path: reason` line each."""
    out: list[str] = []
    merge = _map(data.get("merge"))
    for i, m in enumerate(_list(merge.get("methods"))):
        if isinstance(m, Mapping):
            out += _named(MERGE_METHODS, m, "method", f"merge.methods[{i}]", "params")
    domains = _map(_map(data.get("data")).get("domains"))
    for d, dspec in domains.items():
        for i, src in enumerate(_list(_map(dspec).get("sources"))):
            if not isinstance(src, Mapping):
                continue
            where = f"data.domains.{d}.sources[{i}]"
            out += _named(SOURCES, src, "type", where, "options", domain=d if d in DOMAINS else None)
            verifier = src.get("verifier")
            if isinstance(verifier, Mapping) and verifier:
                meta = {k: v for k, v in verifier.items() if k != "type"}
                if "type" not in verifier:
                    out.append(f"{where}.verifier.type: required (a registered verifier type: "
                               f"{', '.join(VERIFIERS.names())})")
                else:
                    out += VERIFIERS.problems(verifier["type"], meta, where=f"{where}.verifier.type",
                                              params_where=f"{where}.verifier")
    evaluate = _map(data.get("evaluate"))
    if "benchmarks" in evaluate:
        for i, b in enumerate(_list(evaluate.get("benchmarks"))):
            if isinstance(b, Mapping):
                out += _named(BENCHMARKS, b, "name", f"evaluate.benchmarks[{i}]", "options")
    out += _named(EVAL_BACKENDS, evaluate, "backend", "evaluate", "backend_options", default=DEFAULT_EVAL_BACKEND)
    if evaluate.get("experts") == "own_domain" and "benchmarks" in evaluate:
        out += _own_domain_problems(_list(evaluate.get("benchmarks")), list(domains))
    train = _map(data.get("train"))
    out += _named(TRAIN_BACKENDS, train, "backend", "train", "backend_options", default=DEFAULT_TRAIN_BACKEND)
    analysis = _map(data.get("analysis"))
    for i, a in enumerate(_list(analysis.get("analyses"))):
        out += ANALYSES.problems(a, where=f"analysis.analyses[{i}]")
    for name, params in _map(analysis.get("options")).items():
        out += ANALYSES.problems(name, _params(params), where=f"analysis.options.{name}",
                                 params_where=f"analysis.options.{name}")
    for name, params in _map(data.get("envs")).items():
        out += ENVIRONMENTS.problems(name, _params(params), where=f"envs.{name}", params_where=f"envs.{name}")
    return out


def _own_domain_problems(benchmarks: list[Any], domains: list[str]) -> list[str]:
    """`evaluate.experts: own_domain` needs a benchmark of every domain (else that expert is evaluated on
    nothing); unregistered names are reported by `_named` already."""
    covered = {BENCHMARKS.get(b["name"], "benchmark").domain for b in benchmarks
               if isinstance(b, Mapping) and b.get("name") in BENCHMARKS.names()}
    return [f"evaluate.experts: own_domain, but no benchmark of evaluate.benchmarks is of domain {d!r} "
            f"(its expert would be evaluated on nothing)" for d in domains if d in DOMAINS and d not in covered]

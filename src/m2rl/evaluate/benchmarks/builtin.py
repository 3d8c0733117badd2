"""The builtin eval split of every domain (`builtin_math`, `builtin_code`, `builtin_science`, `builtin_if`,
`builtin_agent`): the embedded default's benchmarks.

With `path` set they read that unified-records parquet (the data stage's `data/eval/<domain>.parquet`);
otherwise they regenerate the builtin source (`options.seed`, `options.count`, `options.kinds`,
`options.allow_last_number` as in the data spec) and
keep the records the data stage holds out: `m2rl.data.split.is_eval(id, eval_fraction, split_seed)`
with `options.eval_fraction` (0.2) and `options.split_seed` (0), at most `options.max_eval` of them in
generation order (the data stage's per-domain cap). Each record keeps its own verifier. `m2rl eval --spec`
fills these options from the spec's data section, or reads the data stage's eval parquet when it exists.
Sampling defaults suit a small model on a CPU: K=4 and at most 512 new tokens (the spec overrides).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from m2rl.data.sources.builtin import BuiltinOptions, check_options
from m2rl.evaluate.loading import local_path, unique_ids
from m2rl.evaluate.registry import EvalError, Sampling, benchmark_options, register_benchmark
from m2rl.names import DOMAINS
from m2rl.spec.evaluate import BenchmarkSpec


class BuiltinBenchmarkOptions(BuiltinOptions):
    """Options of the builtin benchmarks: the builtin source's, and how the data stage holds records out."""

    eval_fraction: float = Field(default=0.2, ge=0, lt=1, description="The data stage's held-out fraction.")
    split_seed: int = Field(default=0, description="Seed of the data stage's deterministic split.")
    max_eval: int | None = Field(default=None, ge=1, description="The data stage's cap on held-out records.")

VOTABLE = {"math", "science"}  # verifiers that extract one final answer per response
BUILTIN_SAMPLING = Sampling(temperature=1.0, top_p=0.7, max_new_tokens=512)


def _from_records(name: str, domain: str, path: str) -> list[dict[str, Any]]:
    from m2rl.records import RecordError, read_records

    local = local_path(name, path)  # s3:// files are downloaded first; a missing file is an EvalError
    try:
        recs = list(read_records(local))
    except RecordError as exc:
        raise EvalError(f"{name}: {path}: {exc}") from None
    except Exception as exc:
        raise EvalError(f"{name}: cannot read records from {path}: {exc}") from None
    return [r for r in recs if r["domain"] == domain]


def _regenerate(name: str, domain: str, spec: BenchmarkSpec) -> list[dict[str, Any]]:
    from m2rl.data import builtin
    from m2rl.data.split import is_eval

    opts = benchmark_options(spec)
    try:
        variant = builtin.parse_variant(spec.options, domain, name)
    except ValueError as exc:
        raise EvalError(str(exc)) from None
    cap = opts.max_eval
    try:
        recs = builtin.iter_records(domain, opts.seed, opts.count, variant)
        held_out = [r for r in recs if is_eval(r["id"], opts.eval_fraction, seed=opts.split_seed)]
    except ModuleNotFoundError as exc:
        raise EvalError(f"{name}: the builtin generator of domain {domain!r} is not available ({exc})") from None
    return held_out[: int(cap)] if cap is not None else held_out


def _make_loader(domain: str):
    name = f"builtin_{domain}"

    def load(spec: BenchmarkSpec) -> list[dict[str, Any]]:
        recs = _from_records(name, domain, spec.path) if spec.path else _regenerate(name, domain, spec)
        if not recs:
            raise EvalError(f"{name}: no {domain} records in {spec.path or 'the builtin eval split'}")
        return unique_ids(name, recs)

    load.__doc__ = f"Builtin {domain} eval split (held-out records of the builtin source)."
    load.__name__ = f"load_{name}"
    return load


for _domain in DOMAINS:
    register_benchmark(
        f"builtin_{_domain}", domain=_domain, k=4, sampling=BUILTIN_SAMPLING, votable=_domain in VOTABLE,
        params=BuiltinBenchmarkOptions,
        options_check=lambda options, _domain_listed, where, d=_domain: check_options(options, d, where),
    )(_make_loader(_domain))

"""Evaluation: the paper's benchmarks and the builtin eval splits, sampled with transformers or vLLM,
scored by the verifiers, summarised as Avg@K, pass@k, maj@K with bootstrap confidence intervals.

Public API: `evaluate(model, benchmarks, out, backend=...) -> EvalResult`, `pass_at_k(n, c, k)`,
`avg_at_k(scores)`, `maj_at_k`, `bootstrap_ci`, the benchmark registry (`get_benchmark`,
`benchmark_names`, `register_benchmark`) and `EvalError`.
"""

from __future__ import annotations

from m2rl.evaluate.metrics import avg_at_k, bootstrap_ci, maj_at_k, pass_at_k, summarize
from m2rl.evaluate.registry import (
    Benchmark,
    EvalError,
    Sampling,
    benchmark_names,
    get_benchmark,
    register_benchmark,
)
from m2rl.evaluate.stage import EvalResult, default_model_name, evaluate

__all__ = [
    "Benchmark", "EvalError", "EvalResult", "Sampling", "avg_at_k", "benchmark_names", "bootstrap_ci",
    "default_model_name", "evaluate", "get_benchmark", "maj_at_k", "pass_at_k", "register_benchmark", "summarize",
]

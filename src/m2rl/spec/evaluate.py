"""The `evaluate` section: benchmarks, K and sampling, shared by every model of a study."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from m2rl.names import DOMAINS
from m2rl.spec.base import StrictModel


class BenchmarkSpec(StrictModel):
    """One benchmark to run; unset fields take the benchmark's registered defaults."""

    name: str = Field(description="Registered benchmark (aime24, gpqa_diamond, ifeval, builtin_math, ...).")
    path: str | None = Field(default=None, description="Local path or s3:// URI overriding the HF dataset.")
    k: int | None = Field(default=None, ge=1, description="Samples per problem (Avg@K, pass@k).")
    limit: int | None = Field(default=None, ge=1, description="Evaluate at most this many problems.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0, le=1, description="Nucleus sampling.")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Max generated tokens.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Benchmark-specific options (livecodebench: date_from/date_to; hle: include_images ...).",
    )


class EvaluateSpec(StrictModel):
    """Evaluation of every model of the study with the same settings."""

    backend: str = Field(default="hf", description="Registered generation backend: hf (transformers, CPU) or vllm (GPU).")
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific options, typed by the backend's Params (m2rl list eval_backend)."
    )
    benchmarks: list[BenchmarkSpec] = Field(
        default_factory=lambda: [
            BenchmarkSpec(name=f"builtin_{d}") for d in DOMAINS
        ],
        description="Benchmarks to run.",
    )
    experts: Literal["all", "own_domain"] = Field(
        default="all",
        description="Benchmarks of the single-domain experts: all, or own_domain (only their domain's; no cross-domain cells).",
    )
    seed: int = Field(default=0, description="Sampling seed.")
    batch_size: int = Field(default=16, ge=1, description="Prompts per generation batch (hf backend).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="vLLM tensor parallel size.")
    bootstrap: int = Field(default=1000, ge=10, description="Bootstrap resamples for 95% confidence intervals.")
    score_workers: int | None = Field(
        default=None, ge=1, description="Processes scoring responses (None: the verifiers' default)."
    )
    score_timeout: float | None = Field(
        default=None, gt=0, description="Seconds per scored response (None: the verifiers' default)."
    )
    reuse_samples: bool = Field(
        default=True, description="Reuse stored samples of the same model, benchmark, K, sampling and seed."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use (vllm backend)."
    )
    max_model_len: int | None = Field(
        default=None, ge=16, description="vLLM context length cap (None: the model's own)."
    )

"""Training backends, one module per backend under `m2rl.train.backends`, registered by name in the
`train_backend` registry of `m2rl.registry` (its `Params` types the spec's `train.backend_options`).

A backend turns a `TrainJob` into a trained Hugging Face checkpoint folder. It may check the job
before anything launches (`check`), describe what it would run (`describe`, used by `--dry-run`),
and run it (`run`). Backends import their heavy dependencies inside `run` so that the registry and
the CLI stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from m2rl.registry import TRAIN_BACKENDS, StrictModel

if TYPE_CHECKING:
    from m2rl.train.job import BackendRun, TrainJob
    from m2rl.train.metrics import MetricSink


class TrainBackend(Protocol):
    """What a training backend provides."""

    name: str
    device: str  # "cpu" or "gpu": what `num_devices` counts and what cost/gpu_hours means

    def num_devices(self, job: TrainJob) -> int: ...

    def check(self, job: TrainJob) -> None:
        """Raise TrainError naming the spec field when the job cannot run; nothing is launched."""

    def describe(self, job: TrainJob) -> list[str]:
        """The command (or settings) the backend would run, one argv-style list."""

    def run(self, job: TrainJob, out_dir: Path, sink: MetricSink) -> BackendRun:
        """Train; write the final checkpoint (weights, config, tokenizer) into `out_dir`."""


def register_backend(name: str, *, params: type[StrictModel] | None = None) -> Callable[[type], type]:
    """Class decorator: register a backend class under `name` (constructed without arguments);
    `params` (default the class's `Params`) types the spec's `train.backend_options`."""

    def deco(cls: type) -> type:
        cls.name = name
        return TRAIN_BACKENDS.register(name, params=params)(cls)

    return deco


def get_backend(name: str) -> TrainBackend:
    """A fresh backend instance by its registered name."""
    return TRAIN_BACKENDS.get(name, "train.backend")()


def backend_names() -> list[str]:
    return TRAIN_BACKENDS.names()

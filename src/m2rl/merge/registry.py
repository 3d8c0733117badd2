"""The merge-method registry: each method, by name, with its typed parameters.

A method is one file in `m2rl/merge/methods/` defining a `MergeMethod` subclass decorated with
`@register_method` (the `merge` registry of `m2rl.registry`). It declares `name`, a pydantic `Params` model (unknown parameters are errors) and
implements `merge_tensor(job)` (and, when it needs a pass over the whole model first, `prepare(ctx)`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from m2rl.merge.job import Chunk, MergeContext, TensorJob
from m2rl.registry import MERGE_METHODS, StrictModel


class MergeError(ValueError):
    """A merge that cannot run: unknown method, bad parameter, inputs that do not match."""


class MergeMethod:
    """Base of every merge method: arithmetic in float32 on `job` chunks, output written by `job.write`."""

    name: ClassVar[str]
    Params: ClassVar[type[StrictModel]]
    min_models: ClassVar[int] = 1

    def __init__(self, params: StrictModel, n_models: int):
        self.p = params
        self.n_models = n_models

    def prepare(self, ctx: MergeContext) -> None:
        """A first pass over the whole model, when the method needs one (default: none)."""

    def merge_tensor(self, job: TensorJob) -> None:
        """Write every row of `job`'s merged tensor (default: `merge_chunk` on each chunk)."""
        for chunk in job.chunks():
            job.write(chunk, self.merge_chunk(job, chunk))

    def merge_chunk(self, job: TensorJob, chunk: Chunk):
        """The merged values of one chunk; a method overrides this or `merge_tensor` (checked at registration)."""
        raise TypeError(f"{self.name}: implements neither merge_tensor nor merge_chunk")


def _check_method(cls: type[MergeMethod]) -> None:
    if cls.merge_tensor is MergeMethod.merge_tensor and cls.merge_chunk is MergeMethod.merge_chunk:
        raise TypeError(f"merge method {cls.name!r} must override merge_tensor or merge_chunk")


register_method = MERGE_METHODS.register(check=_check_method)


def get_method(name: str) -> type[MergeMethod]:
    """The method class registered as `name` (a RegistryError names the known ones otherwise)."""
    return MERGE_METHODS.get(name, "method")


def parse_params(cls: type[MergeMethod], params: dict[str, Any] | None) -> StrictModel:
    """Validate a method's parameters; the error names each bad parameter by path."""
    return MERGE_METHODS.parse_params(cls.name, params, "params")

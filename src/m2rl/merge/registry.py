"""The merge-method registry: each method, by name, with its typed parameters.

A method is one file in `m2rl/merge/methods/` defining a `MergeMethod` subclass decorated with
`@register_method`. It declares `name`, a pydantic `Params` model (unknown parameters are errors) and
implements `merge_tensor(job)` (and, when it needs a pass over the whole model first, `prepare(ctx)`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, ClassVar

from pydantic import ValidationError

from m2rl.merge.job import Chunk, MergeContext, TensorJob
from m2rl.spec.base import StrictModel


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


_METHODS: dict[str, type[MergeMethod]] = {}
_loaded = False


def register_method(cls: type[MergeMethod]) -> type[MergeMethod]:
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise ValueError(f"merge method {cls.name!r} registered twice")
    if cls.merge_tensor is MergeMethod.merge_tensor and cls.merge_chunk is MergeMethod.merge_chunk:
        raise TypeError(f"merge method {cls.name!r} must override merge_tensor or merge_chunk")
    _METHODS[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    import m2rl.merge.methods as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    _loaded = True


def method_names() -> list[str]:
    _load()
    return sorted(_METHODS)


def get_method(name: str) -> type[MergeMethod]:
    _load()
    try:
        return _METHODS[name]
    except KeyError:
        raise MergeError(f"method: unknown merge method {name!r}; choose from {', '.join(sorted(_METHODS))}") from None


def parse_params(cls: type[MergeMethod], params: dict[str, Any] | None) -> StrictModel:
    """Validate a method's parameters; the error names each bad parameter."""
    try:
        return cls.Params.model_validate(dict(params or {}))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            msg = "unknown parameter" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"params.{where}: {msg}")
        raise MergeError(f"{cls.name}: " + "; ".join(lines)) from None

"""One registry mechanism for every named thing: merge methods, verifiers, data sources, benchmarks,
analyses, training and evaluation backends.

In the manner of lm-evaluation-harness's `lm_eval/api/registry.py`: an entry registers itself with a
decorator in its own module, a registry discovers its entries by importing every public module of its
package (and the `m2rl.<kind>` entry points of installed distributions), and every entry carries a typed
`Params` model (pydantic, one-line description per field) that the spec's parameters are validated
against when the spec is loaded. Adding a merge method, a verifier, a source, a benchmark, an analysis or
a backend is one new file in that package and nothing else.

The registries themselves are declared here, on the ground floor, by the package they scan: the spec
resolves its names through them without importing the stage packages, and a stage package registers into
them. Errors are uniform: one line per problem naming the field path, the known choices and the closest
one (`merge.methods[0].method: unknown merge method 'tiess'; known: average, ...; did you mean 'ties'?`).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T")


class StrictModel(BaseModel):
    """A spec block or an entry's parameters: a typo in a key must fail, never fall back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class NoParams(StrictModel):
    """The entry takes no parameters."""


class RegistryError(ValueError):
    """An unknown name or bad parameters; `problems` holds one `path: reason` line per problem."""

    def __init__(self, problems: Sequence[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems) if len(self.problems) > 1 else self.problems[0])


def field_path(loc: Iterable[Any]) -> str:
    """`merge.methods[0].params.density` from a location tuple (ints become indices)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def join_path(prefix: str, rest: str) -> str:
    if not prefix:
        return rest
    if not rest:
        return prefix
    return prefix + (rest if rest.startswith("[") else f".{rest}")


def suggestion(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest known name, or ''."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return f"; did you mean {lowered[name.lower()]!r}?"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(what: str, name: Any, known: Iterable[str], where: str = "") -> str:
    """The uniform message of an unknown name."""
    known = sorted(known)
    msg = f"unknown {what} {name!r}; known: {', '.join(known) or '(none)'}{suggestion(str(name), known)}"
    return f"{where}: {msg}" if where else msg


def params_problems(model: type[BaseModel], params: Mapping[str, Any] | None, where: str) -> list[str]:
    """Validation problems of `params` against `model`, one line each, by field path under `where`."""
    try:
        model.model_validate(dict(params or {}))
    except ValidationError as exc:
        return validation_lines(exc, where, model)
    return []


def validation_lines(exc: ValidationError, where: str = "", model: type[BaseModel] | None = None,
                     noun: str = "parameter") -> list[str]:
    """`path: reason` lines of a pydantic error; an unknown key names the known ones and the closest."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        path = join_path(where, field_path(loc)) or "(top level)"
        kind = err["type"]
        msg = err["msg"]
        if kind == "extra_forbidden":
            fields = _fields_at(model, loc[:-1]) if model is not None else None
            key = str(loc[-1]) if loc else ""
            if fields is not None:
                msg = f"unknown {noun}; known: {', '.join(fields) or '(none)'}{suggestion(key, fields)}"
            else:
                msg = "unknown key (check its spelling)"
        elif kind in _BOUNDS:
            msg = f"must be {_BOUNDS[kind]} {next(iter(err['ctx'].values()))}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if path == "(top level)" and all(_OWN_PATH.match(m) for m in msg.splitlines()):
            lines.extend(msg.splitlines())  # a model-level check naming its own fields (`merge.methods: ...`)
            continue
        lines.append(f"{path}: {msg}")
    return lines


_OWN_PATH = re.compile(r"^[a-z_]+(\.[A-Za-z0-9_\[\]-]+)+: ")


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _fields_at(model: type[BaseModel], loc: list[Any]) -> list[str] | None:
    """Field names of the (nested) model at `loc` inside `model`, when it can be followed."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        ann = fields[part].annotation
        current = next((a for a in getattr(ann, "__args__", ()) if hasattr(a, "model_fields")), ann)
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields is not None else None


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name, the object, its typed parameters and what it is."""

    name: str
    obj: T
    params: type[StrictModel]
    description: str
    module: str
    meta: dict[str, Any] = field(default_factory=dict)

    def param_docs(self) -> list[tuple[str, str, str]]:
        """(name, default, description) of every parameter."""
        out = []
        for fname, f in self.params.model_fields.items():
            default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
            out.append((fname, default, f.description or ""))
        return out


class Registry(Generic[T]):
    """Named entries of one kind, discovered from a package, each with a typed `Params` model."""

    def __init__(self, kind: str, what: str, package: str | None = None):
        self.kind = kind  # `m2rl list <kind>`, the entry-point group `m2rl.<kind>`
        self.what = what  # how an error names one entry: "merge method"
        self.package = package
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    def register(self, name: str | None = None, *, params: type[StrictModel] | None = None,
                 description: str | None = None, check: Callable[[Any], None] | None = None,
                 **meta: Any) -> Callable[[T], T]:
        """Decorator: register a function or class under `name` (default its `name` attribute).

        `params` defaults to the object's `Params` attribute, else `NoParams`; `description` to the first
        line of its docstring; `check(obj)` raises when the object is not a valid entry. Extra keywords
        are kept as the entry's metadata.
        """

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None)
            if not key:
                raise TypeError(f"{self.what}: {obj!r} registered without a name")
            model = params or getattr(obj, "Params", None) or NoParams
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"{self.what} {key!r}: Params must be a pydantic model, got {model!r}")
            if check is not None:
                check(obj)
            module = getattr(obj, "__module__", "") or ""
            old = self._entries.get(key)
            if old is not None and (old.module, _qualname(old.obj)) != (module, _qualname(obj)):
                raise ValueError(f"{self.what} {key!r} registered twice ({old.module} and {module})")
            doc = description if description is not None else _doc(obj, module)
            self._entries[key] = Entry(key, obj, model, doc.split("\n")[0].strip(), module, dict(meta))
            return obj

        return deco

    def load(self) -> None:
        """Import every public module of the package (and the entry points of the `m2rl.<kind>` group)."""
        if self._loaded:
            return
        # Other threads wait until every module is imported (a half-loaded registry would miss names);
        # a module that looks names up while it is being imported (same thread) sees those so far.
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                if self.package:
                    pkg = importlib.import_module(self.package)
                    for mod in pkgutil.iter_modules(pkg.__path__):
                        if not mod.name.startswith("_"):
                            importlib.import_module(f"{self.package}.{mod.name}")
                for ep in entry_points(group=f"m2rl.{self.kind}"):
                    ep.load()
                self._loaded = True
            finally:
                self._loading = False

    def names(self) -> list[str]:
        self.load()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        self.load()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def entry(self, name: str, where: str = "") -> Entry[T]:
        """The entry `name`, or a RegistryError naming the known ones and the closest."""
        self.load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RegistryError(unknown(self.what, name, self._entries, where)) from None

    def get(self, name: str, where: str = "") -> T:
        return self.entry(name, where).obj

    def find(self, name: str) -> T | None:
        """The object registered as `name`, or None (one look-up, for hot paths)."""
        self.load()
        entry = self._entries.get(name)
        return entry.obj if entry is not None else None

    def problems(self, name: Any, params: Mapping[str, Any] | None = None, *, where: str = "",
                 params_where: str | None = None, domain: str | None = None) -> list[str]:
        """Everything wrong with `name` and its `params` (never raises): one `path: reason` line each.

        An entry's `options_check(params, domain, where)` metadata adds the problems its `Params` cannot
        express (those that depend on the domain the spec uses it for).
        """
        self.load()
        if not isinstance(name, str) or name not in self._entries:
            return [unknown(self.what, name, self._entries, where)]
        if params is None:
            return []
        at = params_where if params_where is not None else where
        entry = self._entries[name]
        found = params_problems(entry.params, params, at)
        check = entry.meta.get("options_check")
        if not found and check is not None:
            found = list(check(dict(params), domain, at))
        return found

    def parse_params(self, name: str, params: Mapping[str, Any] | None, where: str = "params") -> StrictModel:
        """`name`'s `Params` validated from `params`; a RegistryError lists every bad field by path."""
        model = self.entry(name).params
        try:
            return model.model_validate(dict(params or {}))
        except ValidationError as exc:
            lines = validation_lines(exc, where, model)
            raise RegistryError([f"{name}: {line}" for line in lines]) from None


def _doc(obj: Any, module: str) -> str:
    """The object's own docstring, else its module's (a merge method class documented by its file)."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return (own or getattr(sys.modules.get(module), "__doc__", None) or "").strip()


def _qualname(obj: Any) -> str:
    return getattr(obj, "__qualname__", repr(obj))


# The registries of the project, by the package each discovers its entries in.
MERGE_METHODS: Registry[Any] = Registry("merge", "merge method", "m2rl.merge.methods")
VERIFIERS: Registry[Any] = Registry("verifier", "verifier type", "m2rl.verifiers.types")
SOURCES: Registry[Any] = Registry("source", "data source", "m2rl.data.sources")
BENCHMARKS: Registry[Any] = Registry("benchmark", "benchmark", "m2rl.evaluate.benchmarks")
ANALYSES: Registry[Any] = Registry("analysis", "analysis", "m2rl.analysis.analyses")
TRAIN_BACKENDS: Registry[Any] = Registry("train_backend", "training backend", "m2rl.train.backends")
EVAL_BACKENDS: Registry[Any] = Registry("eval_backend", "evaluation backend", "m2rl.evaluate.backends")
INSTRUCTIONS: Registry[Any] = Registry("instruction", "instruction id", "m2rl.verifiers.instructions")
ENVIRONMENTS: Registry[Any] = Registry("environment", "environment", "m2rl.envs.kinds")

REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r for r in (MERGE_METHODS, VERIFIERS, SOURCES, BENCHMARKS, ANALYSES, TRAIN_BACKENDS, EVAL_BACKENDS,
                        INSTRUCTIONS, ENVIRONMENTS)
}


def registry(kind: str) -> Registry[Any]:
    """A registry by its kind (`merge`, `verifier`, `source`, `benchmark`, `analysis`, ...)."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise RegistryError([unknown("kind", kind, REGISTRIES)]) from None

"""M2RL's environments (`m2rl.envs`) as TRL 1.16 GRPOTrainer environments (`environment_factory`).

TRL's multi-environment mode takes `{name: factory}`; every dataset row names its environment in an
`environment` column, TRL draws one instance per rollout, calls `reset(**row)`, offers the instance's public
methods as the tools of that row (their JSON schemas come from each method's signature and docstring:
`transformers.utils.get_json_schema`), runs the calls the model makes (parsed from its turn by the tokenizer's
response template) and appends their results as `tool` messages, up to `max_tool_calling_iterations` rounds.

Here each registered M2RL environment used by the job's records becomes one class per tool set its records are
shown, whose methods are generated from those tool schemas (same names, parameters, types and descriptions),
each forwarding to `Environment.call`, so TRL and every other path run the same tool code. Single-turn records
get `SingleTurn`, an environment without tools (TRL then generates one turn). The reward of an environment row
is its episode's outcome, read by the trl backend's reward function from the instance (`outcome()`); these
classes define no `get_reward`, so TRL adds no reward column of its own and the per-domain rewards stay one
column.
"""

from __future__ import annotations

import hashlib
import json
import keyword
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from m2rl.envs import Environment, env_name, is_env_record, new_environment
from m2rl.train.job import TrainError

SINGLE_TURN = "m2rl_single_turn"  # the `environment` of a record scored by its verifier
ENV_PREFIX = "env:"
_JSON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
               "object": "dict"}


class SingleTurn:
    """The environment of a single-turn record: no tools, nothing to reset."""

    m2rl_env: Environment | None = None

    def reset(self, **row: Any) -> None:
        return None


def _py_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    return _JSON_TYPES.get(kind, "str")


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split()) or "(no description)"


def _method_source(schema: Mapping[str, Any]) -> tuple[str, str]:
    """(name, Python source) of the method that offers one tool schema."""
    fn = schema.get("function", schema)
    name = fn.get("name")
    params = fn.get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") \
            or name in ("reset", "outcome"):
        raise TrainError(f"tools: {name!r} cannot be offered to TRL as a tool method (not a Python identifier)")
    args, docs = ["self"], []
    ordered = [p for p in props if p in required] + [p for p in props if p not in required]
    for p in ordered:
        if not p.isidentifier() or keyword.iskeyword(p):
            raise TrainError(f"tools: {name}: parameter {p!r} is not a Python identifier; TRL cannot offer it")
        hint = _py_type(props[p])
        args.append(f"{p}: {hint}" if p in required else f"{p}: {hint} | None = None")
        docs.append(f"        {p}: {_one_line(props[p].get('description'))}")
    doc = _one_line(fn.get("description")).replace('"""', "'''").replace("\\", "\\\\")
    body = "\n".join(docs).replace('"""', "'''").replace("\\", "\\\\")
    src = (f"def {name}({', '.join(args)}) -> str:\n"
           f'    """{doc}\n\n    Args:\n{body}\n    """\n' if docs else
           f"def {name}({', '.join(args)}) -> str:\n"
           f'    """{doc}"""\n')
    src += (f"    return self._m2rl_call({name!r}, {{k: v for k, v in locals().items() "
            f"if k != 'self' and v is not None}})\n")
    return name, src


def environment_class(name: str, schemas: Iterable[Mapping[str, Any]],
                      env_params: Mapping[str, Mapping[str, Any]] | None) -> type:
    """A TRL environment class for the M2RL environment `name`, offering `schemas` as methods."""
    namespace: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    for schema in schemas:
        tool, src = _method_source(schema)
        exec(compile(src, f"<m2rl tool {tool}>", "exec"), namespace)  # noqa: S102 - source built from names checked above
        methods[tool] = namespace[tool]
    params = {k: dict(v) for k, v in (env_params or {}).items()}

    def reset(self: Any, **row: Any) -> None:
        verifier = row.get("verifier")
        if isinstance(verifier, str):
            verifier = json.loads(verifier)
        self.m2rl_env = new_environment(verifier, params)
        return None

    def _m2rl_call(self: Any, tool: str, arguments: dict[str, Any]) -> str:
        if self.m2rl_env is None:
            raise RuntimeError(f"{name}: tool {tool} called before reset")
        observation, _ = self.m2rl_env.call(tool, arguments)
        return observation

    attrs = {"__doc__": f"M2RL environment {name!r} for TRL.", "m2rl_env": None, "m2rl_name": name,
             "reset": reset, "_m2rl_call": _m2rl_call, **methods}
    return type(f"M2RL_{name}", (), attrs)


def offered_tools(record: Mapping[str, Any], env_params: Mapping[str, Mapping[str, Any]] | None
                  ) -> list[dict[str, Any]] | None:
    """The tool schemas a record is shown: its environment's for an environment record, else its own."""
    if is_env_record(record):
        return new_environment(record, env_params).tool_schemas()
    return record.get("tools")


def environment_factories(records: Sequence[Mapping[str, Any]],
                          env_params: Mapping[str, Mapping[str, Any]] | None) -> tuple[dict[str, type], list[str]]:
    """`({environment column: class}, each record's environment column)` for the job's records; `({}, [])` when
    no record plays in an environment. A record is offered exactly the tools its environment shows it (the
    record's `tools`, or the subset its verifier names): one TRL environment per environment and tool set, so
    TRL renders each prompt with that record's tools only."""
    if not any(is_env_record(rec) for rec in records):
        return {}, []
    out: dict[str, type] = {SINGLE_TURN: SingleTurn}
    keys: list[str] = []
    by_tools: dict[tuple[str, str], str] = {}
    for rec in records:
        if not is_env_record(rec):
            keys.append(SINGLE_TURN)
            continue
        name = env_name(rec)
        shown = json.dumps([rec.get("tools"), rec["verifier"].get("tools")], sort_keys=True, default=str)
        key = by_tools.get((name, shown))
        if key is None:
            schemas = new_environment(rec, env_params).tool_schemas()
            if not schemas:
                raise TrainError(f"record {rec.get('id')!r}: environment {name!r} offers no tools")
            names = sorted(str(s.get("function", s).get("name")) for s in schemas)
            key = f"{ENV_PREFIX}{name}/{hashlib.sha256(json.dumps(names).encode()).hexdigest()[:10]}"
            if key not in out:
                out[key] = environment_class(name, schemas, env_params)
            by_tools[(name, shown)] = key
        keys.append(key)
    return out, keys


DEFAULT_MAX_TURNS = 8  # model turns of an episode when its environment's params set none


def max_tool_rounds(factories: Mapping[str, type], env_params: Mapping[str, Mapping[str, Any]] | None) -> int:
    """TRL's `max_tool_calling_iterations`: the rounds of tool results after the first model turn, from the
    largest `max_turns` of the job's environments (each episode is still cut at its own)."""
    from m2rl.registry import ENVIRONMENTS

    turns = []
    for key in factories:
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].split("/")[0]
            params = ENVIRONMENTS.parse_params(name, (env_params or {}).get(name), where=f"envs.{name}")
            turns.append(int(getattr(params, "max_turns", None) or DEFAULT_MAX_TURNS))
    return max(1, max(turns, default=DEFAULT_MAX_TURNS) - 1)

"""Multi-turn environments: one `Environment` instance is one episode's sandbox; `run_episodes` plays
episodes in lock-step against a batched `generate`; `score_transcript` replays a finished transcript.

An environment record is a record whose `verifier` block is `{"type": "env", "env": "<registered name>",
...task data...}`; the environment kinds live in `m2rl.envs.kinds`, one module each, registered in the
`environment` registry (`ENVIRONMENTS`) with their typed params. An episode: the record's prompt (the tool
schemas go to the chat template's `tools=`), then rounds of model output -> parsed tool calls (Hermes/Qwen
`<tool_call>` blocks, OpenAI JSON, a bare call list: the `tool_calls` verifier's reader) -> each call's
observation as a `tool` message, until the model answers without a call, `max_turns` model turns were
played, or the episode's completion-token budget is spent. Tools are deterministic, so replaying the
calls of a transcript on a fresh sandbox (`score_transcript`, the `env` verifier) gives the live reward.

Environment params reach an environment from the caller (`params_by_env`, the spec's `envs:` block, keyed
by environment name) or, in processes that only see records (verifier workers, the reward service), from
`configure_environments`, which also exports them in `M2RL_ENV_PARAMS` (JSON) for child processes.
"""

from __future__ import annotations

import json
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from m2rl.records import chat_tools
from m2rl.records.calls import _CLOSE, _OPEN, _UNPARSABLE, read_calls
from m2rl.registry import ENVIRONMENTS, RegistryError, StrictModel, validation_lines

__all__ = [
    "ENV_PARAMS_VAR", "Environment", "EnvError", "Episode", "Outcome", "ToolCall", "Turn", "assistant_message",
    "configure_environments", "configured_params", "env_name", "is_env_record", "new_environment", "parse_turn",
    "play_turn", "run_episodes", "score_transcript", "tool_message",
]

ENV_PARAMS_VAR = "M2RL_ENV_PARAMS"  # JSON {env name: params} for processes that only see records
STOPS = ("answer", "max_turns", "token_budget")
GenerateFn = Callable[[list[list[dict[str, Any]]], list[list[dict[str, Any]] | None]], list[tuple[str, int]]]


class EnvError(ValueError):
    """A record or environment configuration that cannot make an episode; the message names the field."""


# ---- parsing a model turn ----

@dataclass
class ToolCall:
    """One parsed call: `arguments` is a dict, or the raw text when it could not be parsed (`error` says why)."""

    name: str
    arguments: dict[str, Any] | str
    error: str | None = None


@dataclass
class Turn:
    """A model turn: its text without the call blocks, and the calls it makes."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)


def _strip_blocks(text: str) -> str:
    """`text` without its `<tool_call>...</tool_call>` blocks (an unclosed last block runs to the end)."""
    out, pos = [], 0
    while True:
        start = text.find(_OPEN, pos)
        if start < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        pos = end + len(_CLOSE)
    return "".join(out).strip()


def parse_turn(text: str) -> Turn:
    """The calls of one model turn (read as the `tool_calls` verifier reads a response) and its prose.

    With `<tool_call>` blocks the content is the text around them; with OpenAI-style JSON calls the JSON
    is the call, and the content is empty when the whole turn is that JSON.
    """
    text = text if isinstance(text, str) else str(text or "")
    calls: list[ToolCall] = []
    for name, args in read_calls(text):
        if name == _UNPARSABLE:
            calls.append(ToolCall(name, args if isinstance(args, str) else json.dumps(args),
                                  f"the tool call is not valid JSON with a name: {str(args)[:120]}"))
        elif isinstance(args, dict):
            calls.append(ToolCall(name, args))
        else:
            raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(ToolCall(name, raw, f"arguments must be a JSON object, got {raw[:120]!r}"))
    if _OPEN in text:
        content = _strip_blocks(text)
    elif calls:
        content = "" if _is_json(text) else text.strip()
    else:
        content = text.strip()
    return Turn(content, calls)


def _is_json(text: str) -> bool:
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`").strip().removeprefix("json").strip()
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def assistant_message(text: str, turn: Turn | None = None) -> dict[str, Any]:
    """The assistant chat message of a turn, with its calls in OpenAI chat form (chat templates render them);
    `text` keeps the raw model output."""
    turn = turn if turn is not None else parse_turn(text)
    msg: dict[str, Any] = {"role": "assistant", "content": turn.content, "text": text}
    if turn.calls:
        msg["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in turn.calls]
    return msg


def tool_message(call: ToolCall, observation: str) -> dict[str, Any]:
    """The `tool` chat message that answers `call`."""
    return {"role": "tool", "name": call.name, "content": observation}


# ---- records ----

def _verifier_of(record_or_verifier: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not isinstance(record_or_verifier, Mapping):
        return None
    meta = record_or_verifier.get("verifier", record_or_verifier) if "type" not in record_or_verifier \
        else record_or_verifier
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    return meta if isinstance(meta, Mapping) else None


def is_env_record(record_or_verifier: Mapping[str, Any]) -> bool:
    """Whether a record (or its verifier block) is an environment record: `verifier.type == "env"`."""
    meta = _verifier_of(record_or_verifier)
    return meta is not None and meta.get("type") == "env"


def env_name(record_or_verifier: Mapping[str, Any]) -> str:
    """The environment an environment record plays in (`verifier.env`); EnvError otherwise."""
    meta = _verifier_of(record_or_verifier)
    if meta is None or meta.get("type") != "env":
        raise EnvError("verifier.type: not an environment record (expected 'env')")
    name = meta.get("env")
    if not isinstance(name, str) or not name:
        raise EnvError("verifier.env: missing (the name of a registered environment)")
    return name


# ---- outcomes and episodes ----

@dataclass
class Outcome:
    """An episode's result: reward (0/1), what differs from the expected end state, call counts, details."""

    reward: float
    state_diff: dict[str, Any] = field(default_factory=dict)
    tool_calls: int = 0
    tool_errors: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Episode:
    """One played episode: the transcript after the prompt, its counts, reward and why it stopped."""

    messages: list[dict[str, Any]]
    turns: int
    tool_calls: int
    tool_errors: int
    reward: float
    state_diff: dict[str, Any]
    stop: str
    completion_tokens: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of the episode."""
        return json.loads(json.dumps(asdict(self), ensure_ascii=False, default=str))


# ---- the environment base ----

class Environment(ABC):
    """One episode's sandbox. Subclasses (one per kind, in `m2rl.envs.kinds`) implement `_reset`, `tool_schemas`,
    `_call` and `outcome`; `Params` is their typed parameter model."""

    Params: type[StrictModel] = StrictModel
    name: str = ""

    def __init__(self, params: StrictModel | Mapping[str, Any] | None = None):
        model = type(self).Params
        if isinstance(params, model):
            self.params = params
        else:
            try:
                self.params = model.model_validate(dict(params or {}))
            except ValidationError as exc:  # by field, under the environment's name
                raise RegistryError(validation_lines(exc, f"envs.{self.name or type(self).__name__}", model)) from None
        self.record: Mapping[str, Any] = {}
        self.verifier: Mapping[str, Any] = {}
        self.calls = 0
        self.errors = 0

    def reset(self, record: Mapping[str, Any]) -> None:
        """Start a new episode for `record` (a record, or its verifier block)."""
        meta = _verifier_of(record)
        if meta is None:
            raise EnvError(f"record {record.get('id') if isinstance(record, Mapping) else None!r}: "
                           "verifier: must be a mapping")
        self.record = record if "verifier" in record else {"verifier": meta}
        self.verifier = meta
        self.calls = 0
        self.errors = 0
        self._reset(meta)

    def call(self, name: str, arguments: Mapping[str, Any] | str) -> tuple[str, bool]:
        """Run one tool call: (observation text, is_error). A model mistake never raises: it is the observation."""
        self.calls += 1
        try:
            obs, err = self._call(name, arguments)
        except RecursionError:
            obs, err = f"Error executing tool '{name}': arguments nested too deeply", True
        if err:
            self.errors += 1
        return obs, err

    def error_text(self, message: str) -> str:
        """The observation of a call that never reached a tool (unparsable), in the environment's answer form."""
        return message

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The offered tools in OpenAI chat form (`{"type": "function", "function": {...}}`)."""
        tools = self.record.get("tools") if isinstance(self.record, Mapping) else None
        return chat_tools(tools) or []

    @abstractmethod
    def _reset(self, verifier: Mapping[str, Any]) -> None:
        """Seed this episode's sandbox for the record's verifier block."""

    @abstractmethod
    def _call(self, name: str, arguments: Mapping[str, Any] | str) -> tuple[str, bool]:
        """Run one tool on the sandbox: (observation text, is_error)."""

    @abstractmethod
    def outcome(self) -> Outcome:
        """The episode's outcome as the sandbox stands now."""


# ---- configuration and construction ----

_configured: dict[str, dict[str, Any]] | None = None
_config_lock = threading.Lock()


def configure_environments(params_by_env: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Set the process-wide environment params (`{env name: params}`), used where a caller passes none
    (the `env` verifier in a worker, the reward service); exported in `M2RL_ENV_PARAMS` for child processes."""
    global _configured
    value = {str(k): dict(v or {}) for k, v in (params_by_env or {}).items()}
    with _config_lock:
        _configured = value or None
        if value:
            os.environ[ENV_PARAMS_VAR] = json.dumps(value, sort_keys=True)
        else:
            os.environ.pop(ENV_PARAMS_VAR, None)


_from_var: tuple[str, dict[str, dict[str, Any]]] | None = None


def configured_params() -> dict[str, dict[str, Any]]:
    """The process-wide environment params: `configure_environments`'s, else `M2RL_ENV_PARAMS`, else none."""
    global _from_var
    if _configured is not None:
        return _configured
    raw = os.environ.get(ENV_PARAMS_VAR)
    if not raw:
        return {}
    if _from_var is not None and _from_var[0] == raw:
        return _from_var[1]
    try:
        value = json.loads(raw)
    except ValueError:
        raise EnvError(f"{ENV_PARAMS_VAR}: not valid JSON") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise EnvError(f"{ENV_PARAMS_VAR}: must be a JSON object of {{env name: params}}")
    _from_var = (raw, value)
    return value


def new_environment(verifier: Mapping[str, Any], params_by_env: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> Environment:
    """An environment for a record (or its verifier block), its params validated, reset for the record.

    `params_by_env` maps environment names to their params; None reads the process-wide configuration.
    """
    name = env_name(verifier)
    entry = ENVIRONMENTS.entry(name, "verifier.env")
    by_env = configured_params() if params_by_env is None else params_by_env
    raw = by_env.get(name) if isinstance(by_env, Mapping) else None
    params = ENVIRONMENTS.parse_params(name, raw, where=f"envs.{name}")
    env = entry.obj(params)
    env.reset(verifier)
    return env


# ---- playing episodes ----

def _budget_left(max_tokens: int | None, used: int) -> bool:
    return max_tokens is None or used < max_tokens


@dataclass
class _Live:
    record: Mapping[str, Any]
    env: Environment
    prompt: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    max_turns: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    turns: int = 0
    tokens: int = 0
    stop: str | None = None


def _prompt_of(record: Mapping[str, Any], i: int) -> list[dict[str, Any]]:
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise EnvError(f"records[{i}] ({record.get('id')!r}): prompt: must be a non-empty list of chat messages")
    return [dict(m) for m in prompt]


def play_turn(env: Environment, text: str) -> tuple[list[dict[str, Any]], Turn]:
    """One model turn on `env`: the assistant message and each call's `tool` message, in order."""
    turn = parse_turn(text)
    msgs = [assistant_message(text, turn)]
    for call in turn.calls:
        if call.error is not None:
            env.calls += 1
            env.errors += 1
            obs = env.error_text(f"Error executing tool '{call.name}': {call.error}")
        else:
            obs, _ = env.call(call.name, call.arguments)
        msgs.append(tool_message(call, obs))
    return msgs, turn


def run_episodes(records: Sequence[Mapping[str, Any]], generate: GenerateFn, *, max_turns: int = 8,
                 max_tokens: int | None = None, env_params: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> list[Episode]:
    """Play one episode per record, all in lock-step: each round calls `generate` once with the conversations
    still running (prompt + transcript so far) and their tool schemas, and gets `(text, completion tokens)`
    for each. An episode stops when the model answers without a call (`answer`), after `max_turns` model turns
    (the environment's own `max_turns` param, when set, takes precedence) or when its completion tokens reach
    `max_tokens` (`token_budget`); the calls of its last turn are still executed.
    """
    if max_turns < 1:
        raise EnvError(f"max_turns: must be >= 1, got {max_turns}")
    if max_tokens is not None and max_tokens < 1:
        raise EnvError(f"max_tokens: must be >= 1, got {max_tokens}")
    live: list[_Live] = []
    for i, rec in enumerate(records):
        try:
            env = new_environment(rec, env_params)
        except (EnvError, RegistryError) as exc:
            raise EnvError(f"records[{i}] ({rec.get('id') if isinstance(rec, Mapping) else None!r}): {exc}") from None
        own = getattr(env.params, "max_turns", None)
        tools = env.tool_schemas() or None
        live.append(_Live(rec, env, _prompt_of(rec, i), tools, int(own) if own else max_turns))
    while True:
        running = [ep for ep in live if ep.stop is None]
        if not running:
            break
        outs = generate([ep.prompt + ep.messages for ep in running], [ep.tools for ep in running])
        if not isinstance(outs, (list, tuple)) or len(outs) != len(running):
            raise EnvError(f"generate returned {len(outs) if isinstance(outs, (list, tuple)) else type(outs).__name__}"
                           f" results for {len(running)} conversations")
        for ep, out in zip(running, outs, strict=True):
            text, n = out
            ep.turns += 1
            ep.tokens += int(n)
            msgs, turn = play_turn(ep.env, text)
            ep.messages.extend(msgs)
            if not turn.calls:
                ep.stop = "answer"
            elif not _budget_left(max_tokens, ep.tokens):
                ep.stop = "token_budget"
            elif ep.turns >= ep.max_turns:
                ep.stop = "max_turns"
    episodes = []
    for ep in live:
        out = ep.env.outcome()
        episodes.append(Episode(ep.messages, ep.turns, out.tool_calls, out.tool_errors, out.reward, out.state_diff,
                                ep.stop or "answer", ep.tokens, out.details))
    return episodes


# ---- scoring a finished transcript ----

def _transcript_calls(messages: Sequence[Mapping[str, Any]] | str) -> list[ToolCall]:
    if isinstance(messages, str):
        return parse_turn(messages).calls
    calls: list[ToolCall] = []
    for m in messages:
        if not isinstance(m, Mapping) or m.get("role") != "assistant":
            continue
        tcs = m.get("tool_calls")
        if isinstance(tcs, list) and tcs:
            for tc in tcs:
                fn = tc.get("function", tc) if isinstance(tc, Mapping) else {}
                name = fn.get("name") if isinstance(fn, Mapping) else None
                args = fn.get("arguments", {}) if isinstance(fn, Mapping) else {}
                if not isinstance(name, str):
                    calls.append(ToolCall(_UNPARSABLE, json.dumps(tc, default=str)[:200], "the tool call has no name"))
                elif name == _UNPARSABLE:
                    calls.append(ToolCall(name, str(args), "the tool call is not valid JSON with a name"))
                else:
                    calls.append(ToolCall(name, args if isinstance(args, (Mapping, str)) else json.dumps(args)))
            continue
        text = m.get("text") if isinstance(m.get("text"), str) else m.get("content")
        if isinstance(text, str):
            calls.extend(parse_turn(text).calls)
    return calls


def score_transcript(verifier: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | str,
                     env_params: Mapping[str, Mapping[str, Any]] | None = None) -> Outcome:
    """Replay the tool calls of a finished transcript (its messages after the prompt, or the completion text)
    on a fresh sandbox and score it: tools are deterministic, so this is the live episode's outcome."""
    env = new_environment(verifier, env_params)
    for call in _transcript_calls(messages):
        if call.error is not None:
            env.calls += 1
            env.errors += 1
        else:
            env.call(call.name, call.arguments)
    return env.outcome()

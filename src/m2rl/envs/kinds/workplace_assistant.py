"""`workplace_assistant`: WorkBench's workplace sandbox (NeMo Gym's `workplace_assistant` environment).

Emails, calendar, web analytics, project tasks, a CRM and a company directory behind 27 tools. The reward is
WorkBench's outcome metric: 1 when the sandbox after the episode equals the sandbox after the record's
ground-truth calls run on a fresh one (every mutable table, case-insensitive except status, list and board),
so a missing call, a wrong id and any other change (an extra deletion) all score 0; read-only calls never
matter. The verifier block: `{"type": "env", "env": "workplace_assistant", "ground_truth": [{name,
arguments}], "sandbox": "workbench" | "generated", "sandbox_seed": <int, generated only>, "tools": [offered tool
names, generated only], "category": ...}`;
a block without `sandbox` is a WorkBench row and needs `envs.workplace_assistant.data`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from m2rl.envs.api import EnvError, Environment, Outcome
from m2rl.envs.workplace import generated
from m2rl.envs.workplace.schemas import BY_NAME, schemas
from m2rl.envs.workplace.state import Sandbox, State, cached, diff_states, load_workbench
from m2rl.envs.workplace.tools import Err, Toolbox
from m2rl.records import chat_tools
from m2rl.registry import ENVIRONMENTS, StrictModel

NAME = "workplace_assistant"
SANDBOXES = ("workbench", "generated")
EXPECTED_CACHE = 4096  # expected end states kept per process (a record is scored once per sample)


class WorkplaceParams(StrictModel):
    """Parameters of the `workplace_assistant` environment (`envs.workplace_assistant` in the spec)."""

    data: str | None = Field(
        default=None,
        description="Folder or URI (s3://...) of the WorkBench sandbox CSVs (emails.csv, calendar_events.csv, "
                    "analytics_data.csv, project_tasks.csv, customer_relationship_manager_data.csv, "
                    "email_addresses.csv; top level or processed/ and raw/); None: only generated-sandbox records.",
    )
    seed: int = Field(default=0, description="Seed of the generated sandbox for records that do not name one.")
    max_turns: int | None = Field(
        default=None, ge=1, description="Model turns per episode; None: the caller's max_turns (NeMo Gym: 6 steps).")
    observation: Literal["json", "text"] = Field(
        default="json",
        description="json: a tool answer as the NeMo Gym server's body ({\"output\": ...}); text: the bare answer.",
    )


_expected: OrderedDict[tuple[str, str], tuple[State, list[str]]] = OrderedDict()
_expected_lock = threading.Lock()


def _ground_truth(meta: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    gt = meta.get("ground_truth")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except ValueError:
            raise EnvError("verifier.ground_truth: not valid JSON") from None
    if gt is None:
        raise EnvError("verifier.ground_truth: missing (the calls that solve the task)")
    if isinstance(gt, Mapping):
        gt = [gt]
    if not isinstance(gt, list):
        raise EnvError("verifier.ground_truth: must be a list of {name, arguments}")
    out = []
    for i, call in enumerate(gt):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise EnvError(f"verifier.ground_truth[{i}]: must be {{name, arguments}}")
        args = call.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise EnvError(f"verifier.ground_truth[{i}].arguments: not valid JSON") from None
        if not isinstance(args, Mapping):
            raise EnvError(f"verifier.ground_truth[{i}].arguments: must be an object")
        out.append((call["name"], dict(args)))
    return out


def _answer_text(result: Any, form: str) -> str:
    if form == "json":
        return json.dumps({"output": result}, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(result) if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)


@ENVIRONMENTS.register(NAME, params=WorkplaceParams)
class WorkplaceAssistant(Environment):
    """WorkBench's workplace sandbox: 27 tools over emails, calendar, analytics, tasks, CRM and directory."""

    Params = WorkplaceParams
    name = NAME

    def _sandbox(self, meta: Mapping[str, Any]) -> Sandbox:
        kind = meta.get("sandbox", "workbench")
        if kind not in SANDBOXES:
            raise EnvError(f"verifier.sandbox: must be one of {', '.join(SANDBOXES)}, got {kind!r}")
        if kind == "generated":
            seed = meta.get("sandbox_seed", self.params.seed)
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise EnvError(f"verifier.sandbox_seed: must be an integer, got {seed!r}")
            return cached(f"generated:{seed}", lambda: generated.generate(seed))
        root = self.params.data
        if not root:
            raise EnvError(f"envs.{NAME}.data: not set, but record {self.record.get('id')!r} was written for the "
                           "WorkBench sandbox: set it to the folder or URI of the WorkBench CSVs")
        return cached(f"workbench:{root}", lambda: load_workbench(root))

    def _reset(self, verifier: Mapping[str, Any]) -> None:
        self.sandbox = self._sandbox(verifier)
        self.state = State(self.sandbox)
        self.toolbox = Toolbox(self.state)
        self.ground_truth = _ground_truth(verifier)

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The record's tools; else the tools the verifier block names (generated records); else all 27."""
        tools = self.record.get("tools") if isinstance(self.record, Mapping) else None
        if tools:
            return chat_tools(tools) or []
        names = self.verifier.get("tools")
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            unknown = [n for n in names if n not in BY_NAME]
            if unknown:
                raise EnvError(f"verifier.tools: unknown tool(s) {', '.join(unknown)}")
            return schemas(names)
        return schemas()

    def error_text(self, message: str) -> str:
        return _answer_text(message, self.params.observation)

    def _call(self, name: str, arguments: Mapping[str, Any] | str) -> tuple[str, bool]:
        form = self.params.observation
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                return _answer_text(f"Error executing tool '{name}': arguments are not valid JSON ({exc})", form), True
        if not isinstance(arguments, Mapping):
            return _answer_text(f"Error executing tool '{name}': arguments must be a JSON object", form), True
        result, err = self.toolbox.run(str(name), {str(k): v for k, v in arguments.items()})
        return _answer_text(str(result) if isinstance(result, Err) else result, form), err

    def expected(self) -> tuple[State, list[str]]:
        """The state after the ground-truth calls on a fresh sandbox, and the errors those calls met."""
        key = (self.sandbox.key, json.dumps(self.ground_truth, sort_keys=True, default=str))
        with _expected_lock:
            hit = _expected.get(key)
            if hit is not None:
                _expected.move_to_end(key)
                return hit
        state = State(self.sandbox)
        box = Toolbox(state)
        errors = []
        for i, (name, args) in enumerate(self.ground_truth):
            result, err = box.run(name, args)
            if err:  # WorkBench prints and skips a failing ground-truth call
                errors.append(f"ground_truth[{i}] {name}: {result}")
        with _expected_lock:
            _expected[key] = (state, errors)
            while len(_expected) > EXPECTED_CACHE:
                _expected.popitem(last=False)
        return state, errors

    def outcome(self) -> Outcome:
        want, gt_errors = self.expected()
        diff = diff_states(self.state, want)
        details: dict[str, Any] = {"sandbox": self.sandbox.key, "changed": self.state.changed(),
                                   "expected_changed": want.changed(), "ground_truth_calls": len(self.ground_truth)}
        if gt_errors:
            details["ground_truth_errors"] = gt_errors
        if diff:
            details["reason"] = "the sandbox differs from the state the ground-truth calls leave"
        return Outcome(0.0 if diff else 1.0, diff, self.calls, self.errors, details)

"""The `env` verifier: an environment record's transcript, replayed on a fresh sandbox and scored by its
environment (`m2rl.envs.score_transcript`), so every scoring path (the pool, the reward service, the
OpenRLHF reward hook) scores multi-turn episodes as the live episode loop does.

`response` is the completion text: the tool calls it holds (`<tool_call>` blocks of every assistant turn,
or OpenAI-style JSON calls) are executed in order; tool answers in it are ignored (they are recomputed).
The environment's params come from the process-wide configuration (`m2rl.envs.configure_environments`,
or `M2RL_ENV_PARAMS` in a worker).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from m2rl.registry import StrictModel
from m2rl.verifiers.registry import Score, register_verifier


class EnvVerifierParams(StrictModel):
    """The `env` verifier block: the environment's name and its task data."""

    env: str = Field(description="The registered environment the record plays in (e.g. workplace_assistant).")
    ground_truth: list[Any] | dict[str, Any] | str | None = Field(
        default=None, description="The calls that solve the task (list of {name, arguments}), or their JSON text.")
    sandbox: Literal["workbench", "generated"] | None = Field(
        default=None, description="Which sandbox the record was written for; None: the real (WorkBench) data.")
    sandbox_seed: int | None = Field(default=None, description="Seed of the generated sandbox the record uses.")
    category: str | None = Field(default=None, description="The source's task category (analysis only).")
    environment_name: str | None = Field(default=None, description="The source's environment name (as NeMo Gym's).")
    id: int | str | None = Field(default=None, description="The source row's id (as NeMo Gym's).")
    kind: str | None = Field(default=None, description="The generator's task level: direct or lookup (generated records).")
    tools: list[str] | None = Field(default=None, description="Names of the offered tools (generated records; else all).")


@register_verifier("env", params=EnvVerifierParams, inline_safe=True)  # pure Python over an in-memory sandbox
def verify_env(response: str, label: str, meta: Any) -> Score:
    from m2rl.envs.api import score_transcript

    out = score_transcript(meta, response)
    details: dict[str, Any] = {"tool_calls": out.tool_calls, "tool_errors": out.tool_errors, **out.details}
    if out.state_diff:
        details["state_diff"] = out.state_diff
    return Score(out.reward, details)

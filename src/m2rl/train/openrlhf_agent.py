"""OpenRLHF 0.11.x agent file: `--train.agent_func_path <path of this file>` runs M2RL's environments.

OpenRLHF loads the file by path (`openrlhf/trainer/ray/vllm_engine.py` `_load_agent_executor`), takes its
`AgentExecutor` (a `MultiTurnAgentExecutor` over `AgentInstance`) and, for every prompt of a rollout, calls
`AgentInstance().reset({"observation": prompt, "label": label})`, then alternates vLLM generation with
`step({"observation_text", "action_text", "label", "sampling_params"})` until `step` says `done` or the token
budget (`max_len`) is spent. With an agent file OpenRLHF sends every sample of a run through it (it sets
`reward.remote_url = "agent"`), so a mixed batch holds both kinds of record and each is routed here:

- a single-turn record (any verifier but `env`): its one turn is scored by the verifiers' OpenRLHF hook
  (`m2rl.verifiers.openrlhf_reward.reward_func`, the same scoring, think gate and `extra_logs` as without an
  agent) and the episode ends;
- an environment record (`verifier.type == "env"`): the turn's tool calls run in the record's environment
  (`m2rl.envs`, params from `M2RL_ENV_PARAMS` or the RayJob's spec `envs:`), their results go back to the model
  as the chat template renders `tool` messages (`m2rl.records.tool_results_text`), until the model answers
  without a call or the environment's `max_turns`; the reward is the episode's outcome, given on the last step
  (earlier steps 0: OpenRLHF sums a step's rewards into the sample's reward).

The label of a sample is the M2RL record (`m2rl.verifiers.encode_label`), the prompt the record's prompt as
rendered for the run (`write_prompts`, tool schemas included). The file imports OpenRLHF, so it runs on the
GPU image; tests drive it with OpenRLHF 0.11.2's own `MultiTurnAgentExecutor` and a stand-in engine.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor

from m2rl.envs import configured_params, is_env_record, new_environment, play_turn
from m2rl.envs.api import EnvError
from m2rl.models import ensure_tool_calling
from m2rl.records import tool_results_text
from m2rl.verifiers import openrlhf_reward
from m2rl.verifiers.labels import decode_label
from m2rl.verifiers.registry import Score

DEFAULT_MAX_TURNS = 8


@functools.lru_cache(maxsize=4)
def _spec_envs(spec_text: str) -> dict[str, dict[str, Any]]:
    import yaml

    from m2rl.spec.study import spec_from_dict

    return dict(spec_from_dict(yaml.safe_load(spec_text), openrlhf_reward.SPEC_ENV).envs)


def env_params() -> dict[str, dict[str, Any]]:
    """The environments' params: `M2RL_ENV_PARAMS` (set by the openrlhf backend), else the RayJob's spec."""
    params = configured_params()
    if params:
        return params
    spec = os.environ.get(openrlhf_reward.SPEC_ENV)
    return _spec_envs(spec) if spec else {}


def _tensor(value: float) -> Any:
    import torch

    return torch.tensor(float(value))


class AgentInstance(AgentInstanceBase):
    """One sample's episode (see the module doc)."""

    tokenizer: Any = None  # the engine's tokenizer, bound by AgentExecutor.execute

    def __init__(self, *args: Any, **kwargs: Any):
        self.record: dict[str, Any] = {}
        self.env: Any = None
        self.turns = 0
        self.max_turns = DEFAULT_MAX_TURNS

    async def reset(self, states: dict, **kwargs: Any) -> dict:
        self.record = decode_label(states["label"])
        if is_env_record(self.record):
            self.env = new_environment(self.record, env_params())
            self.max_turns = int(getattr(self.env.params, "max_turns", None) or DEFAULT_MAX_TURNS)
        return {"observation": states["observation"]}

    async def step(self, states: dict, **kwargs: Any) -> dict:
        action = states["action_text"]
        if self.env is None:
            prompt = states["observation_text"]
            result = await asyncio.to_thread(openrlhf_reward.reward_func, [prompt + action], [prompt],
                                             [states["label"]])
            return self._result(result, "", True, states)
        self.turns += 1
        messages, turn = play_turn(self.env, action)
        done = not turn.calls or self.turns >= self.max_turns
        if done:
            out = self.env.outcome()
            score = Score(out.reward, {"reason": "episode outcome", "state_diff": out.state_diff})
            result = openrlhf_reward.reward_result([score], [self.record.get("domain")], [out.tool_calls],
                                                   [out.tool_errors])
            return self._result(result, "", True, states)
        feedback = tool_results_text(ensure_tool_calling(self.tokenizer), messages[1:])
        result = openrlhf_reward.reward_result([Score(0.0)], [None], [0], [0])
        return self._result(result, feedback, False, states)

    @staticmethod
    def _result(result: dict, feedback: str, done: bool, states: dict) -> dict:
        return {
            "rewards": result["rewards"][0], "scores": result["scores"][0], "environment_feedback": feedback,
            "done": done, "sampling_params": states.get("sampling_params"),
            "extra_logs": {k: v[0] for k, v in result["extra_logs"].items()},
        }


class AgentExecutor(MultiTurnAgentExecutor):
    """OpenRLHF's multi-turn executor over M2RL's AgentInstance, with the engine's tokenizer bound to it."""

    def __init__(self) -> None:
        super().__init__(AgentInstance)

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        AgentInstance.tokenizer = hf_tokenizer
        return await super().execute(prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images)


__all__ = ["AgentExecutor", "AgentInstance", "EnvError", "env_params"]

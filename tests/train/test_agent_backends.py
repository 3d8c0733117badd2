"""Environment records on both training backends: TRL's `environment_factory` (real GRPO steps of a tiny model
on a mixed batch) and OpenRLHF 0.11.2's multi-turn agent path (its own `MultiTurnAgentExecutor` driving M2RL's
agent file with a stand-in vLLM engine)."""

from __future__ import annotations

import asyncio
import inspect
import json
from dataclasses import dataclass, field

import pytest

from m2rl.data import builtin
from m2rl.envs import new_environment
from m2rl.records import write_records
from m2rl.verifiers import encode_label
from tests.train.conftest import OPENRLHF_CACHE, domain_records, tiny_spec


def workplace_records(n: int, seed: int = 0) -> list[dict]:
    variant = builtin.parse_variant({"kinds": ["workplace"]}, "agent", "test")
    return list(builtin.iter_records("agent", seed, n, variant))[:n]


def _args(call: dict) -> dict:
    """A ground-truth call's arguments (the blend and the generator write them as JSON text)."""
    args = call["arguments"]
    return json.loads(args) if isinstance(args, str) else dict(args)


def _call_text(calls: list[dict]) -> str:
    return "".join("<tool_call>\n" + json.dumps({"name": c["name"], "arguments": _args(c)}) + "\n</tool_call>"
                   for c in calls)


# ---- TRL ----

def test_trl_environment_class_offers_the_record_tools_and_runs_them():
    from transformers.utils import get_json_schema

    from m2rl.train import trl_envs

    recs = workplace_records(6) + domain_records("math", 1)
    factories, keys = trl_envs.environment_factories(recs, {})
    assert keys[-1] == trl_envs.SINGLE_TURN and all(k.startswith(trl_envs.ENV_PREFIX) for k in keys[:-1])
    rec = recs[0]
    cls = factories[keys[0]]
    env = cls()
    env.reset(verifier=json.dumps(rec["verifier"]), prompt=rec["prompt"], label=rec["label"])
    offered = new_environment(rec, {}).tool_schemas()
    methods = {n: m for n, m in inspect.getmembers(cls, predicate=inspect.isfunction)
               if n not in ("reset",) and not n.startswith("_")}
    assert set(methods) == {s["function"]["name"] for s in offered}
    for s in offered:  # TRL renders each method's schema: same parameters and required ones as the tool's
        got = get_json_schema(getattr(env, s["function"]["name"]))["function"]
        assert set(got["parameters"]["properties"]) == set(s["function"]["parameters"]["properties"])
        assert set(got["parameters"].get("required", [])) == set(s["function"]["parameters"].get("required", []))
    # the ground truth, called the way TRL's tool loop calls a method (`tool(**arguments)`), solves the task
    for call in rec["verifier"]["ground_truth"]:
        getattr(env, call["name"])(**_args(call))
    assert env.m2rl_env.outcome().reward == 1.0
    # a wrong id is the tool's answer (as the real tool gives it), not an exception, and changes nothing
    name = rec["verifier"]["ground_truth"][0]["name"]
    args = _args(rec["verifier"]["ground_truth"][0])
    key = next(k for k in args if k.endswith("_id"))
    args[key] = "99999999"
    fresh = factories[keys[0]]()
    fresh.reset(verifier=json.dumps(rec["verifier"]))
    assert "not found" in getattr(fresh, name)(**args).lower()
    assert fresh.m2rl_env.outcome().reward == 0.0


def test_trl_domain_reward_routes_rows_to_verifier_or_episode():
    from m2rl.train import trl_envs
    from m2rl.train.backends.trl import DomainReward
    from m2rl.verifiers import trl_reward

    env_rec, math_rec = workplace_records(1)[0], domain_records("math", 1)[0]
    factories, keys = trl_envs.environment_factories([env_rec, math_rec], {})
    solved = factories[keys[0]]()
    solved.reset(verifier=json.dumps(env_rec["verifier"]))
    for call in env_rec["verifier"]["ground_truth"]:
        getattr(solved, call["name"])(**_args(call))
    untouched = factories[keys[0]]()
    untouched.reset(verifier=json.dumps(env_rec["verifier"]))
    seen, logged = [], {}

    def adapter(prompts, completions, **cols):
        seen.append(cols["id"])
        return trl_reward.reward_func(prompts=prompts, completions=completions, **cols)

    rows = [env_rec, env_rec, math_rec]
    cols = {"label": [r["label"] for r in rows], "verifier": [json.dumps(r["verifier"]) for r in rows],
            "domain": [r["domain"] for r in rows], "id": [r["id"] for r in rows]}
    rewards = DomainReward(adapter)(
        prompts=[r["prompt"] for r in rows],
        completions=[[{"role": "assistant", "content": "done"}]] * 2
        + [[{"role": "assistant", "content": f"Answer: \\boxed{{{math_rec['label']}}}"}]],
        environments=[solved, untouched, trl_envs.SingleTurn()], log_metric=logged.__setitem__, **cols)
    assert rewards == [1.0, 0.0, 1.0]
    assert seen == [[math_rec["id"]]]  # only the single-turn row reached the verifiers
    assert logged["domain_reward/agent"] == 0.5 and logged["domain_reward/math"] == 1.0
    assert logged["env/tool_calls"] == len(env_rec["verifier"]["ground_truth"]) / 2


def test_tool_calls_parsed_by_trl_reach_the_tool_calls_verifier():
    from m2rl.verifiers.trl_reward import completion_text

    msg = {"role": "assistant", "content": "",
           "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}
    assert completion_text([msg]) == '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'


def test_trl_two_grpo_steps_on_a_mixed_batch_with_an_environment(tmp_path, mlflow_store):
    """2 real GRPO steps of a tiny random model on single-turn records of four domains and workplace episodes,
    all in every batch (6 prompts, a rollout of 6)."""
    from m2rl import tracking
    from m2rl.train.stage import train

    # the user turn only (the template renders the 2-3 tools the verifier names), to keep the prompts short
    env_recs = [{**r, "prompt": [m for m in r["prompt"] if m["role"] == "user"]} for r in workplace_records(2)]
    recs = env_recs + [r for d in ("math", "code", "science", "if") for r in domain_records(d, 1)]
    data = tmp_path / "data" / "train" / "mix.parquet"
    write_records(data, recs)
    spec = tiny_spec(tmp_path, max_new_tokens=16, max_prompt_len=4096, rollout_batch_size=6)
    with tracking.stage_run("train", model="mix"):
        result = train(spec, "mix", str(data), "random:tiny", str(tmp_path / "out"))
    assert result.steps == 2
    import mlflow

    metrics = mlflow.get_run(result.mlflow_run_id).data.metrics
    assert "train/reward" in metrics
    assert all(f"train/{d}/reward" in metrics for d in ("math", "code", "science", "if", "agent"))
    assert "train/env/tool_calls" in metrics  # the environment rows were played and scored by their episodes
    saved = (tmp_path / "out" / "tokenizer_config.json").read_text() + "".join(
        p.read_text() for p in (tmp_path / "out").glob("*.jinja"))
    assert "<tool_response>" in saved  # the checkpoint keeps the template its episodes were rendered with


# ---- OpenRLHF ----

@dataclass
class _Sampling:  # the attributes OpenRLHF's executor reads and writes on vLLM's SamplingParams
    max_tokens: int | None = None
    logprobs: int | None = None


@dataclass
class _Completion:
    token_ids: list[int]
    text: str
    finish_reason: str = "stop"
    logprobs: list | None = None


@dataclass
class _Output:
    outputs: list[_Completion]


@dataclass
class _Engine:
    """A stand-in for OpenRLHF's vLLM engine: scripted turns, the token ids of their text + end of turn."""

    tokenizer: object
    turns: list[str]
    prompts: list[list[int]] = field(default_factory=list)

    async def generate(self, prompt_ids, sampling_params, multi_modal_data=None):
        self.prompts.append(list(prompt_ids))
        text = self.turns[len(self.prompts) - 1] if len(self.prompts) <= len(self.turns) else "All done."
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return _Output([_Completion(ids, text)])


@pytest.fixture(scope="module")
def openrlhf_agent():
    """M2RL's agent file under OpenRLHF 0.11.2's own agent module (from the released wheel)."""
    import importlib
    import sys

    from m2rl.train.openrlhf_parser import OpenRLHFSourceError, openrlhf_agent_modules

    try:
        with openrlhf_agent_modules(cache=OPENRLHF_CACHE):
            sys.modules.pop("m2rl.train.openrlhf_agent", None)
            agent = importlib.import_module("m2rl.train.openrlhf_agent")
    except OpenRLHFSourceError as exc:
        if exc.unreachable:
            pytest.skip(f"OpenRLHF's wheel cannot be downloaded here: {exc}")
        raise
    sys.modules.pop("m2rl.train.openrlhf_agent", None)  # it imported the stubs: no later import may reuse it
    return agent


@pytest.fixture(scope="module")
def tokenizer():
    from m2rl.models import build_tokenizer, ensure_tool_calling

    return ensure_tool_calling(build_tokenizer(1024))


def _execute(agent, tokenizer, rec, turns, max_length=4096):
    from m2rl.records import render_chat

    prompt = render_chat(tokenizer, rec["prompt"], rec.get("tools"))
    engine = _Engine(tokenizer, turns)
    out = asyncio.run(agent.AgentExecutor().execute(prompt, encode_label(rec), _Sampling(logprobs=None), max_length,
                                                    tokenizer, engine))
    return out, engine


def test_openrlhf_agent_file_plays_an_episode_as_openrlhf_drives_it(openrlhf_agent, tokenizer, monkeypatch):
    from m2rl.envs import ENV_PARAMS_VAR

    monkeypatch.delenv(ENV_PARAMS_VAR, raising=False)
    rec = next(r for r in workplace_records(8) if len(r["verifier"]["ground_truth"]) >= 1)
    gt = rec["verifier"]["ground_truth"]
    out, engine = _execute(openrlhf_agent, tokenizer, rec, [_call_text(gt), "Done: the task is complete."])
    assert out["reward"] == 1.0 and float(out["scores"]) == 1.0
    assert len(out["action_ranges"]) == 2 and len(engine.prompts) == 2
    # the second turn saw the tool's result, rendered as the chat template renders tool messages
    second = tokenizer.decode(engine.prompts[1])
    assert "<tool_response>" in second and second.rstrip().endswith("assistant")
    logs = out["extra_logs"]
    assert float(logs["m2rl/agent/count"]) == 1.0 and float(logs["m2rl/agent/reward_sum"]) == 1.0
    assert float(logs["m2rl/env/tool_calls"]) == len(gt)
    # the model's tokens are the action ranges; the tool results between them are not
    (s0, e0), (s1, e1) = out["action_ranges"]
    assert e0 < s1 and out["observation_tokens"][s1 - 1] != tokenizer.eos_token_id


def test_openrlhf_agent_file_scores_wrong_and_destructive_episodes_zero(openrlhf_agent, tokenizer):
    rec = next(r for r in workplace_records(8) if any(k.endswith("_id") for k in
                                                       _args(r["verifier"]["ground_truth"][0])))
    call = dict(rec["verifier"]["ground_truth"][0])
    args = _args(call)
    key = next(k for k in args if k.endswith("_id"))
    args[key] = "99999999"
    wrong, _ = _execute(openrlhf_agent, tokenizer, rec, [_call_text([{**call, "arguments": args}]), "ok"])
    assert wrong["reward"] == 0.0
    other = next(f"{i:08d}" for i in range(1, 30) if f"{i:08d}" not in json.dumps(rec["verifier"]["ground_truth"]))
    extra = rec["verifier"]["ground_truth"] + [{"name": "email_delete_email", "arguments": {"email_id": other}}]
    destructive, _ = _execute(openrlhf_agent, tokenizer, rec, [_call_text(extra), "ok"])
    assert destructive["reward"] == 0.0
    assert float(destructive["extra_logs"]["m2rl/env/tool_calls"]) == len(extra)
    silent, engine = _execute(openrlhf_agent, tokenizer, rec, ["I cannot do that."])
    assert silent["reward"] == 0.0 and len(engine.prompts) == 1  # an answer without a call ends the episode


def test_openrlhf_agent_file_routes_single_turn_records_to_the_verifiers(openrlhf_agent, tokenizer, monkeypatch):
    monkeypatch.setenv("M2RL_REQUIRE_THINK_CLOSE", "0")
    rec = domain_records("math", 1)[0]
    out, engine = _execute(openrlhf_agent, tokenizer, rec, [f"Answer: \\boxed{{{rec['label']}}}"])
    assert out["reward"] == 1.0 and len(engine.prompts) == 1
    assert float(out["extra_logs"]["m2rl/math/count"]) == 1.0
    assert float(out["extra_logs"]["m2rl/env/tool_calls"]) == 0.0
    bad, _ = _execute(openrlhf_agent, tokenizer, rec, ["Answer: \\boxed{no}"])
    assert bad["reward"] == 0.0


def test_openrlhf_command_takes_the_agent_file_when_the_data_holds_environment_records(
        tmp_path, openrlhf_parser):
    from m2rl.train.backends.openrlhf import OpenRLHFBackend, job_paths
    from m2rl.train.job import TrainJob

    spec = tiny_spec(tmp_path, backend="openrlhf", gpus_per_node=1)
    data = tmp_path / "mix.parquet"
    write_records(data, workplace_records(2) + domain_records("math", 1))
    job = TrainJob(spec=spec, run="mix", data=str(data), base="random:tiny", out=str(tmp_path / "o"),
                   checkpoint_dir=str(tmp_path / "c"), scratch=tmp_path / "s", steps=2, data_local=data)
    paths = job_paths(job)
    assert paths.agent and paths.agent.endswith("openrlhf_agent.py")
    argv = OpenRLHFBackend.command(job, "python")
    args, _ = openrlhf_parser.parse(argv[3:])
    assert args.train.agent_func_path == paths.agent
    assert args.reward.remote_url == ["agent"]  # OpenRLHF's own rewrite: every sample goes through the agent
    write_records(data, domain_records("math", 2))
    assert job_paths(job).agent is None

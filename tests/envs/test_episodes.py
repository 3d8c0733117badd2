"""Episodes: real workbench rows scored by WorkBench's outcome metric, the lock-step loop and its stops,
the turn parser, transcript replay (the `env` verifier) and the builtin multi-turn kind."""

import json

import pytest

from m2rl.envs import (
    EnvError,
    configure_environments,
    is_env_record,
    new_environment,
    parse_turn,
    run_episodes,
    score_transcript,
)
from tests.envs.conftest import env_record, real_rows


def tagged(name, args):
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"


def scripted(turns_by_id):
    """A generate that plays each conversation's scripted turns (then answers), recording every round."""
    rounds = []

    def generate(convs, tools):
        rounds.append(len(convs))
        out = []
        for conv in convs:
            key = next(k for k, v in turns_by_id.items() if v["prompt"] == conv[1]["content"])
            done = sum(m["role"] == "assistant" for m in conv)
            script = turns_by_id[key]["turns"]
            out.append((script[done], 7) if done < len(script) else ("All done.", 3))
        return out

    return generate, rounds


def gt_calls(row):
    return [(c["name"], json.loads(c["arguments"])) for c in row["ground_truth"]]


def test_real_rows_ground_truth_reaches_reward_1(params):
    rows = real_rows()
    records = [env_record(r) for r in rows]
    script = {r["id"]: {"prompt": rec["prompt"][1]["content"],
                        "turns": [tagged("email_search_emails", {"query": "carlos"})]  # a read: never matters
                        + [tagged(n, a) for n, a in gt_calls(r)]}
              for r, rec in zip(rows, records, strict=True)}
    generate, rounds = scripted(script)
    eps = run_episodes(records, generate, env_params=params, max_turns=10)
    assert [e.reward for e in eps] == [1.0] * len(rows)
    assert all(e.stop == "answer" and e.state_diff == {} for e in eps)
    longest = max(len(r["ground_truth"]) for r in rows)
    assert len(rounds) == longest + 2 and rounds[0] == len(rows)  # one generate call per round, batched
    assert eps[0].turns == 3 and eps[0].tool_calls == 2 and eps[0].completion_tokens == 7 + 7 + 3
    assert [m["role"] for m in eps[0].messages] == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert eps[0].messages[1]["name"] == "email_search_emails"
    json.dumps([e.to_json() for e in eps])


def test_wrong_id_missing_call_and_extra_destruction_score_0(params):
    rows = real_rows()
    reply = rows[0]
    (name, args), = gt_calls(reply)
    crm = rows[2]  # three reassignments
    cases = {
        "wrong id": (reply, [tagged(name, {**args, "email_id": "00000164"})]),
        "missing call": (crm, [tagged(n, a) for n, a in gt_calls(crm)[:2]]),
        "extra deletion": (reply, [tagged(name, args), tagged("email_delete_email", {"email_id": "00000280"})]),
        "wrong body": (reply, [tagged(name, {**args, "body": "ok"})]),
        "no call": (reply, ["I replied."]),
    }
    for what, (row, turns) in cases.items():
        rec = env_record(row)
        generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": turns}})
        ep, = run_episodes([rec], generate, env_params=params)
        assert ep.reward == 0.0, what
        assert ep.state_diff, what
    # replying to carlos's other email with that subject leaves the very same state: WorkBench scores it 1
    generate, _ = scripted({0: {"prompt": env_record(reply)["prompt"][1]["content"],
                                "turns": [tagged(name, {**args, "email_id": "00000280"})]}})
    assert run_episodes([env_record(reply)], generate, env_params=params)[0].reward == 1.0
    # a case-only difference in a free-text field still scores 1 (WorkBench lower-cases before comparing)
    rec = env_record(reply)
    generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"],
                                "turns": [tagged(name, {**args, "body": args["body"].upper()})]}})
    assert run_episodes([rec], generate, env_params=params)[0].reward == 1.0


def test_malformed_calls_count_as_tool_errors(params):
    rec = env_record(real_rows()[0])
    (name, args), = gt_calls(real_rows()[0])
    turns = ["<tool_call>{not json}</tool_call>", tagged("email_nope", {}), tagged(name, {**args, "email_id": "1"}),
             tagged(name, args)]
    generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": turns}})
    ep, = run_episodes([rec], generate, env_params=params)
    assert ep.reward == 1.0 and ep.tool_calls == 4 and ep.tool_errors == 3
    obs = [m["content"] for m in ep.messages if m["role"] == "tool"]
    assert "not valid JSON" in obs[0] and "'email_nope'" in obs[1] and "Email not found." in obs[2]


def test_stop_conditions(params):
    rec = env_record(real_rows()[0])
    loop = [tagged("email_search_emails", {"query": "carlos"})] * 20
    generate, rounds = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": loop}})
    ep, = run_episodes([rec], generate, env_params=params, max_turns=3)
    assert (ep.stop, ep.turns, ep.tool_calls, ep.reward) == ("max_turns", 3, 3, 0.0)
    generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": loop}})
    ep, = run_episodes([rec], generate, env_params=params, max_turns=10, max_tokens=15)
    assert (ep.stop, ep.turns, ep.completion_tokens) == ("token_budget", 3, 21)
    own = {"workplace_assistant": {**params["workplace_assistant"], "max_turns": 2}}
    generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": loop}})
    assert run_episodes([rec], generate, env_params=own, max_turns=10)[0].turns == 2


def test_parse_turn_forms():
    t = parse_turn('Let me look.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>')
    assert t.content == "Let me look." and [(c.name, c.arguments) for c in t.calls] == [("a", {"x": 1})]
    t = parse_turn('{"tool_calls": [{"function": {"name": "b", "arguments": "{\\"y\\": 2}"}}]}')
    assert t.content == "" and (t.calls[0].name, t.calls[0].arguments) == ("b", {"y": 2})
    t = parse_turn('[{"name": "c", "arguments": {}}, {"name": "d", "arguments": {"z": "w"}}]')
    assert [c.name for c in t.calls] == ["c", "d"]
    t = parse_turn("<tool_call>oops</tool_call>")
    assert t.calls[0].error and t.content == ""
    assert parse_turn("Done, the email is sent.").calls == []


def test_transcript_replay_equals_live_and_env_verifier(params):
    from m2rl.verifiers.api import score
    row = real_rows()[1]
    rec = env_record(row)
    turns = [tagged("calendar_search_events", {"time_min": "2023-12-01 00:00:00"})] + \
        [tagged(n, a) for n, a in gt_calls(row)]
    generate, _ = scripted({0: {"prompt": rec["prompt"][1]["content"], "turns": turns}})
    ep, = run_episodes([rec], generate, env_params=params)
    assert ep.reward == 1.0
    assert score_transcript(rec, ep.messages, params).reward == 1.0
    assert score_transcript(rec["verifier"], "\n".join(turns), params).reward == 1.0
    assert score_transcript(rec, turns[0], params).reward == 0.0
    configure_environments(params)
    try:
        assert score(rec, "\n".join(turns)).value == 1.0
        bad = score(rec, tagged("calendar_delete_event", {"event_id": "00000252"}))
        assert bad.value == 0.0 and "calendar" in bad.details["state_diff"]
    finally:
        configure_environments(None)


def test_env_params_reach_workers_through_the_environment(monkeypatch, params):
    from m2rl.envs import ENV_PARAMS_VAR
    from m2rl.registry import VERIFIERS
    from m2rl.verifiers.api import score
    assert "env" in VERIFIERS.names()
    rec = env_record(real_rows()[0])
    (name, args), = gt_calls(real_rows()[0])
    monkeypatch.setenv(ENV_PARAMS_VAR, json.dumps(params))
    assert score(rec, tagged(name, args)).value == 1.0
    monkeypatch.delenv(ENV_PARAMS_VAR)
    got = score(rec, tagged(name, args))  # no data configured: a 0 that names the missing setting
    assert got.value == 0.0 and "envs.workplace_assistant.data" in got.details["reason"]


def test_env_records_and_configuration_errors(params):
    rec = env_record(real_rows()[0])
    assert is_env_record(rec) and is_env_record(rec["verifier"]) and not is_env_record({"verifier": {"type": "math"}})
    with pytest.raises(EnvError, match="envs.workplace_assistant.data"):
        new_environment(rec, {})
    with pytest.raises(Exception, match="unknown environment 'workplace'"):
        new_environment({**rec["verifier"], "env": "workplace"}, params)
    with pytest.raises(Exception, match="datta"):
        new_environment(rec, {"workplace_assistant": {"datta": "x"}})
    with pytest.raises(EnvError, match=r"ground_truth\[0\]"):
        new_environment({**rec["verifier"], "ground_truth": [{"arguments": "{}"}]}, params)


def test_builtin_workplace_kind():
    from m2rl.data.builtin import Variant, generate
    from m2rl.records import validate_record
    recs = generate("agent", 0, 40, Variant(("workplace",)))
    assert {r["verifier"]["kind"] for r in recs} == {"guided", "direct", "lookup"}
    for r in recs:
        validate_record(r)
        assert r["id"].startswith("builtin-agent-workplace-")
    script = {r["id"]: {"prompt": r["prompt"][1]["content"],
                        "turns": [tagged(c["name"], json.loads(c["arguments"])) for c in r["verifier"]["ground_truth"]]}
              for r in recs}
    generate_fn, _ = scripted(script)
    eps = run_episodes(recs, generate_fn, env_params={})
    assert [e.reward for e in eps] == [1.0] * len(recs)
    # a lookup record offers only its toolkit's tools; a do-nothing answer scores 0
    env = new_environment(recs[0], {})
    assert 3 <= len(env.tool_schemas()) <= 7
    assert env.outcome().reward == 0.0
    # the standard agent records are unchanged (single-turn tool_calls)
    assert generate("agent", 0, 3)[0]["verifier"]["type"] == "tool_calls"

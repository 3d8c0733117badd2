"""The `agent` benchmark and environment records in the evaluate stage: episodes played by a generator
(a scripted one, and the real `hf` backend on a tiny model), scored by the sandbox's end state."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m2rl.evaluate import stage
from m2rl.evaluate.backends import render_prompt
from m2rl.evaluate.registry import EvalError, get_benchmark, load_benchmark
from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec

WORKBENCH = Path(__file__).resolve().parents[1] / "envs" / "fixtures" / "workbench"
ENVS = {"workplace_assistant": {"data": str(WORKBENCH)}}


def _gym_rows() -> list[dict]:
    return [json.loads(line) for line in (WORKBENCH / "example.jsonl").read_text().splitlines() if line.strip()]


def _calls_text(calls: list[dict]) -> str:
    out = []
    for c in calls:
        args = json.loads(c["arguments"]) if isinstance(c["arguments"], str) else c["arguments"]
        out.append("<tool_call>\n" + json.dumps({"name": c["name"], "arguments": args}) + "\n</tool_call>")
    return "".join(out)


class Scripted:
    """A generator that answers each task with its ground-truth calls, then closes once it sees the results."""

    name = "scripted"

    def __init__(self, folder, options=None):
        from m2rl.models import build_tokenizer

        self.tokenizer = build_tokenizer(1024)
        self.generated_tokens = 0
        self.calls = 0
        self.answers: dict[str, str] = {}

    def render(self, messages, tools=None):
        return render_prompt(self.tokenizer, messages, tools)

    def generate(self, prompts, n, sampling, seed):
        self.calls += 1
        out = []
        for p in prompts:
            if "<tool_response>" in p:
                out.append(["Done."])
            else:
                out.append([next(text for task, text in self.answers.items() if task in p)])
        return [o * n for o in out]

    def close(self):
        pass


def test_agent_benchmark_reads_the_nemo_gym_and_query_layouts(tmp_path):
    rows = _gym_rows()
    problems = load_benchmark(BenchmarkSpec(name="agent", path=str(WORKBENCH / "example.jsonl")))
    assert len(problems) == len(rows) and problems.card.layout.startswith("NeMo Gym")
    rec = problems[0]
    assert rec["domain"] == "agent" and rec["verifier"]["type"] == "env"
    assert rec["verifier"]["env"] == "workplace_assistant" and rec["verifier"]["sandbox"] == "workbench"
    assert len(rec["tools"]) == len(rows[0]["responses_create_params"]["tools"])
    # WorkBench's query files as NeMo Gym reads them (problem + solution as JSON text)
    queries = tmp_path / "queries.jsonl"
    queries.write_text("\n".join(json.dumps({
        "problem": r["responses_create_params"]["input"][-1]["content"], "solution": json.dumps(r["ground_truth"]),
        "category": r.get("category", ""), "environment_name": r.get("environment_name", "")}) for r in rows) + "\n")
    q = load_benchmark(BenchmarkSpec(name="agent", path=str(queries)))
    assert q.card.layout.startswith("WorkBench queries") and len(q) == len(rows)
    assert len(q[0]["tools"]) == 27 and q[0]["prompt"][0]["role"] == "system"
    assert get_benchmark("agent").domain == "agent"


def test_agent_episodes_score_the_end_state_and_reuse_samples(tmp_path, monkeypatch):
    scripted = {}

    def backend(name):
        def make(folder, options):
            g = Scripted(folder, options)
            rows = _gym_rows()
            g.answers = {r["responses_create_params"]["input"][-1]["content"]: _calls_text(r["ground_truth"])
                         for r in rows}
            scripted["g"] = g
            return g
        return make

    monkeypatch.setattr(stage, "get_backend", backend)
    model = tmp_path / "model"
    from m2rl.models import build_random_model

    build_random_model(model)
    spec = BenchmarkSpec(name="agent", path=str(WORKBENCH / "example.jsonl"), k=2)
    settings = EvaluateSpec(batch_size=8, score_workers=1)
    res = stage.evaluate(str(model), [spec], str(tmp_path / "eval"), backend="hf", settings=settings, track=False,
                         env_params=ENVS)
    assert res.metrics["agent"]["avg_at_k"] == pytest.approx(1.0)
    assert scripted["g"].calls == 2  # two rounds for every episode of the batch: the calls, then the answer
    table = pq.read_table(res.samples["agent"]).to_pylist()
    assert len(table) == 2 * len(_gym_rows())
    episode = json.loads(table[0]["response"])
    details = json.loads(table[0]["details"])
    assert episode["turns"] == 2 and episode["stop"] == "answer"
    assert details["tool_calls"] >= 1 and details["state_diff"] == {}
    again = stage.evaluate(str(model), [spec], str(tmp_path / "eval"), backend="hf", settings=settings,
                           track=False, env_params=ENVS)
    assert again.reused_samples == len(table) and again.generated_samples == 0
    assert again.metrics["agent"]["avg_at_k"] == pytest.approx(1.0)  # replayed on a fresh sandbox: same reward


def test_agent_without_sandbox_data_fails_before_generating(tmp_path, monkeypatch):
    def never(folder, options):
        pytest.fail("no model may be loaded")

    monkeypatch.setattr(stage, "get_backend", lambda name: never)
    from m2rl.models import build_random_model

    model = build_random_model(tmp_path / "model")
    with pytest.raises(EvalError, match="envs.workplace_assistant.data"):
        stage.evaluate(str(model), [BenchmarkSpec(name="agent", path=str(WORKBENCH / "example.jsonl"))],
                       str(tmp_path / "eval"), backend="hf", track=False)


def test_builtin_agent_episodes_with_the_hf_backend(tmp_path):
    """Real generation: the hf backend drives multi-turn episodes of the generated sandbox on a tiny model."""
    from m2rl.models import build_random_model

    model = build_random_model(tmp_path / "model")
    spec = BenchmarkSpec(name="builtin_agent", options={"kinds": ["workplace"], "count": 40}, limit=2, k=2,
                         max_new_tokens=12)
    res = stage.evaluate(str(model), [spec], str(tmp_path / "eval"), backend="hf",
                         settings=EvaluateSpec(batch_size=4, score_workers=1), track=False)
    rows = pq.read_table(res.samples["builtin_agent"]).to_pylist()
    assert len(rows) == 4 and res.generated_tokens > 0
    for row in rows:
        episode = json.loads(row["response"])
        assert episode["turns"] >= 1 and episode["stop"] in ("answer", "max_turns", "token_budget")
        assert row["score"] in (0.0, 1.0)

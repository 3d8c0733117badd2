"""Evaluation with the paper's reward settings: tool schemas of a record reach the prompt the model sees
(the hf backend's chat template, `tools=`), and `require_think_close` gates the scores (off: unchanged)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m2rl.evaluate import evaluate, get_benchmark
from m2rl.evaluate.backends import render_prompt
from m2rl.spec.evaluate import BenchmarkSpec, EvaluateSpec
from tests.train.conftest import TOOLS_TEMPLATE, domain_records, tool_record

SETTINGS = EvaluateSpec(batch_size=4, bootstrap=100, score_workers=1)


@pytest.fixture(scope="module")
def tools_model(tiny_model, tmp_path_factory):
    """The tiny random model with a chat template that renders `tools=` (Qwen style)."""
    import shutil

    from transformers import AutoTokenizer

    folder = Path(shutil.copytree(tiny_model, tmp_path_factory.mktemp("tools") / "model"))
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TOOLS_TEMPLATE
    tok.save_pretrained(folder)
    return str(folder)


def _bench(monkeypatch, name: str, records: list[dict]):
    """`name` loads `records` (the stage looks benchmarks up by name)."""
    import m2rl.evaluate.stage as stage

    real = get_benchmark(name)
    monkeypatch.setattr(stage, "get_benchmark", lambda n: dataclasses.replace(real, loader=lambda spec: records)
                        if n == name else get_benchmark(n))


def test_render_prompt_passes_tools(tools_model):
    from m2rl.evaluate.backends import load_tokenizer

    tok = load_tokenizer(tools_model)
    rec = tool_record()
    text = render_prompt(tok, rec["prompt"], rec["tools"])
    assert text.startswith("<|im_start|>system\n# Tools\n<tools>") and '"name": "book_meeting_room"' in text
    assert render_prompt(tok, rec["prompt"]) == text.split("</tools><|im_end|>\n", 1)[1]  # without: as before


def test_hf_eval_shows_the_model_its_tools(tools_model, tmp_path, monkeypatch):
    records = [tool_record(), *domain_records("agent", 1)]
    _bench(monkeypatch, "builtin_agent", records)
    out = tmp_path / "eval"
    evaluate(tools_model, [BenchmarkSpec(name="builtin_agent", k=1, max_new_tokens=2)], str(out), settings=SETTINGS,
             track=False)
    rows = {r["problem_id"]: r for r in pq.read_table(out / "builtin_agent" / "samples.parquet").to_pylist()}
    assert '"name": "book_meeting_room"' in rows["agent-tools-1"]["prompt"]
    assert "book_meeting_room" not in rows[records[1]["id"]]["prompt"]  # each record its own tools


class Scripted:
    """A generator answering every math problem right, half of the answers inside a closed think block."""

    name = "hf"

    def __init__(self, folder, options=None):
        self.generated_tokens = 0

    def render(self, messages):
        return json.dumps(messages)

    def generate(self, prompts, n, sampling, seed):
        label = {json.dumps(r["prompt"]): r["label"] for r in self.records}
        return [[f"Answer: {label[p]}", f"<think>sure</think>Answer: {label[p]}"][:n] for p in prompts]

    def close(self):
        pass


@pytest.mark.parametrize(("gate", "avg"), [(False, 1.0), (True, 0.5)])
def test_require_think_close_gates_eval_scores(gate, avg, tiny_model, tmp_path, monkeypatch):
    import m2rl.evaluate.stage as stage

    records = domain_records("math", 3)
    Scripted.records = records
    _bench(monkeypatch, "builtin_math", records)
    monkeypatch.setattr(stage, "get_backend", lambda name: Scripted)
    out = tmp_path / "eval"
    res = evaluate(tiny_model, [BenchmarkSpec(name="builtin_math", k=2)], str(out), settings=SETTINGS, track=False,
                   require_think_close=gate)
    assert res.metrics["builtin_math"]["avg_at_k"] == avg
    rows = pq.read_table(out / "builtin_math" / "samples.parquet").to_pylist()
    plain = [r for r in rows if "</think>" not in r["response"]]
    assert {r["score"] for r in plain} == {0.0 if gate else 1.0}
    if gate:
        assert all("no </think>" in json.loads(r["details"])["reason"] for r in plain)
    assert json.loads((out / "metrics.json").read_text())["require_think_close"] is gate


@pytest.mark.parametrize(("flag", "gate"), [([], True), (["--no-require-think-close"], False)])
def test_eval_command_takes_the_gate_from_the_spec(flag, gate, tiny_model, tmp_path, monkeypatch):
    """`m2rl eval --spec` scores with the spec's rewards.require_think_close; the flag overrides it."""
    from typer.testing import CliRunner

    import m2rl.evaluate.stage as stage
    from m2rl.cli import app

    records = domain_records("math", 2)
    Scripted.records = records
    _bench(monkeypatch, "builtin_math", records)
    monkeypatch.setattr(stage, "get_backend", lambda name: Scripted)
    spec = tmp_path / "s.yaml"
    spec.write_text(f"rewards: {{require_think_close: true}}\nwork_dir: {tmp_path / 'w'}\n"
                    f"artifact_root: {tmp_path / 'a'}\ntracking: {{uri: 'sqlite:///{tmp_path / 'm.db'}'}}\n")
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", tiny_model, "--spec", str(spec), "-b", "builtin_math", "--k", "2",
                                 "--out", str(out), *flag])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["require_think_close"] is gate
    assert doc["benchmarks"]["builtin_math"]["avg_at_k"] == (0.5 if gate else 1.0)
    assert doc["benchmarks"]["builtin_math"]["card"]["problems"] == 2

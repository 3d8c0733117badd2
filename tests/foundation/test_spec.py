from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from m2rl.cli import app
from m2rl.spec import SpecError, StudySpec, load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.mark.parametrize("name", ["smoke", "demo", "qwen3-4b-paper"])
def test_examples_validate(name):
    spec = load_spec(REPO / "examples" / f"{name}.yaml")
    assert set(spec.domains) == {"math", "code", "science", "if", "agent"}


def test_learning_demo_example_draws_the_mental_kind():
    from m2rl.data.registry import get_source

    spec = load_spec(REPO / "examples" / "learn-math.yaml")
    assert set(spec.domains) == {"math"} and spec.train.steps == 30
    source = spec.data.domains["math"].sources[0]
    first = next(iter(get_source(source.type)(source, "math")))
    assert first["id"].startswith("builtin-math-mental-lastnum-") and first["verifier"]["allow_last_number"]


def test_paper_example_matches_the_paper():
    s = load_spec(REPO / "examples" / "qwen3-4b-paper.yaml")
    assert (s.train.lr, s.train.lr_scheduler, s.train.samples_per_prompt) == (2e-6, "constant", 16)
    assert (s.train.rollout_batch_size, s.train.steps, s.train.mix_steps) == (128, 400, 2000)
    assert (s.train.weight_decay, tuple(s.train.adam_betas), s.train.kl_coef) == (0.1, (0.9, 0.98), 0.0)
    assert s.train.max_new_tokens == 32768 and s.rewards.require_think_close
    assert s.data.balance == "natural"
    assert s.merge.expert_steps == {"math": 400, "code": 400, "if": 400, "agent": 400, "science": 200}
    templates = {d: [src.prompt_template for src in s.data.domains[d].sources] for d in ("math", "science")}
    assert templates == {"math": ["paper_math"], "science": ["paper_science"]}
    params = {m.label: m.params for m in s.merge.methods}
    assert params["ties_dare"]["drop_rate"] == params["ta_dare"]["drop_rate"] == 0.2
    assert params["sce"]["select_topk"] == 1.0 and params["ties"]["density"] == 0.2
    assert {m.method for m in s.merge.methods} == {"average", "task_arithmetic", "ties", "dare_ties", "dare_ta", "sce"}
    assert {b.name for b in s.evaluate.benchmarks} >= {"aime24", "aime25", "gpqa_diamond", "hle", "ifeval", "ifbench",
                                                       "mmlu_redux", "livecodebench_v5", "livecodebench_v6"}


def test_every_field_has_a_description():
    from pydantic import BaseModel

    def walk(model: type[BaseModel], path: str):
        for name, f in model.model_fields.items():
            assert f.description, f"{path}{name} has no description"
            ann = f.annotation
            for t in getattr(ann, "__args__", ()) + (ann,):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    walk(t, f"{path}{name}.")

    walk(StudySpec, "")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"train": {"lr": 0}}, "train.lr: must be > 0"),
        ({"train": {"samples_per_prompt": 0}}, "train.samples_per_prompt: must be >= 1"),
        ({"train": {"lrr": 1e-6}}, "train.lrr: unknown key"),
        ({"tracking": {"uri": "x", "exp": "y"}}, "tracking.exp: unknown key"),
        ({"data": {"domains": {"maths": {}}}}, "data.domains: unknown domain 'maths'"),
        ({"train": {"rollout_batch_size": 3, "samples_per_prompt": 3, "train_batch_size": 2}},
         "train: train_batch_size: 2 must divide"),
        ({"paradigms": ["mixx"]}, "paradigms: must be a non-empty list"),
        ({"merge": {"methods": [{"method": "ties"}, {"method": "ties"}]}}, "merge.methods: duplicate merge output name"),
    ],
)
def test_errors_name_the_field(data, expected):
    with pytest.raises(SpecError) as exc:
        spec_from_dict(data)
    assert any(e.startswith(expected) for e in exc.value.errors), exc.value.errors


def test_cli_validate_exit_codes(tmp_path):
    ok = runner.invoke(app, ["validate", str(REPO / "examples" / "smoke.yaml")])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n  samples_per_promt: 4\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "train.lr: must be > 0" in res.output and "train.samples_per_promt: unknown key" in res.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [("train: [unclosed\n", "not valid YAML at line"), ("- a\n- b\n", "top level must be a mapping"),
     ("just a string", "top level must be a mapping")],
)
def test_not_yaml_or_not_mapping_is_one_line(tmp_path, text, expected):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    res = runner.invoke(app, ["validate", str(p)])
    assert res.exit_code == 2
    assert expected in res.output
    assert len([ln for ln in res.output.splitlines() if ln.strip()]) == 2  # source line + one reason


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "none.yaml")

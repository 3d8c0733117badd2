"""The distill stage on the CPU: the mix of two domains, two teachers, a checkpoint and its card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m2rl.records import write_records
from m2rl.spec import spec_from_dict


def _spec(tmp_path, **distill):
    section = {"lr": 1e-4, "prompts_per_step": 2, "samples_per_prompt": 2, "steps": 2, "max_new_tokens": 8,
               "max_prompt_len": 2304, "save_steps": 1, "cpu_threads": 1, **distill}
    return spec_from_dict({
        "name": "distill-test", "base_model": "random:tiny", "paradigms": ["distill"],
        "artifact_root": str(tmp_path / "artifacts"), "work_dir": str(tmp_path / "work"),
        "data": {"domains": {"math": {"sources": [{"type": "builtin"}]}, "science": {"sources": [{"type": "builtin"}]}}},
        "distill": section,
    })


def _records(tmp_path) -> Path:
    from m2rl.data import builtin

    recs = [r for d in ("math", "science") for r in list(builtin.iter_records(d, 0, 2))[:2]]
    path = tmp_path / "data" / "train" / "mix.parquet"
    write_records(path, recs)
    return path


def test_distill_stage_writes_a_checkpoint_and_its_card(tmp_path, tiny_models):
    from m2rl.distill import distill

    spec = _spec(tmp_path)
    teachers = {"math": tiny_models["teacher_a"], "science": tiny_models["teacher_b"]}
    res = distill(spec, str(_records(tmp_path)), teachers, tiny_models["student"], str(tmp_path / "models" / "distill"))
    out = Path(res.out)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    card = json.loads((out / "train_card.json").read_text())
    assert (card["paradigm"], card["run"], card["steps"], card["device"]) == ("distill", "distill", 2, "cpu")
    assert card["gpu_hours"] > 0 and card["teachers"] == teachers
    assert set(card["teachers_loaded"]) == {"math", "science"}
    assert sum(card["teacher_samples"].values()) == 2 * 2 * 2  # 2 steps x 2 prompts x 2 samples
    assert [p["step"] for p in card["divergence_curve"]] == [1, 2]
    assert not Path(spec.artifact_root, "checkpoints", "distill").exists()  # periodic checkpoints dropped


def test_a_domain_without_teacher_fails_before_anything_is_written(tmp_path, tiny_models):
    from m2rl.distill import DistillError, distill

    spec = _spec(tmp_path)
    with pytest.raises(DistillError, match="teachers: no teacher for science"):
        distill(spec, str(_records(tmp_path)), {"math": tiny_models["teacher_a"]}, tiny_models["student"],
                str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_spec_rejects_a_teacher_of_no_domain(tmp_path):
    from m2rl.spec import SpecError

    with pytest.raises(SpecError, match=r"distill.teachers.code: not a domain of this study"):
        _spec(tmp_path, teachers={"code": "x"})
    with pytest.raises(SpecError, match="train_batch_size: 3 must divide"):
        _spec(tmp_path, train_batch_size=3)

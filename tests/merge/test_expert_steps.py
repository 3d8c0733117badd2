"""`merge.expert_steps`: which checkpoint of each expert is merged, found through its train card, in local
folders and in S3, with the steps that exist named when one is missing; the train stage's cleanup keeps
the kept steps in both layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from m2rl import storage
from m2rl.merge import MergeError, merge
from m2rl.merge.stage import expert_checkpoint, expert_checkpoints
from m2rl.spec import SpecError, spec_from_dict
from m2rl.train.checkpoints import mirror_to, snapshot_step

from .conftest import load_dense


def _trained(root: Path, final: Path, steps: int, kept: dict[int, Path]) -> Path:
    """An expert laid out as the train stage leaves it: the final weights + card, kept steps beside."""
    model = root / "models" / "single-math"
    shutil.copytree(final, model)
    listed = {}
    for step, weights in kept.items():  # as a backend keeps them (train.checkpoints.snapshot_step)
        listed[str(step)] = str(snapshot_step(weights, root / "checkpoints" / "single-math", step))
    (model / "train_card.json").write_text(json.dumps({"steps": steps, "step_checkpoints": listed}))
    return model


def test_local_expert_steps_select_the_checkpoint_and_merge_it(tiny, tmp_path):
    base, (early, final, other) = tiny
    model = _trained(tmp_path, final, 400, {200: early})
    kept = tmp_path / "checkpoints" / "single-math" / "steps" / "200"
    assert expert_checkpoint(str(model), None) == str(model)
    assert expert_checkpoint(str(model), 400) == str(model)  # the final step is the expert folder itself
    assert expert_checkpoint(str(model), 200) == str(kept)
    with pytest.raises(MergeError, match=r"merge.expert_steps.math: .* no checkpoint of step 399; "
                                         r"steps that exist: 200, 400"):
        expert_checkpoint(str(model), 399, "merge.expert_steps.math")

    out = tmp_path / "merged"
    merge(str(base), [expert_checkpoint(str(model), 200), str(other)], "task_arithmetic", out=str(out), track=False)
    got, b, e, o = (load_dense(p) for p in (out, base, early, other))
    for name in b:
        want = b[name].float() + (e[name].float() - b[name].float()) + (o[name].float() - b[name].float())
        torch.testing.assert_close(got[name].float(), want, rtol=1e-5, atol=1e-6)
    card = json.loads((out / "merge_card.json").read_text())
    assert str(kept) in json.dumps(card)  # the card names the checkpoint that was merged

    # the merge stage's view: one checkpoint per domain's expert, in the experts' order
    assert expert_checkpoints({"math": str(model), "code": str(other)}, {"math": 200}) == [str(kept), str(other)]
    with pytest.raises(MergeError, match="merge.expert_steps: science has no expert to merge; the experts are math"):
        expert_checkpoints({"math": str(model)}, {"science": 200})


def test_missing_card_or_kept_folder_is_an_error(tiny, tmp_path):
    _, (early, final, _) = tiny
    bare = tmp_path / "bare"
    shutil.copytree(final, bare)
    with pytest.raises(MergeError, match="train_card.json: no readable train card"):
        expert_checkpoint(str(bare), 200)
    model = _trained(tmp_path, final, 400, {200: early})
    shutil.rmtree(tmp_path / "checkpoints" / "single-math" / "steps" / "200")
    with pytest.raises(MergeError, match="step 200 of .* is listed at .*, but no checkpoint is there"):
        expert_checkpoint(str(model), 200)


def test_s3_expert_steps(tiny, tmp_path, s3_env):
    base, (early, final, other) = tiny
    local = _trained(tmp_path, final, 400, {200: early})
    root = f"{s3_env}/runs"
    mirror_to(tmp_path / "checkpoints" / "single-math", f"{root}/checkpoints/single-math")  # as the backends do
    card = json.loads((local / "train_card.json").read_text())
    card["step_checkpoints"] = {"200": f"{root}/checkpoints/single-math/steps/200"}
    (local / "train_card.json").write_text(json.dumps(card))
    storage.copy_dir(local, f"{root}/models/single-math")
    model = f"{root}/models/single-math"
    assert expert_checkpoint(model, 200) == f"{root}/checkpoints/single-math/steps/200"
    with pytest.raises(MergeError, match="steps that exist: 200, 400"):
        expert_checkpoint(model, 20)
    out = f"{root}/models/merge-ta"
    merge(str(base), [expert_checkpoint(model, 200), str(other)], "task_arithmetic", out=out, track=False,
          cache=tmp_path / "cache")
    got = load_dense(storage.fetch_dir(out, tmp_path / "cache2"))
    b, e, o = (load_dense(p) for p in (base, early, other))
    name = sorted(b)[0]
    want = b[name].float() + (e[name].float() - b[name].float()) + (o[name].float() - b[name].float())
    torch.testing.assert_close(got[name].float(), want, rtol=1e-5, atol=1e-6)


def test_train_cleanup_keeps_the_kept_steps(tmp_path, s3_env):
    from m2rl.train.stage import _drop_checkpoints

    local = tmp_path / "ckpt"
    for rel in ("checkpoint-2/model.safetensors", "m2rl_progress.json", "steps/1/model.safetensors",
                "steps/1/config.json"):
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_text("x")
    remote = f"{s3_env}/checkpoints/single-math"
    storage.copy_dir(local, remote)
    _drop_checkpoints(str(local))
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()) == [
        "steps/1/config.json", "steps/1/model.safetensors"]
    _drop_checkpoints(remote)
    assert sorted(storage.list_files(remote)) == ["steps/1/config.json", "steps/1/model.safetensors"]
    shutil.rmtree(local / "steps")
    _drop_checkpoints(str(local))
    assert not local.exists()  # nothing kept: the folder goes


def test_expert_steps_spec_errors_name_the_field():
    with pytest.raises(SpecError, match="merge.expert_steps: unknown domain 'maths'"):
        spec_from_dict({"merge": {"expert_steps": {"maths": 200}}})
    with pytest.raises(SpecError, match="merge.expert_steps: science: a training step must be an integer >= 1"):
        spec_from_dict({"merge": {"expert_steps": {"science": 0}}})


def test_merge_command_with_a_spec_merges_the_named_steps(tiny, tmp_path):
    """`m2rl merge --spec` resolves each domain's expert at merge.expert_steps, as the merge stage does; a step
    never kept exits 2 naming the steps that exist."""
    from typer.testing import CliRunner

    from m2rl.cli import app

    base, (early, final, _) = tiny
    _trained(tmp_path, final, 400, {200: early})
    spec = tmp_path / "s.yaml"

    def run(step: int):
        spec.write_text(
            f"base_model: {base}\nartifact_root: {tmp_path}\nwork_dir: {tmp_path / 'w'}\n"
            f"tracking: {{uri: 'sqlite:///{tmp_path / 'm.db'}'}}\ndata: {{domains: {{math: {{}}}}}}\n"
            "train: {steps: 400, save_steps: 20}\n"
            f"merge: {{methods: [{{method: task_arithmetic}}], expert_steps: {{math: {step}}}}}\n")
        return CliRunner().invoke(app, ["merge", "--spec", str(spec)])

    r = run(200)
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "models" / "merge-task_arithmetic" / "merge_card.json").read_text())
    assert str(tmp_path / "checkpoints" / "single-math" / "steps" / "200") in json.dumps(card)
    r = run(300)
    assert r.exit_code == 2 and "no checkpoint of step 300; steps that exist: 200, 400" in r.output


def test_expert_steps_outside_the_study_or_never_saved_fail_when_the_spec_loads():
    with pytest.raises(SpecError) as err:
        spec_from_dict({"data": {"domains": {"math": {}}}, "train": {"steps": 100, "save_steps": 20},
                        "merge": {"expert_steps": {"math": 30, "code": 40}}})
    assert err.value.errors == [
        "merge.expert_steps.math: step 30 is never saved: checkpoints are saved every train.save_steps = 20 steps "
        "and at the last step (100); saved steps are 20, 40, ... and 100",
        "merge.expert_steps.code: not a domain of this study (math)",
    ]
    assert spec_from_dict({"train": {"steps": 100, "save_steps": 20}, "merge": {"expert_steps": {"math": 40}}})

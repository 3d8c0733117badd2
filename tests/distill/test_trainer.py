"""The routed TRL distillation trainer: loss 0 against itself, per-domain routing, learning in 2 steps."""

from __future__ import annotations

import pytest
import torch

from tests.distill.conftest import make_config, rows


def _trainer(tiny_models, tmp_path, teachers, data, **cfg):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from m2rl.distill.trainer import RoutedDistillationTrainer, TeacherPool

    tok = AutoTokenizer.from_pretrained(tiny_models["student"], padding_side="left")
    pool = TeacherPool(teachers)
    return RoutedDistillationTrainer(model=tiny_models["student"], teachers=pool, args=make_config(tmp_path, **cfg),
                                     train_dataset=Dataset.from_list(data), processing_class=tok), pool


def _batch_loss(trainer, data):
    trainer.model.train()
    inputs = trainer._prepare_inputs(data)
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, inputs)), inputs


@pytest.mark.parametrize("beta", [1.0, 0.0, 0.5])
def test_loss_is_zero_when_the_teacher_is_the_student(tiny_models, tmp_path, beta):
    data = rows(["a"], 4)
    trainer, _ = _trainer(tiny_models, tmp_path, {"a": tiny_models["student"]}, data, beta=beta)
    loss, inputs = _batch_loss(trainer, data)
    assert inputs["completion_mask"].sum() > 0
    assert abs(loss) < 1e-6
    trainer.pool._models.clear()  # another teacher gives a positive divergence on the same samples
    trainer.pool._given["a"] = tiny_models["teacher_a"]
    assert _batch_loss(trainer, data)[0] > 1e-3


def test_each_sample_is_scored_by_its_domains_teacher_only(tiny_models, tmp_path):
    from m2rl.distill.trainer import RoutingError

    data = rows(["a", "b"], 2)  # one micro batch of 4: 2 of a, 2 of b
    teachers = {"a": tiny_models["student"], "b": tiny_models["teacher_b"], "c": tiny_models["teacher_a"]}
    trainer, pool = _trainer(tiny_models, tmp_path, teachers, data)
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    loss, inputs = _batch_loss(trainer, data)
    for d in ("a", "b"):
        teacher = pool.get(d)
        teacher.base_model.register_forward_hook(lambda m, args, kw, out, d=d: seen[d].append(kw["input_ids"].shape[0]),
                                                 with_kwargs=True)
    with torch.no_grad():
        again = float(trainer.compute_loss(trainer.model, inputs))
    assert again == pytest.approx(loss, abs=1e-6)
    assert seen == {"a": [2], "b": [2], "c": []}  # each teacher ran once, on its own two rows
    assert pool.loads == {"a": 1, "b": 1} and "c" not in pool.loaded()  # c: never routed to, never loaded
    assert pool.rows == {"a": 4, "b": 4}
    # teacher a is the student itself: the rows of domain a contribute nothing, the loss is domain b's alone
    idx = inputs["teacher_index"]
    b_rows = {k: (v[idx == 1] if isinstance(v, torch.Tensor) and v.ndim else v) for k, v in inputs.items()}
    b_rows["num_items_in_batch"] = inputs["num_items_in_batch"]
    with torch.no_grad():
        b_only = float(trainer.compute_loss(trainer.model, b_rows))
    assert b_only == pytest.approx(loss, rel=1e-5) and loss > 0
    with pytest.raises(RoutingError, match="record 'z-0': domain 'z' has no teacher"):
        trainer._generate_and_score_completions(rows(["z"], 4))


def test_two_steps_lower_the_divergence_on_the_training_prompts(tiny_models, tmp_path):
    data = rows(["a", "b"], 2)
    teachers = {"a": tiny_models["teacher_a"], "b": tiny_models["teacher_b"]}
    trainer, pool = _trainer(tiny_models, tmp_path, teachers, data, learning_rate=5e-3, max_steps=2)
    torch.manual_seed(0)
    before, inputs = _batch_loss(trainer, data)
    trainer.train()
    with torch.no_grad():
        after = float(trainer.compute_loss(trainer.model, inputs))  # the same samples, scored after training
    assert after < before
    assert pool.loads == {"a": 1, "b": 1}  # loaded once for the whole run

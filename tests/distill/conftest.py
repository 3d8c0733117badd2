"""Distill fixtures: tiny random checkpoints (a student and teachers of other seeds) and a TRL config."""

from __future__ import annotations

import pytest

from m2rl.models import build_random_model


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Student (seed 0) and two teachers (seeds 1, 2): tiny random Llamas sharing one tokenizer."""
    root = tmp_path_factory.mktemp("distill-models")
    return {name: str(build_random_model(root / name, "tiny", seed=seed))
            for name, seed in (("student", 0), ("teacher_a", 1), ("teacher_b", 2))}


def make_config(tmp_path, **kw):
    from trl import DistillationConfig

    args = dict(output_dir=str(tmp_path / "out"), max_steps=2, learning_rate=5e-3, per_device_train_batch_size=4,
                gradient_accumulation_steps=1, max_completion_length=8, temperature=1.0, beta=1.0, seed=0,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False,
                disable_tqdm=True, dataloader_num_workers=0)
    # transformers >= 5.20 renamed gradient_checkpointing (the cpu-vllm extra pins < 5.20)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in DistillationConfig.__dataclass_fields__ \
        else "gradient_checkpointing"
    args[ckpt] = False
    args.update(kw)
    return DistillationConfig(**args)


def rows(domains: list[str], n: int) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"question {i} of {d}"}], "domain": d, "id": f"{d}-{i}"}
            for d in domains for i in range(n)]

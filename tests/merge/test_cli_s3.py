"""`m2rl merge` from flags, a YAML block and a study spec; S3 inputs and outputs; MLflow runs."""

from __future__ import annotations

import json

import torch
import yaml
from typer.testing import CliRunner

from m2rl import storage
from m2rl.cli import app
from m2rl.merge import merge

from .conftest import load_dense


def test_cli_flags_and_config_block(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    base, experts = tiny
    models = [a for e in experts for a in ("--model", str(e))]
    r = CliRunner().invoke(app, ["merge", "--base", str(base), *models, "--method", "ties", "--param", "density=0.5",
                                 "--param", "scope=global", "--out", str(tmp_path / "one"), "--dtype", "bfloat16"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "one" / "merge_card.json").read_text())
    assert card["params"] == {"scale": 1.0, "density": 0.5, "scope": "global"} and card["dtype"] == "bfloat16"
    assert all(t.dtype == torch.bfloat16 for t in load_dense(tmp_path / "one").values())

    block = tmp_path / "merge.yaml"
    block.write_text(yaml.safe_dump({"merge": {"shard_size_mb": 1, "methods": [
        {"method": "average"}, {"method": "dare_ta", "name": "ta_dare", "params": {"drop_rate": 0.5}}]}}))
    r = CliRunner().invoke(app, ["merge", "--base", str(base), *models, "--config", str(block),
                                 "--out", str(tmp_path / "models")])
    assert r.exit_code == 0, r.output
    for label in ("average", "ta_dare"):
        out = tmp_path / "models" / f"merge-{label}"
        assert json.loads((out / "merge_card.json").read_text())["label"] == label
        assert (out / "config.json").exists() and (out / "tokenizer.json").exists()

    r = CliRunner().invoke(app, ["merge", "--base", str(base), *models, "--method", "ties", "--param", "density=3",
                                 "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "params.density" in r.output and not (tmp_path / "bad").exists()


def test_output_shards_are_bounded(tiny, tmp_path):
    base, experts = tiny
    res = merge(str(base), [str(e) for e in experts], "average", {}, str(tmp_path / "o"), shard_size=200_000,
                track=False)
    index = json.loads((tmp_path / "o" / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == res.shards and len(res.shards) > 3
    per_shard: dict[str, list[str]] = {}
    for name, shard in index["weight_map"].items():
        per_shard.setdefault(shard, []).append(name)
    sizes = {n: t.numel() * 4 for n, t in load_dense(tmp_path / "o").items()}
    for shard, names in per_shard.items():
        assert sum(sizes[n] for n in names) <= 200_000 or len(names) == 1, shard
    assert index["metadata"]["total_size"] == sum(sizes.values()) == res.bytes
    want = load_dense(tmp_path / "o")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "o")
    assert torch.equal(model.state_dict()["model.norm.weight"], want["model.norm.weight"])


def test_spec_merges_from_and_to_s3_tracked(tiny, mlflow_server, s3_env, tmp_path, monkeypatch):
    """The spec's merges: experts at <root>/models/single-<domain> on S3, outputs at <root>/models/merge-<label>,
    one MLflow run per merge with the merge tags."""
    import mlflow

    base, experts = tiny
    root = f"{s3_env}/study"
    for domain, e in zip(("math", "code"), experts[:2], strict=True):
        storage.copy_dir(e, f"{root}/models/single-{domain}")
    storage.copy_dir(base, f"{s3_env}/base")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("M2RL_CACHE", str(tmp_path / "cache"))
    spec = {
        "name": "merge-test", "base_model": f"{s3_env}/base", "paradigms": ["merge"],
        "data": {"domains": {"math": {"sources": [{"type": "builtin"}]}, "code": {"sources": [{"type": "builtin"}]}}},
        "merge": {"methods": [{"method": "task_arithmetic", "params": {"scale": 0.5}},
                              {"method": "ties", "params": {"density": 0.3}}]},
        "artifact_root": root, "work_dir": str(tmp_path / "work"),
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["merge", "--spec", str(tmp_path / "study.yaml")])
    assert r.exit_code == 0, r.output

    local = merge(str(base), [str(e) for e in experts[:2]], "ties", {"density": 0.3}, str(tmp_path / "local"),
                  track=False)
    remote = storage.fetch_dir(f"{root}/models/merge-ties", tmp_path / "fetched")
    got, want = load_dense(remote), load_dense(local.out)
    assert got.keys() == want.keys() and all(torch.equal(got[n], want[n]) for n in got)
    card = json.loads((remote / "merge_card.json").read_text())
    assert {m["uri"] for m in card["models"]} == {f"{root}/models/single-{d}" for d in ("math", "code")}
    assert card["base"]["uri"] == f"{s3_env}/base"
    assert storage.exists(f"{root}/models/merge-task_arithmetic/{storage.COMPLETE_MARKER}")

    mlflow.set_tracking_uri(mlflow_server)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.`m2rl.stage` = 'merge'",
                              output_format="list")
    by_method = {run.data.tags["m2rl.merge_method"]: run for run in runs}
    assert set(by_method) == {"task_arithmetic", "ties"}
    assert by_method["ties"].data.tags["m2rl.paradigm"] == "merge"
    assert by_method["ties"].data.params["merge.density"] == "0.3"
    assert by_method["task_arithmetic"].data.metrics["merge/seconds"] > 0

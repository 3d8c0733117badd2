"""The OpenRLHF backend's one-GPU-pod mode for real on the CPU: `m2rl train` starts its own Ray head
(`ray start --head`, the real Ray), submits OpenRLHF's entry to it as a Ray job (the Jobs API that `ray job
submit` calls) and follows it; the entry is the stand-in `tests/train/fake_openrlhf` (OpenRLHF 0.11.2's own
parser validates the argument list; it joins the cluster with `ray.init()` as OpenRLHF's driver does and
checks the GPUs it offers). The driver is killed after its first checkpoint: the stage fails and stops its
head; the rerun starts a fresh head and resumes from the saved step.

Everything runs in a loopback-only network namespace (see tests/k8s/test_ray_real.py), this module being the
script run there (`python -m tests.train.test_openrlhf_ray <scenario> <params.json>`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.test_ray_real import listening, loopback_only, run_in_netns

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parent / "fake_openrlhf"


def _ray_processes() -> list[str]:
    """Ray processes still alive in this namespace (zombies not counted: they have ended)."""
    out = subprocess.run(["ps", "-eo", "stat=,comm="], check=True, capture_output=True, text=True).stdout
    procs = [line.split(None, 1) for line in out.splitlines() if line.strip()]
    return [comm for stat, comm in procs
            if not stat.startswith("Z") and (comm in ("raylet", "gcs_server") or comm.startswith("ray::"))]


def scenario_kill_and_resume(params: dict[str, Any]) -> None:
    result: dict[str, Any] = {"netns": loopback_only()}
    ray_tmp = tempfile.mkdtemp(prefix="m2rl-ray-", dir="/tmp")  # short: Ray's Unix socket paths
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "M2RL_TEST_OPENRLHF_RAY": params["info"],
           "M2RL_TEST_OPENRLHF_STEP_SECONDS": "2", "M2RL_TEST_OPENRLHF_CACHE": params["openrlhf_cache"],
           "PYTHONPATH": os.pathsep.join([str(FAKE), str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)  # one GPU pod: no cluster around, the stage starts its own head
    ckpt_latest = Path(params["checkpoints"]) / "_actor" / "latest"
    argv = [sys.executable, "-m", "m2rl.cli", "train", params["spec"], "--run", "mix", "--data", params["data"],
            "--base", "random:tiny", "--out", params["out"], "--checkpoints", params["checkpoints"]]

    first_log = open(Path(params["workdir"]) / "first.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=env, cwd=params["workdir"], stdout=first_log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + params["timeout"]
    try:
        while not (ckpt_latest.is_file() and ckpt_latest.read_text().strip() == "global_step1"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no step-1 checkpoint (rc {proc.poll()})")
            time.sleep(0.1)
        driver = json.loads(Path(params["info"]).read_text().splitlines()[0])
        result["listening_during_run"] = listening()
        os.kill(driver["pid"], signal.SIGKILL)  # the Ray job's driver process dies mid-run
        result["first_rc"] = proc.wait(timeout=params["timeout"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        first_log.close()
    result["ray_left_after_first"] = _ray_processes()
    result["out_after_first"] = Path(params["out"]).exists()

    try:
        second = subprocess.run(argv, env=env, cwd=params["workdir"], capture_output=True, text=True,
                                timeout=params["timeout"])
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    (Path(params["workdir"]) / "second.log").write_text(second.stdout + second.stderr)
    result["second_rc"] = second.returncode
    result["ray_left_after_second"] = _ray_processes()
    Path(params["result"]).write_text(json.dumps(result))


SCENARIOS = {"kill_and_resume": scenario_kill_and_resume}


@pytest.mark.slow
def test_one_pod_mode_submits_to_its_own_ray_head_and_resumes_after_the_driver_is_killed(
    tmp_path, tmp_cache, train_data, openrlhf_parser,
):
    import mlflow
    import yaml

    from m2rl.spec import spec_from_dict
    from tests.train.conftest import OPENRLHF_CACHE

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = spec_from_dict({
        "name": "orl-ray", "base_model": "random:tiny", "artifact_root": str(tmp_path / "artifacts"),
        "work_dir": str(tmp_path / "work"), "tracking": {"uri": uri},
        "train": {"backend": "openrlhf", "samples_per_prompt": 2, "rollout_batch_size": 5, "mix_steps": 3,
                  "micro_rollout_batch_size": 1, "micro_train_batch_size": 1, "save_steps": 1, "nodes": 1,
                  "gpus_per_node": 1, "vllm": {"num_engines": 1}, "max_prompt_len": 2304, "max_new_tokens": 16,
                  "keep_checkpoints": 1},
    })
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # the store's tables, before the stage runs
    out, ckpts = tmp_path / "artifacts" / "models" / "mix", tmp_path / "ckpts"
    params = {"spec": str(tmp_path / "spec.yaml"), "data": str(train_data["mix"]), "out": str(out),
              "checkpoints": str(ckpts), "info": str(tmp_path / "driver.jsonl"), "workdir": str(tmp_path),
              "openrlhf_cache": str(OPENRLHF_CACHE), "timeout": 300}
    started = time.monotonic()
    res = run_in_netns("tests.train.test_openrlhf_ray", "kill_and_resume", params, tmp_path, timeout=720)
    elapsed = time.monotonic() - started
    first = (tmp_path / "first.log").read_text(errors="replace")
    second = (tmp_path / "second.log").read_text(errors="replace")

    assert res["netns"]["interfaces"] == ["lo"]
    assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in res["listening_during_run"])
    assert any(a.endswith(":8265") for a in res["listening_during_run"])  # the head's dashboard (Jobs API)
    # The killed driver: the Ray job ends FAILED, the stage fails naming it, its head is stopped.
    assert res["first_rc"] != 0
    assert "openrlhf (Ray job on the local head) ended FAILED" in first, first[-3000:]
    assert res["ray_left_after_first"] == [] and res["ray_left_after_second"] == []
    assert not res["out_after_first"]  # nothing half-written at the output
    assert res["second_rc"] == 0, second[-3000:]
    drivers = [json.loads(line) for line in (tmp_path / "driver.jsonl").read_text().splitlines()]
    assert len(drivers) == 2 and drivers[0]["pid"] != drivers[1]["pid"]
    for d in drivers:  # each run's entry was a driver of the stage's own head, offered the spec's GPU
        assert d["ray_address"] == "127.0.0.1:6379" and d["resources"]["GPU"] == 1.0
    card = json.loads((out / "train_card.json").read_text())
    assert card["backend"] == "openrlhf" and card["steps"] == 3
    assert card["resumed_from_step"] >= 1 and card["ray"] == "local head"
    assert [p["step"] for p in card["reward_curve"]] == [1, 2, 3]
    assert any(out.glob("*.safetensors")) and not ckpts.exists()
    print(f"openrlhf one-pod scenario: {elapsed:.1f}s in the namespace")


if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))

"""The WorkBench sandbox CSVs read from an S3 URI (moto's server on loopback), as a cluster run reads them."""

from __future__ import annotations

import json
from pathlib import Path

from m2rl import storage
from m2rl.envs import new_environment

FIX = Path(__file__).parent / "fixtures" / "workbench"


def test_workbench_sandbox_from_s3(s3_env):
    for csv in FIX.glob("*.csv"):
        storage.upload_file(csv, f"{s3_env}/workbench/csv_data/processed/{csv.name}")
    row = json.loads((FIX / "example.jsonl").read_text().splitlines()[0])
    verifier = {"type": "env", "env": "workplace_assistant", "sandbox": "workbench", "ground_truth": row["ground_truth"]}
    env = new_environment(verifier, {"workplace_assistant": {"data": f"{s3_env}/workbench/csv_data/processed"}})
    for call in row["ground_truth"]:
        env.call(call["name"], call["arguments"])
    assert env.outcome().reward == 1.0
    fresh = new_environment(verifier, {"workplace_assistant": {"data": f"{s3_env}/workbench/csv_data/processed"}})
    assert fresh.outcome().reward == 0.0  # nothing done: the reply is missing

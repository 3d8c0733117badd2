import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "workbench"


def real_rows() -> list[dict]:
    """The verbatim rows of NeMo Gym's workplace_assistant example.jsonl."""
    return [json.loads(line) for line in (FIXTURES / "example.jsonl").read_text().splitlines() if line.strip()]


def env_record(row: dict, ground_truth=None) -> dict:
    """A real row as an M2RL environment record (what the nemotron source makes of it)."""
    return {"id": f"wb-{row['id']}", "domain": "agent", "prompt": row["responses_create_params"]["input"],
            "label": "", "source": "test", "tools": row["responses_create_params"]["tools"],
            "verifier": {"type": "env", "env": "workplace_assistant", "category": row["category"],
                         "ground_truth": row["ground_truth"] if ground_truth is None else ground_truth}}


@pytest.fixture
def params():
    return {"workplace_assistant": {"data": str(FIXTURES)}}


@pytest.fixture
def env(params):
    from m2rl.envs import new_environment
    return new_environment(env_record(real_rows()[0]), params)

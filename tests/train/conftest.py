"""Train-stage fixtures: builtin records of every domain, a SQLite MLflow store, OpenRLHF's parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2rl.records import write_records
from m2rl.spec import DOMAINS, spec_from_dict


def domain_records(domain: str, n: int) -> list[dict]:
    """`n` records of `domain` from the builtin source (the data stage's generator)."""
    from m2rl.data import builtin

    return list(builtin.iter_records(domain, 0, n))[:n]


@pytest.fixture
def train_data(tmp_path):
    """Per-domain train parquet files (1 record each) and their 5-record mix; returns {name: path}."""
    paths, mix = {}, []
    for d in DOMAINS:
        recs = domain_records(d, 1)
        paths[d] = tmp_path / "data" / "train" / f"{d}.parquet"
        write_records(paths[d], recs)
        mix.extend(recs)
    paths["mix"] = tmp_path / "data" / "train" / "mix.parquet"
    write_records(paths["mix"], mix)
    return paths


@pytest.fixture(scope="session")
def _train_mlflow_db(tmp_path_factory):
    """One SQLite MLflow store for the train tests (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('train-mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow_store(_train_mlflow_db, request, monkeypatch):
    """A real MLflow tracking store (SQLite) as the tracking URI, with a fresh experiment per test."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", _train_mlflow_db)
    monkeypatch.delenv("M2RL_PARENT_RUN_ID", raising=False)
    mlflow.set_tracking_uri(_train_mlflow_db)
    mlflow.set_experiment(f"train-{request.node.name}")
    yield _train_mlflow_db
    while mlflow.active_run() is not None:
        mlflow.end_run()


def tiny_spec(tmp_path, **train):
    """A study spec for random:tiny on the CPU; `train` overrides the train section."""
    section = {"backend": "trl", "lr": 1e-5, "samples_per_prompt": 2, "rollout_batch_size": 5, "steps": 2,
               "mix_steps": 2, "max_prompt_len": 2304, "max_new_tokens": 16, "save_steps": 1, "cpu_threads": 1}
    section.update(train)
    return spec_from_dict({
        "name": "train-test", "base_model": "random:tiny", "artifact_root": str(tmp_path / "artifacts"),
        "work_dir": str(tmp_path / "work"), "train": section,
    })


OPENRLHF_CACHE = Path(__file__).resolve().parents[2] / "work" / "cache"


@pytest.fixture(scope="session")
def openrlhf_parser():
    """OpenRLHF 0.11.2's own parser, from `pip download --no-deps` (cached under work/cache).

    Skips only when pip cannot reach the package registry; any other failure (a wrong pin, a wheel
    without the entry file) fails the tests that use it.
    """
    from m2rl.train.openrlhf_parser import OpenRLHFSourceError, load_parser

    try:
        return load_parser(cache=OPENRLHF_CACHE)
    except OpenRLHFSourceError as exc:
        if exc.unreachable:
            pytest.skip(f"package registry unreachable, cannot pip download OpenRLHF's source: {exc}")
        raise


@pytest.fixture(scope="session")
def _train_session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("train-cache")


@pytest.fixture
def tmp_cache(_train_session_cache, monkeypatch):
    """An M2RL cache isolated from the user's, shared by the train tests (random:tiny is built once)."""
    monkeypatch.setenv("M2RL_CACHE", str(_train_session_cache))
    return _train_session_cache


# A Qwen-style chat template that renders the `tools=` schemas into a system turn (as Qwen3's does).
TOOLS_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n# Tools\\n<tools>' }}{%- for t in tools %}{{- '\\n' }}{{- t | tojson }}"
    "{%- endfor %}{{- '\\n</tools><|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
BOOK_TOOL = {"type": "function", "function": {
    "name": "book_meeting_room", "description": "Book a meeting room.",
    "parameters": {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]}}}


def tool_record(rid: str = "agent-tools-1") -> dict:
    """An agent record whose prompt side carries a tool schema."""
    rec = dict(domain_records("agent", 1)[0])
    rec.update(id=rid, tools=[BOOK_TOOL])
    return rec


def tools_tokenizer():
    """The tiny random model's tokenizer with TOOLS_TEMPLATE as its chat template."""
    from transformers import AutoTokenizer

    from m2rl.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("random:tiny"))
    tok.chat_template = TOOLS_TEMPLATE
    return tok

"""Nothing left behind: real `m2rl merge` and `m2rl data` processes killed mid-write (SIGKILL) or stopped
(SIGTERM), then rerun. Each test is bounded (tiny models, a few hundred rows, deadlines on every wait) and
uses a SQLite MLflow store in its own folder.

The victim runs the real CLI (`m2rl.cli:app`) in a fresh interpreter with one slow-down patched in (a sleep
per shard write of the merge, per source row of the data stage), so the kill lands mid-write for sure; the
rerun is the plain `m2rl` command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2rl.merge.io import SafetensorsSource
from m2rl.models import resolve_model

M2RL = str(Path(sys.executable).with_name("m2rl"))
DEADLINE = 120.0  # seconds any one wait may take

SLOW_MERGE = """
import sys, time
import m2rl.merge.io as io
_write = io.StreamingShardWriter.write
def write(self, name, chunk):
    time.sleep(0.1)
    return _write(self, name, chunk)
io.StreamingShardWriter.write = write
from m2rl.cli import app
sys.argv = ["m2rl", *sys.argv[1:]]
app()
"""

SLOW_DATA = """
import sys, time
import m2rl.data.stage as stage
_rows = stage._iter_domain_rows
def rows(spec):
    for r in _rows(spec):
        time.sleep(0.01)
        yield r
stage._iter_domain_rows = rows
from m2rl.cli import app
sys.argv = ["m2rl", *sys.argv[1:]]
app()
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("M2RL_PARENT_RUN_ID", "MLFLOW_EXPERIMENT_NAME")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


def _wait_for(cond, what: str, proc: subprocess.Popen | None = None, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}:\n{out[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def _leftovers(folder: Path) -> list[str]:
    """Every temp, lease or previous copy left in `folder` (not recursive: the temps sit beside their
    destinations)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def _runs(db: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=1000)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """(base, [2 experts]) of the tiny random Llama."""
    root = tmp_path_factory.mktemp("kill-models")
    base = Path(shutil.copytree(resolve_model("random:tiny:0", cache=root / "cache"), root / "base"))
    experts = []
    for i in range(2):
        out = Path(shutil.copytree(base, root / f"e{i}"))
        sd = load_file(str(out / "model.safetensors"))
        g = torch.Generator().manual_seed(i)
        save_file({k: v + 0.01 * torch.randn(v.shape, generator=g).to(v.dtype) if v.is_floating_point() else v
                   for k, v in sd.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
        experts.append(out)
    return base, experts


def _merge_args(base: Path, experts: list[Path], out: Path) -> list[str]:
    args = ["merge", "--base", str(base), "--method", "ties", "--param", "density=0.5", "--out", str(out)]
    for e in experts:
        args += ["--model", str(e)]
    return args


def test_sigkilled_merge_is_cleaned_by_the_rerun(tiny_models, tmp_path):
    base, experts = tiny_models
    models = tmp_path / "models"
    out = models / "merge-ties"
    db = tmp_path / "mlflow.db"
    env = _env(MLFLOW_TRACKING_URI=f"sqlite:///{db}", MLFLOW_EXPERIMENT_NAME="kill")
    victim = subprocess.Popen([sys.executable, "-c", SLOW_MERGE, *_merge_args(base, experts, out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def shard_being_written():
            if not models.is_dir():
                return None
            for tmp in models.glob(".merge-ties.tmp-*"):
                if tmp.is_dir() and any(f.stat().st_size > 0 for f in tmp.glob("*.safetensors")):
                    return tmp
            return None

        tmp = _wait_for(shard_being_written, "a shard in the merge's temp folder", victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        _stop(victim)
    # what the kill left: the temp folder (with its lease), no output, the run RUNNING
    assert tmp.is_dir() and not out.exists()
    assert any(n.endswith(".lock") for n in _leftovers(models))
    killed = [r for r in _runs(db) if r.info.status == "RUNNING"]
    assert len(killed) == 1 and killed[0].data.tags["m2rl.owner.pid"] == str(victim.pid)

    rerun = subprocess.run([M2RL, *_merge_args(base, experts, out)], env=env, capture_output=True, text=True,
                           timeout=DEADLINE)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _leftovers(models) == []
    assert f"removed the stale temp {tmp}" in rerun.stderr
    card = json.loads((out / "merge_card.json").read_text())
    assert card["method"] == "ties" and (out / "_M2RL_COMPLETE").exists()
    merged, ref = SafetensorsSource(out), SafetensorsSource(base)  # every shard complete and readable
    assert merged.names() == ref.names()
    for n in merged.names():
        info = merged.tensors[n]
        rows = info.shape[0] if info.shape else 1
        assert merged.read_rows(n, 0, rows).shape == ref.read_rows(n, 0, rows).shape
    merged.close()
    ref.close()
    runs = {r.info.run_id: r for r in _runs(db)}
    assert [r for r in runs.values() if r.info.status == "RUNNING"] == []
    old = runs[killed[0].info.run_id]
    assert old.info.status == "KILLED" and f"pid {victim.pid}" in old.data.tags["m2rl.end_reason"]
    assert sorted(r.info.status for r in runs.values()) == ["FINISHED", "KILLED"]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _data_spec(tmp_path: Path, count: int) -> Path:
    src = {"type": "builtin", "options": {"count": count}}
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"name": "kill-data", "work_dir": str(tmp_path / "w"),
                                "artifact_root": str(tmp_path / "a"),
                                "data": {"domains": {"math": {"sources": [src]}, "code": {"sources": [src]}}}}))
    return spec


def _start_slow_data(spec: Path) -> tuple[subprocess.Popen, Path]:
    victim = subprocess.Popen([sys.executable, "-c", SLOW_DATA, "data", str(spec)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = spec.parent / "a"

    def rows_being_written():
        for tmp in root.glob(".data.tmp-*") if root.is_dir() else []:
            if tmp.is_dir() and (tmp / "rejects.jsonl").exists():
                return tmp
        return None

    try:
        return victim, _wait_for(rows_being_written, "the data stage's temp folder", victim)
    except BaseException:
        _stop(victim)
        raise


def test_sigkilled_data_run_is_cleaned_by_the_rerun(tmp_path):
    spec = _data_spec(tmp_path, 300)
    victim, tmp = _start_slow_data(spec)
    try:
        time.sleep(0.5)  # well into the rows
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        _stop(victim)
    db, root = tmp_path / "w" / "mlflow.db", tmp_path / "a"
    assert tmp.is_dir() and not (root / "data").exists()
    assert [r.info.status for r in _runs(db)] == ["RUNNING"]
    # and a kill between the two renames of an overwrite of an earlier output: its copy stranded, none in place
    stranded = root / f".data.old-{_dead_pid()}-deadbeef"
    stranded.mkdir()
    (stranded / "data_card.json").write_text("{}")

    rerun = subprocess.run([M2RL, "data", str(spec)], env=_env(), capture_output=True, text=True, timeout=DEADLINE)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _leftovers(root) == []
    assert f"removed the stale temp {tmp}" in rerun.stderr and "restored" in rerun.stderr
    card = json.loads((root / "data" / "data_card.json").read_text())
    assert card["domains"]["math"]["train"] + card["domains"]["math"].get("eval", 0) == 300
    assert (root / "data" / "train" / "mix.parquet").exists() and (root / "data" / "_M2RL_COMPLETE").exists()
    runs = _runs(db)
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert killed.data.tags["m2rl.end_reason"].startswith("stale: its owner")


def test_sigterm_ends_the_run_killed_and_removes_the_temp(tmp_path):
    spec = _data_spec(tmp_path, 300)
    victim, tmp = _start_slow_data(spec)
    try:
        os.kill(victim.pid, signal.SIGTERM)
        out, _ = victim.communicate(timeout=DEADLINE)
    finally:
        _stop(victim)
    assert victim.returncode == 128 + signal.SIGTERM, out.decode(errors="replace")[-2000:]
    root = tmp_path / "a"
    assert not tmp.exists() and _leftovers(root) == [] and not (root / "data").exists()
    (run,) = _runs(tmp_path / "w" / "mlflow.db")
    assert run.info.status == "KILLED" and run.data.tags["m2rl.end_reason"] == "SIGTERM received"

"""Resumable checkpoints mirrored to S3 (a preempted pod resumes from them) and the TensorBoard -> MLflow
bridge reading event files written by torch's SummaryWriter, the writer OpenRLHF uses."""

from __future__ import annotations

import json

import pytest

from m2rl.train import checkpoints
from m2rl.train.tb_bridge import EventFileError, TensorBoardBridge, read_records


def _ckpt(root, step, complete=True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"w" * (100 + step))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        checkpoints.write_progress(folder, step, wall_seconds=10.0 * step)
    return folder


def test_checkpoints_mirror_to_s3_and_restore_on_a_fresh_pod(tmp_path, s3_env):
    pod1 = tmp_path / "pod1"
    _ckpt(pod1, 2)
    _ckpt(pod1, 4)
    uri = f"{s3_env}/runs/checkpoints/mix"
    assert checkpoints.mirror_to(pod1, uri) == 6
    assert checkpoints.mirror_to(pod1, uri) == 2  # unchanged files are not uploaded again (markers are)
    import shutil

    shutil.rmtree(pod1 / "checkpoint-2")  # rotated away locally: deleted remotely too
    _ckpt(pod1, 6, complete=False)  # killed mid-save: never marked complete
    checkpoints.mirror_to(pod1, uri)
    from m2rl import storage

    assert not any(f.startswith("checkpoint-2/") for f in storage.list_files(uri))

    pod2 = tmp_path / "pod2"  # the rerun after a preemption starts from an empty disk
    assert checkpoints.restore_from(uri, pod2) == 5
    latest = checkpoints.latest_complete(pod2)
    assert latest == pod2 / "checkpoint-4" and checkpoints.read_progress(latest)["step"] == 4
    assert not (pod2 / "checkpoint-6").exists()  # the partial one is pruned, never resumed from


def test_tensorboard_bridge_reads_summarywriter_files_incrementally(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    got: list[tuple[int, dict]] = []
    bridge = TensorBoardBridge(tmp_path / "tb", lambda step, scalars: got.append((step, scalars)))
    assert bridge.poll() == 0  # nothing written yet
    writer = SummaryWriter(log_dir=str(tmp_path / "tb" / "mix"))  # OpenRLHF: <tensorboard_dir>/<run_name>
    for step in (1, 2):
        writer.add_scalar("train/reward", 0.25 * step, step)
        writer.add_scalar("train/m2rl/math/reward_sum", 0.1 * step, step)
        writer.add_text("train/generated_samples", "text is ignored", step)
        writer.flush()
    assert bridge.poll() == 1  # step 1 is complete once step 2 appears; step 2 may still grow
    assert got == [(1, {"train/reward": 0.25, "train/m2rl/math/reward_sum": pytest.approx(0.1)})]
    writer.add_scalar("train/kl", 0.5, 2)
    writer.close()
    assert bridge.flush() == 1 and bridge.steps_seen == 2
    assert got[1] == (2, {"train/reward": 0.5, "train/m2rl/math/reward_sum": pytest.approx(0.2), "train/kl": 0.5})
    assert bridge.flush() == 0  # each step is delivered once


def test_event_records_half_written_and_corrupt(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path))
    writer.add_scalar("train/reward", 1.0, 1)
    writer.close()
    path = next(tmp_path.glob("events.out.tfevents.*"))
    data = path.read_bytes()
    full, end = read_records(path)
    assert end == len(data) and len(full) >= 2
    path.write_bytes(data[:-3])  # the writer is mid-record: the incomplete one waits for the next poll
    part, end2 = read_records(path)
    assert len(part) == len(full) - 1 and end2 < len(data)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(EventFileError, match="bad data checksum"):
        read_records(path)

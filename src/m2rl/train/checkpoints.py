"""Periodic, resumable training checkpoints and their mirror in the artifact store.

A backend saves checkpoints into a local folder (`checkpoint-<n>` for TRL, OpenRLHF's `--ckpt.path`
tree). A checkpoint counts as complete only once `m2rl_progress.json` is written into it, after the
backend finished saving; a rerun resumes from the latest complete one and deletes partial ones. When
the job's checkpoint folder is an s3:// URI (a cluster), the local folder is mirrored there after each
save and restored from there before a rerun, so a preempted pod resumes instead of starting over.

Steps a merge takes (`merge.expert_steps`) are kept apart from that rotation: when a backend saves the
checkpoint of such a step, its Hugging Face weights (shards, index, config, tokenizer; no optimizer
state) are copied to `<checkpoint folder>/steps/<step>/`, which neither the backends' rotation nor the
end-of-run cleanup deletes. The train card lists them (`step_checkpoints`) and the merge stage reads it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from m2rl import storage
from m2rl.checkpoint import INDEX_NAME, copy_side_files, has_weights

PROGRESS_FILE = "m2rl_progress.json"
_TRL_DIR = re.compile(r"^checkpoint-(\d+)$")
_OPENRLHF_HF_DIR = re.compile(r"^global_step(\d+)_hf$")
STEPS_DIR = "steps"


def step_dir(root: str | Path, step: int) -> Path:
    """Where the kept Hugging Face weights of `step` live under a local checkpoint folder."""
    return Path(root) / STEPS_DIR / str(step)


def snapshot_step(src: str | Path, root: str | Path, step: int) -> Path:
    """Copy the Hugging Face weights of checkpoint folder `src` to `<root>/steps/<step>` (atomically; once)."""
    dst = step_dir(root, step)
    if has_weights(dst):
        return dst
    src = Path(src)
    if not has_weights(src):
        raise FileNotFoundError(f"{src}: no *.safetensors to keep for step {step}")
    with storage.atomic_local_dir(dst) as tmp:
        for f in sorted(src.glob("*.safetensors")):
            shutil.copy2(f, tmp / f.name)
        if (src / INDEX_NAME).is_file():
            shutil.copy2(src / INDEX_NAME, tmp / INDEX_NAME)
        copy_side_files(src, tmp)
        (tmp / storage.COMPLETE_MARKER).touch()  # a complete folder, also once mirrored to S3 (storage.fetch_dir)
    return dst


def kept_steps(root: str | Path) -> list[int]:
    """The steps whose weights are kept under a local checkpoint folder, sorted."""
    base = Path(root) / STEPS_DIR
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and has_weights(p))


def openrlhf_hf_checkpoints(ckpt_path: str | Path) -> list[tuple[int, Path]]:
    """`global_step<N>_hf` folders of an OpenRLHF `--ckpt.path`, sorted by N."""
    root = Path(ckpt_path)
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _OPENRLHF_HF_DIR.match(p.name)))


def write_progress(folder: str | Path, step: int, wall_seconds: float, **extra: object) -> None:
    """Mark a checkpoint complete: the GRPO step it holds and the wall time spent to reach it."""
    path = Path(folder) / PROGRESS_FILE
    tmp = path.with_name(f".{PROGRESS_FILE}.tmp")
    tmp.write_text(json.dumps({"step": step, "wall_seconds": wall_seconds, **extra}, sort_keys=True))
    os.replace(tmp, path)


def read_progress(folder: str | Path) -> dict | None:
    path = Path(folder) / PROGRESS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def trl_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """`checkpoint-<n>` folders under `folder`, sorted by n (complete or not)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _TRL_DIR.match(p.name))]
    return sorted(found)


def latest_complete(folder: str | Path, prune: bool = True) -> Path | None:
    """The latest complete `checkpoint-<n>`; with prune, partial ones (a kill mid-save) are deleted."""
    latest = None
    for _, path in trl_checkpoints(folder):
        if read_progress(path) is not None:
            latest = path
        elif prune:
            shutil.rmtree(path, ignore_errors=True)
    return latest


def prune_openrlhf_hf(ckpt_path: str | Path, keep: int) -> list[Path]:
    """Delete all but the latest `keep` `global_step<N>_hf` folders of an OpenRLHF `--ckpt.path`.

    OpenRLHF rotates its DeepSpeed states (`--ckpt.max_num`) but not the Hugging Face copies that
    `--ckpt.save_hf` writes beside them, which would otherwise pile up (one full model per save).
    """
    found = openrlhf_hf_checkpoints(ckpt_path)
    dropped = [p for _, p in found[:-keep]] if keep > 0 else [p for _, p in found]
    for p in dropped:
        shutil.rmtree(p, ignore_errors=True)
    return dropped


def mirror_to(local_dir: str | Path, uri: str) -> int:
    """Make the s3:// folder `uri` hold what `local_dir` holds (upload new/changed files, delete the rest).

    Progress and completion markers are uploaded last so that a remote checkpoint is never marked complete
    before its files are there. Returns the number of files uploaded.
    """
    local = Path(local_dir)
    files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    try:
        remote = set(storage.list_files(uri))
    except storage.StorageError:
        remote = set()
    uploaded = 0
    markers = (PROGRESS_FILE, storage.COMPLETE_MARKER)
    for rel in sorted(files, key=lambda r: r.endswith(markers)):
        target = storage.join(uri, rel)
        size = (local / rel).stat().st_size
        if rel in remote:
            remote_size, _ = storage.file_info(target)
            if remote_size == size and not rel.endswith(PROGRESS_FILE):
                continue
        storage.upload_file(local / rel, target)
        uploaded += 1
    stale = sorted(set(remote) - set(files))
    if stale and storage.is_s3(uri):
        bucket, key = storage.parse_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        client = storage.s3_client()
        for i in range(0, len(stale), 1000):
            chunk = stale[i : i + 1000]
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": prefix + r} for r in chunk]})
    return uploaded


def restore_from(uri: str, local_dir: str | Path) -> int:
    """Download the checkpoint tree at `uri` into `local_dir` (missing files only); returns files fetched."""
    local = Path(local_dir)
    try:
        files = storage.list_files(uri)
    except storage.StorageError:
        return 0
    fetched = 0
    for rel in files:
        dst = local / rel
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        storage.download_file(storage.join(uri, rel), dst)
        fetched += 1
    return fetched

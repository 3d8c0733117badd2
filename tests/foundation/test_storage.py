"""Storage: the same test bodies against a local folder and the local S3-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

from m2rl import storage


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_env") + "/prefix"


def test_write_read_exists_list(root):
    storage.write_text(storage.join(root, "a", "x.txt"), "hello")
    storage.write_bytes(storage.join(root, "b.bin"), b"\x00\x01")
    assert storage.read_text(storage.join(root, "a", "x.txt")) == "hello"
    assert storage.read_bytes(storage.join(root, "b.bin")) == b"\x00\x01"
    assert storage.exists(storage.join(root, "a", "x.txt"))
    assert not storage.exists(storage.join(root, "nope.txt"))
    assert storage.list_files(root) == ["a/x.txt", "b.bin"]


def test_missing_file_names_the_uri(root):
    target = storage.join(root, "missing.txt")
    with pytest.raises(storage.StorageError, match="missing.txt"):
        storage.read_bytes(target)


def test_folder_copy_verifies_and_marks_complete(root, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(bytes(range(256)) * 1000)
    result = storage.copy_dir(src, storage.join(root, "ckpt"))
    assert result.files == 2 and result.bytes == 2 + 256000
    assert storage.COMPLETE_MARKER in storage.list_files(storage.join(root, "ckpt"))
    back = storage.fetch_dir(storage.join(root, "ckpt"), cache=tmp_path / "cache")
    assert (back / "sub" / "w.bin").read_bytes() == (src / "sub" / "w.bin").read_bytes()


def test_output_dir_is_all_or_nothing(root):
    with pytest.raises(RuntimeError):
        with storage.output_dir(storage.join(root, "out")) as tmp:
            (tmp / "half.bin").write_bytes(b"x" * 10)
            raise RuntimeError("stage failed")
    assert not storage.exists(storage.join(root, "out"))
    with storage.output_dir(storage.join(root, "out")) as tmp:
        (tmp / "full.bin").write_bytes(b"x" * 10)
    assert "full.bin" in storage.list_files(storage.join(root, "out"))


def test_upload_download_roundtrip(root, tmp_path):
    f = tmp_path / "big.bin"
    f.write_bytes(b"ab" * 100_000)
    storage.upload_file(f, storage.join(root, "big.bin"))
    storage.download_file(storage.join(root, "big.bin"), tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == f.read_bytes()
    assert storage.file_info(storage.join(root, "big.bin"))[0] == 200_000


def test_local_write_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        storage.write_bytes(tmp_path / "f.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_endpoint_is_one_clear_line(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    storage._client_for.cache_clear()
    try:
        with pytest.raises(storage.StorageError) as exc:
            storage.read_bytes("s3://bucket/key.txt")
        msg = str(exc.value)
        assert "cannot reach the S3 endpoint" in msg and "s3://bucket/key.txt" in msg and "\n" not in msg
    finally:
        storage._client_for.cache_clear()


def test_parse_and_join():
    assert storage.parse_s3("s3://b/a/c") == ("b", "a/c")
    assert storage.join("s3://b/p/", "x", "y.txt") == "s3://b/p/x/y.txt"
    assert storage.join("/tmp/a", "b") == str(Path("/tmp/a/b"))
    with pytest.raises(storage.StorageError, match="bucket"):
        storage.parse_s3("s3:///key")


# -- nothing left behind: stale temps, leases, interrupted overwrites --------------------------------------
def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sweep_removes_dead_owners_temps_and_keeps_live_ones(tmp_path):
    dest = tmp_path / "out"
    dead = _dead_pid()
    (tmp_path / f".out.tmp-{dead}-0badf00d").mkdir()  # a folder whose writer was killed, no lease
    (tmp_path / f".out.tmp-{dead}-0badf00d" / "half.bin").write_bytes(b"x")
    (tmp_path / f".out.tmp-{dead}-1badf00d.lock").write_text("{}")  # a lease whose owner is gone (unlocked)
    (tmp_path / f".out.tmp-{dead}-1badf00d").mkdir()
    (tmp_path / ".other.tmp-1-2badf00d").mkdir()  # another destination's: not this sweep's business
    with storage.Lease(dest) as live:  # a writer of `out` that runs (this process holds the lease)
        live.tmp.mkdir()
        actions = storage.sweep(dest)
        assert live.tmp.is_dir() and live.lock.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.tmp.name, live.lock.name, ".other.tmp-1-2badf00d"])
    assert len([a for a in actions if a.startswith("removed the stale temp")]) == 2
    assert not live.lock.exists()


def test_lease_of_another_live_process_is_kept_until_it_dies(tmp_path):
    import subprocess
    import sys

    dest = tmp_path / "out"
    code = ("import sys, time; from m2rl import storage\n"
            f"l = storage.Lease({str(dest)!r}).__enter__(); l.tmp.mkdir(); print(l.tmp, flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.is_dir()
        assert storage.sweep(dest) == [] and tmp.is_dir()
        proc.kill()
        proc.wait(timeout=30)
        assert storage.sweep(dest) == [f"removed the stale temp {tmp} (its owner no longer holds its lock)"]
        assert list(tmp_path.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lockless_temp_of_a_running_pid_is_kept(tmp_path):
    import os

    mine = tmp_path / f".out.tmp-{os.getpid()}-abcdef01"  # no lease yet (caught between lease and temp)
    mine.mkdir()
    legacy = tmp_path / ".out.tmp-q1w2e3r4"  # an older m2rl's mkdtemp name: no owner at all
    legacy.mkdir()
    assert storage.sweep(tmp_path / "out") == [f"removed the stale temp {legacy} (it has no owner)"]
    assert mine.is_dir()


def test_owner_identity_survives_pid_reuse():
    import os

    me = storage.current_owner()
    assert storage.owner_alive(me) is True
    assert storage.owner_alive(storage.Owner(me.host, me.pid, me.start + "0")) is False  # same pid, another start
    assert storage.owner_alive(storage.Owner(me.host, _dead_pid(), "")) is False
    assert storage.owner_alive(storage.Owner(me.host + "-elsewhere", os.getpid(), me.start)) is None


def test_interrupted_overwrite_is_recovered(tmp_path):
    dest = tmp_path / "out"
    dead = _dead_pid()
    stranded = tmp_path / f".out.old-{dead}-00000001"  # killed between `out -> .old` and `.tmp -> out`
    stranded.mkdir()
    (stranded / "v").write_text("1")
    (tmp_path / f".out.tmp-{dead}-00000001").mkdir()  # its complete new copy, never renamed
    actions = storage.sweep(dest)
    assert (dest / "v").read_text() == "1" and any(a.startswith(f"restored {dest}") for a in actions)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # both present (killed after the second rename): the previous copy goes
    (tmp_path / f".out.old-{dead}-00000002").mkdir()
    storage.sweep(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (dest / "v").read_text() == "1"


def test_rerun_after_a_kill_between_the_renames_writes_the_new_copy(tmp_path, monkeypatch):
    import os

    dest = tmp_path / "out"
    with storage.output_dir(dest) as tmp:
        (tmp / "v").write_text("1")
    monkeypatch.setattr(storage, "exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    real, calls = os.replace, []

    def second_rename_dies(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for the kill: nothing after the first rename runs
        real(a, b)

    monkeypatch.setattr(storage.os, "replace", second_rename_dies)
    with pytest.raises(KeyboardInterrupt):
        with storage.output_dir(dest) as tmp:
            (tmp / "v").write_text("2")
    monkeypatch.setattr(storage.os, "replace", real)
    assert not dest.exists() and [p.name[:9] for p in tmp_path.iterdir()] == [".out.old-"]
    # the old copy belongs to this (live) process; a rerun in another process would see a dead owner
    monkeypatch.setattr(storage.temps, "pid_running", lambda pid: False)
    with storage.output_dir(dest) as tmp:
        (tmp / "v").write_text("3")
    assert (dest / "v").read_text() == "3" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_is_one_exchange_where_the_filesystem_has_it(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("a")
    (b / "f").write_text("b")
    if not storage.exchange(a, b):
        pytest.skip("this filesystem has no renameat2(RENAME_EXCHANGE)")
    assert (a / "f").read_text() == "b" and (b / "f").read_text() == "a"
    import os

    renames = []
    real = os.replace
    monkeypatch.setattr(storage.os, "replace", lambda x, y: (renames.append(y), real(x, y))[1])
    with storage.output_dir(tmp_path / "out") as tmp:
        (tmp / "v").write_text("1")
    with storage.output_dir(tmp_path / "out") as tmp:
        (tmp / "v").write_text("2")
    assert renames == [tmp_path / "out"]  # the first write renamed; the overwrite exchanged, no `.old-`
    assert (tmp_path / "out" / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]


def test_file_writes_sweep_their_stale_temps(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".f.bin.tmp-{dead}-abcdef12").write_bytes(b"half")
    (tmp_path / f".f.bin.tmp-{dead}-abcdef13.lock").write_text("{}")
    storage.write_bytes(tmp_path / "f.bin", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_s3_output_staging_is_swept(s3_env, tmp_path):
    import hashlib

    uri = s3_env + "/out"
    staging = storage.staging_root()
    stale = staging / f".out-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.tmp-{_dead_pid()}-abcdef12"
    stale.mkdir(parents=True)
    (stale / "big.bin").write_bytes(b"x" * 100)
    with storage.output_dir(uri) as tmp:
        assert tmp.parent == staging
        (tmp / "w.bin").write_bytes(b"w")
    assert not stale.exists() and not tmp.exists()
    assert storage.list_files(uri) == [storage.COMPLETE_MARKER, "w.bin"]

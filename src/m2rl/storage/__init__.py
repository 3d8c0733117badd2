"""Files and folders at local paths or `s3://bucket/key` URIs, with atomic writes.

Local writes go to a temp name in the same folder and are renamed into place. S3 writes use
boto3's managed transfer: large files go up as a multipart upload that is completed only when
every part is in (and aborted otherwise), so a reader never sees a partial object. A folder
written to S3 gets its `_M2RL_COMPLETE` marker last; readers of folders check for it.
The S3 endpoint comes from the usual variables (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`), so
MinIO and other S3-compatible stores work.

Nothing is left behind by a killed writer (`m2rl.storage.temps`): every temp name carries its owner's pid
and a lease that says whether the owner still lives; each writer first sweeps its destination (removing dead
owners' temps, recovering an overwrite interrupted between its renames), and a folder overwrite is one
`renameat2(RENAME_EXCHANGE)` where the filesystem has it. The local staging folder of an S3 output lives
under `<tmp>/m2rl-staging-<uid>/` and is swept the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from m2rl.storage.temps import Lease, Owner, current_owner, exchange, owner_alive, sweep, temp_file

__all__ = [
    "COMPLETE_MARKER", "CopyResult", "Lease", "Owner", "StorageError", "atomic_local_dir", "cache_dir",
    "copy_dir", "current_owner", "download_file", "exchange", "exists", "fetch_dir", "file_info", "is_s3",
    "iter_lines", "join", "list_files", "output_dir", "owner_alive", "parse_s3", "read_bytes", "read_text",
    "s3_client", "scratch_dir", "sha256_file", "staging_root", "sweep", "temp_file", "upload_file", "write_bytes", "write_text",
]

COMPLETE_MARKER = "_M2RL_COMPLETE"


class StorageError(RuntimeError):
    """A storage operation failed; the message names the URI and the reason."""


def is_s3(uri: str | os.PathLike) -> bool:
    return str(uri).startswith("s3://")


def parse_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> (`bucket`, `a/b`)."""
    if not is_s3(uri):
        raise StorageError(f"{uri}: not an s3:// URI")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise StorageError(f"{uri}: s3:// URI needs a bucket")
    return bucket, key


def join(uri: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a local path or an S3 URI."""
    base = str(uri)
    if is_s3(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts if p]])
    return str(Path(base, *parts))


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@lru_cache(maxsize=8)
def _client_for(endpoint: str | None):
    import boto3
    from botocore.config import Config

    cfg = Config(
        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def s3_client():
    """A boto3 S3 client for the configured endpoint (cached per endpoint)."""
    return _client_for(_endpoint())


@contextlib.contextmanager
def _s3_errors(uri: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        yield
    except EndpointConnectionError as exc:
        raise StorageError(f"{uri}: cannot reach the S3 endpoint {exc.kwargs.get('endpoint_url')}") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        raise StorageError(f"{uri}: S3 error {code}: {exc.response.get('Error', {}).get('Message', '')}") from None
    except BotoCoreError as exc:
        raise StorageError(f"{uri}: {exc}") from None


def exists(uri: str | os.PathLike) -> bool:
    """Whether a file (or, for a folder, any file under it) exists."""
    uri = str(uri)
    if not is_s3(uri):
        return Path(uri).exists()
    bucket, key = parse_s3(uri)
    with _s3_errors(uri):
        resp = s3_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return resp.get("KeyCount", 0) > 0


def list_files(uri: str | os.PathLike) -> list[str]:
    """Relative paths of every file under a folder, sorted."""
    uri = str(uri)
    if not is_s3(uri):
        root = Path(uri)
        if not root.is_dir():
            raise StorageError(f"{uri}: folder not found")
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    bucket, key = parse_s3(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    out: list[str] = []
    with _s3_errors(uri):
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"][len(prefix) :] for o in page.get("Contents", []))
    return sorted(out)


def read_bytes(uri: str | os.PathLike) -> bytes:
    uri = str(uri)
    if not is_s3(uri):
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{uri}: file not found") from None
    bucket, key = parse_s3(uri)
    with _s3_errors(uri):
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()


def iter_lines(uri: str | os.PathLike) -> Iterator[bytes]:
    """Stream the lines of a (possibly huge) file without reading it whole."""
    uri = str(uri)
    if not is_s3(uri):
        try:
            f = open(uri, "rb")
        except FileNotFoundError:
            raise StorageError(f"{uri}: file not found") from None
        with f:
            yield from f
        return
    bucket, key = parse_s3(uri)
    with _s3_errors(uri):
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_lines(keepends=True)


def read_text(uri: str | os.PathLike) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Write a whole file atomically (temp + rename locally; one PUT on S3)."""
    uri = str(uri)
    if not is_s3(uri):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with temp_file(path) as tmp:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return
    bucket, key = parse_s3(uri)
    with _s3_errors(uri):
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)


def write_text(uri: str | os.PathLike, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def upload_file(local: str | os.PathLike, uri: str) -> None:
    """Copy a local file to a URI; multipart on S3, completed only when all parts are in."""
    if not is_s3(uri):
        dst = Path(uri)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with temp_file(dst) as tmp:
            shutil.copyfile(local, tmp)
            os.replace(tmp, dst)
        return
    from boto3.s3.transfer import TransferConfig

    bucket, key = parse_s3(uri)
    cfg = TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20)
    with _s3_errors(uri):
        s3_client().upload_file(str(local), bucket, key, Config=cfg)


def download_file(uri: str, local: str | os.PathLike) -> None:
    """Copy a URI to a local file, atomically."""
    dst = Path(local)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with temp_file(dst) as tmp:
        if is_s3(uri):
            bucket, key = parse_s3(uri)
            with _s3_errors(uri):
                s3_client().download_file(bucket, key, str(tmp))
        else:
            try:
                shutil.copyfile(uri, tmp)
            except FileNotFoundError:
                raise StorageError(f"{uri}: file not found") from None
        os.replace(tmp, dst)


def file_info(uri: str) -> tuple[int, str | None]:
    """(size, md5 hex or None) of a file; on S3 the md5 is the ETag of a single-part object."""
    if not is_s3(uri):
        p = Path(uri)
        return p.stat().st_size, _md5(p)
    bucket, key = parse_s3(uri)
    with _s3_errors(uri):
        head = s3_client().head_object(Bucket=bucket, Key=key)
    etag = head.get("ETag", "").strip('"')
    return head["ContentLength"], (etag if "-" not in etag else None)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(uri: str | os.PathLike) -> str:
    """sha256 of a (small) file at a URI."""
    return hashlib.sha256(read_bytes(uri)).hexdigest()


@dataclass(frozen=True)
class CopyResult:
    files: int
    bytes: int


def copy_dir(src: str | os.PathLike, dst: str | os.PathLike) -> CopyResult:
    """Copy every file of a folder between any two locations and verify sizes and checksums.

    The destination gets its completion marker last, so a reader never takes a half copy.
    """
    src, dst = str(src), str(dst)
    files = [f for f in list_files(src) if f != COMPLETE_MARKER]
    total = 0
    with scratch_dir("copy") as tmpd:
        for rel in files:
            s, d = join(src, rel), join(dst, rel)
            if is_s3(s) and is_s3(d):
                local = Path(tmpd, "f")
                download_file(s, local)
                upload_file(local, d)
            elif is_s3(s):
                download_file(s, d)
            else:
                upload_file(s, d)
            s_size, s_md5 = file_info(s)
            d_size, d_md5 = file_info(d)
            if s_size != d_size or (s_md5 and d_md5 and s_md5 != d_md5):
                raise StorageError(f"{d}: copy does not match {s} (size {d_size} vs {s_size})")
            total += s_size
    write_bytes(join(dst, COMPLETE_MARKER), b"")
    return CopyResult(files=len(files), bytes=total)


def cache_dir() -> Path:
    """Local cache for fetched folders: $M2RL_CACHE or ~/.cache/m2rl."""
    return Path(os.environ.get("M2RL_CACHE", Path.home() / ".cache" / "m2rl"))


def fetch_dir(uri: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path:
    """A local folder holding the folder at `uri`: the path itself if local, else a cached download."""
    uri = str(uri)
    if not is_s3(uri):
        p = Path(uri)
        if not p.is_dir():
            raise StorageError(f"{uri}: folder not found")
        return p
    if not exists(join(uri, COMPLETE_MARKER)):
        raise StorageError(f"{uri}: no complete folder there (missing {COMPLETE_MARKER})")
    root = Path(cache) if cache else cache_dir()
    local = root / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (local / COMPLETE_MARKER).exists():
        return local
    with atomic_local_dir(local) as tmp:
        copy_dir(uri, tmp)
    return local


@contextlib.contextmanager
def atomic_local_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp folder beside `path`; it becomes `path` only if the block succeeds.

    First the destination is swept (`temps.sweep`: dead writers' temps removed, an interrupted overwrite
    recovered). An existing `path` is replaced in one step where the filesystem can exchange two names, else
    by two renames whose interruption the next sweep recovers; the previous copy is then removed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final)
    with Lease(final) as lease:
        tmp = lease.tmp
        tmp.mkdir()
        tmp.chmod(0o755)  # a normal shared folder, whatever the umask
        try:
            yield tmp
            if final.exists() or final.is_symlink():
                if not overwrite:
                    raise StorageError(f"{final}: already exists")
                if not exchange(tmp, final):  # tmp now holds the previous copy when it could
                    os.replace(final, lease.old)
                    os.replace(tmp, final)
                    shutil.rmtree(lease.old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def staging_root() -> Path:
    """This user's folder for local staging (S3 outputs, S3-to-S3 copies) under the system temp folder."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(tempfile.gettempdir()) / f"m2rl-staging-{uid}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def scratch_dir(key: str) -> Iterator[Path]:
    """A private local folder under `<tmp>/m2rl-staging-<uid>/` (stale ones of the same `key` swept first),
    removed on exit."""
    root = staging_root()
    dest = root / key
    sweep(dest)
    with Lease(dest) as lease:
        lease.tmp.mkdir(mode=0o700)
        try:
            yield lease.tmp
        finally:
            shutil.rmtree(lease.tmp, ignore_errors=True)


@contextlib.contextmanager
def output_dir(uri: str | os.PathLike) -> Iterator[Path]:
    """Yield a local folder to fill; on success it becomes the folder at `uri`, else nothing is left.

    Local: a temp folder renamed into place (`atomic_local_dir`). S3: a local staging folder uploaded file by
    file, with the completion marker written last. Either way what a killed earlier attempt left is swept
    first.
    """
    uri = str(uri)
    if not is_s3(uri):
        with atomic_local_dir(uri) as tmp:
            yield tmp
            (tmp / COMPLETE_MARKER).touch()
        return
    with scratch_dir(f"out-{hashlib.sha256(uri.encode()).hexdigest()[:16]}") as tmpd:
        yield tmpd
        (tmpd / COMPLETE_MARKER).unlink(missing_ok=True)
        copy_dir(tmpd, uri)

"""`taskplatform-dumpstore`: stream a database dump into a backup store, or out of it, with a checksum.

The operator's backup and restore Jobs run this beside the database image's own `pg_dump` / `pg_restore`
(so the tools always match the server), joined by a named pipe in a shared emptyDir:

    backup:  pg_dump -Fc > /stream/dump; echo $? > /stream/dump.status      (database image, backup role)
             taskplatform-dumpstore upload --fifo /stream/dump ...           (API image)
    restore: taskplatform-dumpstore download --fifo /stream/dump ...         (API image)
             pg_restore --single-transaction --no-owner ... < /stream/dump   (database image, owner role)

Memory stays bounded (one S3 part, or one chunk for a file). A backup becomes visible only once pg_dump has
exited 0: a failed dump aborts the multipart upload, or leaves only a `.partial` file that is removed. A
restore holds back the last chunk until the whole stream's SHA-256 matches the one recorded at backup time;
on a mismatch the pipe closes early, so pg_restore sees a truncated archive and its single transaction
rolls back: a corrupted backup never restores half a database.

The outcome goes to --summary-file as one JSON object (the Job's termination message the operator reads).
Exit codes: 0 done, 1 failed (the summary's `error` says why).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

CHUNK = 1 << 20
PART_SIZE = 16 << 20  # S3 multipart part: the upload's memory bound
STATUS_WAIT_S = 60.0  # how long the uploader waits for pg_dump's exit status after the stream ends
STATUS_POLL_S = 0.02  # it follows the stream's end within milliseconds (the shell writes it as pg_dump exits)
# The pipe's buffer: Linux's default 64 KiB makes pg_dump and the uploader take turns every 64 KiB; 1 MiB (the
# unprivileged maximum, fs.pipe-max-size) lets each run longer between switches.
PIPE_BUFFER = 1 << 20
CHECKSUM_SUFFIX = ".sha256"  # a sidecar beside each dump: a location restores verified without its resource
PARTIAL_SUFFIX = ".partial"


class DumpStoreError(Exception):
    """A failure with a message for the person reading the backup's status."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Store(Protocol):
    def location(self, key: str) -> str: ...
    def put(self, key: str, stream: Readable) -> None: ...
    def put_small(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> Iterator[bytes]: ...
    def get_small(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


@dataclass
class VolumeStore:
    """Dumps as files under a mounted volume; `name` is how locations call it (e.g. pvc://claim)."""

    root: Path
    name: str | None = None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise DumpStoreError(f"key {key!r} leaves the backup volume")
        return path

    def location(self, key: str) -> str:
        return f"{self.name.rstrip('/')}/{key}" if self.name else f"file://{self._path(key)}"

    def put(self, key: str, stream: Readable) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        try:
            with partial.open("wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    def put_small(self, key: str, data: bytes) -> None:
        self.put(key, io.BytesIO(data))

    def get(self, key: str) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise DumpStoreError(f"{self.location(key)} does not exist") from None
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def get_small(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Dumps as objects in an S3-compatible bucket (multipart upload, streamed download)."""

    def __init__(self, endpoint: str, bucket: str, region: str, tls: bool, verify_tls: bool) -> None:
        from minio import Minio  # the backup Jobs need it; nothing else does

        access_key, secret_key = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise DumpStoreError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the credentials Secret)")
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=tls, region=region, cert_check=verify_tls
        )
        self.endpoint, self.bucket = endpoint, bucket

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, stream: Readable) -> None:
        # Unknown length: multipart in PART_SIZE parts; an exception from the stream aborts the upload.
        self.client.put_object(self.bucket, key, cast(BinaryIO, stream), length=-1, part_size=PART_SIZE)

    def put_small(self, key: str, data: bytes) -> None:
        self.client.put_object(self.bucket, key, io.BytesIO(data), length=len(data))

    def get(self, key: str) -> Iterator[bytes]:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            raise DumpStoreError(f"{self.location(key)}: {exc.code} ({exc.message})") from None
        try:
            yield from response.stream(CHUNK)
        finally:
            response.close()
            response.release_conn()

    def get_small(self, key: str) -> bytes | None:
        from minio.error import S3Error

        try:
            return b"".join(self.get(key))
        except (DumpStoreError, S3Error):
            return None

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)


class _DumpReader:
    """The pipe from pg_dump, hashed and counted as it passes. At the end of the stream it waits for
    pg_dump's exit status and raises unless it is 0, so the store never completes a failed dump."""

    def __init__(self, pipe: BinaryIO, status_path: Path) -> None:
        self._pipe, self._status_path = pipe, status_path
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._pipe.read(size if size > 0 else CHUNK)
        if chunk:
            self.sha256.update(chunk)
            self.size += len(chunk)
            return chunk
        status = _wait_for_status(self._status_path)
        if status != 0:
            raise DumpStoreError(f"pg_dump exited with status {status} (its container log says why)")
        return b""


def _wait_for_status(path: Path) -> int:
    deadline = time.monotonic() + STATUS_WAIT_S
    while time.monotonic() < deadline:
        with suppress(FileNotFoundError, ValueError):
            return int(path.read_text().strip())
        time.sleep(STATUS_POLL_S)
    raise DumpStoreError(f"pg_dump's exit status did not appear in {path} within {STATUS_WAIT_S:.0f}s")


def upload(store: Store, pipe: BinaryIO, status_path: Path, key: str, prune: list[str]) -> dict[str, Any]:
    reader = _DumpReader(pipe, status_path)
    store.put(key, reader)
    digest = reader.sha256.hexdigest()
    store.put_small(key + CHECKSUM_SUFFIX, f"{digest}  {Path(key).name}\n".encode())
    pruned, prune_errors = [], []
    for old in prune:
        try:
            store.delete(old)
            store.delete(old + CHECKSUM_SUFFIX)
            pruned.append(old)
        except Exception as exc:
            prune_errors.append(f"{old}: {exc}")
    summary: dict[str, Any] = {
        "location": store.location(key),
        "key": key,
        "sizeBytes": reader.size,
        "sha256": digest,
        "pruned": pruned,
    }
    if prune_errors:
        summary["pruneErrors"] = prune_errors[:5]
    return summary


def recorded_checksum(store: Store, key: str) -> str | None:
    sidecar = store.get_small(key + CHECKSUM_SUFFIX)
    return sidecar.decode(errors="replace").split()[0] if sidecar and sidecar.strip() else None


def download(store: Store, pipe: BinaryIO, key: str, expected_sha256: str | None) -> dict[str, Any]:
    """Stream the dump into the pipe, holding its last chunk back until the checksum is known to match."""
    expected = expected_sha256 or recorded_checksum(store, key)
    digest, size, held = hashlib.sha256(), 0, b""
    for chunk in store.get(key):
        if held:
            pipe.write(held)
        digest.update(chunk)
        size += len(chunk)
        held = chunk
    actual = digest.hexdigest()
    if expected is not None and actual != expected.lower():
        raise DumpStoreError(
            f"checksum mismatch: {store.location(key)} has SHA-256 {actual}, the backup recorded {expected}; "
            "the object is corrupted or was replaced, and nothing was restored"
        )
    pipe.write(held)
    return {"location": store.location(key), "sizeBytes": size, "sha256": actual, "verified": expected is not None}


def make_fifo(path: Path) -> None:
    """The named pipe, writable by the other container whatever its uid (they share only the emptyDir)."""
    if not path.is_fifo():
        os.mkfifo(path)
        path.chmod(0o666)  # mkfifo's mode passes through the umask


def _store(args: argparse.Namespace) -> Store:
    if args.dir:
        return VolumeStore(Path(args.dir), args.dir_location)
    if not (args.s3_endpoint and args.bucket):
        raise DumpStoreError("either --dir or --s3-endpoint with --bucket is required")
    return S3Store(args.s3_endpoint, args.bucket, args.region, not args.no_tls, not args.insecure_skip_verify)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskplatform-dumpstore", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["upload", "download"])
    parser.add_argument("--fifo", type=Path, required=True, help="the named pipe shared with pg_dump/pg_restore")
    parser.add_argument("--key", required=True, help="the dump's path in the store")
    parser.add_argument("--status-file", type=Path, help="upload: where pg_dump's exit status appears")
    parser.add_argument("--prune", action="append", default=[], help="upload: keys to delete once it succeeded")
    parser.add_argument("--sha256", help="download: the expected checksum (else the sidecar's, if any)")
    parser.add_argument("--dir", help="a volume store: the mounted directory")
    parser.add_argument("--dir-location", help="what locations call that directory, e.g. pvc://claim")
    parser.add_argument("--s3-endpoint", help="an S3 store: host[:port]")
    parser.add_argument("--bucket")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--no-tls", action="store_true", help="plain HTTP to the S3 endpoint")
    parser.add_argument("--insecure-skip-verify", action="store_true", help="do not verify the TLS certificate")
    parser.add_argument("--summary-file", type=Path, help="write the outcome here as JSON (a termination message)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    summary: dict[str, Any]
    pipe: BinaryIO | None = None
    try:
        # Make and open the pipe first, whatever happens next: the other side waits for it to exist, its open()
        # blocks until this one's, and a failure must reach it as an early end of stream, never as a pod
        # waiting forever.
        make_fifo(args.fifo)
        pipe = args.fifo.open("rb" if args.command == "upload" else "wb")
        with suppress(OSError):  # a smaller buffer only costs speed
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
        streaming = time.monotonic()  # the other side has opened the pipe: pg_dump / pg_restore has started
        store = _store(args)
        if args.command == "upload":
            if args.status_file is None:
                raise DumpStoreError("upload needs --status-file")
            summary = upload(store, pipe, args.status_file, args.key, args.prune)
        else:
            summary = download(store, pipe, args.key, args.sha256)
        summary["seconds"] = round(time.monotonic() - streaming, 3)
        code = 0
    except Exception as exc:
        summary = {"error": str(exc) if isinstance(exc, DumpStoreError) else f"{type(exc).__name__}: {exc}"}
        code = 1
    finally:
        if pipe is not None:
            with suppress(OSError):
                pipe.close()
    summary["exitCode"] = code
    text = json.dumps(summary)
    print(text, file=sys.stderr if code else sys.stdout)
    if args.summary_file is not None:
        with suppress(OSError):
            args.summary_file.write_text(text)
    return code


if __name__ == "__main__":
    sys.exit(main())

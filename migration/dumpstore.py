"""`taskplatform-dumpstore`: stream a database dump into a backup store, or fetch and verify one from it.

The operator's backup and restore Jobs run this beside the database image's own `pg_dump` / `pg_restore` (so
the tools always match the server):

    backup:  pg_dump -Fc > /stream/dump; echo $? > /stream/dump.status      (database image, backup role)
             taskplatform-dumpstore upload --fifo /stream/dump ...           (API image)
    restore: taskplatform-dumpstore download --output /scratch/dump ...      (API image, runs first)
             pg_restore --no-owner ... /scratch/dump                         (database image, owner role)

A backup streams through a named pipe in bounded memory (one S3 part, or one chunk for a file), and becomes
visible only once pg_dump has exited 0: a failed dump aborts the multipart upload, or leaves only a `.partial`
file that is removed.

A restore never hands pg_restore a byte it has not verified. pg_restore executes each archive entry's SQL as it
reads it, and an archive's SQL can leave a transaction (`COMMIT; ...`), so a single transaction is no guard:
the whole dump is first written to a local file (at most --max-bytes, and only with that much free space), its
SHA-256 compared with the one the caller recorded at backup time, and only a match is renamed to --output. The
`.sha256` object written beside each dump is for people and tools (`sha256sum -c`); it is never the expected
checksum, because whoever can replace a dump in its store can replace it too. Without --sha256 a download is
refused unless --allow-unverified says otherwise.

Jobs of the operator before restores were verified first pass --fifo and no --output: the verified file is then
streamed into the pipe after the check, and a refused dump reaches pg_restore as an empty stream.

The outcome goes to --summary-file as one JSON object of at most TERMINATION_MESSAGE_MAX bytes (the Job's
termination message the operator reads). Exit codes: 0 done, 1 failed (the summary's `error` says why).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

CHUNK = 1 << 20
PART_SIZE = 16 << 20  # S3 multipart part: the upload's memory bound
STATUS_WAIT_S = 60.0  # how long the uploader waits for pg_dump's exit status after the stream ends
STATUS_POLL_S = 0.02  # it follows the stream's end within milliseconds (the shell writes it as pg_dump exits)
# The pipe's buffer: Linux's default 64 KiB makes pg_dump and the uploader take turns every 64 KiB; 1 MiB (the
# unprivileged maximum, fs.pipe-max-size) lets each run longer between switches.
PIPE_BUFFER = 1 << 20
# A sidecar beside each dump, `<sha256>  <name>` as sha256sum writes it: for people and tools checking a copy.
# Never read back as the expected checksum (whoever can replace the dump can replace it).
CHECKSUM_SUFFIX = ".sha256"
PARTIAL_SUFFIX = ".partial"
# Where a download without --output (a Job of the previous operator, --fifo only) keeps the verified dump.
VERIFIED_SUFFIX = ".verified"
# Outside input, bounded: S3's own limits on a key (1024 bytes of UTF-8, the sidecar's included) and an object
# (5 TiB).
KEY_MAX_BYTES = 1024 - len(CHECKSUM_SUFFIX)
DUMP_MAX_BYTES = 5 << 40
SHA256_PATTERN = re.compile(r"[0-9a-fA-F]{64}")
CONTENT_LENGTH_PATTERN = re.compile(r"[0-9]{1,20}")
# A download leaves at least this much of its volume free, whatever the dump announces.
SCRATCH_RESERVE_BYTES = 16 << 20
# The summary is the Job's termination message: Kubernetes keeps at most 4096 bytes of it.
TERMINATION_MESSAGE_MAX = 4096
ERROR_MAX_CHARS = 1000  # an error message, in the summary and in the operator's status
QUOTED_MAX_CHARS = 200  # what a store said (an S3 error's code and message), quoted in an error

UNVERIFIABLE = (
    "no expected SHA-256 was given (--sha256), so the dump cannot be verified before pg_restore runs it: "
    "refusing (the .sha256 object beside a dump is not trusted: whoever can replace the dump can replace it); "
    "pass --allow-unverified only for a dump whose store no one else can write"
)


class DumpStoreError(Exception):
    """A failure with a message for the person reading the backup's status."""


def clip(text: str, limit: int = QUOTED_MAX_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_key(key: str) -> str:
    """A key as the operator writes them (`<prefix>/<platform>/<backup>.dump`): UTF-8, relative, no `.`/`..` or
    empty segments, no control characters, its sidecar's key within S3's 1024 bytes."""
    try:
        size = len(key.encode())
    except UnicodeEncodeError:  # bytes that were not UTF-8 in argv
        raise DumpStoreError("a key must be UTF-8") from None
    if not 0 < size <= KEY_MAX_BYTES:
        raise DumpStoreError(f"a key must have 1 to {KEY_MAX_BYTES} bytes")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise DumpStoreError(f"key {clip(key)!r} has a control character")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise DumpStoreError(f"key {clip(key)!r} must be relative, without empty, '.' or '..' segments")
    return key


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A stored object being read: the size its store announces (None when it does not) and its bytes."""

    announced_bytes: int | None
    chunks: Iterator[bytes]


class Store(Protocol):
    def location(self, key: str) -> str: ...
    def put(self, key: str, stream: Readable) -> None: ...
    def put_small(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> AbstractContextManager[Fetched]: ...
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

    @contextmanager
    def get(self, key: str) -> Iterator[Fetched]:
        path = self._path(key)
        try:
            # Non-blocking: a FIFO in the volume would otherwise hang the open; it is refused just below.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DumpStoreError(f"{self.location(key)} does not exist") from None
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DumpStoreError(f"{self.location(key)} is not a regular file")
            yield Fetched(info.st_size, iter(lambda: handle.read(CHUNK), b""))

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

    @contextmanager
    def get(self, key: str) -> Iterator[Fetched]:
        from minio.error import S3Error

        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as exc:
            raise DumpStoreError(f"{self.location(key)}: {clip(exc.code or '')} ({clip(exc.message or '')})") from None
        try:
            announced = response.headers.get("Content-Length")
            if announced is not None and not CONTENT_LENGTH_PATTERN.fullmatch(announced):
                raise DumpStoreError(
                    f"{self.location(key)}: the store announced a Content-Length of {clip(announced)!r}"
                )
            yield Fetched(None if announced is None else int(announced), self._chunks(response, key))
        finally:
            response.close()
            response.release_conn()

    def _chunks(self, response: BaseHTTPResponse, key: str) -> Iterator[bytes]:
        from urllib3.exceptions import HTTPError

        try:
            # The bytes as stored: no Content-Encoding is undone (a compressed body could expand without bound,
            # and a dump is stored as it is). urllib3 reads no more than a Content-Length announces, and fails
            # on fewer.
            yield from response.stream(CHUNK, decode_content=False)
        except HTTPError as exc:
            raise DumpStoreError(f"{self.location(key)}: the download broke off: {clip(str(exc))}") from None

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
            check_key(old)  # a key from an older backup's status: refused alone, this backup stands
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


def _free_bytes(directory: Path) -> int:
    usage = os.statvfs(directory)
    return usage.f_bavail * usage.f_frsize


def _size_bound(directory: Path, max_bytes: int | None, announced: int | None, location: str) -> int:
    """The most this download may write: the caller's bound (the backup's recorded size), else what the volume
    can spare. Refused at once when the store announces more, or the volume cannot hold what is expected."""
    if max_bytes is not None and announced is not None and announced > max_bytes:
        raise DumpStoreError(
            f"{location} is {announced} bytes, more than the {max_bytes} bytes this dump may have: nothing was "
            "downloaded, and nothing was restored"
        )
    free = _free_bytes(directory) - SCRATCH_RESERVE_BYTES
    needed = announced if announced is not None else max_bytes
    if needed is not None and needed > free:
        raise DumpStoreError(
            f"{location} needs {needed} bytes on {directory}, which has {max(free, 0)} to spare (beyond a "
            f"{SCRATCH_RESERVE_BYTES}-byte reserve): nothing was downloaded, and nothing was restored"
        )
    return min(bound for bound in (max_bytes, free) if bound is not None)


def download(
    store: Store,
    key: str,
    output: Path,
    expected_sha256: str | None,
    max_bytes: int | None = None,
    allow_unverified: bool = False,
) -> dict[str, Any]:
    """Write the dump at `key` to `output`, and only once its SHA-256 is the expected one.

    It is written to `output`.partial while hashed (never more than the bound: the stream is refused before a
    chunk would pass it), compared, made read-only and renamed to `output`: a file at `output` has been
    verified (or allowed unverified), and is complete. Anything else leaves no file at either name."""
    location = store.location(key)
    if expected_sha256 is None and not allow_unverified:
        raise DumpStoreError(f"{location}: {UNVERIFIABLE}")
    partial = output.with_name(output.name + PARTIAL_SUFFIX)
    output.unlink(missing_ok=True)  # a previous attempt's file is not this attempt's verification
    partial.unlink(missing_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with store.get(key) as fetched:
            bound = _size_bound(output.parent, max_bytes, fetched.announced_bytes, location)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as out:
                for chunk in fetched.chunks:
                    if size + len(chunk) > bound:
                        raise DumpStoreError(
                            f"{location} is longer than {bound} bytes (the most this dump may have"
                            f"{'' if bound == max_bytes else ': the space left on its volume'}): the download "
                            "was stopped there, and nothing was restored"
                        )
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256.lower():
            raise DumpStoreError(
                f"checksum mismatch: {location} has SHA-256 {actual}, the backup recorded "
                f"{expected_sha256.lower()}; the object is corrupted or was replaced, and nothing was restored"
            )
        # Read-only, for the restore side whatever its uid (the volume is the pod's own); the rename marks it
        # verified, atomically.
        partial.chmod(0o444)
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"location": location, "sizeBytes": size, "sha256": actual, "verified": expected_sha256 is not None}


def feed(verified: Path, pipe: BinaryIO) -> None:
    """A verified dump into the pipe pg_restore reads (a Job of the previous operator)."""
    with verified.open("rb") as source:
        shutil.copyfileobj(source, pipe, CHUNK)


def make_fifo(path: Path) -> None:
    """The named pipe, writable by the other container whatever its uid (they share only the emptyDir)."""
    if not path.is_fifo():
        os.mkfifo(path)
        path.chmod(0o666)  # mkfifo's mode passes through the umask


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as JSON in at most TERMINATION_MESSAGE_MAX bytes (beyond it Kubernetes cuts the termination
    message, and the operator could not parse it). The error is clipped; pruned keys that do not fit are left out
    and counted (`prunedNotListed`): their TaskPlatformBackups stay, so the next backup prunes them again (a
    delete of what is gone succeeds) and lists them then."""
    fitted = dict(summary)
    if fitted.get("pruneErrors"):
        fitted["pruneErrors"] = [clip(str(error)) for error in fitted["pruneErrors"]][:5]
    pruned: list[str] | None = fitted.pop("pruned", None)
    error = str(fitted["error"]) if "error" in fitted else None
    limit = ERROR_MAX_CHARS
    while True:
        if error is not None:
            fitted["error"] = clip(error, limit)
        text = json.dumps(fitted, ensure_ascii=False)
        if len(text.encode()) <= TERMINATION_MESSAGE_MAX or error is None or limit <= QUOTED_MAX_CHARS:
            break
        limit //= 2  # escapes (a control character is six bytes) or wide characters: shorter still
    if pruned is not None:
        # What the list may take: the room left, less its own field and a count of those left out.
        room = TERMINATION_MESSAGE_MAX - len(text.encode()) - len(', "pruned": [], "prunedNotListed": 1234567')
        kept: list[str] = []
        for key in pruned:
            room -= len(json.dumps(key, ensure_ascii=False).encode()) + 2
            if room < 0:
                break
            kept.append(key)
        fitted["pruned"] = kept
        if len(kept) < len(pruned):
            fitted["prunedNotListed"] = len(pruned) - len(kept)
        text = json.dumps(fitted, ensure_ascii=False)
    if len(text.encode()) > TERMINATION_MESSAGE_MAX:  # not reached with the bounds above; never a cut message
        text = json.dumps({"error": "the outcome was too long to report", "exitCode": summary.get("exitCode", 1)})
    return text


def _store(args: argparse.Namespace) -> Store:
    if args.dir:
        return VolumeStore(Path(args.dir), args.dir_location)
    if not (args.s3_endpoint and args.bucket):
        raise DumpStoreError("either --dir or --s3-endpoint with --bucket is required")
    return S3Store(args.s3_endpoint, args.bucket, args.region, not args.no_tls, not args.insecure_skip_verify)


def _download(args: argparse.Namespace, store: Store, key: str, pipe: BinaryIO | None) -> dict[str, Any]:
    if args.sha256 is not None and not SHA256_PATTERN.fullmatch(args.sha256):
        raise DumpStoreError("--sha256 must be 64 hexadecimal digits")
    if args.max_bytes is not None and not 0 < args.max_bytes <= DUMP_MAX_BYTES:
        raise DumpStoreError(f"--max-bytes must be between 1 and {DUMP_MAX_BYTES}")
    output: Path | None = args.output
    if output is None and args.fifo is not None:
        output = args.fifo.with_name(args.fifo.name + VERIFIED_SUFFIX)
    if output is None:
        raise DumpStoreError("download needs --output (or --fifo, as the previous operator's Jobs pass it)")
    summary = download(store, key, output, args.sha256, args.max_bytes, args.allow_unverified)
    if pipe is not None:
        feed(output, pipe)
        if args.output is None:
            output.unlink()  # fed: its space back to the node
    return summary


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskplatform-dumpstore", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["upload", "download"])
    parser.add_argument("--key", required=True, help="the dump's path in the store")
    parser.add_argument(
        "--fifo", type=Path, help="upload: the named pipe pg_dump writes; download: a pipe to feed once verified"
    )
    parser.add_argument("--status-file", type=Path, help="upload: where pg_dump's exit status appears")
    parser.add_argument("--prune", action="append", default=[], help="upload: keys to delete once it succeeded")
    parser.add_argument("--output", type=Path, help="download: where the verified dump appears (nothing else does)")
    parser.add_argument("--sha256", help="download: the checksum recorded at backup time")
    parser.add_argument("--max-bytes", type=int, help="download: the most the dump may have (its recorded size)")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="download: without --sha256, restore the dump unverified (DANGEROUS: whoever can write the store "
        "then runs SQL as the restoring role)",
    )
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
    started = time.monotonic()
    try:
        if args.fifo is not None:
            # Make and open the pipe first, whatever happens next: the other side waits for it to exist, its
            # open() blocks until this one's, and a failure must reach it as an early (for a download: empty)
            # stream, never as a pod waiting forever.
            make_fifo(args.fifo)
            pipe = args.fifo.open("rb" if args.command == "upload" else "wb")
            with suppress(OSError):  # a smaller buffer only costs speed
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
            started = time.monotonic()  # the other side has opened the pipe: pg_dump / pg_restore has started
        key = check_key(args.key)
        store = _store(args)
        if args.command == "upload":
            if pipe is None or args.status_file is None:
                raise DumpStoreError("upload needs --fifo and --status-file")
            summary = upload(store, pipe, args.status_file, key, args.prune)
        else:
            summary = _download(args, store, key, pipe)
        summary["seconds"] = round(time.monotonic() - started, 3)
        code = 0
    except Exception as exc:
        summary = {"error": str(exc) if isinstance(exc, DumpStoreError) else f"{type(exc).__name__}: {exc}"}
        code = 1
    finally:
        if pipe is not None:
            with suppress(OSError):
                pipe.close()
    summary["exitCode"] = code
    text = summary_text(summary)
    print(text, file=sys.stderr if code else sys.stdout)
    if args.summary_file is not None:
        with suppress(OSError):
            args.summary_file.write_text(text, encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""taskplatform-dumpstore's bounds on what it is given: keys, the size a download may write, the summary. The
stores themselves (S3, a volume, a hostile endpoint) are in tests/integration/test_dumpstore.py."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from taskplatform.migration.dumpstore import (
    CHUNK,
    KEY_MAX_BYTES,
    PARTIAL_SUFFIX,
    TERMINATION_MESSAGE_MAX,
    DumpStoreError,
    Fetched,
    Readable,
    check_key,
    download,
    summary_text,
)


@pytest.mark.parametrize(
    "key",
    ["prod/demo/demo-20260101030000.dump", "demo/b.dump", "a b/ü/ø🧪.dump", "x" * KEY_MAX_BYTES, "é" * 508],
)
def test_keys_as_the_operator_writes_them_pass(key: str) -> None:
    assert KEY_MAX_BYTES + len(".sha256") == 1024  # S3's limit, on the sidecar's key too
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x.dump", "a/../../x.dump", "a/./b.dump", "a//b.dump", "a/", "a\nb.dump", "a\x00b",
     "a\x7fb", "x" * (KEY_MAX_BYTES + 1), "é" * 509, "a\udcff.dump"],
)  # fmt: skip
def test_other_keys_are_refused(key: str) -> None:
    with pytest.raises(DumpStoreError):
        check_key(key)


class ChunkStore:
    """A store serving `chunks` with the announced size given, which records the size of the partial download
    each time it is asked for the next chunk (so after every write)."""

    def __init__(self, chunks: list[bytes], announced: int | None, partial: Path) -> None:
        self.chunks, self.announced, self.partial = chunks, announced, partial
        self.seen: list[int] = []
        self.served = 0

    def location(self, key: str) -> str:
        return f"test://{key}"

    def put(self, key: str, stream: Readable) -> None:
        raise NotImplementedError

    def put_small(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def _serve(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.seen.append(self.partial.stat().st_size if self.partial.exists() else 0)
            self.served += 1
            yield chunk

    @contextmanager
    def get(self, key: str) -> Iterator[Fetched]:
        yield Fetched(self.announced, self._serve())


def test_a_download_never_writes_past_its_bound(tmp_path: Path) -> None:
    output = tmp_path / "dump"
    stale = b"an earlier attempt's file"
    output.write_bytes(stale)
    store = ChunkStore([b"x" * CHUNK] * 10, None, output.with_name(output.name + PARTIAL_SUFFIX))
    with pytest.raises(DumpStoreError, match=f"longer than {3 * CHUNK + 5} bytes"):
        download(store, "k", output, "0" * 64, max_bytes=3 * CHUNK + 5)
    assert store.seen == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]  # the fourth chunk was refused, not written
    assert store.served == 4  # and nothing more was asked of the store
    assert list(tmp_path.iterdir()) == []  # no partial file, and the earlier attempt's file is gone too


def test_only_a_verified_download_appears_under_its_name(tmp_path: Path) -> None:
    data = [b"a" * CHUNK, b"b" * 10]
    digest = hashlib.sha256(b"".join(data)).hexdigest()
    output = tmp_path / "dump"
    partial = output.with_name(output.name + PARTIAL_SUFFIX)

    with pytest.raises(DumpStoreError, match="checksum mismatch"):
        download(ChunkStore(data, CHUNK + 10, partial), "k", output, "f" * 64, max_bytes=CHUNK + 10)
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(DumpStoreError, match="cannot be verified"):
        download(ChunkStore(data, CHUNK + 10, partial), "k", output, None)
    assert list(tmp_path.iterdir()) == []

    summary = download(ChunkStore(data, CHUNK + 10, partial), "k", output, digest.upper(), max_bytes=CHUNK + 10)
    assert summary == {"location": "test://k", "sizeBytes": CHUNK + 10, "sha256": digest, "verified": True}
    assert output.read_bytes() == b"".join(data) and list(tmp_path.iterdir()) == [output]
    assert output.stat().st_mode & 0o777 == 0o444

    unverified = download(ChunkStore(data, None, partial), "k", output, None, allow_unverified=True)
    assert unverified["verified"] is False and output.read_bytes() == b"".join(data)


def test_the_summary_fits_a_termination_message() -> None:
    keys = [f"prod/demo/demo-{n:014d}.dump" for n in range(3000)]
    text = summary_text({"location": "s3://b/k", "key": "k", "sizeBytes": 1, "sha256": "a" * 64, "pruned": keys,
                         "exitCode": 0})  # fmt: skip
    summary = json.loads(text)
    assert len(text.encode()) <= TERMINATION_MESSAGE_MAX
    kept = summary["pruned"]
    assert 0 < len(kept) < len(keys) and kept == keys[: len(kept)]
    assert summary["prunedNotListed"] == len(keys) - len(kept)
    assert summary["sha256"] == "a" * 64

    few = json.loads(summary_text({"pruned": keys[:2], "exitCode": 0}))
    assert few == {"pruned": keys[:2], "exitCode": 0}

    for error in ("\x07" * 100_000, "🧪" * 100_000, '"' * 100_000, "é" * 3000):
        text = summary_text({"error": error, "exitCode": 1})
        assert len(text.encode()) <= TERMINATION_MESSAGE_MAX
        assert json.loads(text)["error"].startswith(error[:100])

    # The longest key and its location, in characters that JSON does not escape but UTF-8 makes wide.
    key = "ø" * (KEY_MAX_BYTES // 2)
    text = summary_text({"location": f"s3://bucket/{key}", "key": key, "sizeBytes": 1, "sha256": "a" * 64,
                         "pruned": [key] * 5, "exitCode": 0})  # fmt: skip
    assert len(text.encode()) <= TERMINATION_MESSAGE_MAX and json.loads(text)["key"] == key

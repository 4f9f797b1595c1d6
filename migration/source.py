"""Reading a legacy collection in batches, each carrying the position a killed run resumes from.

Two read orders:

- natural (the default): the collection's storage order, as a plain `find` and `mongodump` read it. Every
  server streams it from the first document (FerretDB sorts any other order in memory, and sends nothing
  until it has sorted the whole collection). The position is how many documents of that order
  were consumed and the `_id` of the last one. A resumed run skips that many and checks that the document
  before its start is still that one; if the source changed under it (a document deleted before the
  position), the run cannot know what it missed and starts the collection over (`PositionLost`).
- `_id`: exact resume even while the source changes, at the cost of that sort on servers without an ordered
  `_id` index. MongoDB orders `_id` values of different BSON types by type first, and
  `{"_id": {"$gt": x}}` only matches values of x's own type class, so "everything after the last `_id`"
  would silently skip all documents whose `_id` has another type. This reader therefore walks one BSON
  type bucket at a time, in MongoDB's canonical order, with `{"_id": {"$type": bucket, "$gt": last}}`
  inside the bucket it resumes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import bson
from bson import Decimal128, ObjectId, Timestamp, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from taskplatform.migration.contract import BATCH_BYTES_DEFAULT
from taskplatform.migration.read_order import ReadOrder

# Every BSON type an `_id` can have (arrays cannot be one), in MongoDB's comparison order.
ID_BUCKETS = ("null", "number", "string", "object", "binData", "objectId", "bool", "date", "timestamp")


def source_client(uri: str) -> MongoClient[dict[str, Any]]:
    """The client the migration reads the source with. DATETIME_AUTO: a BSON date outside Python's years
    1-9999 is valid in MongoDB; it decodes to DatetimeMS (the transform reports it) instead of failing the
    whole read."""
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True, datetime_conversion="DATETIME_AUTO")


class PositionLost(Exception):
    """A natural-order position no longer names the same document: the source changed since it was saved."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a read stopped: the last document fully written (`last_id`, when `has_last`) and, in natural
    order, how many documents of the scan were consumed up to it; in `_id` order, its BSON type bucket.
    A position without a last document is the start."""

    order: ReadOrder = ReadOrder.NATURAL
    bucket: int = 0
    consumed: int = 0
    last_id: Any = None
    has_last: bool = False

    def to_json(self) -> dict[str, Any]:
        last_id = _canonical(self.last_id) if self.has_last else None  # canonical: Int64 stays Int64
        if self.order is ReadOrder.NATURAL:
            return {"order": self.order.value, "consumed": self.consumed, "last_id": last_id}
        return {
            "order": self.order.value,
            "bucket": self.bucket,
            "bucket_type": ID_BUCKETS[min(self.bucket, len(ID_BUCKETS) - 1)],
            "last_id": last_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Position:
        """A saved position; `{}` (never saved, or reset) is the start. Positions saved before natural order
        existed carry no `order` and are `_id` positions."""
        if not data:
            return cls()
        raw = data.get("last_id")
        last = {"last_id": json_util.loads(raw), "has_last": True} if raw is not None else {}
        order = ReadOrder(data.get("order", ReadOrder.ID))
        if order is ReadOrder.NATURAL:
            return cls(order, consumed=int(data["consumed"]), **last)
        return cls(order, bucket=int(data["bucket"]), **last)


@dataclass(slots=True)
class Batch:
    docs: list[dict[str, Any]] = field(default_factory=list)
    position: Position = field(default_factory=Position)


def bucket_of(value: Any) -> int:
    """The index in ID_BUCKETS of an `_id` value as pymongo decodes it."""
    if value is None:
        return 0
    if isinstance(value, bool):  # before int: bool is an int in Python
        return 6
    if isinstance(value, int | float | Decimal128):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, Mapping):
        return 3
    if isinstance(value, bytes | uuid.UUID):  # bson.Binary is a bytes
        return 4
    if isinstance(value, ObjectId):
        return 5
    if isinstance(value, datetime):
        return 7
    if isinstance(value, Timestamp):
        return 8
    raise ValueError(f"_id of type {type(value).__name__} is in no BSON type bucket")


def resume_filter(start: Position) -> dict[str, Any]:
    """Everything after `start`: the rest of its bucket by `$gt`, and every later bucket whole."""
    if not start.has_last:
        return {"_id": {"$type": list(ID_BUCKETS[start.bucket :])}} if start.bucket else {}
    rest_of_bucket = {"_id": {"$type": ID_BUCKETS[start.bucket], "$gt": start.last_id}}
    later = list(ID_BUCKETS[start.bucket + 1 :])
    return {"$or": [rest_of_bucket, {"_id": {"$type": later}}]} if later else rest_of_bucket


def read_batches(
    collection: Collection[dict[str, Any]], start: Position, batch_size: int, batch_bytes: int = BATCH_BYTES_DEFAULT
) -> Iterator[Batch]:
    """Documents after `start` in its order, in batches of at most `batch_size` documents and `batch_bytes` bytes
    of BSON (a larger document is a batch of its own); each batch carries the position to checkpoint once it is
    written. Natural order raises PositionLost, before the first batch, when `start` no longer holds."""
    if start.order is ReadOrder.ID:
        # One cursor: MongoDB sorts mixed `_id` types by type first.
        with collection.find_raw_batches(resume_filter(start), sort=[("_id", 1)], batch_size=batch_size) as cursor:
            docs = _sized_documents(_raw(cursor), collection)
            yield from _batched(
                docs, batch_size, batch_bytes, lambda _id, _: Position(ReadOrder.ID, bucket_of(_id), 0, _id, True)
            )
        return
    # No sort at all: FerretDB refuses an explicit `$natural` sort on an ordinary collection.
    skipped = max(start.consumed - 1, 0)
    with collection.find_raw_batches({}, skip=skipped, batch_size=batch_size) as cursor:
        docs = _sized_documents(_raw(cursor), collection)
        if start.has_last:
            before = next(docs, None)
            if before is None or _canonical(before[0]["_id"]) != _canonical(start.last_id):
                raise PositionLost(
                    f"document {start.consumed} of {collection.name}'s natural order is no longer "
                    f"{json_util.dumps(start.last_id)}: the collection changed since the interrupted run"
                )
            skipped += 1
        yield from _batched(
            docs, batch_size, batch_bytes, lambda _id, n: Position(ReadOrder.NATURAL, 0, skipped + n, _id, True)
        )


def _raw(cursor: Iterable[Any]) -> Iterable[bytes]:
    """A raw-batch cursor's items: pymongo's types call them documents; they are each reply's BSON bytes."""
    return cast(Iterable[bytes], cursor)


def _sized_documents(
    raw_batches: Iterable[bytes], collection: Collection[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], int]]:
    """Each document of the server's replies, decoded with the collection's codec options, with its size in
    bytes. A reply is decoded in one call, as pymongo's own cursor does; the sizes come from each document's
    length prefix (BSON's first four bytes, little-endian), which the decoder has validated."""
    options = collection.codec_options
    for raw in raw_batches:
        docs = bson.decode_all(raw, options)
        view, offset = memoryview(raw), 0
        for doc in docs:
            size = int.from_bytes(view[offset : offset + 4], "little")
            offset += size
            yield doc, size


def _canonical(value: Any) -> str:
    """BSON-exact identity of an `_id` (1 and 1.0, or {a, b} and {b, a}, are different `_id`s)."""
    return json_util.dumps(value, json_options=CANONICAL_JSON_OPTIONS)


def _batched(
    docs: Iterable[tuple[dict[str, Any], int]],
    batch_size: int,
    batch_bytes: int,
    position_after: Callable[[Any, int], Position],
) -> Iterator[Batch]:
    """`docs` (each with its size) in batches of at most `batch_size` documents and `batch_bytes` bytes, a
    larger document alone; `position_after(_id, n)` is the position after the n-th document."""
    batch, n, size = Batch(), 0, 0
    for doc, doc_size in docs:
        if batch.docs and size + doc_size > batch_bytes:
            batch.position = position_after(batch.docs[-1]["_id"], n)
            yield batch
            batch, size = Batch(), 0
        n += 1
        size += doc_size
        batch.docs.append(doc)
        if len(batch.docs) >= batch_size:
            batch.position = position_after(doc["_id"], n)
            yield batch
            batch, size = Batch(), 0
    if batch.docs:
        batch.position = position_after(batch.docs[-1]["_id"], n)
        yield batch


def count_documents(collection: Collection[dict[str, Any]]) -> int:
    return int(collection.count_documents({}))


def estimated_count(collection: Collection[dict[str, Any]]) -> int:
    """From collection metadata, without a scan: good enough for a progress bar's total. `collStats` first:
    some MongoDB-compatible servers answer the `count` behind estimated_document_count() by scanning the
    whole collection (FerretDB: 2.6 s per 100k documents, against 0.05 s), which competes with the read."""
    try:
        return int(collection.database.command("collStats", collection.name)["count"])
    except (PyMongoError, KeyError, TypeError, ValueError):
        return int(collection.estimated_document_count())


def count_unreachable(collection: Collection[dict[str, Any]]) -> int:
    """Documents whose `_id` type is in no bucket (should be 0; reported by --verify if not)."""
    return int(collection.count_documents({"_id": {"$not": {"$type": list(ID_BUCKETS)}}}))

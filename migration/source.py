"""Reading a legacy collection in `_id` order, resumable, across mixed `_id` types.

MongoDB orders `_id` values of different BSON types by type first, and `{"_id": {"$gt": x}}` only
matches values of x's own type class, so "everything after the last `_id`" would silently skip all
documents whose `_id` has another type. The reader therefore walks one BSON type bucket at a time, in
MongoDB's canonical order, with `{"_id": {"$type": bucket, "$gt": last}}` inside the bucket it resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from pymongo.collection import Collection

# Every BSON type an `_id` can have (arrays cannot be one), in MongoDB's comparison order.
ID_BUCKETS = ("null", "number", "string", "object", "binData", "objectId", "bool", "date", "timestamp")


@dataclass(frozen=True, slots=True)
class Position:
    """The last `_id` fully written, as (bucket index, `_id`); bucket 0 with no `_id` is the start."""

    bucket: int = 0
    last_id: Any = None
    has_last: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "bucket_type": ID_BUCKETS[min(self.bucket, len(ID_BUCKETS) - 1)],
            "last_id": json_util.dumps(self.last_id) if self.has_last else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Position:
        if not data:
            return cls()
        raw = data.get("last_id")
        return cls(bucket=int(data["bucket"]), last_id=json_util.loads(raw) if raw else None, has_last=raw is not None)


@dataclass(slots=True)
class Batch:
    docs: list[dict[str, Any]] = field(default_factory=list)
    position: Position = field(default_factory=Position)


def read_batches(collection: Collection[dict[str, Any]], start: Position, batch_size: int) -> Iterator[Batch]:
    """Documents after `start`, in batches; each batch carries the position to checkpoint once written."""
    for index in range(start.bucket, len(ID_BUCKETS)):
        condition: dict[str, Any] = {"$type": ID_BUCKETS[index]}
        if index == start.bucket and start.has_last:
            condition["$gt"] = start.last_id
        cursor = collection.find({"_id": condition}, sort=[("_id", 1)], batch_size=batch_size)
        batch = Batch()
        try:
            for doc in cursor:
                batch.docs.append(doc)
                if len(batch.docs) >= batch_size:
                    batch.position = Position(index, doc["_id"], True)
                    yield batch
                    batch = Batch()
        finally:
            cursor.close()
        if batch.docs:
            batch.position = Position(index, batch.docs[-1]["_id"], True)
            yield batch


def count_documents(collection: Collection[dict[str, Any]]) -> int:
    return int(collection.count_documents({}))


def count_unreachable(collection: Collection[dict[str, Any]]) -> int:
    """Documents whose `_id` type is in no bucket (should be 0; reported by --verify if not)."""
    return int(collection.count_documents({"_id": {"$not": {"$type": list(ID_BUCKETS)}}}))

"""--verify: per collection, counts (source = imported + rejected) and an order-independent content
checksum of the imported rows, computed from the source (through the same transform) and from PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from taskplatform.migration.mapping import Mapping
from taskplatform.migration.source import count_documents, count_unreachable
from taskplatform.migration.target import Target
from taskplatform.migration.transform import RejectError, TaskRow, UserRow, transform_task, transform_user


def row_digest(row: UserRow | TaskRow) -> int:
    if isinstance(row, UserRow):
        parts: list[Any] = [row.legacy_id, row.email, row.full_name, row.hashed_password, row.is_active,
                            row.created_at.isoformat()]  # fmt: skip
    else:
        parts = [row.legacy_id, row.owner_legacy_id, row.title, row.description, row.status, row.priority,
                 row.due_date.isoformat() if row.due_date else None, row.tags, row.created_at.isoformat(),
                 row.updated_at.isoformat()]  # fmt: skip
    canonical = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big")


def checksum(rows: Iterable[UserRow | TaskRow]) -> tuple[int, int]:
    """(row count, sum of 64-bit row digests mod 2**64): equal for equal row sets in any order."""
    count = total = 0
    for row in rows:
        count += 1
        total = (total + row_digest(row)) % 2**64
    return count, total


def _expected_rows(
    collection: Collection[dict[str, Any]], transform: Any, fields: Any, rejected_ids: set[str]
) -> Iterable[UserRow | TaskRow]:
    """What the target should hold: every source document that transforms and was not rejected."""
    for doc in collection.find({}, batch_size=5000):
        try:
            row = transform(doc, fields)
        except RejectError:
            continue
        if row.legacy_id not in rejected_ids:
            yield row


@dataclass(frozen=True, slots=True)
class VerifyResult:
    collection: str
    source: int
    imported: int
    rejected: int
    unreachable: int
    source_checksum: str
    target_checksum: str

    @property
    def ok(self) -> bool:
        counts_ok = self.source == self.imported + self.rejected and self.unreachable == 0
        return counts_ok and self.source_checksum == self.target_checksum

    def as_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "ok": self.ok}


def verify(
    source: Database[dict[str, Any]], target: Target, mapping: Mapping, kinds: Iterable[str]
) -> list[VerifyResult]:
    results = []
    for kind in kinds:
        name = getattr(mapping.collections, kind)
        collection = source[name]
        rejected_ids = target.rejected_ids(name)
        transform = transform_user if kind == "users" else transform_task
        fields = getattr(mapping.fields, kind)

        source_count, source_sum = checksum(_expected_rows(collection, transform, fields, rejected_ids))
        target_count, target_sum = checksum(target.iter_users() if kind == "users" else target.iter_tasks())
        results.append(
            VerifyResult(
                collection=name,
                source=count_documents(collection),
                imported=target_count,
                rejected=len(rejected_ids),
                unreachable=count_unreachable(collection),
                source_checksum=f"{source_count}:{source_sum:016x}",
                target_checksum=f"{target_count}:{target_sum:016x}",
            )
        )
    return results

"""--verify: per collection, counts (source = imported + rejected) and an order-independent content
checksum of the imported rows, computed from the source (through the same transform) and from PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from taskplatform.migration.collections import KINDS, Kind, Row
from taskplatform.migration.mapping import Mapping
from taskplatform.migration.runner import Options
from taskplatform.migration.source import count_documents, count_unreachable
from taskplatform.migration.target import Target
from taskplatform.migration.transform import RejectError


def row_digest(kind: Kind, row: Row) -> int:
    canonical = json.dumps(kind.canonical(row), separators=(",", ":"), ensure_ascii=False).encode()
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "big")


def checksum(kind: Kind, rows: Iterable[Row]) -> tuple[int, int]:
    """(row count, sum of 64-bit row digests mod 2**64): equal for equal row sets in any order."""
    count = total = 0
    for row in rows:
        count += 1
        total = (total + row_digest(kind, row)) % 2**64
    return count, total


def _expected_rows(
    kind: Kind,
    collection: Collection[dict[str, Any]],
    fields: Any,
    import_time: datetime,
    rejected_ids: set[str],
    options: dict[str, Any],
) -> Iterable[Row]:
    """What the target should hold: every source document that transforms (with the run's options) and was not
    rejected."""
    for doc in collection.find({}, batch_size=5000):
        try:
            row = kind.transform(doc, fields, import_time, **options)
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
    source: Database[dict[str, Any]],
    target: Target,
    mapping: Mapping,
    kinds: Iterable[str],
    run_options: Options | None = None,
) -> list[VerifyResult]:
    """Counts and checksums per collection; `run_options` are the migration's (its bcrypt bound, say), so the
    expected rows are what that run imported."""
    run_options = run_options or Options()
    results = []
    for name in kinds:
        kind = KINDS[name]
        collection_name = kind.collection(mapping)
        collection = source[collection_name]
        rejected_ids = target.rejected_ids(collection_name)
        checkpoint = target.load_checkpoint(collection_name)
        # Documents without a creation time got the import's start; the checkpoint remembers it.
        import_time = (checkpoint.started_at if checkpoint else None) or datetime.now(UTC)
        expected = _expected_rows(
            kind, collection, kind.fields(mapping), import_time, rejected_ids, kind.options_of(run_options)
        )
        source_count, source_sum = checksum(kind, expected)
        target_count, target_sum = checksum(kind, target.iter_rows(kind))
        results.append(
            VerifyResult(
                collection=collection_name,
                source=count_documents(collection),
                imported=target_count,
                rejected=len(rejected_ids),
                unreachable=count_unreachable(collection),
                source_checksum=f"{source_count}:{source_sum:016x}",
                target_checksum=f"{target_count}:{target_sum:016x}",
            )
        )
    return results

"""The migration run: per collection, read batches (in a thread), transform, write with a checkpoint."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from taskplatform.api.gc_tuning import raised_gc_thresholds
from taskplatform.api.limits import BCRYPT_MAX_ROUNDS_DEFAULT
from taskplatform.migration.collections import KINDS, TASKS, USERS, Kind, Row
from taskplatform.migration.contract import BATCH_BYTES_DEFAULT, BATCH_SIZE_DEFAULT
from taskplatform.migration.mapping import Mapping
from taskplatform.migration.progress import CollectionStats, Reporter
from taskplatform.migration.read_order import ReadOrder
from taskplatform.migration.source import (
    Batch,
    Position,
    PositionLost,
    estimated_count,
    read_batches,
)
from taskplatform.migration.target import Checkpoint, Counts, Rejected, Target
from taskplatform.migration.transform import RejectError, TaskRow, UserRow, legacy_id, owner_reference


@dataclass(frozen=True, slots=True)
class Options:
    batch_size: int = BATCH_SIZE_DEFAULT
    batch_bytes: int = BATCH_BYTES_DEFAULT
    kinds: tuple[str, ...] = tuple(KINDS)
    dry_run: bool = False
    restart: bool = False
    read_order: ReadOrder = ReadOrder.NATURAL  # for a collection that starts; a resumed one keeps its order
    mapping: Mapping = field(default_factory=Mapping)
    bcrypt_max_rounds: int = BCRYPT_MAX_ROUNDS_DEFAULT  # the costliest legacy hash imported: the API's bound


def _source_id(doc: dict[str, Any]) -> str:
    try:
        return legacy_id(doc.get("_id"))
    except RejectError:
        return repr(doc.get("_id"))[:96]


def _prefetch(batches: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Read ahead in a thread so that MongoDB reads overlap PostgreSQL writes; `depth` bounds memory."""
    channel: queue.Queue[Batch | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        channel.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            channel.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            channel.put(exc)

    thread = threading.Thread(target=produce, name="mongo-reader", daemon=True)
    thread.start()
    try:
        while (item := channel.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


Pair = tuple[Row, dict[str, Any]]  # a row and the source document it came from


# Owner keys found among the migrated users stay known, so that a batch looks up only the owners no earlier batch
# named (each lookup sent ~4000 keys per 5000 tasks). Bounded: the set is emptied when it would outgrow this
# many keys (~10 MB). A user deleted meanwhile still cannot own a row: the upsert finds no id for it, PostgreSQL
# refuses the row, and it is kept as a reject with PostgreSQL's reason.
KNOWN_OWNERS_MAX = 100_000


class Migration:
    def __init__(self, source: Database[dict[str, Any]], target: Target | None, options: Options, reporter: Reporter):
        if target is None and not options.dry_run:
            raise ValueError("a target is required unless dry_run")
        self.source = source
        self.target = target
        self.options = options
        self.reporter = reporter
        self._owners_found: set[str] = set()

    def run(self) -> list[CollectionStats]:
        kinds = [kind for name, kind in KINDS.items() if name in self.options.kinds]
        if self.options.restart and self.target is not None:
            self.target.reset(kind.collection(self.options.mapping) for kind in kinds)
        with raised_gc_thresholds():
            return [self._run_collection(kind) for kind in kinds]

    def _run_collection(self, kind: Kind) -> CollectionStats:
        name = kind.collection(self.options.mapping)
        collection = self.source[name]
        checkpoint = None if self.target is None else self.target.load_checkpoint(name)
        stats = CollectionStats(name=name, total=0)
        # The total only feeds the progress bar's ETA; some servers scan to count, so it arrives on the side.
        counter = threading.Thread(target=self._fill_total, args=(stats, collection), daemon=True)
        counter.start()
        if checkpoint is not None and checkpoint.done:
            stats.read, stats.written, stats.rejected = (
                checkpoint.counts.read, checkpoint.counts.written, checkpoint.counts.rejected
            )  # fmt: skip
            stats.altered = self.target.altered_count(name) if self.target is not None else 0
            self.reporter.event("skipped", collection=name, reason="already complete; --restart to run it again")
            self.reporter.update(stats, force=True)
            return stats
        # A collection that never wrote a batch starts in the order asked for; one that did keeps its own.
        position = (
            checkpoint.position if checkpoint and checkpoint.position.has_last else Position(self.options.read_order)
        )
        counts = checkpoint.counts if checkpoint else Counts()
        import_time = (checkpoint.started_at if checkpoint else None) or datetime.now(UTC)
        deferred = checkpoint.deferred_indexes if checkpoint else ()
        stats.read, stats.written, stats.rejected = counts.read, counts.written, counts.rejected
        if self.target is not None:
            stats.altered = self.target.altered_count(name)
            if not deferred and not position.has_last:
                deferred = self.target.defer_indexes(kind, name, Checkpoint(position, counts, False, import_time))
        self.reporter.event(
            "start", collection=name, total=stats.total, resume_from=position.to_json(), deferred_indexes=deferred
        )
        started = time.monotonic()
        try:
            for batch in _prefetch(
                read_batches(collection, position, self.options.batch_size, self.options.batch_bytes)
            ):
                altered = self._batch(
                    kind, name, batch, counts, Checkpoint(batch.position, counts, False, import_time, deferred)
                )
                stats.read, stats.written, stats.rejected = counts.read, counts.written, counts.rejected
                stats.altered += altered
                self.reporter.update(stats)
                position = batch.position
        except PositionLost as lost:  # raised before the first batch: nothing of this run was written yet
            assert self.target is not None  # only a saved position can be lost
            self.reporter.event("restart", collection=name, reason=str(lost))
            # What was written stays and is upserted again, row for row; rejects and counts start over.
            self.target.reset([name])
            return self._run_collection(kind)
        counter.join()
        if self.target is not None:
            if deferred:
                self.reporter.event("indexes", collection=name, building=deferred)
                self.target.build_indexes(kind, deferred)
            self.target.mark_done(name, Checkpoint(position, counts, True, import_time))
        stats.seconds = time.monotonic() - started
        if self.target is not None:
            stats.altered = self.target.altered_count(name)
        self.reporter.update(stats, force=True)
        return stats

    @staticmethod
    def _fill_total(stats: CollectionStats, collection: Any) -> None:
        stats.total = estimated_count(collection)

    def _split(self, kind: Kind, batch: Batch, import_time: datetime) -> tuple[list[Pair], list[Rejected]]:
        """(row, its source document) for what transforms, Rejected for the rest. The document travels with
        its row for the rejects only the writer can decide (duplicate email, unknown owner, PostgreSQL)."""
        fields = kind.fields(self.options.mapping)
        options = kind.options_of(self.options)
        rows: list[Pair] = []
        rejects: list[Rejected] = []
        for doc in batch.docs:
            try:
                rows.append((kind.transform(doc, fields, import_time, **options), doc))
            except RejectError as exc:
                rejects.append(Rejected(_source_id(doc), str(exc), doc))
        return rows, rejects

    def _batch(self, kind: Kind, name: str, batch: Batch, counts: Counts, checkpoint: Checkpoint) -> int:
        """Transform, decide the writer's rejects, write with `checkpoint` (its counts are `counts`, updated
        here). Returns how many rows were altered."""
        assert checkpoint.started_at is not None
        rows, rejects = self._split(kind, batch, checkpoint.started_at)
        kept = (self._unique_emails if kind is USERS else self._known_owners)(rows, rejects)
        counts.read += len(batch.docs)
        counts.written += len(kept)
        counts.rejected += len(rejects)
        refused: list[Rejected] = []
        if self.target is not None:
            refused = self.target.write_batch(kind, name, kept, rejects, checkpoint)
        refused_ids = {r.source_id for r in refused}
        return sum(1 for row, _ in kept if row.notes and row.legacy_id not in refused_ids)

    def _unique_emails(self, rows: list[Pair], rejects: list[Rejected]) -> list[Pair]:
        """A second account with an email already taken (in this batch, by an earlier one, or through the API)."""
        emails = [r.email for r, _ in rows if isinstance(r, UserRow)]
        taken = {} if self.target is None else self.target.users_taking_emails(emails)
        kept: list[Pair] = []
        seen: set[str] = set()
        for row, doc in rows:
            assert isinstance(row, UserRow)
            owner = taken.get(row.email, row.legacy_id)
            if row.email in seen or owner != row.legacy_id:
                rejects.append(Rejected(row.legacy_id, f"duplicate email {row.email!r}", doc))
            else:
                seen.add(row.email)
                kept.append((row, doc))
        return kept

    def _known_owners(self, rows: list[Pair], rejects: list[Rejected]) -> list[Pair]:
        """Tasks whose owner reference names a migrated user (in a dry run: a user document in the source)."""
        owner_keys = {r.owner_legacy_id for r, _ in rows if isinstance(r, TaskRow)}
        unseen = owner_keys - self._owners_found
        found: set[str] = set()
        if unseen and self.target is not None:
            found = set(self.target.user_ids(sorted(unseen)))
        elif unseen:
            docs = [doc for row, doc in rows if isinstance(row, TaskRow) and row.owner_legacy_id in unseen]
            found = self._owners_in_source(unseen, docs)
        known = (owner_keys & self._owners_found) | found
        if len(self._owners_found) + len(found) > KNOWN_OWNERS_MAX:
            self._owners_found.clear()
        self._owners_found |= found
        kept: list[Pair] = []
        for row, doc in rows:
            assert isinstance(row, TaskRow)
            if row.owner_legacy_id in known:
                kept.append((row, doc))
            else:
                rejects.append(Rejected(row.legacy_id, f"unknown owner {row.owner_legacy_id!r}", doc))
        return kept

    def _owners_in_source(self, owner_keys: set[str], docs: list[dict[str, Any]]) -> set[str]:
        """Dry run: which owner references name a user document in the source. The references are looked up
        as stored (any `_id` type, DBRefs unwrapped), and hex strings also as the ObjectId they spell."""
        fields = TASKS.fields(self.options.mapping)
        candidates: list[Any] = []
        for doc in docs:
            for field_name in fields.owner:
                if doc.get(field_name) is not None:
                    candidates.append(owner_reference(doc[field_name]))
                    break
        candidates += [ObjectId(k) for k in owner_keys if ObjectId.is_valid(k)]
        users = self.source[USERS.collection(self.options.mapping)]
        found = {legacy_id(doc["_id"]) for doc in users.find({"_id": {"$in": candidates}}, {"_id": 1})}
        return found & owner_keys

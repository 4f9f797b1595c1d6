"""The migration run: per collection, read batches (in a thread), transform, write with a checkpoint."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo.database import Database

from taskplatform.migration.mapping import Mapping
from taskplatform.migration.progress import CollectionStats, Reporter
from taskplatform.migration.source import Batch, Position, estimated_count, read_batches
from taskplatform.migration.target import Checkpoint, Counts, Rejected, Target
from taskplatform.migration.transform import RejectError, TaskRow, UserRow, legacy_id, transform_task, transform_user

KINDS = ("users", "tasks")  # users first: tasks resolve their owners among migrated users


@dataclass(frozen=True, slots=True)
class Options:
    batch_size: int = 5000
    kinds: tuple[str, ...] = KINDS
    dry_run: bool = False
    restart: bool = False
    mapping: Mapping = field(default_factory=Mapping)


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


class Migration:
    def __init__(self, source: Database[dict[str, Any]], target: Target | None, options: Options, reporter: Reporter):
        if target is None and not options.dry_run:
            raise ValueError("a target is required unless dry_run")
        self.source = source
        self.target = target
        self.options = options
        self.reporter = reporter

    def run(self) -> list[CollectionStats]:
        names = {kind: getattr(self.options.mapping.collections, kind) for kind in self.options.kinds}
        if self.options.restart and self.target is not None:
            self.target.reset(names.values())
        results = []
        for kind in KINDS:
            if kind in names:
                results.append(self._run_collection(kind, names[kind]))
        return results

    def _run_collection(self, kind: str, name: str) -> CollectionStats:
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
            self.reporter.event("skipped", collection=name, reason="already complete; --restart to run it again")
            self.reporter.update(stats, force=True)
            return stats
        position = checkpoint.position if checkpoint else Position()
        counts = checkpoint.counts if checkpoint else Counts()
        stats.read, stats.written, stats.rejected = counts.read, counts.written, counts.rejected
        self.reporter.event("start", collection=name, total=stats.total, resume_from=position.to_json())
        started = time.monotonic()
        for batch in _prefetch(read_batches(collection, position, self.options.batch_size)):
            (self._users_batch if kind == "users" else self._tasks_batch)(name, batch, counts)
            stats.read, stats.written, stats.rejected = counts.read, counts.written, counts.rejected
            self.reporter.update(stats)
            position = batch.position
        stats.seconds = time.monotonic() - started
        counter.join()
        if self.target is not None:
            self.target.mark_done(name, Checkpoint(position, counts, True))
        self.reporter.update(stats, force=True)
        return stats

    @staticmethod
    def _fill_total(stats: CollectionStats, collection: Any) -> None:
        stats.total = estimated_count(collection)

    def _split(
        self, batch: Batch, transform: Any, fields: Any
    ) -> tuple[list[tuple[Any, dict[str, Any]]], list[Rejected]]:
        """(row, its source document) for what transforms, Rejected for the rest. The document travels with
        its row for the rejects only the writer can decide (duplicate email, unknown owner)."""
        rows, rejects = [], []
        for doc in batch.docs:
            try:
                rows.append((transform(doc, fields), doc))
            except RejectError as exc:
                rejects.append(Rejected(_source_id(doc), str(exc), doc))
        return rows, rejects

    def _users_batch(self, name: str, batch: Batch, counts: Counts) -> None:
        rows, rejects = self._split(batch, transform_user, self.options.mapping.fields.users)
        taken = {} if self.target is None else self.target.users_taking_emails([r.email for r, _ in rows])
        kept: list[UserRow] = []
        seen: set[str] = set()
        for row, doc in rows:
            owner = taken.get(row.email, row.legacy_id)
            if row.email in seen or owner != row.legacy_id:
                rejects.append(Rejected(row.legacy_id, f"duplicate email {row.email!r}", doc))
            else:
                seen.add(row.email)
                kept.append(row)
        counts.read += len(batch.docs)
        counts.written += len(kept)
        counts.rejected += len(rejects)
        if self.target is not None:
            self.target.write_users(name, kept, rejects, batch.position, counts)

    def _owners_in_source(self, owner_keys: set[str]) -> set[str]:
        """Dry run: which owner references name a user document in the source."""
        candidates: list[Any] = list(owner_keys)
        candidates += [ObjectId(k) for k in owner_keys if ObjectId.is_valid(k)]
        users = self.source[self.options.mapping.collections.users]
        return {legacy_id(doc["_id"]) for doc in users.find({"_id": {"$in": candidates}}, {"_id": 1})}

    def _tasks_batch(self, name: str, batch: Batch, counts: Counts) -> None:
        rows, rejects = self._split(batch, transform_task, self.options.mapping.fields.tasks)
        owner_keys = {r.owner_legacy_id for r, _ in rows}
        if self.target is not None:
            owner_ids = self.target.user_ids(sorted(owner_keys))
        else:
            owner_ids = dict.fromkeys(self._owners_in_source(owner_keys), 0)
        kept: list[tuple[TaskRow, int]] = []
        for row, doc in rows:
            owner_id = owner_ids.get(row.owner_legacy_id)
            if owner_id is None:
                rejects.append(Rejected(row.legacy_id, f"unknown owner {row.owner_legacy_id!r}", doc))
            else:
                kept.append((row, owner_id))
        counts.read += len(batch.docs)
        counts.written += len(kept)
        counts.rejected += len(rejects)
        if self.target is not None:
            self.target.write_tasks(name, kept, rejects, batch.position, counts)

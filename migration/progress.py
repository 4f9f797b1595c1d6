"""Progress as a rich bar on a terminal, or as JSON lines (read/written/rejected/rate/eta) for Job logs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table


@dataclass(slots=True)
class CollectionStats:
    name: str
    total: int
    read: int = 0
    written: int = 0
    rejected: int = 0
    altered: int = 0  # imported with a change noted in migration_alterations
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.read / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        remaining = max(self.total - self.read, 0)
        rate = self.rate
        return {
            "collection": self.name,
            "total": self.total,
            "read": self.read,
            "written": self.written,
            "rejected": self.rejected,
            "altered": self.altered,
            "rate": round(rate, 1),
            "eta_s": round(remaining / rate, 1) if rate > 0 and self.total else None,
        }


class Reporter:
    """One progress sink for the run; `interactive` picks the bar, otherwise JSON lines on `stream`."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.interval_s = interval_s
        self._clock = clock
        # None, not 0.0: the monotonic clock counts from boot, so on a young machine "now - 0.0" is small
        # and the first line would be swallowed.
        self._last_emit: float | None = None
        self._console = Console(file=self.stream)
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Reporter:
        if self.interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rejected]} rejected"),
                TextColumn("{task.fields[rate]:,.0f} docs/s"),
                TimeRemainingColumn(),
                console=self._console,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, name: str, **fields: Any) -> None:
        if not self.interactive:
            self.stream.write(json.dumps({"event": name, **fields}, default=str) + "\n")
            self.stream.flush()

    def update(self, stats: CollectionStats, force: bool = False) -> None:
        if self._progress is not None:
            if stats.name not in self._tasks:
                self._tasks[stats.name] = self._progress.add_task(stats.name, total=stats.total, rejected=0, rate=0.0)
            self._progress.update(
                self._tasks[stats.name],
                total=stats.total or None,
                completed=stats.read,
                rejected=stats.rejected,
                rate=stats.rate,
            )
            return
        now = self._clock()
        if force or self._last_emit is None or now - self._last_emit >= self.interval_s:
            self._last_emit = now
            self.event("progress", **stats.as_dict())

    def summary(self, all_stats: list[CollectionStats], dry_run: bool) -> None:
        """A final table in the manner of pgloader's, or one JSON `summary` event."""
        if not self.interactive:
            self.event(
                "summary",
                dry_run=dry_run,
                collections=[{**s.as_dict(), "seconds": round(s.seconds, 2)} for s in all_stats],
            )
            return
        table = Table(title="taskplatform-migrate" + (" (dry run: nothing written)" if dry_run else ""))
        for column in ("collection", "read", "imported", "altered", "rejected", "time", "docs/s"):
            table.add_column(column, justify="left" if column == "collection" else "right")
        for s in all_stats:
            rate = s.read / s.seconds if s.seconds else 0.0
            table.add_row(
                s.name,
                f"{s.read:,}",
                f"{s.written:,}",
                f"{s.altered:,}",
                f"{s.rejected:,}",
                f"{s.seconds:.1f}s",
                f"{rate:,.0f}",
            )
        totals = [sum(getattr(s, key) for s in all_stats) for key in ("read", "written", "altered", "rejected")]
        table.add_row("total", *(f"{n:,}" for n in totals), f"{sum(s.seconds for s in all_stats):.1f}s", "")
        self._console.print(table)
        altered = sum(s.altered for s in all_stats)
        if altered and not dry_run:
            self._console.print(
                f"{altered:,} documents were imported with changes; each is listed with what changed in the "
                "table migration_alterations (rejects, with their reason, in migration_rejects)."
            )

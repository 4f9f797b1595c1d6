"""The operator's work queue: per-object passes that never overlap, bursts collapsed into one pass, failures
retried with backoff, and passes scheduled ahead (resync, polling), as a controller's work queue does.

Scheduling lives here rather than in kopf timers: kopf guards timers with a finalizer, and a finalizer would keep
resources from being deleted while the operator is not running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence

from taskplatform.operator import metrics

log = logging.getLogger("taskplatform.operator")
Key = tuple[str, str]  # namespace, name
# After the n-th failure in a row, the next pass comes this long later (the last delay repeats).
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class KeyedRunner:
    """Per-key serialised work with coalescing, backoff and scheduled re-runs (a controller work queue).

    `work` returns the seconds after which the key wants another pass (resync, polling), or None. `name` labels
    its metrics (metrics.py).
    """

    def __init__(
        self,
        work: Callable[[Key], Awaitable[float | None]],
        name: str,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ):
        self._work = work
        self.name = name
        self._retry_delays_s = tuple(retry_delays_s)
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._scheduled: dict[Key, tuple[float, object]] = {}  # the earliest pass still to come, and its token
        self._failures: Counter[Key] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._scheduled)

    async def run(self, key: Key) -> None:
        """Reconcile now (after any pass in progress) and raise what it raises: for kopf's own retries."""
        async with self._locks[key]:
            await self._pass(key)

    def enqueue(self, key: Key, delay_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + delay_s
        if key in self._scheduled and self._scheduled[key][0] <= due:
            return  # an earlier pass is already scheduled; it will see this change too
        token = object()
        self._scheduled[key] = (due, token)  # supersedes any later-scheduled pass
        task = loop.create_task(self._background(key, delay_s, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _background(self, key: Key, delay_s: float, token: object) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        async with self._locks[key]:
            if self._scheduled.get(key, (0.0, None))[1] is not token:
                return  # superseded by an earlier pass, which scheduled its own follow-up
            del self._scheduled[key]  # changes from here on need another pass
            try:
                await self._pass(key)
            except Exception as exc:  # retried with backoff; kopf handlers see errors through run()
                self._failures[key] += 1
                delays = self._retry_delays_s
                delay = delays[min(self._failures[key], len(delays)) - 1]
                log.warning("%s %s/%s failed (%s); retrying in %.0fs", self.name, *key, exc, delay)
                self.enqueue(key, delay)

    async def _pass(self, key: Key) -> None:
        started = time.monotonic()
        try:
            again = await self._work(key)
        except Exception:
            metrics.PASSES.labels(self.name, "error").inc()
            raise
        finally:
            metrics.PASS_SECONDS.labels(self.name).observe(time.monotonic() - started)
        metrics.PASSES.labels(self.name, "success").inc()
        self._failures.pop(key, None)
        if again is not None:
            self.enqueue(key, again)

    async def drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

"""KeyedRunner: one pass at a time per key, bursts coalesced, failures retried, earlier schedules win."""

import asyncio

import pytest

from taskplatform.operator import handlers
from taskplatform.operator.handlers import Key, KeyedRunner

KEY: Key = ("ns", "demo")


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_burst_during_a_pass_collapses_into_one_more_pass() -> None:
    async def scenario() -> list[int]:
        release = asyncio.Event()
        calls: list[int] = []
        active = 0
        overlaps: list[int] = []

        async def work(key: Key) -> float | None:
            nonlocal active
            active += 1
            overlaps.append(active)
            calls.append(len(calls))
            if len(calls) == 1:
                await release.wait()
            active -= 1
            return None

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY)
        await _settle()  # the first pass is now blocked inside work()
        for _ in range(5):
            runner.enqueue(KEY)
        release.set()
        await _settle()
        assert max(overlaps) == 1  # never two passes of one key at once
        assert runner.pending == 0
        await runner.drain()
        return calls

    assert asyncio.run(scenario()) == [0, 1]


def test_run_waits_for_the_pass_in_progress_and_raises_its_error() -> None:
    async def scenario() -> None:
        order: list[str] = []
        release = asyncio.Event()

        async def work(key: Key) -> float | None:
            if not order:
                order.append("background")
                await release.wait()
                return None
            order.append("run")
            raise RuntimeError("refused")

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY)
        await _settle()
        waiting = asyncio.ensure_future(runner.run(KEY))
        await _settle()
        assert not waiting.done()
        release.set()
        with pytest.raises(RuntimeError, match="refused"):
            await waiting
        assert order == ["background", "run"]
        await runner.drain()

    asyncio.run(scenario())


def test_failures_are_retried_until_a_pass_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "RETRY_DELAYS_S", (0.0,))

    async def scenario() -> int:
        attempts = 0

        async def work(key: Key) -> float | None:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise ConnectionResetError("apiserver went away")
            return None

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY)
        for _ in range(10):
            await _settle()
        await runner.drain()
        return attempts

    assert asyncio.run(scenario()) == 3


def test_an_earlier_schedule_supersedes_a_later_one() -> None:
    async def scenario() -> int:
        passes = 0

        async def work(key: Key) -> float | None:
            nonlocal passes
            passes += 1
            return None

        runner = KeyedRunner(work, "test")
        runner.enqueue(KEY, 3600)  # a resync an hour away
        runner.enqueue(KEY)  # a child changed: now
        runner.enqueue(KEY, 7200)  # later than what is scheduled: nothing to do
        await _settle()
        assert runner.pending == 0
        await runner.drain()
        return passes

    assert asyncio.run(scenario()) == 1

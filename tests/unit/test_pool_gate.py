import asyncio

import pytest

from taskplatform.api.db.gate import PoolBusyError, PoolGate


def test_a_freed_slot_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    async def scenario() -> list[str]:
        gate = PoolGate(slots=1, max_waiting=10, timeout_s=5)
        order: list[str] = []
        await gate.acquire()  # the slot is taken

        async def request(name: str) -> None:
            async with gate.slot():
                order.append(name)
                await asyncio.sleep(0)

        waiters = [asyncio.create_task(request(f"waiter{i}")) for i in range(3)]
        await asyncio.sleep(0)  # all three queue
        gate.release()
        newcomer = asyncio.create_task(request("newcomer"))  # arrives just as the slot frees
        await asyncio.gather(*waiters, newcomer)
        assert gate.free == 1 and gate.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["waiter0", "waiter1", "waiter2", "newcomer"]


def test_a_full_waiting_room_answers_at_once_and_a_long_wait_times_out() -> None:
    async def scenario() -> None:
        gate = PoolGate(slots=1, max_waiting=1, timeout_s=0.05)
        await gate.acquire()
        waiting = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        with pytest.raises(PoolBusyError) as full:
            await gate.acquire()
        assert full.value.waited_s == 0.0
        with pytest.raises(PoolBusyError):
            await waiting  # nobody released within the timeout
        assert gate.waiting == 0
        gate.release()
        await gate.acquire()  # the slot is usable again: nothing leaked

    asyncio.run(scenario())


def test_a_cancelled_waiter_does_not_swallow_the_slot() -> None:
    async def scenario() -> None:
        gate = PoolGate(slots=1, max_waiting=5, timeout_s=5)
        await gate.acquire()
        first = asyncio.create_task(gate.acquire())
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0)
        first.cancel()
        gate.release()
        await asyncio.wait_for(second, 1)  # the slot skipped the cancelled waiter
        assert first.cancelled()

    asyncio.run(scenario())

"""WorkQueue semantics: de-duplication, per-key serialization, delays, back-off and shutdown."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from incluster_ipam.runtime import Backoff, ItemBackoff, QueueShutDown, Result, WorkQueue


async def test_duplicates_are_queued_once_in_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        queue.add(key)
    assert len(queue) == 3
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_key_in_flight_is_not_handed_out_again_but_reruns_once_after() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # held back while "a" is processing
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.done(key)
    assert await asyncio.wait_for(getter, 1) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_workers_never_run_one_key_concurrently() -> None:
    queue: WorkQueue[int] = WorkQueue()
    running: set[int] = set()
    overlaps = 0
    runs: Counter[int] = Counter()

    async def handler(key: int) -> None:
        nonlocal overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        runs[key] += 1
        await asyncio.sleep(0.002)
        if runs[key] < 3:
            queue.add(key)  # re-added while processing
        running.discard(key)

    for key in range(5):
        queue.add(key)
    workers = asyncio.create_task(queue.run_workers(8, handler))
    await asyncio.sleep(0.2)
    await queue.shutdown()
    await asyncio.wait_for(workers, 1)
    assert overlaps == 0
    assert runs == dict.fromkeys(range(5), 3)


async def test_add_after_orders_by_due_time_and_keeps_the_earliest() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("late", 0.08)
    queue.add_after("early", 0.02)
    queue.add_after("late", 0.5)  # later than already scheduled: ignored
    queue.add_after("soon", 0.5)
    queue.add_after("soon", 0.05)  # earlier: replaces
    assert queue.delayed == 3
    assert len(queue) == 0
    got = [await asyncio.wait_for(queue.get(), 1) for _ in range(3)]
    assert got == ["early", "soon", "late"]


async def test_add_after_zero_is_immediate() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0)
    assert len(queue) == 1


def test_item_backoff_doubles_from_5ms_to_the_cap() -> None:
    backoff = ItemBackoff()
    delays = [backoff.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1000.0
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert backoff.retries("k") == 20
    assert backoff.when("other") == 0.005  # per item
    for _ in range(100):
        backoff.when("k")
    assert backoff.when("k") == 1000.0
    backoff.forget("k")
    assert backoff.when("k") == 0.005


def test_stream_backoff_grows_caps_and_resets() -> None:
    backoff = Backoff(initial=1, cap=4, jitter=0)
    assert [backoff.next() for _ in range(4)] == [1, 2, 4, 4]
    backoff.reset()
    assert backoff.next() == 1
    jittered = Backoff(initial=1, cap=1, jitter=0.5)
    assert all(1 <= jittered.next() <= 1.5 for _ in range(20))
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=2, cap=1)


async def test_rate_limited_requeues_back_off_and_forget_resets() -> None:
    queue: WorkQueue[str] = WorkQueue(ItemBackoff(base=0.01, cap=1))
    loop = asyncio.get_running_loop()
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")  # now scheduled at 0.01 (earliest kept)
    assert queue.num_requeues("a") == 3
    started = loop.time()
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    assert 0.005 <= loop.time() - started < 0.5
    queue.done("a")
    queue.forget("a")
    assert queue.num_requeues("a") == 0


async def test_handler_results_and_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    queue: WorkQueue[str] = WorkQueue(ItemBackoff(base=0.01, cap=0.01))
    calls: Counter[str] = Counter()

    async def handler(key: str) -> Result | None:
        calls[key] += 1
        if key == "boom" and calls[key] < 3:
            raise RuntimeError("reconcile failed")
        if key == "again" and calls[key] < 2:
            return Result(requeue=True)
        if key == "later" and calls[key] < 2:
            return Result(requeue_after=0.05)
        return None

    for key in ("boom", "again", "later", "once"):
        queue.add(key)
    workers = asyncio.create_task(queue.run_workers(2, handler))
    await asyncio.sleep(0.3)
    await queue.shutdown()
    await asyncio.wait_for(workers, 1)
    assert calls == {"boom": 3, "again": 2, "later": 2, "once": 1}
    assert "reconcile failed" in caplog.text
    assert queue.num_requeues("boom") == 0  # forgotten after success


async def test_shutdown_with_drain_finishes_queued_and_in_flight_work() -> None:
    queue: WorkQueue[int] = WorkQueue()
    done: list[int] = []

    async def handler(key: int) -> None:
        await asyncio.sleep(0.01)
        done.append(key)

    for key in range(5):
        queue.add(key)
    queue.add_after(99, 10)
    workers = asyncio.create_task(queue.run_workers(2, handler))
    await asyncio.sleep(0)
    await asyncio.wait_for(queue.shutdown(drain=True), 2)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert queue.delayed == 0  # delayed keys are dropped
    queue.add(7)  # ignored after shutdown
    assert len(queue) == 0
    await asyncio.wait_for(workers, 1)
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_shutdown_without_drain_drops_queued_keys() -> None:
    queue: WorkQueue[int] = WorkQueue()
    for key in range(5):
        queue.add(key)
    await queue.shutdown(drain=False)
    assert len(queue) == 0
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_blocked_getters_wake_on_shutdown() -> None:
    queue: WorkQueue[int] = WorkQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    await queue.shutdown()
    results = await asyncio.gather(*getters, return_exceptions=True)
    assert all(isinstance(r, QueueShutDown) for r in results)


async def test_cancelled_getter_does_not_lose_a_wakeup() -> None:
    queue: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"


async def test_workers_with_handlers_that_never_suspend_still_share_the_loop() -> None:
    queue: WorkQueue[int] = WorkQueue()
    ticks = 0

    async def handler(key: int) -> None:
        return None  # a cache hit: no await that suspends

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    for key in range(2000):
        queue.add(key)
    other = asyncio.create_task(ticker())
    workers = asyncio.create_task(queue.run_workers(1, handler))
    await asyncio.sleep(0)
    await asyncio.wait_for(queue.shutdown(), 5)
    await workers
    other.cancel()
    assert ticks >= 10


async def test_shutdown_without_drain_still_waits_for_keys_in_flight() -> None:
    queue: WorkQueue[int] = WorkQueue()
    release = asyncio.Event()
    finished: list[int] = []

    async def handler(key: int) -> None:
        await release.wait()
        finished.append(key)

    for key in range(5):
        queue.add(key)
    workers = asyncio.create_task(queue.run_workers(2, handler))
    await asyncio.sleep(0.01)  # two keys handed out, three queued
    stopping = asyncio.create_task(queue.shutdown(drain=False))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # in-flight handlers are let finish
    assert len(queue) == 0  # queued keys are dropped
    release.set()
    await asyncio.wait_for(stopping, 1)
    assert sorted(finished) == [0, 1]
    await asyncio.wait_for(workers, 1)


async def test_background_keys_go_after_every_foreground_key_and_an_add_promotes_one() -> None:
    """A takeover re-checks every bound claim in the background: a claim created meanwhile must not wait
    behind 100,000 of them."""
    queue: WorkQueue[str] = WorkQueue()
    for key in ["b1", "b2", "b3"]:
        queue.add_background(key)
    queue.add("f1")
    queue.add("b2")  # an event for a key waiting in the background: it is urgent now
    queue.add_background("f1")  # already queued in front: stays there
    queue.add("f2")
    assert len(queue) == 5
    order = [await queue.get() for _ in range(5)]
    assert order == ["f1", "b2", "f2", "b1", "b3"]
    for key in order:
        queue.done(key)
    assert len(queue) == 0


async def test_a_background_key_added_while_in_flight_reruns_in_the_background() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add_background("a")
    queue.add("b")
    queue.done("a")
    assert [await queue.get(), await queue.get()] == ["b", "a"]

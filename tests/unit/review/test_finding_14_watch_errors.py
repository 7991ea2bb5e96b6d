"""Finding 14 of the December review: the informer relisted on every apiserver error of a watch, so a 429
from API Priority and Fairness (or a 5xx) turned into a full relist, and Retry-After was ignored. A throttled
or failing watch is retried (after the server's Retry-After, at least); only 410 Gone relists."""

from __future__ import annotations

import asyncio

from incluster_ipam.kube import error_from_status
from incluster_ipam.runtime import Backoff, Informer
from tests.unit.runtime.test_informer import FakeSource, Seen, cm, eventually, project


def informer_for(source: FakeSource, seen: Seen) -> Informer:
    informer = Informer(
        source, projection=project, backoff=Backoff(initial=0.01, cap=0.02, jitter=0), watch_timeout=(5, 5)
    )
    informer.add_handler(lambda t, old, new: seen.append((t, old, new)))
    return informer


def throttled(retry_after: int | None = None) -> Exception:
    status: dict[str, object] = {"code": 429, "reason": "TooManyRequests", "message": "too many requests"}
    if retry_after is not None:
        status["details"] = {"retryAfterSeconds": retry_after}
    return error_from_status(status)


async def test_finding_14_a_throttled_watch_is_retried_without_relisting() -> None:
    source = FakeSource([cm("a", 1)], "5")
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        for _ in range(5):
            source.emit(throttled())
        await eventually(source, lambda: len(source.watch_calls) >= 6)
        assert len(source.list_calls) == 1, "a 429 on a watch must not relist"
        assert source.watch_calls[-1] == "5"
    finally:
        await informer.stop()


async def test_finding_14_server_errors_on_a_watch_resume_it_from_the_last_version() -> None:
    source = FakeSource([cm("a", 1)], "5")
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        for code, reason in ((500, "InternalError"), (503, "ServiceUnavailable"), (504, "Timeout")):
            source.emit(error_from_status({"code": code, "reason": reason, "message": "overloaded"}))
        await eventually(source, lambda: len(source.watch_calls) >= 4)
        assert len(source.list_calls) == 1
    finally:
        await informer.stop()


async def test_finding_14_retry_after_is_honoured() -> None:
    source = FakeSource([cm("a", 1)], "5")
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        loop = asyncio.get_running_loop()
        source.emit(throttled(retry_after=1))
        started = loop.time()
        await eventually(source, lambda: len(source.watch_calls) >= 2)
        # The backoff alone would retry after 10-20 ms; the server asked for a second.
        assert loop.time() - started >= 0.9
    finally:
        await informer.stop()

"""Informer logic against a scripted list/watch source: sync, events, resume, relist diff, resync, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incluster_ipam.kube import (
    ObjectList,
    TransportError,
    WatchEvent,
    error_from_status,
)
from incluster_ipam.kube.client import LIST_PAGE_SIZE
from incluster_ipam.kube.resources import Obj
from incluster_ipam.runtime import Backoff, Informer

END = object()


def cm(name: str, rv: int, pool: str = "p1", ns: str = "ns", **extra: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": {"big": "x" * 100}},
        "spec": {"pool": pool, **extra},
    }


class Stream:
    def __init__(self, script: asyncio.Queue[object]) -> None:
        self.script = script
        self.closed = False

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[WatchEvent]:
        while True:
            item = await self.script.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, WatchEvent)
            yield item

    async def aclose(self) -> None:
        self.closed = True


class FakeSource:
    """Lists return `items`/`version`; each watch consumes the shared script (events, exceptions, END)."""

    def __init__(self, items: list[Obj], version: str) -> None:
        self.items = items
        self.version = version
        self.script: asyncio.Queue[object] = asyncio.Queue()
        self.list_calls: list[int | None] = []
        self.watch_calls: list[str] = []
        self.expire_continue = False
        self.called = asyncio.Event()

    async def list_pages(self, page_size: int | None) -> AsyncIterator[ObjectList]:
        self.list_calls.append(page_size)
        size = page_size or len(self.items) or 1
        for start in range(0, max(len(self.items), 1), size):
            if start and self.expire_continue:
                # The continue token expired: as `KubeClient.snapshot`, one full list, marked restarted.
                self.expire_continue = False
                yield ObjectList(list(self.items), self.version, restarted=True)
                return
            yield ObjectList(self.items[start : start + size], self.version)

    def watch(self, resource_version: str, timeout_seconds: int) -> Stream:
        assert timeout_seconds >= 1
        self.watch_calls.append(resource_version)
        self.called.set()
        return Stream(self.script)

    def emit(self, *items: object) -> None:
        for item in items:
            self.script.put_nowait(item)


def project(obj: Obj) -> Obj:
    """Keep only what a controller needs (drops labels and resourceVersion)."""
    return {"name": obj["metadata"]["name"], "pool": obj["spec"]["pool"]}


Seen = list[tuple[str, Obj | None, Obj | None]]


def informer_for(source: FakeSource, seen: Seen, **kwargs: Any) -> Informer:
    informer = Informer(
        source,
        projection=project,
        indexers={"pool": lambda o: [o["pool"]]},
        backoff=Backoff(initial=0.01, cap=0.02, jitter=0),
        watch_timeout=(5, 5),
        **kwargs,
    )
    informer.add_handler(lambda t, old, new: seen.append((t, old, new)))
    return informer


async def settle(informer: Informer, predicate: Any) -> None:
    await informer.wait_for(predicate, timeout=2)


async def eventually(source: FakeSource, condition: Any) -> None:
    """Wait for a condition on the fake source's calls (not a store change, so wait_for does not see it)."""
    async with asyncio.timeout(2):
        while not condition():
            source.called.clear()
            await source.called.wait()


async def test_initial_list_then_live_events() -> None:
    source = FakeSource([cm("a", 1), cm("b", 2, pool="p2")], "5")
    seen: Seen = []
    informer = informer_for(source, seen)
    assert not informer.has_synced
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        assert informer.get("ns/a") == {"name": "a", "pool": "p1"}  # projected
        assert informer.get_object("ns", "b") == {"name": "b", "pool": "p2"}
        assert [(t, new) for t, _, new in seen] == [
            ("ADDED", {"name": "a", "pool": "p1"}),
            ("ADDED", {"name": "b", "pool": "p2"}),
        ]
        seen.clear()

        source.emit(
            WatchEvent("ADDED", cm("c", 6)),
            WatchEvent("MODIFIED", cm("a", 7, pool="p2")),
            WatchEvent("DELETED", cm("b", 8, pool="p2")),
            WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "12"}}),
        )
        await settle(informer, lambda i: i.resource_version == "12")
        assert seen == [
            ("ADDED", None, {"name": "c", "pool": "p1"}),
            ("MODIFIED", {"name": "a", "pool": "p1"}, {"name": "a", "pool": "p2"}),
            ("DELETED", {"name": "b", "pool": "p2"}, None),
        ]
        assert sorted(informer.keys()) == ["ns/a", "ns/c"]
        assert informer.index_keys("pool", "p2") == {"ns/a"}
        assert [o["name"] for o in informer.by_index("pool", "p1")] == ["c"]
        assert source.watch_calls == ["5"]
    finally:
        await informer.stop()


async def test_a_closed_watch_resumes_from_the_last_version_without_relisting() -> None:
    source = FakeSource([cm("a", 1)], "5")
    informer = informer_for(source, [])
    informer.start()
    try:
        source.emit(WatchEvent("MODIFIED", cm("a", 9)), END)
        source.emit(WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "15"}}), END)
        source.emit(TransportError("connection reset"))
        await eventually(source, lambda: len(source.watch_calls) >= 4)
        assert source.watch_calls[:4] == ["5", "9", "15", "15"]
        assert source.list_calls == [LIST_PAGE_SIZE]
    finally:
        await informer.stop()


async def test_expired_watch_relists_and_reports_what_was_missed() -> None:
    source = FakeSource([cm("keep", 1), cm("change", 2), cm("gone", 3)], "5")
    seen: Seen = []
    informer = informer_for(source, seen)
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        seen.clear()
        source.items = [cm("keep", 1), cm("change", 20, pool="p9"), cm("new", 21)]
        source.version = "30"
        source.emit(
            error_from_status({"code": 410, "reason": "Expired", "message": "too old resource version"})
        )
        await settle(informer, lambda i: i.resource_version == "30")
        assert sorted(seen, key=lambda e: e[0]) == [
            ("ADDED", None, {"name": "new", "pool": "p1"}),
            ("DELETED", {"name": "gone", "pool": "p1"}, None),
            ("MODIFIED", {"name": "change", "pool": "p1"}, {"name": "change", "pool": "p9"}),
        ]  # "keep" has the same resourceVersion: not reported
        assert informer.index_keys("pool", "p9") == {"ns/change"}
        assert informer.lists == 2
        await eventually(source, lambda: source.watch_calls[-1:] == ["30"])
    finally:
        await informer.stop()


async def test_a_refused_watch_relists() -> None:
    """A refusal that is not throttling nor a server failure (here 403 after an RBAC change) relists;
    429 and 5xx resume the watch (tests/unit/review/test_finding_14_watch_errors.py)."""
    source = FakeSource([cm("a", 1)], "5")
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        source.emit(error_from_status({"code": 403, "reason": "Forbidden", "message": "no longer allowed"}))
        await settle(informer, lambda i: i.lists == 2)
    finally:
        await informer.stop()


async def test_failing_list_is_retried() -> None:
    source = FakeSource([cm("a", 1)], "5")
    calls = 0
    original = source.list_pages

    async def flaky(page_size: int | None) -> AsyncIterator[ObjectList]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransportError("connection refused")
        async for page in original(page_size):
            yield page

    source.list_pages = flaky  # type: ignore[method-assign]
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        assert calls == 3
    finally:
        await informer.stop()


async def test_a_restarted_snapshot_replaces_the_pages_before_it() -> None:
    source = FakeSource([cm(f"o{i}", i) for i in range(5)], "9")
    source.expire_continue = True
    seen: Seen = []
    informer = informer_for(source, seen, page_size=2)
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        assert source.list_calls == [2]
        assert len(informer) == 5
        assert sorted(new["name"] for _, _, new in seen if new) == [f"o{i}" for i in range(5)]
    finally:
        await informer.stop()


async def test_resync_redelivers_everything() -> None:
    source = FakeSource([cm("a", 1), cm("b", 2)], "5")
    seen: Seen = []
    informer = informer_for(source, seen, resync_period=0.05)
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        await asyncio.sleep(0.12)
        syncs = [new for t, old, new in seen if t == "SYNC" and old is new]
        assert len(syncs) >= 2
        assert {o["name"] for o in syncs if o} == {"a", "b"}
    finally:
        await informer.stop()


async def test_handler_errors_are_contained_and_async_handlers_awaited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FakeSource([cm("a", 1)], "5")
    got: list[str] = []

    def broken(event_type: str, old: Obj | None, new: Obj | None) -> None:
        raise RuntimeError("handler bug")

    async def slow(event_type: str, old: Obj | None, new: Obj | None) -> None:
        await asyncio.sleep(0)
        got.append(event_type)

    informer = informer_for(source, [])
    informer.add_handler(broken)
    informer.add_handler(slow)
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        source.emit(WatchEvent("ADDED", cm("b", 6)))
        await settle(informer, lambda i: i.get("ns/b") is not None)
        await asyncio.sleep(0)
        assert got == ["ADDED", "ADDED"]
        assert "handler bug" in caplog.text
    finally:
        await informer.stop()


async def test_wait_for_times_out() -> None:
    source = FakeSource([], "1")
    informer = informer_for(source, [])
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 2)
        with pytest.raises(TimeoutError):
            await informer.wait_for(lambda i: len(i) > 0, timeout=0.05)
    finally:
        await informer.stop()

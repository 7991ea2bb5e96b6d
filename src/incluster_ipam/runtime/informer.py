"""`Informer`: a local, always-current cache of one resource, fed by list + watch (client-go's reflector,
store and shared-informer handlers in one).

- Lists (paginated, projecting each page as it arrives, so 20k full objects are never held at once), then
  watches with bookmarks from the list's resourceVersion; a watch that ends resumes from the last seen
  resourceVersion.
- 410 Gone (expired resourceVersion or continue token) relists at once. Other failures back off (0.8 s
  doubling to 30 s by default, at least the server's Retry-After) and resume the watch: transport errors,
  429 (API Priority and Fairness) and 5xx alike, as client-go's reflector does for throttling; a relist
  under throttling would only add load. Other refusals (403 after an RBAC change, 400) relist.
- `last_heard` tells when the apiserver last answered (a list, an event, a bookmark), so a watch that
  hangs without a word shows as stale (`stale_seconds`) until its idle timeout ends it.
- A relist swaps in a freshly built store atomically and reports the difference to the handlers (ADDED,
  MODIFIED for changed resourceVersions, DELETED for objects that vanished while we were not watching).
- Optional resync re-delivers every object as SYNC.
- The store holds a projection of each object (a caller-supplied function that keeps only needed fields).

Handlers are called in event order with `(event_type, old, new)` on the event loop; they should be quick
(enqueue a key). They may be coroutines. Their exceptions are logged, never fatal.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ..kube.client import LIST_PAGE_SIZE, KubeClient, ObjectList
from ..kube.errors import ApiError, KubeError, WatchExpired
from ..kube.resources import Obj, Resource, object_key
from ..kube.watch import ADDED, BOOKMARK, DELETED, MODIFIED, WatchEvent
from .backoff import Backoff
from .store import IndexFunc, Store

log = logging.getLogger(__name__)

SYNC: Final = "SYNC"
#: Yield to the event loop every this many objects in bulk work (relist, resync).
_BATCH = 500

Projection = Callable[[Obj], Obj]
Handler = Callable[[str, Obj | None, Obj | None], Awaitable[None] | None]
Predicate = Callable[["Informer"], bool]


class EventIterator(Protocol):
    """What a watch returns: async-iterable events that can be closed early."""

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    async def aclose(self) -> None: ...


class ListWatch(Protocol):
    """The informer's view of the API (a KubeClient-backed `ResourceListWatch`, or a fake in unit tests)."""

    def list_pages(self, page_size: int | None) -> AsyncIterator[ObjectList]:
        """The pages of one snapshot (`KubeClient.snapshot`: a page may say the snapshot `restarted`)."""
        ...

    def watch(self, resource_version: str, timeout_seconds: int) -> EventIterator: ...


@dataclass(frozen=True)
class ResourceListWatch:
    """List and watch one resource through a KubeClient, optionally in one namespace and by selectors."""

    client: KubeClient
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    def list_pages(self, page_size: int | None) -> AsyncIterator[ObjectList]:
        return self.client.snapshot(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=page_size,
        )

    def watch(self, resource_version: str, timeout_seconds: int) -> EventIterator:
        return self.client.watch(
            self.resource,
            self.namespace,
            resource_version=resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout_seconds,
            allow_bookmarks=True,
        )


def _identity(obj: Obj) -> Obj:
    return obj


def _version(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


class Informer:
    """Keeps a projected copy of every object of one resource and tells handlers what changed."""

    def __init__(
        self,
        source: ListWatch,
        *,
        name: str = "informer",
        projection: Projection | None = None,
        indexers: Mapping[str, IndexFunc] | None = None,
        resync_period: float | None = None,
        page_size: int | None = LIST_PAGE_SIZE,
        backoff: Backoff | None = None,
        watch_timeout: tuple[int, int] = (60, 100),
    ) -> None:
        self.name = name
        self._source = source
        self._project = projection or _identity
        self._store = Store(indexers)
        self._handlers: list[Handler] = []
        self._resync_period = resync_period
        self._page_size = page_size
        self._backoff = backoff or Backoff()
        self._watch_timeout = watch_timeout
        self._resource_version = ""
        self._synced = asyncio.Event()
        self._waiters: list[tuple[Predicate, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Counters, for logs and tests.
        self.lists = 0
        self.watches = 0
        self._heard_at = -float("inf")

    @classmethod
    def for_resource(
        cls,
        client: KubeClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        **kwargs: Any,
    ) -> Informer:
        """An informer over `resource` (all namespaces unless `namespace`); keyword args as `Informer`."""
        source = ResourceListWatch(client, resource, namespace, label_selector, field_selector)
        kwargs.setdefault("name", resource.plural)
        return cls(source, **kwargs)

    # ---- configuration ---------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Call `handler(event_type, old, new)` on every change: ADDED (old None), MODIFIED, DELETED (new
        None, old the last known state) and SYNC (resync: old is new)."""
        self._handlers.append(handler)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        self._store.add_indexer(name, func)

    # ---- reads -------------------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list has been stored (and its handlers called)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    @property
    def stale_seconds(self) -> float:
        """Seconds since the apiserver last told this informer anything (a list, an event, a bookmark, a
        watch ending in order); infinite before the first list."""
        return time.monotonic() - self._heard_at

    @property
    def page_size(self) -> int | None:
        """Objects per list page (None: unpaginated)."""
        return self._page_size

    @property
    def resource_version(self) -> str:
        """Where the next watch resumes."""
        return self._resource_version

    def get(self, key: str) -> Obj | None:
        """The projected object stored under `namespace/name` (or `name` if cluster-scoped)."""
        return self._store.get(key)

    def get_object(self, namespace: str | None, name: str) -> Obj | None:
        return self._store.get(f"{namespace}/{name}" if namespace else name)

    def keys(self) -> builtins.list[str]:
        return self._store.keys()

    def list(self) -> builtins.list[Obj]:
        return self._store.values()

    def __len__(self) -> int:
        return len(self._store)

    @property
    def stored_bytes(self) -> int:
        """What the cached objects take, compressed (`Store.stored_bytes`)."""
        return self._store.stored_bytes

    def __contains__(self, key: object) -> bool:
        """Whether an object is cached under `key` (no copy is decoded)."""
        return key in self._store

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        return self._store.by_index(index, value)

    def each(self) -> Iterator[tuple[str, Obj]]:
        """Every cached `(key, object)`, decoded one at a time (`Store.each`)."""
        return self._store.each()

    def each_in_index(self, index: str, value: str) -> Iterator[tuple[str, Obj]]:
        return self._store.each_in_index(index, value)

    def index_keys(self, index: str, value: str) -> set[str]:
        return self._store.index_keys(index, value)

    async def wait_for(self, predicate: Predicate, timeout: float) -> None:  # noqa: ASYNC109 - mirrors asyncio.wait_for
        """Wait until `predicate(informer)` holds (checked now and after every change); TimeoutError if not
        within `timeout` seconds."""
        if predicate(self):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (kept by the informer); `stop()` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.name}")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = asyncio.create_task(self._resync_loop()) if self._resync_period else None
        need_list = True
        try:
            while True:
                try:
                    if need_list:
                        await self._relist()
                        need_list = False
                        self._backoff.reset()
                    await self._watch()
                except WatchExpired as exc:
                    log.info("%s: %s; relisting", self.name, exc.message or "resource version expired")
                    need_list = True
                except KubeError as exc:
                    delay = self._backoff.next()
                    if isinstance(exc, ApiError):
                        delay = max(delay, exc.retry_after or 0.0)
                        # Throttled or failing: retry where we were (a 410 would tell us to relist). Any
                        # other refusal of a watch: relist.
                        need_list = need_list or not (exc.status == 429 or exc.status >= 500)
                    log.warning("%s: %s; retrying in %.1f s", self.name, exc, delay)
                    await asyncio.sleep(delay)
                except Exception:
                    delay = self._backoff.next()
                    log.exception("%s: unexpected failure; retrying in %.1f s", self.name, delay)
                    need_list = True
                    await asyncio.sleep(delay)
        finally:
            if resync is not None:
                resync.cancel()
                await asyncio.gather(resync, return_exceptions=True)

    # ---- list -----------------------------------------------------------------------------------------

    async def _relist(self) -> None:
        store, version = await self._list_into_store(self._page_size)
        old, self._store = self._store, store
        self._resource_version = version
        self._heard_at = time.monotonic()
        self.lists += 1
        log.debug("%s: listed %d objects at resourceVersion %s", self.name, len(store), version)
        await self._report_replace(old, store)
        self._synced.set()
        self._notify()

    async def _list_into_store(self, page_size: int | None) -> tuple[Store, str]:
        store = Store(self._store.indexers)
        version = ""
        count = 0
        pages = self._source.list_pages(page_size)
        async for page in pages:
            if page.restarted:  # the snapshot started again (an expired continue token): drop the rest
                store, count = Store(self._store.indexers), 0
            for obj in page.items:
                store.upsert(object_key(obj), self._project(obj), _version(obj))
                count += 1
                if count % _BATCH == 0:
                    await asyncio.sleep(0)
            version = page.resource_version
        return store, version

    async def _report_replace(self, old: Store, new: Store) -> None:
        """Dispatch what changed between two stores; only objects that are reported get decoded."""
        for count, key in enumerate(new.keys(), 1):
            if key not in old:
                await self._dispatch(ADDED, None, new.get(key))
            elif old.version(key) != new.version(key):
                await self._dispatch(MODIFIED, old.get(key), new.get(key))
            if count % _BATCH == 0:
                await asyncio.sleep(0)
        for key in old:  # detached: nothing changes it meanwhile
            if key not in new:
                await self._dispatch(DELETED, old.get(key), None)

    # ---- watch -------------------------------------------------------------------------------------------

    async def _watch(self) -> None:
        timeout = random.randint(*self._watch_timeout)
        started = time.monotonic()
        events = 0
        self.watches += 1
        stream = self._source.watch(self._resource_version, timeout)
        try:
            async for event in stream:
                self._heard_at = time.monotonic()
                await self._apply(event)
                events += 1
                if events == 1:
                    self._backoff.reset()
                elif events % _BATCH == 0:
                    await asyncio.sleep(0)  # a burst of buffered events must not hog the loop
        finally:
            await stream.aclose()
        self._heard_at = time.monotonic()  # the server ended the watch in order: it is alive
        if events == 0 and time.monotonic() - started < 1.0:
            # A watch closed at once without a word: do not spin.
            await asyncio.sleep(self._backoff.next())

    async def _apply(self, event: WatchEvent) -> None:
        obj = event.object
        version = _version(obj)
        if event.type == BOOKMARK:
            if version:
                self._resource_version = version
            self._notify()
            return
        key = object_key(obj)
        projected = self._project(obj)
        if event.type == DELETED:
            self._store.delete(key)
            await self._dispatch(DELETED, projected, None)
        else:
            old = self._store.upsert(key, projected, version)
            await self._dispatch(ADDED if old is None else MODIFIED, old, projected)
        if version:
            self._resource_version = version
        self._notify()

    # ---- resync and delivery ---------------------------------------------------------------------------

    async def _resync_loop(self) -> None:
        assert self._resync_period is not None
        while True:
            await asyncio.sleep(self._resync_period)
            if not self.has_synced:
                continue
            for count, key in enumerate(self._store.keys(), 1):
                obj = self._store.get(key)
                if obj is not None:
                    await self._dispatch(SYNC, obj, obj)
                if count % _BATCH == 0:
                    await asyncio.sleep(0)

    async def _dispatch(self, event_type: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                result = handler(event_type, old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("%s: handler %r failed on %s", self.name, handler, event_type)

    def _notify(self) -> None:
        for predicate, future in list(self._waiters):
            if future.done():
                continue
            try:
                if predicate(self):
                    future.set_result(None)
            except Exception as exc:
                future.set_exception(exc)

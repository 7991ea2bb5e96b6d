"""The provider's real `KubeClient` with test hooks in front of chosen calls, to force a race or a failure
at an exact step (everything else goes to kube-apiserver unchanged)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from incluster_ipam.kube import KubeClient, ObjectList, Resource, load_kubeconfig
from incluster_ipam.kube.client import WatchStream
from incluster_ipam.kube.watch import WatchEvent

#: A hook runs before the call is sent; it may sleep, raise, or record. (method, plural, name or ""); the
#: method is "patch-status" for a patch of the status subresource.
Hook = Callable[[str, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Sent:
    at: float  # time.time() when the request left for the apiserver
    method: str
    plural: str
    name: str


class DoctoredClient(KubeClient):
    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(load_kubeconfig(kubeconfig))
        self.hooks: list[Hook] = []
        #: Run after a call was answered, before the caller sees the answer.
        self.after: list[Hook] = []
        self.sent: list[Sent] = []
        #: Requests sent and not yet answered, by (method, plural).
        self.in_flight: Counter[tuple[str, str]] = Counter()
        #: Applied to every watch of that plural: wraps the event stream.
        self.watch_wrappers: dict[str, Callable[[AsyncIterator[WatchEvent]], AsyncIterator[WatchEvent]]] = {}

    async def _before(self, method: str, resource: Resource, name: str) -> None:
        for hook in list(self.hooks):
            await hook(method, resource.plural, name)
        self.sent.append(Sent(time.time(), method, resource.plural, name))

    @contextlib.asynccontextmanager
    async def _call(self, method: str, resource: Resource, name: str) -> AsyncIterator[None]:
        await self._before(method, resource, name)
        self.in_flight[(method, resource.plural)] += 1
        try:
            yield
        finally:
            self.in_flight[(method, resource.plural)] -= 1
        for hook in list(self.after):
            await hook(method, resource.plural, name)

    def sent_to(self, method: str, plural: str) -> list[Sent]:
        return [s for s in self.sent if s.method == method and s.plural == plural]

    async def get(self, resource: Resource, name: str, namespace: str | None = None, **kw: Any) -> Any:
        async with self._call("get", resource, name):
            return await super().get(resource, name, namespace, **kw)

    async def create(self, resource: Resource, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
        async with self._call("create", resource, str(obj.get("metadata", {}).get("name", ""))):
            return await super().create(resource, obj, namespace, **kw)

    async def replace(self, resource: Resource, obj: Any, namespace: str | None = None, **kw: Any) -> Any:
        async with self._call("replace", resource, str(obj.get("metadata", {}).get("name", ""))):
            return await super().replace(resource, obj, namespace, **kw)

    async def patch(
        self, resource: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Any:
        method = "patch-status" if kw.get("subresource") == "status" else "patch"
        async with self._call(method, resource, name):
            return await super().patch(resource, name, patch, namespace, **kw)

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, **kw: Any) -> Any:
        async with self._call("delete", resource, name):
            return await super().delete(resource, name, namespace, **kw)

    async def list_pages(  # type: ignore[override]
        self, resource: Resource, namespace: str | None = None, **kw: Any
    ) -> AsyncIterator[ObjectList]:
        await self._before("list", resource, "")
        async for page in super().list_pages(resource, namespace, **kw):
            yield page
            await self._before("list-next", resource, "")

    def watch(self, resource: Resource, namespace: str | None = None, **kw: Any) -> Any:
        stream = super().watch(resource, namespace, **kw)
        wrapper = self.watch_wrappers.get(resource.plural)
        return stream if wrapper is None else _Wrapped(stream, wrapper)


class _Wrapped:
    """A watch stream whose events pass through `wrapper` (an async generator over the real events)."""

    def __init__(
        self,
        stream: WatchStream,
        wrapper: Callable[[AsyncIterator[WatchEvent]], AsyncIterator[WatchEvent]],
    ) -> None:
        self._stream = stream
        self._events = wrapper(stream.__aiter__())

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._events

    async def aclose(self) -> None:
        await self._stream.aclose()


def from_informer() -> bool:
    """Whether the current call comes from an informer (their tasks are named `informer-<plural>`)."""
    task = asyncio.current_task()
    return task is not None and task.get_name().startswith("informer-")


class Gate:
    """An event a hook waits on, with a flag that says whether anyone is waiting."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.reached = asyncio.Event()

    async def wait(self) -> None:
        self.reached.set()
        await self.open.wait()

"""Raw HTTP access to the benchmark's kube-apiserver: concurrent creates, a watch that timestamps bindings,
paginated lists and the apiserver's request counters.

Deliberately independent of the provider's own Kubernetes client, so both providers are measured by the
same neutral client. Times are `time.monotonic()` seconds of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

Obj = dict[str, Any]

GROUP = "ipam.cluster.x-k8s.io"
IPAM = f"/apis/{GROUP}/v1beta2"
POOLS = f"/apis/{GROUP}/v1alpha2"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
READ_VERBS = frozenset({"GET", "LIST", "WATCH"})
#: Statuses worth retrying for a create: throttling by API priority and fairness, and server trouble.
_RETRY = frozenset({429, 500, 502, 503, 504})


class ApiFailure(RuntimeError):
    """A request failed for good."""


def address_of(i: int) -> str:
    """The i-th address from 10.0.0.2 up (the lowest of the benchmark pools above the network address and
    gateway), as text."""
    value = 0x0A000002 + i
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def claims_path(namespace: str) -> str:
    return f"{IPAM}/namespaces/{namespace}/ipaddressclaims"


def addresses_path(namespace: str | None = None) -> str:
    return f"{IPAM}/namespaces/{namespace}/ipaddresses" if namespace else f"{IPAM}/ipaddresses"


def pools_path(namespace: str, plural: str = "inclusterippools") -> str:
    return f"{POOLS}/namespaces/{namespace}/{plural}"


async def request(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    content_type: str = "application/json",
    ok: Iterable[int] = (200, 201),
    retries: int = 8,
) -> Obj:
    """One JSON request, retried on throttling, 5xx and dropped connections (with a short backoff)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": content_type} if data is not None else {}
    wanted = frozenset(ok)
    delay = 0.05
    for attempt in range(retries + 1):
        try:
            async with http.request(method, path, data=data, headers=headers) as resp:
                if resp.status in wanted:
                    result: Obj = await resp.json()
                    return result
                text = await resp.text()
                if resp.status not in _RETRY or attempt == retries:
                    raise ApiFailure(f"{method} {path}: HTTP {resp.status}: {text[:500]}")
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if attempt == retries:
                raise ApiFailure(f"{method} {path}: {exc!r}") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


async def create(http: aiohttp.ClientSession, path: str, body: Mapping[str, Any]) -> Obj:
    return await request(http, "POST", path, body)


async def merge_patch(http: aiohttp.ClientSession, path: str, body: Mapping[str, Any]) -> Obj:
    return await request(http, "PATCH", path, body, content_type="application/merge-patch+json")


async def list_all(http: aiohttp.ClientSession, path: str, page: int = 5000) -> tuple[list[Obj], str]:
    """Every item of a collection (paginated) and the list's resourceVersion."""
    items: list[Obj] = []
    token = ""
    while True:
        query = f"?limit={page}" + (f"&continue={token}" if token else "")
        body = await request(http, "GET", path + query)
        items.extend(body.get("items") or [])
        token = (body.get("metadata") or {}).get("continue") or ""
        if not token:
            return items, str((body.get("metadata") or {}).get("resourceVersion", ""))


async def run_bounded(jobs: Iterable[Callable[[], Awaitable[object]]], concurrency: int) -> None:
    """Run the jobs with at most `concurrency` in flight, in order of submission (a closed loop)."""
    iterator = iter(jobs)

    async def worker() -> None:
        for job in iterator:
            await job()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Watchers:
    """`count` watches on a collection, read and discarded (as an informer reads them): the fan-out a
    provider's informers cost the apiserver."""

    def __init__(self, http: aiohttp.ClientSession, path: str, count: int) -> None:
        self.http, self.path, self.count = http, path, count
        self.events = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def _one(self) -> None:
        async with self.http.get(f"{self.path}?watch=1&timeoutSeconds=3600") as resp:
            async for _ in resp.content:
                self.events += 1

    async def __aenter__(self) -> Watchers:
        self._tasks = [asyncio.create_task(self._one()) for _ in range(self.count)]
        await asyncio.sleep(0.5)
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._tasks, return_exceptions=True)


# ---- the binding watch ---------------------------------------------------------------------------------


@dataclass
class BindingWatch:
    """Watches IPAddressClaims and records when each one's `status.addressRef.name` is first seen."""

    http: aiohttp.ClientSession
    path: str
    field_selector: str = ""
    bound: dict[str, float] = field(default_factory=dict)
    finalized: dict[str, float] = field(default_factory=dict)  # first seen with any finalizer
    events: int = 0
    restarts: int = 0  # watches that ended (server timeout or close) and were resumed
    relists: int = 0  # resumes refused with 410 Gone, answered by a fresh list
    _target: int | None = None
    _names: frozenset[str] = frozenset()
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _progress: float = field(default_factory=time.monotonic)

    async def start(self) -> None:
        query = f"?fieldSelector={self.field_selector}" if self.field_selector else ""
        body = await request(self.http, "GET", self.path + query)
        for item in body.get("items") or []:
            self._observe(item)
        version = str(body["metadata"]["resourceVersion"])
        self._task = asyncio.create_task(self._run(version))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _observe(self, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in self.bound:
            return
        if name not in self.finalized and obj["metadata"].get("finalizers"):
            self.finalized[name] = time.monotonic()
        ref = ((obj.get("status") or {}).get("addressRef") or {}).get("name")
        if ref:
            now = time.monotonic()
            self.bound[name] = now
            self._progress = now
            if (self._target is not None and len(self.bound) >= self._target) or (
                self._names and self._names <= self.bound.keys()
            ):
                self._done.set()

    async def _run(self, version: str) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        while True:
            selector = f"&fieldSelector={self.field_selector}" if self.field_selector else ""
            query = (
                f"?watch=1&allowWatchBookmarks=true&timeoutSeconds=1800&resourceVersion={version}{selector}"
            )
            try:
                async with self.http.get(self.path + query, timeout=timeout) as resp:
                    if resp.status != 200:
                        raise ApiFailure(f"watch {self.path}: HTTP {resp.status}: {await resp.text()}")
                    async for line in resp.content:
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            if obj.get("code") == 410:  # too old: relist
                                self.relists += 1
                                body = await request(self.http, "GET", self.path)
                                for item in body.get("items") or []:
                                    self._observe(item)
                                version = str(body["metadata"]["resourceVersion"])
                            break
                        version = str(obj.get("metadata", {}).get("resourceVersion", version))
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self.events += 1
                            self._observe(obj)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                await asyncio.sleep(0.1)
            self.restarts += 1

    async def wait(
        self,
        *,
        count: int | None = None,
        names: Iterable[str] = (),
        stall: float = 120.0,
        deadline: float | None = None,
    ) -> bool:
        """Wait until `count` claims (or all `names`) are bound; False on a stall or the deadline."""
        self._target = count
        self._names = frozenset(names)
        self._done.clear()
        self._progress = time.monotonic()
        if (count is not None and len(self.bound) >= count) or (
            self._names and self._names <= self.bound.keys()
        ):
            return True
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), 1.0)
                return True
            now = time.monotonic()
            if now - self._progress > stall or (deadline is not None and now > deadline):
                return False


# ---- the apiserver's request counters --------------------------------------------------------------------

_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RequestCounts:
    """`apiserver_request_total` summed by (verb, resource[/subresource], code)."""

    counts: Counter[tuple[str, str, str]]

    @classmethod
    async def read(cls, http: aiohttp.ClientSession) -> RequestCounts:
        async with http.get("/metrics") as resp:
            if resp.status != 200:
                raise ApiFailure(f"GET /metrics: HTTP {resp.status}")
            text = await resp.text()
        return cls.parse(text)

    @classmethod
    def parse(cls, text: str) -> RequestCounts:
        counts: Counter[tuple[str, str, str]] = Counter()
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if match is None:
                continue
            labels = dict(_LABEL.findall(match.group(1)))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource = f"{resource}/{labels['subresource']}"
            counts[(labels.get("verb", ""), resource, labels.get("code", ""))] += int(float(match.group(2)))
        return cls(counts)

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        diff = Counter(self.counts)
        diff.subtract(other.counts)
        return RequestCounts(Counter({k: v for k, v in diff.items() if v}))

    def by(self, verbs: frozenset[str]) -> dict[str, int]:
        """Requests with one of `verbs`, keyed "VERB resource[/sub]" (codes summed)."""
        out: Counter[str] = Counter()
        for (verb, resource, _code), n in self.counts.items():
            if verb in verbs:
                out[f"{verb} {resource}"] += n
        return dict(sorted(out.items()))

    def total(self, verbs: frozenset[str], resources: frozenset[str] | None = None) -> int:
        return sum(
            n
            for (verb, resource, _code), n in self.counts.items()
            if verb in verbs and (resources is None or resource.split("/")[0] in resources)
        )

    def conflicts(self) -> int:
        return sum(n for (verb, _r, code), n in self.counts.items() if code == "409" and verb in WRITE_VERBS)

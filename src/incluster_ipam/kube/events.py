"""`EventRecorder`: Kubernetes Events (core/v1) about our objects, aggregated and written in the background.

Recording never blocks or raises into the caller (the allocation path records events): `event()` only updates
an in-memory aggregate and queues it. Background workers create the Event, or bump `count` and
`lastTimestamp` on the existing one when the same (object, type, reason, message) repeats, as client-go's
event correlator does. Failures are logged and dropped, like client-go's.

Normal events may be given a budget (`normal_rate` per second, `normal_burst` at once): a mass creation of
claims then costs the apiserver a bounded number of Event writes instead of one per claim, on the resource
it is short of. Warnings are never held back by the budget: they say why a claim is pending.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from incluster_ipam.api.timestamps import now_time

from .client import KubeClient
from .errors import KubeError, is_not_found
from .resources import EVENTS, Obj

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
_MAX_MESSAGE = 1024


def object_reference(obj: Mapping[str, Any]) -> Obj:
    """An ObjectReference for a full object, or the reference itself if one is given."""
    if "metadata" not in obj:
        ref = {k: obj[k] for k in ("apiVersion", "kind", "name", "namespace", "uid") if obj.get(k)}
    else:
        meta = obj["metadata"]
        ref = {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        ref = {k: v for k, v in ref.items() if v}
    missing = [k for k in ("apiVersion", "kind", "name") if not ref.get(k)]
    if missing:
        raise ValueError(f"cannot reference an object without {', '.join(missing)}")
    return ref


@dataclass(eq=False)
class _Aggregate:
    """One distinct event and what has been written of it so far."""

    namespace: str
    name: str
    body: Obj
    count: int = 1
    written: int = 0
    created: bool = False
    queued: bool = False
    last: str = field(default_factory=now_time)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `take()` spends one if there is one. Pure."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate >= 0 and burst >= 1, not {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class EventRecorder:
    """Records Events for involved objects on behalf of `component` (`instance`: e.g. the pod name).

    `normal_rate`: Normal events per second allowed through on average (None: all, 0: none), with up to
    `normal_burst` at once; the rest are counted in `throttled` and not written.
    """

    def __init__(
        self,
        client: KubeClient,
        component: str,
        *,
        instance: str | None = None,
        workers: int = 2,
        max_pending: int = 1000,
        cache_size: int = 4096,
        normal_rate: float | None = None,
        normal_burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._normal_budget = None if normal_rate is None else TokenBucket(normal_rate, normal_burst, clock)
        self._over_budget = False
        self._component = component
        self._instance = instance
        self._workers_wanted = workers
        self._queue: asyncio.Queue[_Aggregate] = asyncio.Queue(max_pending)
        self._cache: OrderedDict[tuple[str, ...], _Aggregate] = OrderedDict()
        self._cache_size = cache_size
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.throttled = 0

    def normal(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.event(obj, NORMAL, reason, message)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.event(obj, WARNING, reason, message)

    def event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Queue an Event about `obj` (a full object or an ObjectReference). Never raises."""
        if event_type == NORMAL and not self._within_budget(reason):
            return
        try:
            self._record(obj, event_type, reason, message)
        except Exception:
            log.exception("could not record event %s/%s", event_type, reason)

    def _within_budget(self, reason: str) -> bool:
        if self._normal_budget is None:
            return True
        if self._normal_budget.take():
            self._over_budget = False
            return True
        self.throttled += 1
        if not self._over_budget:  # once per spell over budget, not once per event
            self._over_budget = True
            log.info(
                "Normal events over budget (%g/s, burst %d): not writing %s and others until it refills",
                self._normal_budget.rate,
                self._normal_budget.burst,
                reason,
            )
        return False

    def _record(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        ref = object_reference(obj)
        message = message[:_MAX_MESSAGE]
        key = (
            ref["kind"],
            ref.get("namespace", ""),
            ref["name"],
            ref.get("uid", ""),
            event_type,
            reason,
            message,
        )
        entry = self._cache.get(key)
        if entry is None:
            namespace = ref.get("namespace") or "default"
            name = f"{ref['name']}.{secrets.token_hex(8)}"
            body = self._body(ref, namespace, name, event_type=event_type, reason=reason, message=message)
            entry = _Aggregate(namespace, name, body)
            self._cache[key] = entry
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
            entry.count += 1
            entry.last = now_time()
        if not entry.queued:
            self._start_workers()
            try:
                self._queue.put_nowait(entry)
                entry.queued = True
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("event queue full, dropping event %s %s for %s", event_type, reason, ref["name"])

    def _body(
        self, ref: Obj, namespace: str, name: str, *, event_type: str, reason: str, message: str
    ) -> Obj:
        now = now_time()
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        if self._instance:
            body["reportingInstance"] = self._instance
        return body

    def _start_workers(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"event-recorder-{i}")
                for i in range(self._workers_wanted)
            ]

    async def _work(self) -> None:
        while True:
            entry = await self._queue.get()
            try:
                # Records arriving while a write is in flight only bump `count`: write until caught up.
                while entry.written < entry.count:
                    target = entry.count
                    await self._write(entry, target)
                    entry.written = target
            except KubeError as exc:
                log.warning("could not write event %s/%s: %s", entry.namespace, entry.name, exc)
            except Exception:
                log.exception("could not write event %s/%s", entry.namespace, entry.name)
            finally:
                entry.queued = False
                self._queue.task_done()

    async def _write(self, entry: _Aggregate, count: int) -> None:
        if entry.created:
            patch = {"count": count, "lastTimestamp": entry.last}
            try:
                await self._client.patch(EVENTS, entry.name, patch, entry.namespace)
                return
            except KubeError as exc:
                if not is_not_found(exc):
                    raise
                # The Event expired (TTL) or was deleted: start a new one, as client-go does.
                entry.name = f"{entry.body['involvedObject']['name']}.{secrets.token_hex(8)}"
                entry.body["metadata"]["name"] = entry.name
        body = {**entry.body, "count": count, "lastTimestamp": entry.last}
        await self._client.create(EVENTS, body, entry.namespace)
        entry.created = True

    async def flush(self) -> None:
        """Wait until every queued event has been written (or has failed); bound it with asyncio.timeout."""
        await self._queue.join()

    async def close(self, grace: float = 5.0) -> None:
        """Flush what is queued (for at most `grace` seconds), then stop the workers."""
        if self._workers:
            try:
                async with asyncio.timeout(grace):
                    await self.flush()
            except TimeoutError:
                log.warning("event recorder closed with %d events unwritten", self._queue.qsize())
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

"""Pool status and the pool finalizer (spec §5.6-5.7, §10.2), with coalesced status writes.

Every change to a pool's allocation state marks the pool dirty; one writer task flushes dirty pools at most
every `interval` seconds, a few at a time, so a burst of allocations costs a few status writes, not one per
claim. The status patches of all pools share one budget (one per `interval` after a burst of a few,
oldest-dirty pool first): ten busy pools cost the apiserver what one does, and none is starved. Counts
come from the book (never created here: a pool without a state has an invalid spec), so `free` is honest
(allocatable and not in use; never negative). The `Ready` and `Available` conditions (`api.conditions`)
come from what the backend made of the spec and from the same counts, in the same patch, which is sent
only when the counts or a condition changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from incluster_ipam.api.conditions import pool_conditions
from incluster_ipam.api.constants import POOL_FINALIZER
from incluster_ipam.api.timestamps import now_time
from incluster_ipam.capi.objects import (
    BY_POOL,
    Obj,
    finalizers_of,
    is_deleting,
    name_of,
    namespace_of,
    split_pool_key,
)
from incluster_ipam.capi.resources import pool_resource
from incluster_ipam.ipam.pool import PoolCounts
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found, is_refused
from incluster_ipam.runtime import Fence, NotLeading, Unfenced, send_within

from .incluster import InClusterPools

log = logging.getLogger(__name__)

_PREFIX = "incluster_ipam"


class PoolMetrics:
    """Per-pool gauges: allocatable, used, free, out of range."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["kind", "namespace", "name"]
        self.total = Gauge(
            f"{_PREFIX}_pool_addresses_total", "Allocatable addresses.", labels, registry=registry
        )
        self.used = Gauge(f"{_PREFIX}_pool_addresses_used", "Addresses in use.", labels, registry=registry)
        self.free = Gauge(
            f"{_PREFIX}_pool_addresses_free", "Allocatable addresses not in use.", labels, registry=registry
        )
        self.out_of_range = Gauge(
            f"{_PREFIX}_pool_addresses_out_of_range",
            "In-use addresses outside the pool.",
            labels,
            registry=registry,
        )

    def set(self, labels: tuple[str, str, str], counts: PoolCounts) -> None:
        self.total.labels(*labels).set(counts.total)
        self.used.labels(*labels).set(counts.used)
        self.free.labels(*labels).set(counts.free)
        self.out_of_range.labels(*labels).set(counts.out_of_range)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        for gauge in (self.total, self.used, self.free, self.out_of_range):
            try:
                gauge.remove(kind, namespace, name)
            except KeyError:
                continue


class PoolStatusWriter:
    """Keeps `status.ipAddresses`, `status.conditions` and the ProtectPool finalizer of every pool up to
    date."""

    def __init__(
        self,
        client: KubeClient,
        pools: InClusterPools,
        metrics: PoolMetrics,
        *,
        interval: float = 0.25,
        fence: Fence | None = None,
        concurrency: int = 4,
    ) -> None:
        self._client = client
        self._pools = pools
        self._metrics = metrics
        self._interval = interval
        self.fence: Fence = fence or Unfenced()
        self._dirty: dict[str, None] = {}  # insertion order: the pool dirty longest comes first
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._burst = float(concurrency)
        self._tokens = self._burst
        self._refilled: float | None = None
        self.writes = 0
        pools.changed = self.mark

    def mark(self, pool_key: str) -> None:
        self._dirty.setdefault(pool_key, None)
        self._wakeup.set()

    def _take_token(self) -> bool:
        """One status patch from the shared budget (`1 / interval` per second, `concurrency` at once)."""
        now = asyncio.get_running_loop().time()
        if self._interval <= 0:
            return True
        if self._refilled is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._refilled) / self._interval)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def run(self) -> None:
        """Flush dirty pools until cancelled."""
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self._interval)
            self._wakeup.clear()
            keys, self._dirty = list(self._dirty), {}
            results = await asyncio.gather(*(self._flush_one(key) for key in keys), return_exceptions=True)
            again: dict[str, None] = {}
            for key, result in zip(keys, results, strict=True):
                if isinstance(result, NotLeading):
                    return  # a stale status must not land after the next leader's first one
                if isinstance(result, Exception):
                    log.warning("pool %s: status update failed (%s); retrying", key, result)
                    again[key] = None
                elif result is False:
                    again[key] = None  # over the budget: first in line next time
            if again:
                self._dirty = {**again, **self._dirty}
                self._wakeup.set()

    async def _flush_one(self, pool_key: str) -> bool:
        """A few pools at a time: a status patch of a pool with tens of thousands of entries costs the
        apiserver real CPU, and twenty at once would starve everything else, the lease renewals included."""
        async with self._slots:
            return await self.flush(pool_key, budget=self._take_token)

    async def flush(self, pool_key: str, budget: Callable[[], bool] | None = None) -> bool:
        """Bring one pool's finalizer and status up to date. False when its status patch was held back
        because `budget` said no (the pool stays to be written)."""
        pool = self._pools.pool_object(pool_key)
        if pool is None:
            return True
        kind, _, _ = split_pool_key(pool_key)
        resource = pool_resource(kind)
        if is_deleting(pool):
            await self._finish_deletion(pool_key, pool, resource)
            return True
        if POOL_FINALIZER not in finalizers_of(pool):
            try:
                await self._set_finalizers(resource, pool, [*finalizers_of(pool), POOL_FINALIZER])
            except ApiError as exc:
                if not is_refused(exc):
                    raise
                # A webhook refuses any update of a pool one of whose IPAddresses lies outside it (e.g. one
                # planted by hand); the status (a subresource, not validated) must still be written.
                log.warning("pool %s: cannot add finalizer %s: %s", pool_key, POOL_FINALIZER, exc)
        state = self._pools.book.get(pool_key)
        verdict = self._pools.verdict(pool_key)
        current = pool.get("status") or {}
        patch: Obj = {}
        counts = state.counts() if state is not None else None  # none: no spec of it could be used yet
        if counts is not None:
            self._metrics.set((kind.kind, namespace_of(pool), name_of(pool)), counts)
            if current.get("ipAddresses") != counts.status():
                patch["ipAddresses"] = counts.status()
        if verdict is not None:
            previous = current.get("conditions")
            conditions = pool_conditions(
                previous if isinstance(previous, list) else [], verdict, counts, kind.family, now_time()
            )
            if conditions != previous:
                patch["conditions"] = conditions
        if patch:
            if budget is not None and not budget():
                return False
            await self._patch(resource, pool, {"status": patch}, subresource="status")
        return True

    async def _finish_deletion(self, pool_key: str, pool: Obj, resource: Resource) -> None:
        """Drop the finalizer once no IPAddress references the pool and no reservation of it is still in
        flight (a create that may yet land; finding 16). Status is frozen while deleting."""
        if POOL_FINALIZER not in finalizers_of(pool):
            return
        if self._pools.addresses.index_keys(BY_POOL, pool_key):
            return
        state = self._pools.book.get(pool_key)
        if state is not None and (state.pending_count or not state.is_empty()):
            return
        remaining = [f for f in finalizers_of(pool) if f != POOL_FINALIZER]
        await self._set_finalizers(resource, pool, remaining)
        kind, namespace, name = split_pool_key(pool_key)
        self._metrics.forget(kind.kind, namespace, name)

    async def _set_finalizers(self, resource: Resource, pool: Obj, finalizers: list[str]) -> None:
        """Optimistically locked: a finalizer someone else added meanwhile is never dropped (409 retries)."""
        version = pool["metadata"].get("resourceVersion")
        await self._patch(
            resource, pool, {"metadata": {"finalizers": finalizers or None, "resourceVersion": version}}
        )

    async def _patch(self, resource: Resource, pool: Obj, patch: Obj, subresource: str | None = None) -> None:
        namespace = namespace_of(pool) if resource.namespaced else None
        within = send_within(self.fence)
        try:
            await self._client.patch(
                resource, name_of(pool), patch, namespace, subresource=subresource, send_within=within
            )
            self.writes += 1
        except ApiError as exc:
            if not is_not_found(exc):
                raise

"""Pool status and the pool finalizer (spec §5.6-5.7, §10.2), with coalesced status writes.

Every change to a pool's allocation state marks the pool dirty; one writer task flushes dirty pools at most
every `interval` seconds, so a burst of allocations costs a few status writes, not one per claim. Counts come
from the leader's `PoolBook`, so `free` is honest (allocatable and not in use; never negative).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from incluster_ipam.api.constants import GROUP, POOL_FINALIZER, V1ALPHA2, PoolKind
from incluster_ipam.kube import ApiError, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.runtime import Fence, NotLeading, Unfenced, send_within

from .book import PoolSpecError, PoolState
from .claims import Informers
from .metrics import Metrics
from .objects import BY_POOL, Obj, finalizers_of, is_deleting, name_of, namespace_of, split_pool_key

log = logging.getLogger(__name__)


#: Answers that retrying the same write cannot change (admission webhook or schema refusals).
_REFUSED = frozenset({400, 403, 422})


def pool_resource(kind: PoolKind) -> Resource:
    return Resource(GROUP, V1ALPHA2, kind.plural, kind.kind, kind.namespaced)


class PoolStatusWriter:
    """Keeps `status.ipAddresses` and the ProtectPool finalizer of every pool up to date."""

    def __init__(
        self,
        client: KubeClient,
        informers: Informers,
        pool_state: Callable[[str, Obj], PoolState],
        metrics: Metrics,
        *,
        interval: float = 0.25,
        known_state: Callable[[str], PoolState | None] | None = None,
        fence: Fence | None = None,
        concurrency: int = 4,
    ) -> None:
        self._client = client
        self._informers = informers
        self._pool_state = pool_state
        self._known_state = known_state or (lambda _key: None)
        self._metrics = metrics
        self._interval = interval
        self.fence: Fence = fence or Unfenced()
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self.writes = 0

    def mark(self, pool_key: str) -> None:
        self._dirty.add(pool_key)
        self._wakeup.set()

    async def run(self) -> None:
        """Flush dirty pools until cancelled."""
        while True:
            await self._wakeup.wait()
            await asyncio.sleep(self._interval)
            self._wakeup.clear()
            batch, self._dirty = self._dirty, set()
            results = await asyncio.gather(
                *(self._flush_one(key) for key in sorted(batch)), return_exceptions=True
            )
            for key, result in zip(sorted(batch), results, strict=True):
                if isinstance(result, NotLeading):
                    return  # a stale status must not land after the next leader's first one
                if isinstance(result, Exception):
                    log.warning("pool %s: status update failed (%s); retrying", key, result)
                    self._dirty.add(key)
                    self._wakeup.set()

    async def _flush_one(self, pool_key: str) -> None:
        """A few pools at a time: a status patch of a pool with tens of thousands of entries costs the
        apiserver real CPU, and twenty at once would starve everything else, the lease renewals included."""
        async with self._slots:
            await self.flush(pool_key)

    async def flush(self, pool_key: str) -> None:
        pool = self._informers.pool(pool_key)
        if pool is None:
            return
        kind, _, _ = split_pool_key(pool_key)
        resource = pool_resource(kind)
        if is_deleting(pool):
            await self._finish_deletion(pool_key, pool, resource)
            return
        if POOL_FINALIZER not in finalizers_of(pool):
            try:
                await self._set_finalizers(resource, pool, [*finalizers_of(pool), POOL_FINALIZER])
            except ApiError as exc:
                if exc.status not in _REFUSED:
                    raise
                # A webhook refuses any update of a pool one of whose IPAddresses lies outside it (e.g. one
                # planted by hand); the status (a subresource, not validated) must still be written.
                log.warning("pool %s: cannot add finalizer %s: %s", pool_key, POOL_FINALIZER, exc)
        try:
            state = self._pool_state(pool_key, pool)
        except PoolSpecError as exc:
            log.warning("pool %s has an invalid spec: %s", pool_key, exc)
            return
        counts = state.counts()
        status = counts.status()
        self._metrics.set_pool((kind.kind, namespace_of(pool), name_of(pool)), counts)
        if (pool.get("status") or {}).get("ipAddresses") != status:
            await self._patch(resource, pool, {"status": {"ipAddresses": status}}, subresource="status")

    async def _finish_deletion(self, pool_key: str, pool: Obj, resource: Resource) -> None:
        """Drop the finalizer once no IPAddress references the pool and no reservation of it is still in
        flight (a create that may yet land; finding 16). Status is frozen while deleting."""
        if POOL_FINALIZER not in finalizers_of(pool):
            return
        if self._informers.addresses.index_keys(BY_POOL, pool_key):
            return
        state = self._known_state(pool_key)
        if state is not None and (state.pending_count or not state.is_empty()):
            return
        remaining = [f for f in finalizers_of(pool) if f != POOL_FINALIZER]
        await self._set_finalizers(resource, pool, remaining)
        kind, namespace, name = split_pool_key(pool_key)
        self._metrics.forget_pool(kind.kind, namespace, name)

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

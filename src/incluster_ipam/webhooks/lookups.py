"""What the webhooks need to know about the cluster, as small protocols the caller injects, and the
informer-backed implementation the provider uses.

The controllers answer them from their informer caches (`InformerLookups`, or `start_lookups` for a
stand-alone webhook server); tests pass in-memory fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from incluster_ipam.api.constants import POOL_KINDS, pool_kind
from incluster_ipam.api.models import AllocatedAddress, DecodeError, Pool, decode_pool
from incluster_ipam.capi.objects import BY_POOL, index_by_pool_of_address, pool_key, prefix_of, project
from incluster_ipam.capi.resources import pool_resource
from incluster_ipam.claimcore.discovery import discover, served
from incluster_ipam.kube import KubeClient
from incluster_ipam.runtime import Informer

log = logging.getLogger(__name__)


class AddressLookup(Protocol):
    """IPAddresses whose ``spec.poolRef`` is (ipam group, ``kind``, ``name``).

    ``namespace`` is the pool's namespace, or None for a global pool (then: IPAddresses in all namespaces).
    """

    async def __call__(self, kind: str, namespace: str | None, name: str) -> Sequence[AllocatedAddress]: ...


class NotSynced(Exception):
    """The caches behind a lookup have not finished their first list: no answer can be trusted yet."""


class StoredUidLookup(Protocol):
    """The UID of the stored pool of that kind and name (namespace None for global pools), None if none."""

    async def __call__(self, kind: str, namespace: str | None, name: str) -> str | None: ...


class PoolLookup(Protocol):
    """Pools (of all four kinds) that claims in ``namespace`` can reference; None means every pool.

    A superset is fine: the webhook applies the reachability rule itself (`incluster_ipam.api.overlap`).
    Use `incluster_ipam.api.models.decode_pool` to turn stored objects into `Pool`s.
    """

    async def __call__(self, namespace: str | None) -> Sequence[Pool]: ...


def allocated_address(obj: Mapping[str, Any]) -> AllocatedAddress:
    """The parts of an IPAddress (any contract version) the webhooks use; odd values become ""/None."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    address = spec.get("address")
    return AllocatedAddress(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or ""),
        address=address if isinstance(address, str) else "",
        prefix=prefix_of(obj),
    )


class InformerLookups:
    """Both lookups, answered from informer caches (no API calls while admitting).

    ``addresses`` is an IPAddress informer with the `incluster_ipam.capi.objects.BY_POOL` index
    (`index_by_pool_of_address`); ``pools`` maps pool kind names (``"InClusterIPPool"``, ...) to v1alpha2 pool
    informers. A kind without an informer has no pools. Pass the bound methods `addresses` and `pools` to
    `WebhookServer`.
    """

    def __init__(self, addresses: Informer, pools: Mapping[str, Informer]) -> None:
        self.address_informer = addresses
        self.pool_informers = dict(pools)
        self._decoded: dict[str, tuple[str, Pool]] = {}  # "kind/key" -> (resourceVersion, decoded pool)

    def _check_synced(self) -> None:
        """Before the first list, an empty cache would wrongly say "nothing in use": refuse to answer."""
        for informer in (self.address_informer, *self.pool_informers.values()):
            if not informer.has_synced:
                raise NotSynced(f"the webhook's {informer.name} cache has not synced yet")

    async def addresses(self, kind: str, namespace: str | None, name: str) -> Sequence[AllocatedAddress]:
        """IPAddresses referencing the pool (the informer's view: objects being deleted still count)."""
        self._check_synced()
        found = pool_kind(kind)
        if found is None:
            return []
        key = pool_key(found, namespace or "", name)
        return [allocated_address(obj) for _, obj in self.address_informer.each_in_index(BY_POOL, key)]

    async def stored_uid(self, kind: str, namespace: str | None, name: str) -> str | None:
        """The UID of the cached pool of that kind and name, None when the cache has none."""
        self._check_synced()
        informer = self.pool_informers.get(kind)
        obj = informer.get_object(namespace, name) if informer is not None else None
        uid = (obj or {}).get("metadata", {}).get("uid")
        return uid if isinstance(uid, str) else None

    async def pools(self, namespace: str | None) -> Sequence[Pool]:
        """Global pools plus the namespaced pools of ``namespace`` (every pool when it is None). Each pool
        is decoded once per resourceVersion."""
        self._check_synced()
        out: list[Pool] = []
        live: set[str] = set()
        for kind_name, informer in self.pool_informers.items():
            kind = pool_kind(kind_name)
            if kind is None:
                continue
            for key, obj in informer.each():
                own_namespace = (obj.get("metadata") or {}).get("namespace")
                if namespace is not None and kind.namespaced and own_namespace != namespace:
                    continue
                cache_key = f"{kind_name}/{key}"
                live.add(cache_key)
                version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
                cached = self._decoded.get(cache_key)
                if cached is not None and cached[0] == version and version:
                    out.append(cached[1])
                    continue
                try:
                    pool = decode_pool(obj, kind)
                except DecodeError as exc:  # stored but undecodable: it cannot overlap anything we can tell
                    log.debug("skipping undecodable %s: %s", kind_name, exc)
                    continue
                self._decoded[cache_key] = (version, pool)
                out.append(pool)
        if namespace is None:
            for gone in set(self._decoded) - live:
                del self._decoded[gone]
        elif len(self._decoded) > 4 * max(len(live), 256):
            self._decoded.clear()
        return out


async def start_lookups(
    client: KubeClient, *, namespace: str | None = None, sync_seconds: float = 60.0
) -> tuple[InformerLookups, Callable[[], Awaitable[None]]]:
    """Start the informers behind `InformerLookups` and wait until they have synced.

    For a webhook server running without the provider's controllers (the provider shares its own informers
    instead). ``namespace`` restricts the namespaced kinds, like the provider's ``--namespace``. Returns the
    lookups and an async ``stop`` that ends the informers; on failure (e.g. no sync within ``sync_seconds``
    seconds: `TimeoutError`) everything started is stopped again.
    """
    found = await discover(client)
    addresses = Informer.for_resource(
        client,
        found.addresses,
        namespace=namespace,
        projection=project,
        indexers={BY_POOL: index_by_pool_of_address},
    )
    wanted = [pool_resource(kind) for kind in POOL_KINDS]
    installed = await served(client, wanted)
    for resource in wanted:
        if resource not in installed:
            log.warning("%s is not installed; the webhooks see no pools of that kind", resource.kind)
    pools = {
        resource.kind: Informer.for_resource(
            client, resource, namespace=namespace if resource.namespaced else None, projection=project
        )
        for resource in installed
    }
    informers = [addresses, *pools.values()]

    async def stop() -> None:
        await asyncio.gather(*(informer.stop() for informer in informers))

    for informer in informers:
        informer.start()
    try:
        async with asyncio.timeout(sync_seconds):
            await asyncio.gather(*(informer.wait_synced() for informer in informers))
    except BaseException:
        await stop()
        raise
    return InformerLookups(addresses, pools), stop

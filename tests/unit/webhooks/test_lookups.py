"""`InformerLookups`: the webhooks' view of IPAddresses and pools, answered from informer stores."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.models import AllocatedAddress
from incluster_ipam.capi.objects import BY_POOL, index_by_pool_of_address
from incluster_ipam.kube import ObjectList
from incluster_ipam.runtime import Informer
from incluster_ipam.webhooks.lookups import InformerLookups, allocated_address


class Idle:
    """A watch with no events that stays open until closed."""

    def __aiter__(self) -> "Idle":
        return self

    async def __anext__(self) -> Any:
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        return None


class Listed:
    """A ListWatch that lists `objects` once and then watches quietly."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    async def list_pages(self, page_size: int | None) -> AsyncIterator[ObjectList]:
        yield ObjectList(self.objects, "1")

    def watch(self, resource_version: str, timeout_seconds: int) -> Idle:
        return Idle()


@pytest.fixture
async def informers() -> AsyncIterator[list[Informer]]:
    started: list[Informer] = []
    yield started
    for inf in started:
        await inf.stop()


async def informer(started: list[Informer], objects: list[dict[str, Any]], **indexers: Any) -> Informer:
    inf = Informer(Listed(objects), indexers=indexers)
    started.append(inf)
    inf.start()
    await asyncio.wait_for(inf.wait_synced(), 5.0)
    return inf


def ip_address(
    namespace: str, name: str, address: Any, kind: str, pool: str, *, prefix: Any = 24
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "spec": {
            "address": address,
            "prefix": prefix,
            "poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool},
        },
    }


def pool(kind: str, name: str, spec: Any, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": "1"}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": kind, "metadata": metadata, "spec": spec}


async def test_addresses_by_pool_namespaced_and_global(informers: list[Informer]) -> None:
    addresses = await informer(
        informers,
        [
            ip_address("a", "x", "10.0.0.1", "InClusterIPPool", "p"),
            ip_address("b", "y", "10.0.0.2", "InClusterIPPool", "p"),
            ip_address("a", "z", "10.0.0.3", "GlobalInClusterIPPool", "p"),
            ip_address("b", "w", "10.0.0.4", "GlobalInClusterIPPool", "p", prefix=None),
            ip_address("a", "v", 7, "InClusterIPPool", "p", prefix=True),
        ],
        **{BY_POOL: index_by_pool_of_address},
    )
    lookups = InformerLookups(addresses, {})
    found = await lookups.addresses("InClusterIPPool", "a", "p")
    assert sorted(found, key=lambda a: a.name) == [
        AllocatedAddress("v", "a", "", None),  # odd values never break the webhook
        AllocatedAddress("x", "a", "10.0.0.1", 24),
    ]
    assert sorted(a.name for a in await lookups.addresses("GlobalInClusterIPPool", None, "p")) == ["w", "z"]
    assert await lookups.addresses("InClusterIPPool", "c", "p") == []
    assert await lookups.addresses("NotAPool", "a", "p") == []


async def test_pools_reachable_from_a_namespace(informers: list[Informer]) -> None:
    pools = {
        "InClusterIPPool": await informer(
            informers,
            [
                pool("InClusterIPPool", "mine", {"addresses": ["10.0.0.0/24"], "prefix": 24}, "a"),
                pool("InClusterIPPool", "theirs", {"addresses": ["10.0.0.0/24"], "prefix": 24}, "b"),
                pool("InClusterIPPool", "broken", {"prefix": "24"}, "a"),
            ],
        ),
        "GlobalInClusterPrefixPool": await informer(
            informers, [pool("GlobalInClusterPrefixPool", "shared", {"prefixes": ["fd00::/48"]})]
        ),
    }
    lookups = InformerLookups(await informer(informers, []), pools)
    found = {(p.kind.kind, p.namespace, p.name) for p in await lookups.pools("a")}
    assert found == {("InClusterIPPool", "a", "mine"), ("GlobalInClusterPrefixPool", "", "shared")}
    everything = {p.name for p in await lookups.pools(None)}
    assert everything == {"mine", "theirs", "shared"}


def test_allocated_address_of_an_empty_object() -> None:
    assert allocated_address({}) == AllocatedAddress("", "", "", None)

"""Finding 3 of the December review: the book knew IPAddresses by name only. When a claim was re-created
under the same name (restores, `clusterctl move`, GitOps) while the IPAddress watch lagged, the late event of
the earlier IPAddress moved the name back to the old address and freed the address the new IPAddress held;
the next claim got it: a duplicate.

The watch lag is forced: the provider's IPAddress watch holds its events until the test lets them through,
one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from incluster_ipam.kube.watch import WatchEvent

from ..faults import invariants
from ..faults.helpers import ADDRESSES, Cluster
from ..support import eventually
from .doctored import DoctoredClient
from .harness import options, running, wait_bound


class HeldWatch:
    """While `holding`, IPAddress watch events of `namespace` queue up; `release(n)` lets the first n
    through. Events of other namespaces and bookmarks need no allowance (they keep their place)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.holding = True
        self.queued: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self.allowance = asyncio.Semaphore(0)
        self.delivered = 0

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self.allowance.release()

    def release_all(self) -> None:
        self.holding = False
        self.release(10_000)

    async def wrap(self, events: AsyncIterator[WatchEvent]) -> AsyncIterator[WatchEvent]:
        reader = asyncio.create_task(self._read(events))
        try:
            while True:
                event = await self.queued.get()
                if (event.object.get("metadata") or {}).get("namespace") == self.namespace:
                    if self.holding:
                        await self.allowance.acquire()
                    self.delivered += 1
                yield event
        finally:
            reader.cancel()

    async def _read(self, events: AsyncIterator[WatchEvent]) -> None:
        async for event in events:
            await self.queued.put(event)


async def gone(cluster: Cluster, namespace: str, name: str) -> bool:
    return all(c["metadata"]["name"] != name for c in await cluster.claims(namespace))


async def test_finding_03_a_late_event_of_an_earlier_ipaddress_never_frees_the_live_one(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("f03")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.30.0.1-10.30.0.3"], prefix=24)
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    held = HeldWatch(ns)
    client.watch_wrappers["ipaddresses"] = held.wrap
    async with (
        client,
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        running(client, options()) as run,
    ):
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.claim(ns, "c", "pool")
        assert await wait_bound(cluster, ns, "c") == "10.30.0.1"
        await cluster.delete_claim(ns, "c")
        await eventually(lambda: gone(cluster, ns, "c"), 20, "claim c to be released")
        await cluster.claim(ns, "d", "pool")
        assert await wait_bound(cluster, ns, "d") == "10.30.0.1"
        await cluster.claim(ns, "c", "pool")  # re-created under the same name
        assert await wait_bound(cluster, ns, "c") == "10.30.0.2"
        held.release(1)  # the first held event: ADDED c (10.30.0.1) of the earlier incarnation
        await eventually(lambda: _at_least(held, 1), 10, "the late event to be delivered")
        await asyncio.sleep(0.2)
        await cluster.claim(ns, "e", "pool")
        address_e = await wait_bound(cluster, ns, "e")
        held.release_all()
        assert address_e == "10.30.0.3", f"claim e got {address_e}, which the new c holds"
        await invariants.settle(cluster.client, ns, monitor=monitor)
        assert await run.finish() == 0


async def _at_least(held: HeldWatch, n: int) -> bool:
    return held.delivered >= n

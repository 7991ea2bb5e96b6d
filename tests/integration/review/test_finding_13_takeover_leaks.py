"""Finding 13 of the December review: an IPAddress deleted while the new leader was still reading its
takeover list was held forever: its DELETED event arrived before the leader was leading (and was dropped),
the listed entry was held, and the clean-up of IPAddresses whose claim is gone returned on a 404 without
forgetting it. Claims waited on a pool with room.

The takeover list of an in-process leader is held after its first page; meanwhile a claim and its
IPAddress are deleted (finalizers stripped, as a careless admin or a restore would)."""

from __future__ import annotations

import asyncio

from incluster_ipam.api.constants import ADDRESS_FINALIZER

from ..faults import invariants
from ..faults.helpers import ADDRESSES, CLAIMS, Cluster
from .doctored import DoctoredClient, Gate, from_informer
from .harness import elected, options, running, wait_bound, wait_holder


async def test_finding_13_an_address_deleted_during_the_takeover_list_is_freed(cluster: Cluster) -> None:
    ns = await cluster.namespace("f13")
    await cluster.pool("InClusterIPPool", "small", ns, addresses=["10.130.0.1-10.130.0.5"], prefix=24)
    async with running(cluster.client, options()) as first:
        await asyncio.wait_for(first.provider.leading.wait(), 60)
        for i in range(1, 6):
            await cluster.claim(ns, f"c{i}", "small")
        held = {i: await wait_bound(cluster, ns, f"c{i}") for i in range(1, 6)}
        assert await first.finish() == 0

    client = DoctoredClient(cluster.plane.kubeconfig_path)
    gate = Gate()
    async with client, running(client, elected(ns, "a")) as a:

        async def hold_takeover(method: str, plural: str, _: str) -> None:
            taking_over = method == "list-next" and plural == "ipaddresses" and not from_informer()
            if taking_over and not gate.open.is_set():
                await gate.wait()

        client.hooks.append(hold_takeover)
        await wait_holder(cluster.client, ns, "a")
        await asyncio.wait_for(gate.reached.wait(), 30)
        # The takeover has read its page; now c5 and its IPAddress go away behind its back.
        await cluster.client.patch(CLAIMS, "c5", {"metadata": {"finalizers": None}}, ns)
        await cluster.client.delete(CLAIMS, "c5", ns)
        address = await cluster.client.get(ADDRESSES, "c5", ns)
        assert ADDRESS_FINALIZER in address["metadata"]["finalizers"]
        await cluster.client.patch(ADDRESSES, "c5", {"metadata": {"finalizers": None}}, ns)
        await cluster.client.delete(ADDRESSES, "c5", ns)
        await asyncio.sleep(1.0)  # the DELETED events reach the informers before the leader leads
        gate.open.set()
        await asyncio.wait_for(a.provider.leading.wait(), 30)
        await cluster.claim(ns, "c6", "small")
        assert await wait_bound(cluster, ns, "c6", within=20) == held[5]  # the address c5 had
        await invariants.settle(cluster.client, ns)
        assert await a.finish() == 0

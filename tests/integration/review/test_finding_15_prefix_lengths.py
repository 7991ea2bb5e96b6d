"""Finding 15 of the December review, through the apiserver: a prefix pool treated an in-use IPAddress with a
shorter prefix (a /56 reserved by hand in a pool of /64s) as a single /64 and handed out sub-prefixes inside
it: overlapping allocations."""

from __future__ import annotations

import asyncio
import ipaddress

from incluster_ipam.api.constants import GROUP

from ..faults.helpers import ADDRESSES, Cluster
from .harness import options, running, wait_bound


async def test_finding_15_a_reserved_shorter_prefix_is_never_handed_out_again(cluster: Cluster) -> None:
    ns = await cluster.namespace("f15")
    await cluster.pool("InClusterPrefixPool", "p6", ns, prefixes=["fd00:15::/48"], allocationPrefixLength=64)
    blocker = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": {"name": "blk"},
        "spec": {
            "address": "fd00:15::",
            "prefix": 56,
            "claimRef": {"name": "blk"},
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterPrefixPool", "name": "p6"},
        },
    }
    await cluster.client.create(ADDRESSES, blocker, ns)
    reserved = ipaddress.ip_network("fd00:15::/56")
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        for i in range(3):
            await cluster.claim(ns, f"c{i}", "p6", kind="InClusterPrefixPool")
        for i in range(3):
            got = ipaddress.ip_network(f"{await wait_bound(cluster, ns, f'c{i}')}/64")
            assert not got.overlaps(reserved), f"c{i} got {got}, inside the reserved {reserved}"
        assert await run.finish() == 0

"""Finding 5 of the December review: building the book cost O(entries of every pool), synchronously on the
event loop that renews the lease. A leader taking over a cluster with 20 pools of 50,000 entries each spent
more than its renew deadline in one synchronous step, lost the lease, exited; the standby did the same:
leader flapping, nothing allocated.

Two `incluster-ipam run` replicas (lease 3 s, renew deadline 2 s) take over such a cluster; the lease must
stay with the first leader, and claims must be bound. (Admission cost is in the unit tests and in
test_hostile_network.py.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..faults.helpers import Cluster, ProviderProcess, bounded_gather, providers
from ..support import eventually
from .harness import lease_spec, wait_bound

POOLS = 20
ENTRIES = 50_000


def entries(pool: int) -> list[str]:
    return [f"10.{100 + pool}.{i // 250}.{i % 250 + 1}" for i in range(ENTRIES)]


async def test_finding_05_a_takeover_over_20_pools_of_50000_entries_keeps_its_lease(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = await cluster.namespace("f05")
    await bounded_gather(
        (
            cluster.pool("InClusterIPPool", f"big-{i}", ns, addresses=entries(i), prefix=8)
            for i in range(POOLS)
        ),
        limit=2,
    )
    extra = [f"--leader-election-namespace={ns}"]
    replicas = [
        ProviderProcess(name, cluster.plane.kubeconfig_path, tmp_path, leader_elect=True, extra=extra)
        for name in ("a", "b")
    ]
    async with providers(*replicas):

        async def leader() -> str | None:
            return (await lease_spec(cluster.client, ns)).get("holderIdentity")

        first = await eventually(leader, 90, "a leader")
        await cluster.claim(ns, "c0", "big-0")
        await cluster.claim(ns, "c19", f"big-{POOLS - 1}")
        assert await wait_bound(cluster, ns, "c0", within=90) == "10.100.0.1"
        assert await wait_bound(cluster, ns, "c19", within=30) == f"10.{100 + POOLS - 1}.0.1"
        holders = set()
        transitions = (await lease_spec(cluster.client, ns)).get("leaseTransitions", 0)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            holders.add(await leader())
            await asyncio.sleep(0.5)
        assert holders == {first}, f"the lease moved between {sorted(map(str, holders))}"
        assert (await lease_spec(cluster.client, ns)).get("leaseTransitions", 0) == transitions
        for replica in replicas:
            replica.check_alive()
            assert "failed to renew" not in replica.log_tail(400), replica.log_tail(40)

"""Finding 4 of the December review: nothing checked leadership before a write. When the leader's event loop
stalled for longer than its lease (a CPU burst under a CFS quota, GC, a frozen VM), the standby took over and
allocated; when the old leader's loop resumed, asyncio delivered the buffered HTTP responses before the
elector's timer, and its workers reserved from their stale book and sent IPAddress creates for other claims:
duplicates.

Replica A runs in this process (its client records every request it sends); replica B is a real
`incluster-ipam run` process. A's event loop is stalled for 6 s, long past its 3 s lease, right after one
of its claims' finalizer patch was answered and before that reconcile goes on (a blocking call in the
client hook that runs after the answer): when the loop resumes, that reconcile goes on to reserve and
create, before the elector's timer can tell anyone that the lease is gone. A must send no IPAddress create
after B acquired the lease, and no address may be held twice."""

from __future__ import annotations

import asyncio
import datetime
import time
from pathlib import Path

from ..faults import invariants
from ..faults.helpers import ADDRESSES, Cluster, ProviderProcess, bounded_gather
from ..support import eventually
from .doctored import DoctoredClient
from .harness import elected, lease_spec, running, wait_holder

STALL_SECONDS = 6.0
CLAIMS = 160


def epoch(micro_time: str) -> float:
    parsed = datetime.datetime.strptime(micro_time, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


async def test_finding_04_a_stalled_leader_sends_no_create_after_the_standby_took_over(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = await cluster.namespace("f04")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.40.0.0/24"], prefix=24)
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    standby = ProviderProcess(
        "b",
        cluster.plane.kubeconfig_path,
        tmp_path,
        leader_elect=True,
        extra=[f"--leader-election-namespace={ns}"],
    )
    stalled: list[float] = []
    async with (
        client,
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        running(client, elected(ns, "a")) as a,
    ):
        await wait_holder(cluster.client, ns, "a")
        await standby.start()
        try:

            async def stall(method: str, plural: str, _: str) -> None:
                if not stalled and method == "patch" and plural == "ipaddressclaims":  # a finalizer
                    stalled.append(time.time())
                    time.sleep(STALL_SECONDS)  # noqa: ASYNC251 - the point: the whole event loop stops

            client.after.append(stall)
            await bounded_gather((cluster.claim(ns, f"c{i}", "pool") for i in range(CLAIMS)), limit=24)
            await eventually(lambda: _true(stalled), 30, "the stall")
            await asyncio.wait_for(a.task, 30)  # A lost the lease: it must end (exit code 1)
            # The standby is restarted (under a new identity) if it loses the lease too, as its Deployment
            # would: on a starved machine its own renewals can time out.
            await wait_holder(cluster.client, ns, lambda: standby.identity)
            acquired = epoch((await lease_spec(cluster.client, ns))["acquireTime"])
            await cluster.wait_all_bound(ns, within=60)
            late = [s for s in client.sent_to("create", "ipaddresses") if s.at >= acquired]
            assert not late, f"A sent {len(late)} IPAddress creates after B took the lease: {late[:5]}"
            assert a.task.result() == 1
            await invariants.settle(cluster.client, ns, monitor=monitor)  # B still leads
        finally:
            await standby.stop()


async def _true(flag: list[float]) -> bool:
    return bool(flag)

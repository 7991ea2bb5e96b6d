"""Finding 6 of the December review: the standby timed the lease's age from *before* its GET. A GET held up
(API Priority and Fairness queuing, a new TLS handshake) that brought news of a renewal made the lease look
older than it was, and the standby took it over while the leader still counted itself leader: two leaders.
client-go records the observation time after the GET; so do we now.

Two `LeaderElector`s on a real Lease (lease 3 s, renew deadline 2 s; the leader retries every 0.5 s, the
standby every 0.1 s). One poll of the standby waits 1.8 s before its GET is sent (its try budget is 2 s);
the leader renews during that wait, and the GET is sent right after a renewal; every renewal of the leader
fails from the moment that GET returns. `a.is_leader and b.is_leader` must never be true together (sampled
every 10 ms)."""

from __future__ import annotations

import asyncio
import uuid

from incluster_ipam.kube import KubeClient, TransportError
from incluster_ipam.runtime import LeaderElectionConfig, LeaderElector

from ..faults.helpers import Cluster
from .doctored import DoctoredClient

SLOW_GET = 1.8


async def test_finding_06_a_slow_get_never_makes_two_leaders(cluster: Cluster) -> None:
    ns = await cluster.namespace("f06")
    name = f"lease-{uuid.uuid4().hex[:6]}"
    a_client = DoctoredClient(cluster.plane.kubeconfig_path)
    b_client = DoctoredClient(cluster.plane.kubeconfig_path)
    a_broken = asyncio.Event()
    slow_next = asyncio.Event()
    slowed = asyncio.Event()

    async def a_hook(method: str, plural: str, _: str) -> None:
        if plural == "leases" and method in ("replace", "create") and a_broken.is_set():
            raise TransportError("PUT lease: connection reset by peer")

    async def b_hook(method: str, plural: str, _: str) -> None:
        if plural == "leases" and method == "get" and slow_next.is_set():
            slow_next.clear()
            await asyncio.sleep(SLOW_GET)  # the GET is queued before it is sent
            while a_client.in_flight[("replace", "leases")]:  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.005)  # ... and leaves just after a renewal of A landed
            slowed.set()

    a_client.hooks.append(a_hook)
    b_client.hooks.append(b_hook)

    def make(client: KubeClient, identity: str, retry: float) -> LeaderElector:
        config = LeaderElectionConfig(
            name=name,
            namespace=ns,
            identity=identity,
            lease_duration=3.0,
            renew_deadline=2.0,
            retry_period=retry,
        )
        return LeaderElector(client, config)

    both: list[float] = []
    async with a_client, b_client:
        a, b = make(a_client, "a", 0.5), make(b_client, "b", 0.1)
        a_task = asyncio.create_task(a.run())
        await asyncio.wait_for(a.wait_leading(), 20)
        b_task = asyncio.create_task(b.run())
        loop = asyncio.get_running_loop()

        async def sample() -> None:
            while True:
                if a.is_leader and b.is_leader:
                    both.append(loop.time())
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.sleep(1.0)  # B has polled and seen A's record
            slow_next.set()
            await asyncio.wait_for(slowed.wait(), 10)
            # B's slow GET is on its way now, carrying a renewal A made during the wait; A fails from here.
            a_broken.set()
            await asyncio.wait_for(b.wait_leading(), 20)
            await asyncio.sleep(1.0)
        finally:
            sampler.cancel()
            a.stop()
            b.stop()
            await asyncio.gather(a_task, b_task, sampler, return_exceptions=True)
    assert not both, f"both electors counted themselves leader for about {len(both) * 10} ms"

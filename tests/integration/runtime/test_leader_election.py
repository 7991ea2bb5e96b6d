"""Two LeaderElectors on a real Lease: exactly one leads; a released lease is taken over at once, an abandoned
one after it expires. Short timings (2 s / 1.5 s / 0.3 s) keep this quick."""

from __future__ import annotations

import asyncio

from incluster_ipam.kube import LEASES, KubeClient
from incluster_ipam.runtime import LeaderElectionConfig, LeaderElector

TIMINGS = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}


def pair(kube: KubeClient, namespace: str, **overrides: bool) -> tuple[LeaderElector, LeaderElector]:
    def make(identity: str) -> LeaderElector:
        config = LeaderElectionConfig(
            name="7bb7acb4.ipam.cluster.x-k8s.io",
            namespace=namespace,
            identity=identity,
            **TIMINGS,
            **overrides,
        )
        return LeaderElector(kube, config)

    return make("replica-a"), make("replica-b")


async def holder(kube: KubeClient, namespace: str) -> str:
    lease = await kube.get(LEASES, "7bb7acb4.ipam.cluster.x-k8s.io", namespace)
    return str(lease["spec"].get("holderIdentity") or "")


async def test_one_leader_and_immediate_handover_on_release(kube: KubeClient, namespace: str) -> None:
    a, b = pair(kube, namespace)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        done, _ = await asyncio.wait(
            [asyncio.ensure_future(a.wait_leading()), asyncio.ensure_future(b.wait_leading())],
            timeout=5,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert done
        for _ in range(10):  # stays single-leader through several renewals
            assert a.is_leader != b.is_leader
            await asyncio.sleep(0.1)
        leader, standby = (a, b) if a.is_leader else (b, a)
        assert await holder(kube, namespace) == leader.identity

        loop = asyncio.get_running_loop()
        released_at = loop.time()
        leader.stop()
        await asyncio.wait_for(standby.wait_leading(), 5)
        # Released, so the standby needs at most about one retry period, not a whole lease duration.
        assert loop.time() - released_at < TIMINGS["lease_duration"]
        assert not leader.is_leader
        assert await holder(kube, namespace) == standby.identity
    finally:
        a.stop()
        b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert await holder(kube, namespace) == ""  # the last leader released on stop


async def test_abandoned_lease_is_taken_over_after_it_expires(kube: KubeClient, namespace: str) -> None:
    a, b = pair(kube, namespace, release_on_cancel=False)
    a_task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.wait_leading(), 5)
    b_task = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.5)
        assert not b.is_leader
        loop = asyncio.get_running_loop()
        crashed_at = loop.time()
        a_task.cancel()  # a "crash": renewals stop and nothing is released
        await asyncio.gather(a_task, return_exceptions=True)
        assert await holder(kube, namespace) == a.identity
        await asyncio.wait_for(b.wait_leading(), 10)
        waited = loop.time() - crashed_at
        assert TIMINGS["lease_duration"] - 0.5 <= waited <= TIMINGS["lease_duration"] + 2.0
        lease = await kube.get(LEASES, "7bb7acb4.ipam.cluster.x-k8s.io", namespace)
        assert lease["spec"]["holderIdentity"] == b.identity
        assert lease["spec"]["leaseTransitions"] == 1
        assert lease["spec"]["leaseDurationSeconds"] == 2
    finally:
        b.stop()
        await asyncio.wait_for(b_task, 10)

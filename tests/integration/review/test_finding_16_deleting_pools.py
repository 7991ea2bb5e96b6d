"""Finding 16 of the December review: claims kept allocating from a pool that was being deleted; the pool's
finalizer was dropped when the cache showed no IPAddress, ignoring reservations whose create was still in
flight; and the book forgot those reservations when the pool went, so a pool re-created at once under the
same name (`kubectl replace --force`, GitOps) handed the same address out twice."""

from __future__ import annotations

import asyncio

from incluster_ipam.api.constants import POOL_FINALIZER

from ..faults import invariants
from ..faults.helpers import ADDRESSES, IP_POOLS, Cluster
from ..support import eventually
from .doctored import DoctoredClient, Gate
from .harness import options, ready_condition, running, wait_bound


async def test_finding_16_a_pool_being_deleted_hands_out_nothing(cluster: Cluster) -> None:
    ns = await cluster.namespace("f16")
    await cluster.pool("InClusterIPPool", "p", ns, addresses=["10.160.0.1-10.160.0.9"], prefix=24)
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.claim(ns, "a", "p")
        await wait_bound(cluster, ns, "a")

        async def protected() -> bool:
            pool = await cluster.client.get(IP_POOLS, "p", ns)
            return POOL_FINALIZER in (pool["metadata"].get("finalizers") or [])

        # The status writer adds the finalizer shortly after the pool appears; under load that can come after
        # the claim is bound, and a pool deleted before it has nothing to hold it (nothing to test then).
        await eventually(protected, 20, "the pool's finalizer")
        await cluster.client.delete(IP_POOLS, "p", ns)  # held by its finalizer while a's address lives
        await cluster.claim(ns, "b", "p")

        async def explained() -> dict[str, object] | None:
            condition = await ready_condition(cluster, ns, "b")
            return condition if condition and condition.get("reason") == "PoolNotReady" else None

        condition = await eventually(explained, 20, "claim b to say the pool is being deleted")
        assert condition["status"] == "False"
        assert "being deleted" in str(condition["message"])
        assert all(a["metadata"]["name"] != "b" for a in await cluster.addresses(ns))
        assert await run.finish() == 0


async def test_finding_16_a_pool_recreated_at_once_never_repeats_an_in_flight_address(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("f16")
    spec = {"addresses": ["10.161.0.1-10.161.0.9"], "prefix": 24}
    await cluster.pool("InClusterIPPool", "p", ns, **spec)
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    gate = Gate()

    async def hold_slow_create(method: str, plural: str, name: str) -> None:
        if method == "create" and plural == "ipaddresses" and name == "slow":
            await gate.wait()

    client.hooks.append(hold_slow_create)
    async with (
        client,
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        running(client, options()) as run,
    ):
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.claim(ns, "slow", "p")
        await asyncio.wait_for(gate.reached.wait(), 20)  # slow's address is reserved, its create held
        await cluster.client.delete(IP_POOLS, "p", ns)

        async def replaced() -> bool:
            try:
                await cluster.pool("InClusterIPPool", "p", ns, **spec)
            except Exception:
                return False
            return True

        recreated = await _within(replaced, 5)
        await cluster.claim(ns, "fast", "p")
        if recreated:
            await wait_bound(cluster, ns, "fast")
        gate.open.set()
        await wait_bound(cluster, ns, "slow")
        if not recreated:
            # The old pool waited for slow's reservation, and now holds its address: it goes once slow
            # releases it, and comes back for fast.
            await cluster.delete_claim(ns, "slow")
            await eventually(replaced, 30, "the pool to be re-created")
            await wait_bound(cluster, ns, "fast")
        await invariants.settle(cluster.client, ns, monitor=monitor)
        assert await run.finish() == 0


async def _within(probe: object, seconds: float) -> bool:
    try:
        await eventually(probe, seconds, "probe")  # type: ignore[arg-type]
    except AssertionError:
        return False
    return True

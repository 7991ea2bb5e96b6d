"""Pausing, grace periods, teardown, churn and refill: the claim lifecycle against the real apiserver."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from .conftest import ADDRESSES, CLAIMS, CLUSTERS, GLOBAL_IP_POOLS, IP_POOLS, Harness, eventually

PAUSED = "cluster.x-k8s.io/paused"


async def unbound_after(h: Harness, namespace: str, claim: str, seconds: float = 1.0) -> bool:
    """True when the claim is still without an address after `seconds` (for things that must not happen)."""
    await asyncio.sleep(seconds)
    obj = await h.get(CLAIMS, claim, namespace)
    return obj is not None and not (obj.get("status") or {}).get("addressRef")


async def test_paused_pool_blocks_allocation_and_release_until_unpaused(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.50.0.10-10.50.0.11"], prefix=24)
    await h.claim(ns, "before", "pool")
    await h.bound_address(ns, "before")
    await h.client.patch(IP_POOLS, "pool", {"metadata": {"annotations": {PAUSED: ""}}}, ns)
    await asyncio.sleep(0.3)
    await h.claim(ns, "during", "pool")
    assert await unbound_after(h, ns, "during")
    await h.client.delete(CLAIMS, "before", ns)
    await asyncio.sleep(0.5)
    assert await h.get(CLAIMS, "before", ns) is not None, "a claim of a paused pool was released"
    await h.client.patch(IP_POOLS, "pool", {"metadata": {"annotations": {PAUSED: None}}}, ns)
    assert await h.bound_address(ns, "during") in {"10.50.0.10", "10.50.0.11"}
    await h.delete_and_wait(CLAIMS, "before", ns)


async def test_paused_claim_is_bound_once_unpaused(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.51.0.10"], prefix=24)
    await h.claim(ns, "m", "pool", annotations={PAUSED: ""})
    assert await unbound_after(h, ns, "m")
    await h.client.patch(CLAIMS, "m", {"metadata": {"annotations": {PAUSED: None}}}, ns)
    assert await h.bound_address(ns, "m") == "10.51.0.10"


async def test_cluster_named_in_spec_paused_by_spec_then_unpaused(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.client.create(
        CLUSTERS,
        {
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": "c2"},
            "spec": {"paused": True},
        },
        ns,
    )
    await h.ip_pool(ns, "pool", addresses=["10.52.0.10"], prefix=24)
    body = {
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": "m"},
        "spec": {
            "clusterName": "c2",
            "poolRef": {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "pool"},
        },
    }
    await h.client.create(CLAIMS, body, ns)
    assert await unbound_after(h, ns, "m")
    await h.client.patch(CLUSTERS, "c2", {"spec": {"paused": False}}, ns)
    assert await h.bound_address(ns, "m") == "10.52.0.10"


async def test_claim_of_a_missing_cluster_is_not_bound_but_a_deleted_one_is_released(
    harness: Harness,
) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.53.0.10-10.53.0.11"], prefix=24)
    await h.claim(ns, "orphan", "pool", labels={"cluster.x-k8s.io/cluster-name": "nowhere"})
    assert await unbound_after(h, ns, "orphan")
    await h.cluster(ns, "c3")
    await h.claim(ns, "m", "pool", labels={"cluster.x-k8s.io/cluster-name": "c3"})
    await h.bound_address(ns, "m")
    await h.delete_and_wait(CLUSTERS, "c3", ns)
    await h.delete_and_wait(CLAIMS, "m", ns)  # the Cluster is gone first: deletion must still release
    assert await h.get(ADDRESSES, "m", ns) is None


async def test_grace_period_holds_a_released_address_and_teardown_skips_it(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.54.0.10"], prefix=24, addressReuseGracePeriodSeconds=3)
    await h.claim(ns, "old", "pool")
    await h.bound_address(ns, "old")
    started = time.monotonic()
    await h.client.delete(CLAIMS, "old", ns)
    await h.claim(ns, "new", "pool")
    await h.delete_and_wait(CLAIMS, "old", ns)
    # deletionTimestamp has one-second resolution, so the 3 s grace may end up to 1 s early.
    assert time.monotonic() - started >= 1.9, "the grace period was not honoured"
    assert await h.bound_address(ns, "new") == "10.54.0.10"

    # Teardown: with the pool being deleted, a claim's deletion does not wait for the grace period.
    await h.ip_pool(ns, "long", addresses=["10.54.1.10"], prefix=24, addressReuseGracePeriodSeconds=300)
    await h.claim(ns, "t", "long")
    await h.bound_address(ns, "t")
    await h.client.delete(IP_POOLS, "long", ns)
    await h.client.delete(CLAIMS, "t", ns)
    await h.delete_and_wait(CLAIMS, "t", ns)
    await h.delete_and_wait(IP_POOLS, "long", ns)  # its finalizer goes once no IPAddress references it


async def test_exhausted_pool_refills_as_claims_go(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "ten", addresses=["10.55.0.1-10.55.0.10"], prefix=24)
    await asyncio.gather(*(h.claim(ns, f"c{i}", "ten") for i in range(15)))

    async def counts() -> tuple[int, int] | None:
        bound = exhausted = 0
        for i in range(15):
            condition = await h.ready_condition(ns, f"c{i}")
            if condition and condition["status"] == "True":
                bound += 1
            elif condition and condition["reason"] == "PoolExhausted":
                exhausted += 1
        return (bound, exhausted) if bound + exhausted == 15 else None

    assert await eventually(counts, 30, "10 bound and 5 exhausted") == (10, 5)
    holders = [i for i in range(15) if (await h.ready_condition(ns, f"c{i}") or {}).get("status") == "True"]
    waiting = [i for i in range(15) if i not in holders]
    await asyncio.gather(*(h.client.delete(CLAIMS, f"c{i}", ns) for i in holders[:5]))
    got = await asyncio.gather(*(h.bound_address(ns, f"c{i}", within=10) for i in waiting))
    remaining = [await h.bound_address(ns, f"c{i}") for i in holders[5:]]
    assert len(set(got + remaining)) == 10


async def test_claims_deleted_and_recreated_in_a_tight_loop_never_share_an_address(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    global_name = f"churn-{ns}"
    await h.ip_pool(None, global_name, addresses=["10.56.0.1-10.56.0.6"], prefix=24)
    names = [f"m{i}" for i in range(5)]
    for _round in range(6):
        await asyncio.gather(*(h.claim(ns, n, global_name, kind="GlobalInClusterIPPool") for n in names))
        got = await asyncio.gather(*(h.bound_address(ns, n) for n in names))
        assert len(set(got)) == len(got)
        await asyncio.gather(*(h.delete_and_wait(CLAIMS, n, ns) for n in names))
    listed = await h.client.list(ADDRESSES, ns)
    assert listed.items == [], "IPAddresses outlived their claims"

    async def empty_pool() -> bool:
        pool = await h.get(GLOBAL_IP_POOLS, global_name)
        return ((pool or {}).get("status") or {}).get("ipAddresses", {}).get("used") == 0

    await eventually(empty_pool, 10, "the pool to report 0 used")


async def test_five_hundred_concurrent_claims_across_three_pools(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    global_name = f"g500-{ns}"
    await h.ip_pool(ns, "v4", addresses=["10.60.0.0/16"], prefix=16)
    await h.ip_pool(None, global_name, addresses=["10.61.0.0/24"], prefix=24)
    await h.ip_pool(ns, "v6", addresses=["fd60::/64"], prefix=64)
    plan = (
        [("v4", "InClusterIPPool")] * 250
        + [(global_name, "GlobalInClusterIPPool")] * 150
        + [("v6", "InClusterIPPool")] * 100
    )
    semaphore = asyncio.Semaphore(32)

    async def create(i: int, pool: str, kind: str) -> None:
        async with semaphore:
            await h.claim(ns, f"c{i}", pool, kind=kind)

    await asyncio.gather(*(create(i, pool, kind) for i, (pool, kind) in enumerate(plan)))
    got = await asyncio.gather(*(h.bound_address(ns, f"c{i}", within=120) for i in range(len(plan))))
    assert len(set(got)) == len(got), "an address was handed out twice"
    by_pool: dict[str, list[str]] = {}
    for (pool, _), address in zip(plan, got, strict=True):
        by_pool.setdefault(pool, []).append(address)
    expected_v4 = [str(ipaddress.ip_address("10.60.0.1") + i) for i in range(250)]
    assert sorted(by_pool["v4"], key=ipaddress.ip_address) == expected_v4
    assert sorted(by_pool[global_name], key=ipaddress.ip_address) == [f"10.61.0.{i}" for i in range(1, 151)]
    assert sorted(by_pool["v6"], key=ipaddress.ip_address) == [f"fd60::{i:x}" for i in range(1, 101)]

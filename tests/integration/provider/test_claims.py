"""The provider binds claims to unique addresses, explains itself, and releases on delete (real apiserver)."""

from __future__ import annotations

import asyncio
import ipaddress

from incluster_ipam.api.constants import GROUP

from .conftest import ADDRESSES, CLAIMS, CLUSTERS, IP_POOLS, PREFIX_POOLS, Harness, eventually


async def pool_status(h: Harness, namespace: str, name: str, expected: dict[str, int]) -> None:
    async def probe() -> bool:
        pool = await h.get(IP_POOLS, name, namespace)
        return ((pool or {}).get("status") or {}).get("ipAddresses") == expected

    await eventually(probe, 20, f"pool {namespace}/{name} status {expected}")


async def test_claim_gets_the_lowest_address_with_upstream_shape_and_a_ready_condition(
    harness: Harness,
) -> None:
    h = harness
    ns = await h.namespace()
    await h.cluster(ns, "c1")
    pool = await h.ip_pool(ns, "pool", addresses=["10.0.0.10-10.0.0.20"], prefix=24, gateway="10.0.0.1")
    claim = await h.claim(ns, "machine-1", "pool", labels={"cluster.x-k8s.io/cluster-name": "c1"})
    assert await h.bound_address(ns, "machine-1") == "10.0.0.10"

    address = await h.get(ADDRESSES, "machine-1", ns)
    assert address is not None
    assert address["spec"] == {
        "address": "10.0.0.10",
        "prefix": 24,
        "gateway": "10.0.0.1",
        "claimRef": {"name": "machine-1"},
        "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool"},
    }
    meta = address["metadata"]
    assert meta["finalizers"] == ["ipam.cluster.x-k8s.io/ProtectAddress"]
    assert meta["labels"] == {"cluster.x-k8s.io/cluster-name": "c1"}
    owners = {o["kind"]: o for o in meta["ownerReferences"]}
    assert owners["IPAddressClaim"]["uid"] == claim["metadata"]["uid"]
    assert owners["IPAddressClaim"]["controller"] is True
    assert owners["InClusterIPPool"]["uid"] == pool["metadata"]["uid"]
    assert owners["InClusterIPPool"]["controller"] is False
    assert owners["InClusterIPPool"]["blockOwnerDeletion"] is True

    bound = await h.get(CLAIMS, "machine-1", ns)
    assert bound is not None
    assert bound["metadata"]["finalizers"] == ["ipam.cluster.x-k8s.io/ReleaseAddress"]
    ready = await h.ready_condition(ns, "machine-1")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "AddressAllocated")
    assert "10.0.0.10" in ready["message"]
    await pool_status(h, ns, "pool", {"total": 11, "used": 1, "free": 10, "outOfRange": 0})

    async def allocated_event() -> bool:
        return ("Normal", "AddressAllocated") in await h.events_for(ns, "machine-1")

    await eventually(allocated_event, 10, "an AddressAllocated event")
    stored_pool = await h.get(IP_POOLS, "pool", ns)
    assert stored_pool is not None
    assert "ipam.cluster.x-k8s.io/ProtectPool" in stored_pool["metadata"]["finalizers"]


async def test_reserved_gateway_and_excluded_addresses_are_skipped_lowest_first(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(
        ns,
        "pool",
        addresses=["10.1.1.9", "10.1.1.0/29"],
        prefix=24,
        gateway="10.1.1.2",
        excludedAddresses=["10.1.1.4", "10.1.1.6-10.1.1.7"],
    )
    for i in range(4):
        await h.claim(ns, f"m{i}", "pool")
    got = sorted([await h.bound_address(ns, f"m{i}") for i in range(4)], key=ipaddress.ip_address)
    # 10.1.1.0 is the network address; .2 the gateway; .4, .6 and .7 are excluded.
    assert got == ["10.1.1.1", "10.1.1.3", "10.1.1.5", "10.1.1.9"]


async def test_exhausted_pool_explains_itself_and_recovers_at_once(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "tiny", addresses=["10.2.0.10"], prefix=24)
    await h.claim(ns, "first", "tiny")
    assert await h.bound_address(ns, "first") == "10.2.0.10"
    await h.claim(ns, "second", "tiny")

    async def exhausted() -> dict[str, object] | None:
        condition = await h.ready_condition(ns, "second")
        return condition if condition and condition["reason"] == "PoolExhausted" else None

    condition = await eventually(exhausted, 20, "PoolExhausted on the second claim")
    assert condition["status"] == "False"
    assert f"InClusterIPPool {ns}/tiny" in str(condition["message"])
    await pool_status(h, ns, "tiny", {"total": 1, "used": 1, "free": 0, "outOfRange": 0})

    async def exhausted_event() -> bool:
        return ("Warning", "PoolExhausted") in await h.events_for(ns, "second")

    await eventually(exhausted_event, 10, "a PoolExhausted warning event")

    await h.client.delete(CLAIMS, "first", ns)
    # No exponential back-off: the waiting claim is bound as soon as the address is free.
    assert await h.bound_address(ns, "second", within=5) == "10.2.0.10"
    assert await h.get(CLAIMS, "first", ns) is None


async def test_growing_an_exhausted_pool_binds_the_waiting_claim(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "grow", addresses=["10.3.0.10"], prefix=24)
    await h.claim(ns, "a", "grow")
    await h.bound_address(ns, "a")
    await h.claim(ns, "b", "grow")
    await eventually(lambda: h.ready_condition(ns, "b"), 20, "a condition on b")
    await h.client.patch(IP_POOLS, "grow", {"spec": {"addresses": ["10.3.0.10-10.3.0.11"]}}, ns)
    assert await h.bound_address(ns, "b", within=5) == "10.3.0.11"


async def test_deleting_a_claim_releases_its_address(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.4.0.10-10.4.0.12"], prefix=24)
    await h.claim(ns, "gone", "pool")
    await h.bound_address(ns, "gone")
    await h.delete_and_wait(CLAIMS, "gone", ns)
    assert await h.get(ADDRESSES, "gone", ns) is None
    await pool_status(h, ns, "pool", {"total": 3, "used": 0, "free": 3, "outOfRange": 0})
    await h.claim(ns, "next", "pool")
    assert await h.bound_address(ns, "next") == "10.4.0.10"


async def test_claim_for_a_missing_pool_waits_and_binds_when_the_pool_appears(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.claim(ns, "early", "later")

    async def not_ready() -> dict[str, object] | None:
        condition = await h.ready_condition(ns, "early")
        return condition if condition and condition["reason"] == "PoolNotReady" else None

    condition = await eventually(not_ready, 20, "PoolNotReady")
    assert "not found" in str(condition["message"])
    await h.ip_pool(ns, "later", addresses=["10.5.0.10"], prefix=24)
    assert await h.bound_address(ns, "early") == "10.5.0.10"


async def test_global_pool_serves_all_namespaces_without_duplicates(harness: Harness) -> None:
    h = harness
    ns1, ns2 = await h.namespace(), await h.namespace()
    name = f"global-{ns1}"
    await h.ip_pool(None, name, addresses=["10.6.0.10-10.6.0.20"], prefix=24)
    await h.claim(ns1, "same-name", name, kind="GlobalInClusterIPPool")
    await h.claim(ns2, "same-name", name, kind="GlobalInClusterIPPool")
    got = {await h.bound_address(ns1, "same-name"), await h.bound_address(ns2, "same-name")}
    assert got == {"10.6.0.10", "10.6.0.11"}


async def test_same_pool_name_in_two_namespaces_allocates_independently(harness: Harness) -> None:
    h = harness
    ns1, ns2 = await h.namespace(), await h.namespace()
    for ns in (ns1, ns2):
        await h.ip_pool(ns, "pool", addresses=["10.7.0.10-10.7.0.20"], prefix=24)
        await h.claim(ns, "m", "pool")
    assert await h.bound_address(ns1, "m") == "10.7.0.10"
    assert await h.bound_address(ns2, "m") == "10.7.0.10"


async def test_claims_for_other_providers_are_left_alone(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    body = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": "foreign"},
        "spec": {"poolRef": {"apiGroup": "example.com", "kind": "InfobloxPool", "name": "x"}},
    }
    await h.client.create(CLAIMS, body, ns)
    await h.ip_pool(ns, "pool", addresses=["10.8.0.10"], prefix=24)
    await h.claim(ns, "ours", "pool")
    await h.bound_address(ns, "ours")  # the provider is alive and has seen both claims by now
    foreign = await h.get(CLAIMS, "foreign", ns)
    assert foreign is not None
    assert not foreign["metadata"].get("finalizers")
    assert not foreign.get("status")


async def test_paused_cluster_holds_allocation_until_unpaused(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.cluster(ns, "c1", paused_annotation=True)
    await h.ip_pool(ns, "pool", addresses=["10.9.0.10"], prefix=24)
    await h.claim(ns, "m", "pool", labels={"cluster.x-k8s.io/cluster-name": "c1"})
    await asyncio.sleep(1.0)
    claim = await h.get(CLAIMS, "m", ns)
    assert claim is not None
    assert not (claim.get("status") or {}).get("addressRef")
    await h.client.patch(CLUSTERS, "c1", {"metadata": {"annotations": {"cluster.x-k8s.io/paused": None}}}, ns)
    assert await h.bound_address(ns, "m") == "10.9.0.10"


async def test_existing_ipaddress_of_the_claims_name_is_adopted(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.10.0.10-10.10.0.20"], prefix=24)
    await h.client.create(
        ADDRESSES,
        {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {"name": "pre"},
            "spec": {
                "address": "10.10.0.15",
                "prefix": 24,
                "claimRef": {"name": "pre"},
                "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool"},
            },
        },
        ns,
    )
    await h.claim(ns, "pre", "pool")
    assert await h.bound_address(ns, "pre") == "10.10.0.15"

    async def adopted() -> bool:
        address = await h.get(ADDRESSES, "pre", ns)
        owners = (address or {}).get("metadata", {}).get("ownerReferences") or []
        return any(o["kind"] == "IPAddressClaim" and o.get("controller") for o in owners)

    await eventually(adopted, 20, "the claim to own the pre-existing IPAddress")
    await h.claim(ns, "other", "pool")
    assert await h.bound_address(ns, "other") == "10.10.0.10"


async def test_prefix_pool_hands_out_aligned_sub_prefixes(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.client.create(
        PREFIX_POOLS,
        {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "InClusterPrefixPool",
            "metadata": {"name": "v6"},
            "spec": {"prefixes": ["fd00::/62"], "allocationPrefixLength": 64},
        },
        ns,
    )
    await h.claim(ns, "a", "v6", kind="InClusterPrefixPool")
    assert await h.bound_address(ns, "a") == "fd00::"
    await h.claim(ns, "b", "v6", kind="InClusterPrefixPool")
    assert await h.bound_address(ns, "b") == "fd00:0:0:1::"
    address = await h.get(ADDRESSES, "b", ns)
    assert address is not None
    assert address["spec"]["prefix"] == 64

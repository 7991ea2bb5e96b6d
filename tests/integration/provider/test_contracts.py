"""Core claim scenarios under both IPAM contracts: v1beta2 (Cluster API >= 1.11) and v1beta1 (1.6-1.10)."""

from __future__ import annotations

from incluster_ipam.api.constants import GROUP

from .conftest import IP_POOLS, Harness, eventually


async def test_binds_the_lowest_address_with_the_contracts_shape(any_contract: Harness) -> None:
    h = any_contract
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.70.0.10-10.70.0.20"], prefix=24, gateway="10.70.0.1")
    await h.claim(ns, "m", "pool")
    assert await h.bound_address(ns, "m") == "10.70.0.10"
    address = await h.get(h.addresses, "m", ns)
    assert address is not None
    assert address["apiVersion"] == h.addresses.api_version
    assert address["spec"]["poolRef"] == {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool"}
    assert (address["spec"]["prefix"], address["spec"]["gateway"]) == (24, "10.70.0.1")
    ready = await h.ready_condition(ns, "m")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "AddressAllocated")
    assert ("observedGeneration" in ready) == (h.claims.version == "v1beta2")

    async def status() -> bool:
        pool = await h.get(IP_POOLS, "pool", ns)
        return ((pool or {}).get("status") or {}).get("ipAddresses", {}).get("used") == 1

    await eventually(status, 20, "the pool status to count the address")


async def test_exhaustion_is_explained_and_recovers_when_an_address_is_released(
    any_contract: Harness,
) -> None:
    h = any_contract
    ns = await h.namespace()
    await h.ip_pool(ns, "one", addresses=["10.71.0.10"], prefix=24)
    await h.claim(ns, "a", "one")
    await h.bound_address(ns, "a")
    await h.claim(ns, "b", "one")

    async def exhausted() -> dict[str, object] | None:
        condition = await h.ready_condition(ns, "b")
        return condition if condition and condition["reason"] == "PoolExhausted" else None

    condition = await eventually(exhausted, 20, "PoolExhausted")
    assert condition["status"] == "False"
    if h.claims.version == "v1beta1":
        assert condition["severity"] == "Warning"
    await h.client.delete(h.claims, "a", ns)
    assert await h.bound_address(ns, "b", within=10) == "10.71.0.10"
    assert await h.get(h.addresses, "a", ns) is None


async def test_missing_pool_then_created(any_contract: Harness) -> None:
    h = any_contract
    ns = await h.namespace()
    await h.claim(ns, "early", "later")

    async def not_ready() -> dict[str, object] | None:
        condition = await h.ready_condition(ns, "early")
        return condition if condition and condition["reason"] == "PoolNotReady" else None

    await eventually(not_ready, 20, "PoolNotReady")
    await h.ip_pool(ns, "later", addresses=["10.72.0.10"], prefix=24)
    assert await h.bound_address(ns, "early") == "10.72.0.10"


async def test_global_pool_across_namespaces(any_contract: Harness) -> None:
    h = any_contract
    ns1, ns2 = await h.namespace(), await h.namespace()
    name = f"contract-{ns1}"
    await h.ip_pool(None, name, addresses=["10.73.0.10-10.73.0.20"], prefix=24)
    await h.claim(ns1, "same", name, kind="GlobalInClusterIPPool")
    await h.claim(ns2, "same", name, kind="GlobalInClusterIPPool")
    assert {await h.bound_address(ns1, "same"), await h.bound_address(ns2, "same")} == {
        "10.73.0.10",
        "10.73.0.11",
    }

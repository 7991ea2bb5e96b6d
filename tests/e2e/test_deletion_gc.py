"""Deletion with the garbage collector: kube-controller-manager's garbage collector and namespace controller
against our provider (a process, webhooks registered, so the pools' delete protection is real).

- a namespace holding pools, claims and IPAddresses is deleted completely (the protection refuses the pool
  until its IPAddresses are gone, then lets it go: no deadlock);
- a Cluster deleted in the foreground takes its Machines, their infrastructure machines and claims with it,
  and their addresses are free again;
- a claim removed with its finalizer stripped leaves no address held: the collector deletes its IPAddress
  (the claim is its controller) and the provider lets it go.

Each test checks the audit and a recount of every pool's status, and prints its figures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL, is_deleting
from incluster_ipam.kube import NAMESPACES, ApiError
from tests.integration.faults.helpers import ADDRESSES, CLAIMS, GLOBAL_IP_POOLS, IP_POOLS
from tests.integration.support import eventually

from .gcstack import CLUSTERS, INFRA_MACHINES, MACHINES, Stack, gc_stack


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with gc_stack(tmp_path_factory.mktemp("gc")) as running:
        yield running


async def bound_addresses(stack: Stack, namespace: str) -> dict[str, str]:
    """claim name -> address, for every claim bound to an existing IPAddress."""
    addresses = {
        a["metadata"]["name"]: a["spec"]["address"] for a in await stack.cluster.addresses(namespace)
    }
    out = {}
    for claim in await stack.cluster.claims(namespace):
        ref = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
        if ref in addresses:
            out[claim["metadata"]["name"]] = addresses[ref]
    return out


async def pool_used(stack: Stack, kind: str, name: str, namespace: str | None) -> int | None:
    resource = IP_POOLS if kind == "InClusterIPPool" else GLOBAL_IP_POOLS
    pool = await stack.client.get(resource, name, namespace)
    used = ((pool.get("status") or {}).get("ipAddresses") or {}).get("used")
    return used if isinstance(used, int) else None


async def test_deleting_a_namespace_with_pools_claims_and_addresses_completes(stack: Stack) -> None:
    ns = await stack.cluster.namespace("gc-ns")
    keep = await stack.cluster.namespace("gc-keep")
    shared = f"gc-shared-{uuid.uuid4().hex[:6]}"
    await stack.cluster.pool("InClusterIPPool", "workers", ns, addresses=["10.61.0.10-10.61.0.60"], prefix=24)
    await stack.cluster.pool(
        "InClusterPrefixPool", "nets", ns, prefixes=["fd61::/56"], allocationPrefixLength=64
    )
    await stack.cluster.pool("GlobalInClusterIPPool", shared, None, addresses=["10.62.0.0/24"], prefix=24)
    for i in range(20):
        await stack.cluster.claim(ns, f"w{i}", "workers")
    for i in range(5):
        await stack.cluster.claim(ns, f"n{i}", "nets", "InClusterPrefixPool")
        await stack.cluster.claim(ns, f"g{i}", shared, "GlobalInClusterIPPool")
        await stack.cluster.claim(keep, f"g{i}", shared, "GlobalInClusterIPPool")
    await stack.cluster.wait_all_bound(ns)
    await stack.cluster.wait_all_bound(keep)
    await stack.settle(ns, "before the namespace delete")
    objects = len(await stack.cluster.claims(ns)) + len(await stack.cluster.addresses(ns)) + 2

    # The protection is on: a pool holding addresses cannot be deleted by hand (a dry run, polled: the
    # webhook's informers may be a moment behind).
    async def refused() -> bool:
        try:
            await stack.client.delete(IP_POOLS, "workers", ns, dry_run=True)
        except ApiError as exc:
            if exc.status != 400:
                raise
            return True
        return False

    await eventually(refused, 10.0, "the delete protection to refuse the pool")

    started = time.monotonic()
    await stack.client.delete(NAMESPACES, ns)
    seconds = await stack.gone(NAMESPACES, ns, None, within=120.0)
    keep_addresses = await bound_addresses(stack, keep)
    assert len(keep_addresses) == 5
    await stack.settle(None, "after the namespace delete")
    assert await pool_used(stack, "GlobalInClusterIPPool", shared, None) == 5
    print(
        f"namespace with 3 pools, {objects} objects deleted in {seconds:.1f} s "
        f"(total {time.monotonic() - started:.1f} s with the checks)",
        flush=True,
    )
    await stack.client.delete(NAMESPACES, keep)
    await stack.gone(NAMESPACES, keep, None, within=120.0)
    await stack.client.delete(GLOBAL_IP_POOLS, shared)
    await stack.gone(GLOBAL_IP_POOLS, shared, None, within=30.0)


async def test_foreground_deletion_of_a_cluster_releases_its_machines_addresses(stack: Stack) -> None:
    ns = await stack.cluster.namespace("gc-cluster")
    shared = f"gc-vip-{uuid.uuid4().hex[:6]}"
    await stack.cluster.pool("InClusterIPPool", "nodes", ns, addresses=["10.63.0.10-10.63.0.30"], prefix=24)
    await stack.cluster.pool(
        "GlobalInClusterIPPool", shared, None, addresses=["10.64.0.10-10.64.0.30"], prefix=24
    )
    pools = [("nodes", "InClusterIPPool"), (shared, "GlobalInClusterIPPool")]
    doomed = await stack.capi_cluster(ns, "doomed")
    other = await stack.capi_cluster(ns, "other")
    for m in range(3):
        await stack.machine_with_claims(ns, doomed, f"doomed-m{m}", pools)
    await stack.machine_with_claims(ns, other, "other-m0", pools)
    await stack.cluster.wait_all_bound(ns)
    before = await bound_addresses(stack, ns)
    assert len(before) == 8
    await stack.settle(ns, "before the Cluster delete")

    started = time.monotonic()
    await stack.client.delete(CLUSTERS, "doomed", ns, propagation_policy="Foreground")
    # Foreground: the Cluster stays (deletionTimestamp, foregroundDeletion) until every blocking dependent,
    # down to the IPAddresses, is gone.
    seconds = await stack.gone(CLUSTERS, "doomed", ns, within=90.0)
    remaining = {
        resource.kind: [o["metadata"]["name"] for o in (await stack.client.list(resource, ns)).items]
        for resource in (MACHINES, INFRA_MACHINES, CLAIMS, ADDRESSES)
    }
    assert remaining == {
        "Machine": ["other-m0"],
        "E2EMachine": ["other-m0"],
        "IPAddressClaim": ["other-m0-0", "other-m0-1"],
        "IPAddress": ["other-m0-0", "other-m0-1"],
    }
    after = await bound_addresses(stack, ns)
    assert after == {name: address for name, address in before.items() if name.startswith("other-")}
    labelled = [
        a["metadata"]["name"]
        for a in await stack.cluster.addresses(ns)
        if (a["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL) == "doomed"
    ]
    assert labelled == []
    await stack.settle(ns, "after the Cluster delete")
    assert await pool_used(stack, "InClusterIPPool", "nodes", ns) == 1
    assert await pool_used(stack, "GlobalInClusterIPPool", shared, None) == 1

    # The released addresses are free: a new machine of the surviving cluster gets the lowest of them.
    await stack.machine_with_claims(ns, other, "other-m1", pools)
    await stack.cluster.wait_all_bound(ns)
    fresh = await bound_addresses(stack, ns)
    assert {fresh["other-m1-0"], fresh["other-m1-1"]} == {before["doomed-m0-0"], before["doomed-m0-1"]}
    await stack.settle(ns, "after a new machine")
    print(
        f"Cluster with 3 Machines, 3 infrastructure machines, 6 claims, 6 IPAddresses deleted in the "
        f"foreground in {seconds:.1f} s (total {time.monotonic() - started:.1f} s with the checks)",
        flush=True,
    )
    await stack.client.delete(CLUSTERS, "other", ns, propagation_policy="Foreground")
    await stack.gone(CLUSTERS, "other", ns, within=90.0)
    await stack.client.delete(GLOBAL_IP_POOLS, shared)
    await stack.gone(GLOBAL_IP_POOLS, shared, None, within=30.0)


async def test_a_claim_removed_without_its_finalizer_leaves_no_address_held(stack: Stack) -> None:
    ns = await stack.cluster.namespace("gc-strip")
    await stack.cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.65.0.10-10.65.0.20"], prefix=24)
    for name in ("a", "b"):
        await stack.cluster.claim(ns, name, "pool")
    await stack.cluster.wait_all_bound(ns)
    before = await bound_addresses(stack, ns)
    await stack.settle(ns, "before the finalizer is stripped")
    address_a: dict[str, Any] = await stack.client.get(ADDRESSES, "a", ns)
    controller = [o for o in address_a["metadata"]["ownerReferences"] if o.get("controller")]
    assert [(o["kind"], o["name"]) for o in controller] == [("IPAddressClaim", "a")]

    # With the provider stopped, only the collector can act on the IPAddress.
    await stack.provider.stop()
    started = time.monotonic()
    try:
        await stack.client.patch(CLAIMS, "a", {"metadata": {"finalizers": None}}, ns)
        await stack.client.delete(CLAIMS, "a", ns)
        await stack.gone(CLAIMS, "a", ns, within=10.0)

        async def collected() -> str | None:
            # The pool owns the IPAddress too, so the collector only drops the claim's reference.
            address = await stack.client.get(ADDRESSES, "a", ns)
            owners = [o["kind"] for o in address["metadata"].get("ownerReferences") or []]
            if is_deleting(address):
                return "deleted it"
            return None if "IPAddressClaim" in owners else f"left owners {owners}"

        outcome = await eventually(collected, 30.0, "the collector to act on the IPAddress")
        collected_after = time.monotonic() - started
        print(f"the collector {outcome} after {collected_after:.1f} s", flush=True)
    finally:
        await stack.provider.start()
    seconds = await stack.gone(ADDRESSES, "a", ns, within=60.0)
    await stack.settle(ns, "after the collector removed the IPAddress")
    assert await pool_used(stack, "InClusterIPPool", "pool", ns) == 1

    # Nothing holds the address any more: the next claim gets it, and it is unique.
    await stack.cluster.claim(ns, "c", "pool")
    await stack.cluster.wait_all_bound(ns)
    after = await bound_addresses(stack, ns)
    assert after == {"b": before["b"], "c": before["a"]}
    await stack.settle(ns, "after a new claim")
    print(
        f"claim removed without its finalizer: the collector {outcome} after {collected_after:.1f} s; "
        f"the IPAddress was gone {seconds:.1f} s after the provider restarted",
        flush=True,
    )
    await stack.client.delete(NAMESPACES, ns)
    await stack.gone(NAMESPACES, ns, None, within=120.0)

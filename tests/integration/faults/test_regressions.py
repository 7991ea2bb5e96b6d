"""Regression tests for the bugs the fault tests found, each race forced deterministically.

1. A claim deleted before the provider added its finalizer: the finalizer patch gets 404, and the provider
   used to carry on and create an IPAddress for the vanished claim (an orphan holding an address forever).
2. A claim deleted while the finalizer patch is in flight: kube-apiserver can report the patch as a success
   and still remove the claim (kubernetes/kubernetes#77988, reproduced against our 1.37 apiserver by the
   churn test); the IPAddress created next was orphaned. The provider now deletes an IPAddress of ours whose
   claim is gone, on the claim's deletion, on the IPAddress's events and when it starts leading.
3. A claim deleted right after it was bound, before the provider's IPAddress cache had seen the new
   IPAddress: the release trusted the cache, deleted nothing, dropped the claim's finalizer and left the
   IPAddress orphaned.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from incluster_ipam.kube import ApiError, KubeClient, Resource, load_kubeconfig
from incluster_ipam.kube.errors import is_not_found

from . import invariants
from .helpers import ADDRESSES, CLAIMS, Cluster, eventually, in_process


class RacingClient(KubeClient):
    """The provider's client, with one race forced around the patch that adds the target claim's finalizer.

    `before`: someone deletes the claim just before the patch reaches the apiserver (the patch gets 404).
    `vanish`: the patch succeeds, and the claim disappears anyway, as kube-apiserver lets happen when a
    DELETE races the patch (kubernetes/kubernetes#77988); simulated by removing the finalizer and deleting.
    """

    def __init__(self, kubeconfig: Any, target: str, other: KubeClient, mode: str) -> None:
        super().__init__(load_kubeconfig(kubeconfig))
        self.target = target
        self.other = other
        self.mode = mode
        self.fired = asyncio.Event()

    async def patch(
        self, resource: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Any:
        metadata = patch.get("metadata", {}) if isinstance(patch, dict) else {}
        wanted = resource.plural == CLAIMS.plural and name == self.target and "finalizers" in metadata
        if not wanted or self.fired.is_set():
            return await super().patch(resource, name, patch, namespace, **kw)
        self.fired.set()
        if self.mode == "before":
            await self.other.delete(CLAIMS, name, namespace)
            return await super().patch(resource, name, patch, namespace, **kw)
        answer = await super().patch(resource, name, patch, namespace, **kw)
        await self.other.patch(CLAIMS, name, {"metadata": {"finalizers": None}}, namespace)
        await self.other.delete(CLAIMS, name, namespace)
        return answer


async def idle(provider: Any) -> bool:
    return provider.queue.processing == 0 and len(provider.queue) == 0


async def exists(client: KubeClient, resource: Resource, name: str, namespace: str) -> bool:
    try:
        await client.get(resource, name, namespace)
    except ApiError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


@pytest.mark.parametrize("mode", ["before", "vanish"])
async def test_claim_deleted_around_its_finalizer_patch_leaves_no_address(
    cluster: Cluster, mode: str
) -> None:
    ns = await cluster.namespace("reg")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.90.0.1-10.90.0.9"], prefix=24)
    racing = RacingClient(cluster.plane.kubeconfig_path, "gone", cluster.client, mode)
    async with racing, in_process(racing) as provider:
        await cluster.claim(ns, "gone", "pool")
        await asyncio.wait_for(racing.fired.wait(), 20)
        await eventually(lambda: idle(provider), 20, "the provider to finish the claim")
        await cluster.claim(ns, "canary", "pool")
        await cluster.wait_all_bound(ns, within=20)
        await eventually(
            # an orphan is deleted once it is older than the grace a restore gets (ORPHAN_GRACE_SECONDS)
            lambda: _gone(cluster.client, ADDRESSES, "gone", ns),
            40,
            "no IPAddress for the deleted claim",
        )
        await invariants.settle(
            cluster.client, ns, within=10, label=f"claim deleted around its finalizer ({mode})"
        )
    addresses = await cluster.addresses(ns)
    assert [a["metadata"]["name"] for a in addresses] == ["canary"]


async def test_an_address_whose_claim_vanished_while_no_provider_ran_is_deleted_at_start(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("reg")
    pool = await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.92.0.1-10.92.0.9"], prefix=24)

    def address(name: str, ip: str, owned: bool) -> dict[str, Any]:
        owner = {
            "apiVersion": CLAIMS.api_version,
            "kind": "IPAddressClaim",
            "name": name,
            "uid": "5b1c0b52-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        pool_ref = {
            "apiVersion": pool["apiVersion"],
            "kind": "InClusterIPPool",
            "name": "pool",
            "uid": pool["metadata"]["uid"],
        }
        return {
            "apiVersion": ADDRESSES.api_version,
            "kind": "IPAddress",
            "metadata": {
                "name": name,
                "namespace": ns,
                "finalizers": ["ipam.cluster.x-k8s.io/ProtectAddress"],
                "ownerReferences": [owner, pool_ref] if owned else [],
            },
            "spec": {
                "address": ip,
                "prefix": 24,
                "claimRef": {"name": name},
                "poolRef": {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "pool"},
            },
        }

    await cluster.client.create(ADDRESSES, address("left-behind", "10.92.0.1", owned=True), ns)
    await cluster.client.create(ADDRESSES, address("hand-made", "10.92.0.2", owned=False), ns)
    async with in_process(cluster.client):
        await eventually(
            lambda: _gone(cluster.client, ADDRESSES, "left-behind", ns), 60, "the orphan to be deleted"
        )
        await cluster.claim(ns, "next", "pool")
        await cluster.wait_all_bound(ns, within=20)
        assert (await cluster.client.get(ADDRESSES, "next", ns))["spec"]["address"] == "10.92.0.1"
    # an IPAddress nobody's claim controls is not ours to delete (the audit reports it instead)
    assert await exists(cluster.client, ADDRESSES, "hand-made", ns)
    verdict = await invariants.check(cluster.client, ns)
    assert [f.objects[0].name for f in verdict.report.findings] == ["hand-made"]
    await cluster.client.patch(ADDRESSES, "hand-made", {"metadata": {"finalizers": None}}, ns)
    await cluster.client.delete(ADDRESSES, "hand-made", ns)


async def test_claim_deleted_before_the_cache_saw_its_address_releases_it(cluster: Cluster) -> None:
    ns = await cluster.namespace("reg")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.91.0.1-10.91.0.9"], prefix=24)
    async with in_process(cluster.client) as provider:
        assert provider.addresses is not None
        # The provider's IPAddress cache stops seeing changes (a lagging watch, at its worst).
        await provider.addresses.stop()
        await cluster.claim(ns, "quick", "pool")
        await cluster.wait_all_bound(ns, within=20)
        assert provider.addresses.get(f"{ns}/quick") is None
        await cluster.delete_claim(ns, "quick")
        await eventually(
            lambda: _gone(cluster.client, CLAIMS, "quick", ns), 20, "the claim's release to finish"
        )
        provider.addresses.start()
        await invariants.settle(cluster.client, ns, within=10, label="claim deleted before the cache saw")
        assert not await exists(cluster.client, ADDRESSES, "quick", ns)
        # and the address is free again
        await cluster.claim(ns, "next", "pool")
        await cluster.wait_all_bound(ns, within=20)
        address = await cluster.client.get(ADDRESSES, "next", ns)
        assert address["spec"]["address"] == "10.91.0.1"


async def _gone(client: KubeClient, resource: Resource, name: str, namespace: str) -> bool:
    return not await exists(client, resource, name, namespace)

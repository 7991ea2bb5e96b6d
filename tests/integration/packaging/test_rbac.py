"""The shipped RBAC is sufficient and minimal: the provider, authenticated as its ServiceAccount with only
the shipped ClusterRoles/Roles bound, runs the whole claim lifecycle with leader election and Events; what it
does not need is forbidden to it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import EVENTS, LEASES, ApiError, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.kube.resources import CONFIGMAPS, NAMESPACES, SECRETS
from incluster_ipam.provider import LEASE_NAME, Options, Provider

from .conftest import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    create_namespace,
    in_cluster_client,
    service_account_token,
    status_of,
    wait_for,
)

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
CLUSTERS = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True)
IP_POOLS = Resource(GROUP, "v1alpha2", "inclusterippools", "InClusterIPPool", True)
GLOBAL_IP_POOLS = Resource(GROUP, "v1alpha2", "globalinclusterippools", "GlobalInClusterIPPool", False)


class RecordingClient(KubeClient):
    """Remembers every request the apiserver refused with 401/403 (the provider swallows some failures)."""

    refused: list[str]

    async def request(self, request: Any, **kw: Any) -> Any:
        try:
            return await super().request(request, **kw)
        except ApiError as exc:
            if exc.status in (401, 403):
                self.refused.append(f"{request.method} {request.path}: {exc}")
            raise


async def _get(client: KubeClient, resource: Resource, name: str, namespace: str | None) -> Any:
    try:
        return await client.get(resource, name, namespace)
    except ApiError as exc:
        if is_not_found(exc):
            return None
        raise


def _claim(name: str, pool: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster}},
        "spec": {
            "clusterName": cluster,
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool},
        },
    }


@pytest.mark.timeout(180)
async def test_the_provider_needs_nothing_beyond_the_shipped_rbac(
    packaging_plane: ControlPlane,
    admin: KubeClient,
    installed_rbac: list[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    token = await service_account_token(packaging_plane, NAMESPACE, SERVICE_ACCOUNT)
    config = in_cluster_client(packaging_plane, token, NAMESPACE, tmp_path / "sa").config
    options = Options(
        leader_elect=True,
        identity="rbac-test-replica",
        webhook_port=0,
        health_address="127.0.0.1:0",
        metrics_address="0",
        status_interval=0.05,
    )
    ns = await create_namespace(admin)
    async with RecordingClient(config) as client:
        client.refused = []
        assert client.default_namespace == NAMESPACE  # from the pod's namespace file: where the Lease goes
        provider = Provider(client, options)
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        leading = asyncio.create_task(provider.leading.wait())
        done, _ = await asyncio.wait({task, leading}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert leading in done, "the provider did not start leading within 60 s"
        try:
            await admin.create(
                CLUSTERS,
                {
                    "apiVersion": "cluster.x-k8s.io/v1beta2",
                    "kind": "Cluster",
                    "metadata": {"name": "c1"},
                    "spec": {"paused": False},
                },
                ns,
            )
            await admin.create(
                IP_POOLS,
                {
                    "apiVersion": f"{GROUP}/v1alpha2",
                    "kind": "InClusterIPPool",
                    "metadata": {"name": "pool"},
                    "spec": {"addresses": ["10.20.0.10-10.20.0.12"], "prefix": 24, "gateway": "10.20.0.1"},
                },
                ns,
            )
            for name in ("a", "b"):
                await admin.create(CLAIMS, _claim(name, "pool", "c1"), ns)

            async def bound() -> dict[str, str] | None:
                found = {}
                for name in ("a", "b"):
                    claim = await _get(admin, CLAIMS, name, ns)
                    ref = ((claim or {}).get("status") or {}).get("addressRef", {}).get("name")
                    address = await _get(admin, ADDRESSES, ref, ns) if ref else None
                    if address is None:
                        return None
                    found[name] = address["spec"]["address"]
                return found

            addresses = await wait_for(bound, 30, "both claims to be bound")
            assert len(set(addresses.values())) == 2

            async def pool_used(count: int) -> dict[str, Any] | None:
                pool = await admin.get(IP_POOLS, "pool", ns)
                counts = (pool.get("status") or {}).get("ipAddresses") or {}
                return pool if counts.get("used") == count else None

            pool = await wait_for(lambda: pool_used(2), 30, "pool status to count 2 used")
            assert pool["status"]["ipAddresses"]["total"] == 3
            assert pool["metadata"]["finalizers"]

            await admin.delete(CLAIMS, "a", ns)

            async def released() -> bool:
                return (
                    await _get(admin, CLAIMS, "a", ns) is None
                    and await _get(admin, ADDRESSES, "a", ns) is None
                )

            await wait_for(released, 30, "claim a and its address to be gone")
            await wait_for(lambda: pool_used(1), 30, "pool status to count 1 used")

            lease = await admin.get(LEASES, LEASE_NAME, NAMESPACE)
            assert lease["spec"]["holderIdentity"] == "rbac-test-replica"

            async def events() -> set[str] | None:
                listed = await admin.list(EVENTS, ns)
                reasons = {e["reason"] for e in listed.items}
                return reasons if {"AddressAllocated", "AddressReleased"} <= reasons else None

            await wait_for(events, 30, "allocation and release Events")
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
        assert client.refused == []
    refusals = [r.getMessage() for r in caplog.records if "forbidden" in r.getMessage().lower()]
    assert refusals == []


async def test_what_the_provider_does_not_need_is_forbidden_to_it(
    packaging_plane: ControlPlane, admin: KubeClient, installed_rbac: list[dict[str, Any]], tmp_path: Path
) -> None:
    ns = await create_namespace(admin)
    await admin.create(CLAIMS, _claim("c", "pool", "c1"), ns)
    token = await service_account_token(packaging_plane, NAMESPACE, SERVICE_ACCOUNT)
    async with in_cluster_client(packaging_plane, token, NAMESPACE, tmp_path / "sa") as sa:
        # allowed, as a control: the same identity, the same objects
        assert await status_of(sa.get(CLAIMS, "c", ns)) == 0
        pool = {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "GlobalInClusterIPPool",
            "metadata": {"name": "not-mine"},
            "spec": {"addresses": ["10.30.0.0/24"], "prefix": 24},
        }
        forbidden = {
            "delete a claim": sa.delete(CLAIMS, "c", ns),
            "create a claim": sa.create(CLAIMS, _claim("d", "pool", "c1"), ns),
            "replace a claim": sa.replace(CLAIMS, await admin.get(CLAIMS, "c", ns), ns),
            "create a pool": sa.create(GLOBAL_IP_POOLS, pool),
            "delete a pool": sa.delete(GLOBAL_IP_POOLS, "any"),
            "list secrets here": sa.list(SECRETS, ns),
            "list secrets everywhere": sa.list(SECRETS),
            "read its own namespace's secrets": sa.list(SECRETS, NAMESPACE),
            "read configmaps": sa.list(CONFIGMAPS, NAMESPACE),
            "create a namespace": sa.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
            ),
            "delete a cluster": sa.delete(CLUSTERS, "c1", ns),
            "read another lease": sa.get(LEASES, "someone-else", NAMESPACE),
            "create a lease elsewhere": sa.create(
                LEASES,
                {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE_NAME}},
                ns,
            ),
            "delete events": sa.delete(EVENTS, "any", ns),
        }
        statuses = {what: await status_of(call) for what, call in forbidden.items()}
    assert statuses == dict.fromkeys(forbidden, 403)

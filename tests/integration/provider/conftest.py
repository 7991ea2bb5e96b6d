"""A real control plane with the pool CRDs and a running provider, plus helpers to drive and observe it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import OLD_CAPI, ControlPlane
from incluster_ipam.kube import EVENTS, NAMESPACES, KubeClient, Resource
from incluster_ipam.kube.errors import is_not_found
from incluster_ipam.provider import Options, Provider

from ..support import eventually

T = TypeVar("T")

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
CLUSTERS = Resource("cluster.x-k8s.io", "v1beta2", "clusters", "Cluster", True)
IP_POOLS = Resource(GROUP, "v1alpha2", "inclusterippools", "InClusterIPPool", True)
GLOBAL_IP_POOLS = Resource(GROUP, "v1alpha2", "globalinclusterippools", "GlobalInClusterIPPool", False)
PREFIX_POOLS = Resource(GROUP, "v1alpha2", "inclusterprefixpools", "InClusterPrefixPool", True)


@dataclass
class Harness:
    plane: ControlPlane
    client: KubeClient
    provider: Provider
    claims: Resource = CLAIMS  # the IPAM contract in use: v1beta2, or v1beta1 with Cluster API 1.10
    addresses: Resource = ADDRESSES

    async def namespace(self) -> str:
        name = f"p-{uuid.uuid4().hex[:8]}"
        await self.client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    async def ip_pool(self, namespace: str | None, name: str, **spec: Any) -> dict[str, Any]:
        resource = IP_POOLS if namespace else GLOBAL_IP_POOLS
        body = {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": resource.kind,
            "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
            "spec": spec,
        }
        return await self.client.create(resource, body, namespace)

    async def claim(
        self, namespace: str, name: str, pool: str, kind: str = "InClusterIPPool", **metadata: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": self.claims.api_version,
            "kind": "IPAddressClaim",
            "metadata": {"name": name, **metadata},
            "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
        }
        return await self.client.create(self.claims, body, namespace)

    async def cluster(self, namespace: str, name: str, *, paused_annotation: bool = False) -> dict[str, Any]:
        """A Cluster API Cluster (v1beta2 needs a non-empty spec)."""
        metadata: dict[str, Any] = {"name": name}
        if paused_annotation:
            metadata["annotations"] = {"cluster.x-k8s.io/paused": ""}
        body = {
            "apiVersion": "cluster.x-k8s.io/v1beta2",
            "kind": "Cluster",
            "metadata": metadata,
            "spec": {"paused": False},
        }
        return await self.client.create(CLUSTERS, body, namespace)

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return await self.client.get(resource, name, namespace)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    async def bound_address(self, namespace: str, claim: str, within: float = 20.0) -> str:
        """Wait until the claim points at its IPAddress; return the address."""

        async def probe() -> str | None:
            obj = await self.get(self.claims, claim, namespace)
            ref = ((obj or {}).get("status") or {}).get("addressRef", {}).get("name")
            if not ref:
                return None
            address = await self.get(self.addresses, ref, namespace)
            return address["spec"]["address"] if address else None

        return await eventually(probe, within, f"claim {namespace}/{claim} to be bound")

    async def ready_condition(self, namespace: str, claim: str) -> dict[str, Any] | None:
        obj = await self.get(self.claims, claim, namespace)
        for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                return dict(condition)
        return None

    async def events_for(self, namespace: str, name: str) -> list[tuple[str, str]]:
        """(type, reason) of the Events recorded about one object."""
        listed = await self.client.list(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
        return [(e["type"], e["reason"]) for e in listed.items]

    async def delete_and_wait(self, resource: Resource, name: str, namespace: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.client.delete(resource, name, namespace)

        async def gone() -> bool:
            return await self.get(resource, name, namespace) is None

        await eventually(gone, 20.0, f"{resource.kind} {namespace}/{name} to be deleted")


@pytest.fixture(scope="session")
async def provider_plane() -> AsyncIterator[ControlPlane]:
    """A control plane of its own (other suites register webhooks on theirs), with the pool CRDs."""
    async with ControlPlane(extra_crds=crds("")) as plane:
        yield plane


@pytest.fixture(scope="session")
async def harness(provider_plane: ControlPlane) -> AsyncIterator[Harness]:
    async with KubeClient.from_kubeconfig(provider_plane.kubeconfig_path) as client:
        # Every Normal event is written (no budget): the session's provider also serves bursts of hundreds
        # of claims, and tests that look for an AddressAllocated event must not depend on test order. The
        # budget itself is tested in tests/unit/kube/test_events.py.
        options = Options(
            webhook_port=0,
            health_address="127.0.0.1:0",
            metrics_address="0",
            status_interval=0.05,
            normal_event_rate=None,
        )
        provider = Provider(client, options)
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        ready = asyncio.create_task(provider.leading.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises the provider's start-up error
        assert ready in done, "provider did not start leading within 60 s"
        yield Harness(provider_plane, client, provider)
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.fixture(scope="session")
async def old_contract_harness() -> AsyncIterator[Harness]:
    """Cluster API v1.10 CRDs (IPAM v1beta1 only) and a provider that must discover and speak v1beta1."""
    async with (
        ControlPlane(capi_version=OLD_CAPI, extra_crds=crds("")) as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        provider = Provider(
            client, Options(webhook_port=0, health_address="0", metrics_address="0", status_interval=0.05)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        await asyncio.wait_for(provider.leading.wait(), 60)
        assert provider.contract is not None
        assert provider.contract.version == "v1beta1"
        yield Harness(
            plane,
            client,
            provider,
            claims=CLAIMS.with_version("v1beta1"),
            addresses=ADDRESSES.with_version("v1beta1"),
        )
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.fixture(params=["v1beta2", "v1beta1"])
def any_contract(request: pytest.FixtureRequest) -> Harness:
    """The same scenario under both IPAM contracts (Cluster API 1.14 and 1.10 CRDs)."""
    name = "harness" if request.param == "v1beta2" else "old_contract_harness"
    harness: Harness = request.getfixturevalue(name)
    return harness

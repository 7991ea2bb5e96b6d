"""A control plane of the audit's own (other suites register webhooks on theirs) with the pool CRDs.

No provider runs here: the tests plant exactly the objects they want the audit to judge.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import NAMESPACES, KubeClient, Resource

CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", True)
ADDRESSES = Resource(GROUP, "v1beta2", "ipaddresses", "IPAddress", True)
IP_POOLS = Resource(GROUP, "v1alpha2", "inclusterippools", "InClusterIPPool", True)


@dataclass
class Planter:
    """Creates namespaces, pools, claims and IPAddresses exactly as given."""

    client: KubeClient
    kubeconfig: Path

    async def namespace(self) -> str:
        name = f"audit-{uuid.uuid4().hex[:8]}"
        await self.client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    async def ip_pool(self, namespace: str, name: str, **spec: Any) -> None:
        body = {
            "apiVersion": f"{GROUP}/v1alpha2",
            "kind": "InClusterIPPool",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        await self.client.create(IP_POOLS, body, namespace)

    async def claim(
        self, namespace: str, name: str, pool: str, *, bound_to: str | None = None, **metadata: Any
    ) -> None:
        body = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddressClaim",
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool}},
        }
        await self.client.create(CLAIMS, body, namespace)
        if bound_to is not None:
            status = {"status": {"addressRef": {"name": bound_to}}}
            await self.client.patch(CLAIMS, name, status, namespace, subresource="status")

    async def address(self, namespace: str, name: str, ip: str, pool: str, *, claim: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "address": ip,
                "prefix": 24,
                "claimRef": {"name": claim},
                "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool},
            },
        }
        await self.client.create(ADDRESSES, body, namespace)

    async def bound(self, namespace: str, name: str, ip: str, pool: str) -> None:
        """A claim and its IPAddress as the provider would leave them."""
        await self.claim(namespace, name, pool, bound_to=name)
        await self.address(namespace, name, ip, pool, claim=name)


@pytest.fixture(scope="session")
async def audit_plane() -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds("")) as plane:
        yield plane


@pytest.fixture(scope="session")
async def planter(audit_plane: ControlPlane) -> AsyncIterator[Planter]:
    async with KubeClient.from_kubeconfig(audit_plane.kubeconfig_path) as client:
        yield Planter(client, audit_plane.kubeconfig_path)

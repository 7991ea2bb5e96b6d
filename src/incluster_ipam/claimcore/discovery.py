"""What the cluster serves, discovered once: the IPAM contract (and with it the IPAddressClaim and IPAddress
resources), the Cluster resource, and which of a set of resources (a backend's pool kinds) are served.
The provider, the webhooks and the audit all discover through here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from incluster_ipam.api.constants import GROUP
from incluster_ipam.capi.contract import Contract, choose_contract
from incluster_ipam.kube import KubeClient, Resource

CLUSTER_GROUP = "cluster.x-k8s.io"
CLUSTER_VERSIONS = ("v1beta2", "v1beta1")


@dataclass(frozen=True)
class Served:
    """The Cluster API resources the cluster serves, in the versions to use."""

    contract: Contract
    clusters: Resource | None  # None: Cluster API core is not installed

    @property
    def claims(self) -> Resource:
        return Resource(GROUP, self.contract.version, "ipaddressclaims", "IPAddressClaim", True)

    @property
    def addresses(self) -> Resource:
        return Resource(GROUP, self.contract.version, "ipaddresses", "IPAddress", True)


async def cluster_resource(client: KubeClient) -> Resource | None:
    """Cluster in the newest version served (v1beta2, else v1beta1), None when Cluster API core is absent."""
    versions = await client.server_versions(CLUSTER_GROUP, "clusters")
    version = next((v for v in CLUSTER_VERSIONS if v in versions), None)
    return Resource(CLUSTER_GROUP, version, "clusters", "Cluster", True) if version else None


async def discover(client: KubeClient) -> Served:
    """The IPAM contract (raises `NoContractError` without Cluster API's IPAM CRDs) and the Cluster
    resource."""
    contract = choose_contract(await client.server_versions(GROUP, "ipaddressclaims"))
    return Served(contract, await cluster_resource(client))


async def served(client: KubeClient, resources: Iterable[Resource]) -> list[Resource]:
    """Those of `resources` the cluster serves, in their own version."""
    found = []
    for resource in resources:
        if resource.version in await client.server_versions(resource.group, resource.plural):
            found.append(resource)
    return found

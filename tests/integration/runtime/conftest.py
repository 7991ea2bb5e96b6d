"""Fixtures for the kube client and controller runtime against the real local control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient, Resource

GROUP = "ipam.cluster.x-k8s.io"
CLAIMS = Resource(GROUP, "v1beta2", "ipaddressclaims", "IPAddressClaim", namespaced=True)


def claim(name: str, namespace: str, pool: str = "pool-a", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": CLAIMS.api_version,
        "kind": CLAIMS.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool}},
    }


@pytest.fixture(scope="session")
async def kube(control_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    """Our client, configured from the control plane's kubeconfig (inline CA and client certificate)."""
    client = KubeClient.from_kubeconfig(control_plane.kubeconfig_path)
    yield client
    await client.close()

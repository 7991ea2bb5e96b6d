"""Builders for the pool and IPAddress JSON `kubectl ipam` reads."""

from __future__ import annotations

from typing import Any

GROUP = "ipam.cluster.x-k8s.io"


def pool(kind: str, name: str, namespace: str | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/v1alpha2", "kind": kind, "metadata": metadata, "spec": spec}


def address(
    namespace: str,
    name: str,
    ip: str,
    pool_name: str,
    *,
    kind: str = "InClusterIPPool",
    prefix: int = 24,
    cluster: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if cluster is not None:
        metadata["labels"] = {"cluster.x-k8s.io/cluster-name": cluster}
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": metadata,
        "spec": {
            "address": ip,
            "prefix": prefix,
            "claimRef": {"name": name},
            "poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool_name},
        },
    }

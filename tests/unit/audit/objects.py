"""Builders for the Kubernetes JSON the audit reads (pools, claims, IPAddresses, Clusters)."""

from __future__ import annotations

import datetime
from typing import Any

GROUP = "ipam.cluster.x-k8s.io"
NOW = 1_700_000_000.0
GRACE = 30.0


def stamp(seconds_ago: float) -> str:
    at = datetime.datetime.fromtimestamp(NOW - seconds_ago, datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


OLD = stamp(3600)


def _meta(name: str, namespace: str | None, created: str | None = OLD, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        meta["namespace"] = namespace
    if created is not None:
        meta["creationTimestamp"] = created
    return meta


def ip_pool(
    name: str, namespace: str | None, addresses: list[str], prefix: int, **spec: Any
) -> dict[str, Any]:
    """An InClusterIPPool, or a GlobalInClusterIPPool when `namespace` is None."""
    return {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "InClusterIPPool" if namespace else "GlobalInClusterIPPool",
        "metadata": _meta(name, namespace, annotations=spec.pop("annotations", {})),
        "spec": {"addresses": addresses, "prefix": prefix, **spec},
    }


def prefix_pool(name: str, namespace: str | None, prefixes: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "InClusterPrefixPool" if namespace else "GlobalInClusterPrefixPool",
        "metadata": _meta(name, namespace),
        "spec": {"prefixes": prefixes, **spec},
    }


def address(
    name: str,
    namespace: str,
    ip: str,
    pool: str,
    kind: str = "InClusterIPPool",
    *,
    claim: str | None = None,
    prefix: int = 24,
    created: str | None = OLD,
    deleted: str | None = None,
    group: str = GROUP,
) -> dict[str, Any]:
    extra = {"deletionTimestamp": deleted} if deleted else {}
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": _meta(name, namespace, created, **extra),
        "spec": {
            "address": ip,
            "prefix": prefix,
            "claimRef": {"name": name if claim is None else claim},
            "poolRef": {"apiGroup": group, "kind": kind, "name": pool},
        },
    }


def claim(
    name: str,
    namespace: str,
    pool: str,
    kind: str = "InClusterIPPool",
    *,
    bound: str | None = None,
    created: str | None = OLD,
    deleted: str | None = None,
    annotations: dict[str, str] | None = None,
    cluster: str | None = None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if deleted:
        extra["deletionTimestamp"] = deleted
    if annotations:
        extra["annotations"] = annotations
    obj: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": _meta(name, namespace, created, **extra),
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
    }
    if cluster:
        obj["spec"]["clusterName"] = cluster
    if bound:
        obj["status"] = {"addressRef": {"name": bound}}
    return obj


def bound_pair(
    name: str, namespace: str, ip: str, pool: str, kind: str = "InClusterIPPool", *, prefix: int = 24
) -> list[dict[str, Any]]:
    """A claim and its IPAddress, as the provider leaves them: [claim, address]."""
    return [
        claim(name, namespace, pool, kind, bound=name),
        address(name, namespace, ip, pool, kind, prefix=prefix),
    ]


def cluster(name: str, namespace: str, *, paused: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": _meta(name, namespace),
        "spec": {"paused": paused},
    }

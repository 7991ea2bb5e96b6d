"""In-memory stand-ins for the cluster lookups, and AdmissionReview builders."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from incluster_ipam.api.models import AllocatedAddress, Pool


@dataclass
class FakeCluster:
    """IPAddresses keyed by (pool kind, namespace, pool name), and the pools the overlap check sees."""

    addresses: list[tuple[str, str, str, AllocatedAddress]] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)
    address_calls: list[tuple[str, str | None, str]] = field(default_factory=list)
    pool_calls: list[str | None] = field(default_factory=list)
    fail: Exception | None = None
    delay: float = 0.0

    def add(self, kind: str, namespace: str, pool: str, address: str, prefix: int | None = None) -> None:
        name = f"ip-{len(self.addresses)}"
        self.addresses.append((kind, namespace, pool, AllocatedAddress(name, namespace, address, prefix)))

    async def addresses_of(self, kind: str, namespace: str | None, name: str) -> Sequence[AllocatedAddress]:
        self.address_calls.append((kind, namespace, name))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [
            a
            for k, ns, n, a in self.addresses
            if k == kind and n == name and (namespace is None or ns == namespace)
        ]

    async def pools_from(self, namespace: str | None) -> Sequence[Pool]:
        self.pool_calls.append(namespace)
        if self.fail is not None:
            raise self.fail
        return list(self.pools)


def pool_object(
    kind: str,
    spec: dict[str, Any] | None,
    *,
    name: str = "my-pool",
    namespace: str = "ns1",
    annotations: dict[str, str] | None = None,
    api_version: str = "ipam.cluster.x-k8s.io/v1alpha2",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if not kind.startswith("Global"):
        metadata["namespace"] = namespace
    if annotations is not None:
        metadata["annotations"] = annotations
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    return obj


def review(
    operation: str,
    obj: Any = None,
    old: Any = None,
    *,
    kind: str | None = None,
    version: str = "admission.k8s.io/v1",
    uid: str = "0df28fbd-5f5f-4c9a-9ec0-6d4a3c1b9f00",
) -> dict[str, Any]:
    source = obj if isinstance(obj, dict) else old if isinstance(old, dict) else {}
    kind = kind or source.get("kind", "InClusterIPPool")
    metadata = source.get("metadata", {}) if isinstance(source.get("metadata"), dict) else {}
    return {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "ipam.cluster.x-k8s.io", "version": "v1alpha2", "kind": kind},
            "resource": {"group": "ipam.cluster.x-k8s.io", "version": "v1alpha2", "resource": "x"},
            "name": metadata.get("name", ""),
            "namespace": metadata.get("namespace", ""),
            "operation": operation,
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }


def path(kind: str, mutating: bool = False) -> str:
    return f"/{'mutate' if mutating else 'validate'}-ipam-cluster-x-k8s-io-v1alpha2-{kind.lower()}"

"""What the provider reads from claims, addresses, pools and clusters: projections, keys and predicates.

Pure functions over Kubernetes JSON dicts. The informers keep only the projection of each object (a few
hundred bytes instead of the full object with managedFields), so 20,000+ objects stay cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from incluster_ipam.api.constants import GROUP, PAUSED_ANNOTATION, PoolKind, pool_kind

CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
WATCH_FILTER_LABEL = "cluster.x-k8s.io/watch-filter"

Obj = dict[str, Any]

#: Annotations the provider looks at; all others are dropped from projections.
_KEPT_ANNOTATIONS = frozenset(
    {
        PAUSED_ANNOTATION,
        "ipam.cluster.x-k8s.io/skip-validate-delete-webhook",
        "clusterctl.cluster.x-k8s.io/delete-for-move",
    }
)
_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "finalizers",
)


def project(obj: Mapping[str, Any]) -> Obj:
    """Keep identity, labels, the annotations we read, finalizers, owner references, spec and status."""
    metadata = obj.get("metadata") or {}
    kept: Obj = {key: metadata[key] for key in _KEPT_METADATA if key in metadata}
    if metadata.get("labels"):
        kept["labels"] = dict(metadata["labels"])
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k in _KEPT_ANNOTATIONS}
    if annotations:
        kept["annotations"] = annotations
    if metadata.get("ownerReferences"):
        kept["ownerReferences"] = metadata["ownerReferences"]
    out: Obj = {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "metadata": kept}
    if "spec" in obj:
        out["spec"] = obj["spec"]
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def name_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("namespace") or "")


def key_of(obj: Mapping[str, Any]) -> str:
    """The informer key: `namespace/name`, or `name` for cluster-scoped objects."""
    namespace = namespace_of(obj)
    return f"{namespace}/{name_of(obj)}" if namespace else name_of(obj)


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def finalizers_of(obj: Mapping[str, Any]) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def has_paused_annotation(obj: Mapping[str, Any]) -> bool:
    return PAUSED_ANNOTATION in (obj["metadata"].get("annotations") or {})


def cluster_is_paused(cluster: Mapping[str, Any]) -> bool:
    """A Cluster pauses its claims through `spec.paused` or the paused annotation."""
    return bool((cluster.get("spec") or {}).get("paused")) or has_paused_annotation(cluster)


def passes_watch_filter(obj: Mapping[str, Any], watch_filter: str | None) -> bool:
    """`--watch-filter`: only objects labelled `cluster.x-k8s.io/watch-filter=<value>` are ours."""
    if not watch_filter:
        return True
    return (obj["metadata"].get("labels") or {}).get(WATCH_FILTER_LABEL) == watch_filter


# ---- pool references ------------------------------------------------------------------------------


def pool_key(kind: PoolKind, namespace: str, name: str) -> str:
    """One string per pool: `Kind/namespace/name`, namespace empty for global pools."""
    return f"{kind.kind}/{namespace if kind.namespaced else ''}/{name}"


def pool_key_of(pool: Mapping[str, Any]) -> str | None:
    kind = pool_kind(str(pool.get("kind", "")))
    return pool_key(kind, namespace_of(pool), name_of(pool)) if kind else None


def split_pool_key(key: str) -> tuple[PoolKind, str, str]:
    kind_name, namespace, name = key.split("/", 2)
    kind = pool_kind(kind_name)
    if kind is None:
        raise ValueError(f"not a pool key: {key!r}")
    return kind, namespace, name


def _ref_pool_key(ref: object, namespace: str) -> str | None:
    """The pool a `poolRef` points at, if it is one of our four kinds in our group; else None."""
    if not isinstance(ref, Mapping):
        return None
    group = ref.get("apiGroup") or GROUP
    kind = pool_kind(str(ref.get("kind", "")))
    name = ref.get("name")
    if group != GROUP or kind is None or not isinstance(name, str) or not name:
        return None
    return pool_key(kind, namespace, name)


def claim_pool_key(claim: Mapping[str, Any]) -> str | None:
    """The pool a claim asks for (namespaced pools are looked up in the claim's namespace)."""
    return _ref_pool_key((claim.get("spec") or {}).get("poolRef"), namespace_of(claim))


def address_pool_key(address: Mapping[str, Any]) -> str | None:
    """The pool an IPAddress was allocated from."""
    return _ref_pool_key((address.get("spec") or {}).get("poolRef"), namespace_of(address))


def claim_cluster_name(claim: Mapping[str, Any]) -> str | None:
    """`spec.clusterName`, else the cluster-name label, else None."""
    name = (claim.get("spec") or {}).get("clusterName") or (claim["metadata"].get("labels") or {}).get(
        CLUSTER_NAME_LABEL
    )
    return str(name) if name else None


# ---- index functions for the informers ------------------------------------------------------------

BY_POOL = "pool"
BY_CLUSTER = "cluster"


def index_by_pool_of_claim(claim: Mapping[str, Any]) -> list[str]:
    key = claim_pool_key(claim)
    return [key] if key else []


def index_by_pool_of_address(address: Mapping[str, Any]) -> list[str]:
    key = address_pool_key(address)
    return [key] if key else []


def index_by_cluster(claim: Mapping[str, Any]) -> list[str]:
    """`namespace/cluster` of claims that belong to one of our pools (the Cluster watch wakes only ours)."""
    name = claim_cluster_name(claim)
    if name is None or claim_pool_key(claim) is None:
        return []
    return [f"{namespace_of(claim)}/{name}"]

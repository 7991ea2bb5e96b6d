"""The Cluster API IPAM contract in use: `v1beta2` (Cluster API >= 1.11) or `v1beta1` (1.6-1.10).

Pure rendering of what the provider writes: the IPAddress for a claim, and the claim's status with a Ready
condition in the contract's condition format (metav1.Condition for v1beta2, Cluster API's own v1beta1
Condition with a severity for v1beta1). The version is picked at start-up from discovery (§10.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from incluster_ipam.api.constants import ADDRESS_FINALIZER, GROUP
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL, Obj, name_of, namespace_of

V1BETA2 = "v1beta2"
V1BETA1 = "v1beta1"
READY = "Ready"

# Ready-condition reasons (Cluster API's IPAM reasons, plus the positive one).
ADDRESS_ALLOCATED = "AddressAllocated"
POOL_EXHAUSTED = "PoolExhausted"
POOL_NOT_READY = "PoolNotReady"
ALLOCATION_FAILED = "AllocationFailed"

_SEVERITY = {POOL_EXHAUSTED: "Warning", ALLOCATION_FAILED: "Error", POOL_NOT_READY: "Info"}


class NoContractError(RuntimeError):
    """The cluster serves neither IPAM v1beta2 nor v1beta1 IPAddressClaims: Cluster API is not installed."""


@dataclass(frozen=True)
class ReadyState:
    """What the Ready condition should say."""

    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class PoolRef:
    """What is written about a pool: its identity (the IPAddress's poolRef and owner reference), whether it
    is paused or being deleted, and how to name it in messages. A backend's key for it comes along."""

    key: str  # the backend's own key for the pool
    group: str
    version: str
    kind: str
    name: str
    namespace: str  # "" for a cluster-scoped pool
    uid: str  # "" for a pool that is not a Kubernetes object
    paused: bool = False
    deleting: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def description(self) -> str:
        """`Kind namespace/name` (or `Kind name` for a cluster-scoped pool), for messages."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Contract:
    """One IPAM API version of Cluster API's IPAddressClaim and IPAddress."""

    version: str

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{self.version}"

    def ip_address(
        self,
        claim: Mapping[str, Any],
        pool: PoolRef,
        *,
        address: str,
        prefix: int,
        gateway: str,
    ) -> Obj:
        """The IPAddress for `claim` (same name and namespace), owned by the claim and the pool."""
        metadata: Obj = {
            "name": name_of(claim),
            "namespace": namespace_of(claim),
            "finalizers": [ADDRESS_FINALIZER],
            "ownerReferences": owner_references(self, claim, pool),
        }
        cluster = (claim["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL)
        if cluster:
            metadata["labels"] = {CLUSTER_NAME_LABEL: cluster}
        spec: Obj = {
            "address": address,
            "prefix": prefix,
            "claimRef": {"name": name_of(claim)},
            "poolRef": {"apiGroup": pool.group, "kind": pool.kind, "name": pool.name},
        }
        if gateway:
            spec["gateway"] = gateway
        return {"apiVersion": self.api_version, "kind": "IPAddress", "metadata": metadata, "spec": spec}

    def ready_condition(
        self, state: ReadyState, previous: Mapping[str, Any] | None, generation: int, now: str
    ) -> Obj:
        """A Ready condition; lastTransitionTime moves only when the status flips."""
        status = "True" if state.status else "False"
        changed = previous is None or previous.get("status") != status
        condition: Obj = {
            "type": READY,
            "status": status,
            "lastTransitionTime": now
            if changed or previous is None
            else previous.get("lastTransitionTime", now),
            "reason": state.reason,
            "message": state.message,
        }
        if self.version == V1BETA2:
            condition["observedGeneration"] = generation
        elif not state.status:
            condition["severity"] = _SEVERITY.get(state.reason, "Warning")
        return condition

    def status_patch(
        self, claim: Mapping[str, Any], state: ReadyState, address_name: str | None, now: str
    ) -> Obj | None:
        """A merge patch for the claim's status subresource, or None when nothing would change."""
        status = claim.get("status") or {}
        conditions: Sequence[Mapping[str, Any]] = status.get("conditions") or []
        previous = next((c for c in conditions if c.get("type") == READY), None)
        generation = int(claim["metadata"].get("generation") or 0)
        condition = self.ready_condition(state, previous, generation, now)
        same_condition = previous is not None and all(
            previous.get(k) == v for k, v in condition.items() if k != "lastTransitionTime"
        )
        current_address = (status.get("addressRef") or {}).get("name")
        wanted_address = address_name if address_name is not None else current_address
        if same_condition and current_address == wanted_address:
            return None
        others = [dict(c) for c in conditions if c.get("type") != READY]
        patch_status: Obj = {"conditions": [*others, condition]}
        if address_name is not None:
            patch_status["addressRef"] = {"name": address_name}
        return {
            "metadata": {"resourceVersion": claim["metadata"].get("resourceVersion")},
            "status": patch_status,
        }


def owner_references(contract: Contract, claim: Mapping[str, Any], pool: PoolRef) -> list[Obj]:
    """The claim as controller, the pool as a plain owner (both block owner deletion), as upstream. A pool
    that is not a Kubernetes object (no UID: another IPAM's, see `docs/extending.md`) owns nothing."""
    refs = [
        {
            "apiVersion": contract.api_version,
            "kind": "IPAddressClaim",
            "name": name_of(claim),
            "uid": claim["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        },
        {
            "apiVersion": pool.api_version,
            "kind": pool.kind,
            "name": pool.name,
            "uid": pool.uid,
            "controller": False,
            "blockOwnerDeletion": True,
        },
    ]
    return refs if pool.uid else refs[:1]


def choose_contract(served_versions: Sequence[str]) -> Contract:
    """The newest IPAM contract the cluster serves for IPAddressClaims."""
    for version in (V1BETA2, V1BETA1):
        if version in served_versions:
            return Contract(version)
    raise NoContractError(
        "the cluster serves neither ipam.cluster.x-k8s.io/v1beta2 nor v1beta1 IPAddressClaims "
        f"(served: {sorted(served_versions) or 'none'}); install Cluster API >= 1.6 first"
    )

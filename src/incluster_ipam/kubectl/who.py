"""What `kubectl ipam who` found, as plain data: the IPAddress holding an address, its claim, the claim's
owner chain (any kinds, as far as it could be read) up to the Machine, and the Cluster. Pure."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL

CLUSTER_GROUP = "cluster.x-k8s.io"


class State(enum.StrEnum):
    """How far one object of the chain could be read."""

    FOUND = "found"
    NOT_FOUND = "not found"
    FORBIDDEN = "forbidden"
    UNKNOWN_KIND = "kind not served"
    ERROR = "error"


@dataclass(frozen=True)
class Link:
    """One object of the chain; `obj` is set when it was read."""

    kind: str
    api_version: str
    namespace: str
    name: str
    state: State = State.FOUND
    detail: str = ""  # the error, when reading it failed
    obj: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def is_machine(self) -> bool:
        return self.kind == "Machine" and self.group == CLUSTER_GROUP

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        text = f"{self.kind} {where}"
        if self.state is State.FOUND:
            return text
        return f"{text} ({self.state.value}{': ' + self.detail if self.detail else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state.value,
            "detail": self.detail or None,
        }


@dataclass(frozen=True)
class Holder:
    """One IPAddress holding the address asked about, and everything known about who it serves."""

    ip_address: Link
    address: str  # as the IPAddress holds it (canonical)
    pool: str  # "Kind namespace/name" or "Kind name"
    claim: Link | None  # None: the IPAddress names no claim
    owners: tuple[Link, ...] = ()  # the claim's owner, its owner, ... (controller references first)
    machine: Link | None = None
    cluster: Link | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ipAddress": self.ip_address.to_dict(),
            "address": self.address,
            "pool": self.pool,
            "claim": self.claim.to_dict() if self.claim else None,
            "owners": [o.to_dict() for o in self.owners],
            "machine": self.machine.to_dict() if self.machine else None,
            "cluster": self.cluster.to_dict() if self.cluster else None,
        }


@dataclass(frozen=True)
class WhoResult:
    """The answer for one address: its holders (none when free), and the pools it is allocatable in."""

    query: str
    address: str  # canonical
    holders: tuple[Holder, ...]
    allocatable_in: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "address": self.address,
            "held": bool(self.holders),
            "holders": [h.to_dict() for h in self.holders],
            "allocatableIn": list(self.allocatable_in),
            "notes": list(self.notes),
        }


def owner_reference(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner to follow: the controller reference, else the first one; None without owners."""
    refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, Mapping)]
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def cluster_name(*objects: Mapping[str, Any] | None) -> str | None:
    """The Cluster named by the first object that names one: `spec.clusterName` (Machines, claims), else
    the `cluster.x-k8s.io/cluster-name` label."""
    for obj in objects:
        if obj is None:
            continue
        spec = obj.get("spec")
        name = spec.get("clusterName") if isinstance(spec, Mapping) else None
        name = name or ((obj.get("metadata") or {}).get("labels") or {}).get(CLUSTER_NAME_LABEL)
        if isinstance(name, str) and name:
            return name
    return None

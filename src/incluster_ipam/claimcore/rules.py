"""The claim lifecycle's rules about which IPAddress belongs to which claim, pure: who controls an
IPAddress, whether a claim may adopt one of its name, whether a release may delete one, and the patch that
makes an adopted IPAddress the claim's (owner references, finalizer, cluster label), which exact address a
claim asks for, and the words of its Ready condition. The reconciler (`reconciler.py`) applies them; each
is unit-tested on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from incluster_ipam.api.constants import ADDRESS_FINALIZER, GROUP
from incluster_ipam.capi import contract as c
from incluster_ipam.capi.contract import PoolRef
from incluster_ipam.capi.objects import (
    CLUSTER_NAME_LABEL,
    REQUESTED_ADDRESS_ANNOTATIONS,
    Obj,
    finalizers_of,
    is_deleting,
    key_of,
    name_of,
    namespace_of,
)
from incluster_ipam.ipam.request import RequestError, parse_request


def claim_ref_name(address: Mapping[str, Any]) -> object:
    """The name in an IPAddress's `spec.claimRef` (anything: it is not validated)."""
    return ((address.get("spec") or {}).get("claimRef") or {}).get("name")


def pool_ref_of(obj: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(apiGroup, kind, name) of a claim's or IPAddress's `spec.poolRef`; the group defaults to ours."""
    ref = (obj.get("spec") or {}).get("poolRef")
    if not isinstance(ref, Mapping):
        return None
    return (str(ref.get("apiGroup") or GROUP), str(ref.get("kind", "")), str(ref.get("name", "")))


def same_pool(address: Mapping[str, Any], pool: PoolRef) -> bool:
    """The IPAddress's poolRef names this pool (its namespace is the IPAddress's own, or none)."""
    return pool_ref_of(address) == (pool.group, pool.kind, pool.name) and pool.namespace in (
        "",
        namespace_of(address),
    )


def controller_of(address: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The owner reference marked controller, if any."""
    return next((o for o in address["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def controlled_by_claim(address: Mapping[str, Any], name: str) -> bool:
    """The IPAddress names the claim and is controlled by an IPAddressClaim of that name (ours)."""
    if claim_ref_name(address) != name:
        return False
    return any(
        ref.get("kind") == "IPAddressClaim" and ref.get("name") == name and ref.get("controller")
        for ref in address["metadata"].get("ownerReferences") or []
    )


def left_by_collector(address: Mapping[str, Any], name: str) -> bool:
    """The IPAddress names the claim and is what the garbage collector leaves of one made for it once the
    claim is gone: our finalizer and the pool's owner reference, the claim's reference dropped (the pool
    still owns it, so the collector does not delete it), no controller."""
    if claim_ref_name(address) != name or controller_of(address) is not None:
        return False
    if ADDRESS_FINALIZER not in finalizers_of(address):
        return False
    pool = pool_ref_of(address)
    return pool is not None and any(
        _refers_to(o, *pool) for o in address["metadata"].get("ownerReferences") or []
    )


def _refers_to(owner: Mapping[str, Any], group: str, kind: str, name: str) -> bool:
    """An owner reference names an object of that group, kind and name (any UID, any version)."""
    return (
        owner.get("kind") == kind
        and owner.get("name") == name
        and str(owner.get("apiVersion", "")).split("/")[0] == group
    )


def controls(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """The IPAddress is already this claim's: its controller is this very claim (by UID)."""
    controller = controller_of(address)
    return controller is not None and controller.get("uid") == claim["metadata"].get("uid")


def of_an_earlier_incarnation(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """The IPAddress names this claim's name and is controlled by a claim of that name with another UID: an
    earlier claim of the name, which must be gone (names are unique)."""
    if claim_ref_name(address) != name_of(claim):
        return False
    controller = controller_of(address)
    return (
        controller is not None
        and controller.get("kind") == "IPAddressClaim"
        and controller.get("name") == name_of(claim)
        and controller.get("uid") != claim["metadata"].get("uid")
    )


def bound_to(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """The claim's status already points at this IPAddress."""
    return ((claim.get("status") or {}).get("addressRef") or {}).get("name") == name_of(address)


def meant_for(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """Whether releasing the claim may delete this IPAddress: its poolRef is the claim's, its claimRef names
    the claim, and it has no controller or a claim of that name (this one, or an earlier incarnation)."""
    if pool_ref_of(address) != pool_ref_of(claim):
        return False
    if claim_ref_name(address) != name_of(claim):
        return False
    controller = controller_of(address)
    return controller is None or (
        controller.get("kind") == "IPAddressClaim" and controller.get("name") == name_of(claim)
    )


def adoption_refusal(claim: Mapping[str, Any], address: Mapping[str, Any]) -> str | None:
    """Why the claim must not take this IPAddress of its name on the lifecycle's side (its claimRef names
    another claim, or something else controls it; finding 9 of the December review), or None."""
    name = name_of(claim)
    claim_ref = claim_ref_name(address)
    if claim_ref != name:
        return (
            f"IPAddress {key_of(address)} already exists for claim {claim_ref!r}, not for this one; "
            "delete it or give the claim another name"
        )
    for owner in address["metadata"].get("ownerReferences") or []:
        if owner.get("controller") and not (
            owner.get("kind") == "IPAddressClaim" and owner.get("name") == name
        ):
            return (
                f"IPAddress {key_of(address)} already exists and is controlled by "
                f"{owner.get('kind')} {owner.get('name')!r}; not adopting it"
            )
    return None


def adoption_patch(
    contract: c.Contract, claim: Mapping[str, Any], pool: PoolRef, address: Mapping[str, Any]
) -> Obj | None:
    """The merge patch that makes an adopted IPAddress the claim's (None when it already is): the claim's
    and the pool's owner references (the claim as controller unless something else is; references to
    earlier objects of their names replaced), our finalizer
    (unless it is being deleted) and the claim's cluster label. Optimistically locked."""
    metadata = address["metadata"]
    finalizers = finalizers_of(address)
    name, uid = name_of(claim), claim["metadata"]["uid"]

    # A reference to an earlier claim of this name, or to an earlier pool of the pool's name (a restore keeps
    # stale UIDs), names an object that cannot exist any more (names are unique): the live one takes its
    # place.
    def stale(owner: Mapping[str, Any]) -> bool:
        if owner.get("kind") == "IPAddressClaim" and owner.get("name") == name:
            return bool(owner.get("uid") != uid)
        return bool(
            pool.uid and _refers_to(owner, pool.group, pool.kind, pool.name) and owner.get("uid") != pool.uid
        )

    owners: list[Obj] = [dict(o) for o in metadata.get("ownerReferences") or [] if not stale(o)]
    changed = len(owners) != len(metadata.get("ownerReferences") or [])
    other_controller = any(o.get("controller") and o.get("uid") != uid for o in owners)
    for ref in c.owner_references(contract, claim, pool):
        if not any(o.get("uid") == ref["uid"] for o in owners):
            owners.append({**ref, "controller": False} if ref["controller"] and other_controller else ref)
            changed = True
    patch_meta: Obj = {"resourceVersion": metadata.get("resourceVersion")}
    if changed:
        patch_meta["ownerReferences"] = owners
    if ADDRESS_FINALIZER not in finalizers and not is_deleting(address):
        patch_meta["finalizers"] = [*finalizers, ADDRESS_FINALIZER]
        changed = True
    cluster = (claim["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL)
    if cluster and (metadata.get("labels") or {}).get(CLUSTER_NAME_LABEL) != cluster:
        patch_meta["labels"] = {CLUSTER_NAME_LABEL: cluster}
        changed = True
    return {"metadata": patch_meta} if changed else None


@dataclass(frozen=True)
class AddressRequest:
    """The exact address a claim asks for: the annotation that says so and its text (as written)."""

    annotation: str
    text: str

    def describe(self) -> str:
        """ "requested address X (A annotation)", to start a message."""
        return f"requested address {self.text.strip()} ({self.annotation} annotation)"


class ConflictingRequest(ValueError):
    """Both request annotations are set and ask for different addresses; the message names both."""


def _canonical(text: str) -> str:
    try:
        return parse_request(text).text()
    except RequestError:
        return text.strip()


def address_request(claim: Mapping[str, Any]) -> AddressRequest | None:
    """The address the claim asks for by annotation (`REQUESTED_ADDRESS_ANNOTATIONS`), or None. Raises
    `ConflictingRequest` when both annotations are set to different addresses (spellings may differ)."""
    annotations = claim["metadata"].get("annotations") or {}
    found = [
        AddressRequest(key, annotations[key])
        for key in REQUESTED_ADDRESS_ANNOTATIONS
        if isinstance(annotations.get(key), str)
    ]
    if not found:
        return None
    if len({_canonical(r.text) for r in found}) > 1:
        asked = " and ".join(f"{r.annotation}={r.text!r}" for r in found)
        raise ConflictingRequest(f"the annotations {asked} ask for different addresses; keep one of them")
    return found[0]


def bound(address: str, pool: PoolRef, request: AddressRequest | None = None) -> c.ReadyState:
    """The Ready condition of a bound claim; it says so when the claim now asks for another address (a
    bound claim keeps its address: changing the annotation afterwards changes nothing)."""
    message = f"address {address} allocated from pool {pool.description}"
    if request is not None and _canonical(request.text) != _canonical(address):
        message += (
            f"; the {request.describe()} is ignored: a bound claim keeps its address "
            "(delete and re-create the claim to change it)"
        )
    return c.ReadyState(True, c.ADDRESS_ALLOCATED, message)

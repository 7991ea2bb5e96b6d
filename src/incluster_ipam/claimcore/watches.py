"""Which claims to reconcile on which event: pure functions from an informer event to the claim keys it
concerns (controller-runtime's predicates and map functions). The in-cluster backend maps its own pool
events (`backend.InClusterPools.on_pool`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from incluster_ipam.api.constants import CLAIM_FINALIZER
from incluster_ipam.capi.objects import (
    Obj,
    cluster_is_paused,
    is_deleting,
    key_of,
    name_of,
    namespace_of,
    passes_watch_filter,
)
from incluster_ipam.kube import ADDED, DELETED
from incluster_ipam.runtime import SYNC

_READ_METADATA = ("generation", "deletionTimestamp", "labels", "annotations")

PoolOf = Callable[[Mapping[str, Any]], "str | None"]


def only_our_writes(old: Obj | None, new: Obj | None) -> bool:
    """A claim update that only echoes our own writes (status, or our finalizer being added): the reconcile
    that made it already did the rest, and re-running it on a stale copy only earns 409 Conflicts."""
    if old is None or new is None or old.get("spec") != new.get("spec"):
        return False
    if any(old["metadata"].get(k) != new["metadata"].get(k) for k in _READ_METADATA):
        return False
    before, after = old["metadata"].get("finalizers") or [], new["metadata"].get("finalizers") or []
    return after == before or (CLAIM_FINALIZER not in before and after == [*before, CLAIM_FINALIZER])


def claim_event(
    event: str, old: Obj | None, new: Obj | None, pool_of: PoolOf, watch_filter: str | None
) -> list[str]:
    """A claim event: the claim itself, if the backend owns its pool, it passes the watch filter, and the
    update is not just the echo of our own writes."""
    obj = new or old
    assert obj is not None
    if pool_of(obj) is None or not passes_watch_filter(obj, watch_filter):
        return []
    if event not in (DELETED, SYNC) and only_our_writes(old, new):
        return []
    return [key_of(obj)]


def address_event(
    event: str, old: Obj | None, new: Obj | None, claim_exists: Callable[[str], bool]
) -> list[str]:
    """An IPAddress event: on deletion, a live claim of that name needs a new address; otherwise an
    IPAddress whose claim is gone is reconciled (deleted if it is ours). A new IPAddress without a
    controller (a restore stripped its owners) wakes the claim of its name, which may be waiting for it."""
    obj = new or old
    assert obj is not None
    key = key_of(obj)
    if event == DELETED:
        return [key]
    if not claim_exists(key):
        return [key]
    owners = obj["metadata"].get("ownerReferences") or []
    return [key] if event == ADDED and not any(o.get("controller") for o in owners) else []


def cluster_event(
    event: str, old: Obj | None, new: Obj | None, claims_of: Callable[[str], set[str]]
) -> list[str]:
    """A Cluster event wakes its claims (ours only, through the claims' cluster index): on creation and
    deletion unless paused, and on the update that unpauses it."""
    obj = new or old
    assert obj is not None
    if event == "MODIFIED":
        if not (old is not None and cluster_is_paused(old) and not cluster_is_paused(obj)):
            return []
    elif event != DELETED and cluster_is_paused(obj):
        return []
    return sorted(claims_of(f"{namespace_of(obj)}/{name_of(obj)}"))


def takeover_order(
    claims: Iterable[tuple[str, Mapping[str, Any]]], pool_of: PoolOf
) -> tuple[list[str], list[str]]:
    """The claims (of the backend's pools) to reconcile when leadership starts, split into those someone
    waits for (unbound ones and ones being deleted) and the bound ones, which are only re-checked (usually
    nothing to write) and go behind. Over 100,000 bound claims, a new claim listed last would otherwise wait
    behind all of them."""
    first: list[str] = []
    later: list[str] = []
    for key, claim in claims:
        if pool_of(claim) is None:
            continue
        bound = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
        (later if bound and not is_deleting(claim) else first).append(key)
    return first, later

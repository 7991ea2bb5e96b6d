"""Which claim keys an IPAddress event wakes."""

from __future__ import annotations

from typing import Any

from incluster_ipam.claimcore.watches import address_event, takeover_order


def address(*owners: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "ns", "ownerReferences": list(owners)}}


CONTROLLER = {"kind": "IPAddressClaim", "name": "c", "uid": "u", "controller": True}


def test_a_deletion_wakes_the_claim_of_its_name() -> None:
    assert address_event("DELETED", address(CONTROLLER), None, lambda key: True) == ["ns/c"]


def test_an_ipaddress_without_its_claim_is_looked_at() -> None:
    assert address_event("MODIFIED", None, address(CONTROLLER), lambda key: False) == ["ns/c"]


def test_our_own_new_ipaddress_wakes_nobody() -> None:
    assert address_event("ADDED", None, address(CONTROLLER), lambda key: True) == []


def test_a_restored_ipaddress_without_owners_wakes_the_claim_waiting_for_it() -> None:
    assert address_event("ADDED", None, address(), lambda key: True) == ["ns/c"]
    assert address_event("MODIFIED", address(), address(), lambda key: True) == []


def claim(
    name: str, *, bound: bool = False, deleting: bool = False, pool: str | None = "p"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    status = {"addressRef": {"name": name}} if bound else {}
    return {"metadata": metadata, "spec": {"pool": pool}, "status": status}


def test_at_a_takeover_claims_waiting_for_an_address_or_a_release_come_before_bound_ones() -> None:
    """Over 100,000 bound claims, a new claim listed last used to wait behind every bound one."""
    claims = [
        claim("a", bound=True),
        claim("b"),
        claim("c", bound=True, deleting=True),
        claim("d", bound=True),
        claim("e", pool=None),  # not of our pools: not queued at all
        claim("f"),
    ]
    waiting, bound = takeover_order(
        ((f"ns/{c['metadata']['name']}", c) for c in claims), lambda c: c["spec"]["pool"]
    )
    assert (waiting, bound) == (["ns/b", "ns/c", "ns/f"], ["ns/a", "ns/d"])

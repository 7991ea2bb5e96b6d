"""Which claim keys an IPAddress event wakes."""

from __future__ import annotations

from typing import Any

from incluster_ipam.claimcore.watches import address_event


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

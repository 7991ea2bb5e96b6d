"""Restores with the garbage collector running (tests/e2e/test_restore.py found both):

- a restored IPAddress whose owner references carry the UIDs of objects that are gone is deleted by the
  collector; the claim that adopts it keeps its address: it queues for exactly that address, lets the old
  object go and creates it anew, instead of being bound to an IPAddress stuck in deletion;
- a claim restored by Velero (before its IPAddress: alphabetical order) waits for its IPAddress a moment
  instead of allocating another address at once.
"""

from __future__ import annotations

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER
from incluster_ipam.claimcore.reconciler import RESTORE_GRACE_SECONDS, RESTORE_LABEL
from incluster_ipam.runtime import Result

from .fakes import ADDRESSES, NOW, NOW_TEXT, World, claim_owner


@pytest.fixture
def world() -> World:
    w = World()
    w.backend.add_pool("p", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    return w


def collected(world: World, name: str = "c") -> None:
    """The collector deleted the IPAddress (our finalizer keeps it)."""
    world.api.objects[(ADDRESSES.plural, "ns", name)]["metadata"]["deletionTimestamp"] = NOW_TEXT


async def test_a_restored_ipaddress_the_collector_deletes_is_recreated_with_its_address(world: World) -> None:
    claim = world.claim()
    world.address(
        text="10.0.0.2",
        owners=[claim_owner(claim, uid="uid-before-the-backup")],
        finalizers=[ADDRESS_FINALIZER],
    )
    collected(world)
    result = await world.reconciler.reconcile("ns/c")
    assert result == Result(requeue_after=0.2)
    assert world.backend.requests == [("ns/c", "10.0.0.2")]  # queued for exactly its address
    assert world.stored_address() is None  # our finalizer removed: the old object is gone
    assert ("released", "ns/c") in world.backend.calls
    assert ("adopted", "ns/c") not in world.backend.calls


async def test_the_collector_deleting_it_between_the_read_and_the_adoption_is_caught(world: World) -> None:
    claim = world.claim()
    address = world.address(text="10.0.0.2", owners=[claim_owner(claim, uid="uid-before-the-backup")])
    world.addresses.lag("ns/c", address)  # the cache has it before the collector's delete
    collected(world)
    world.api.objects[(ADDRESSES.plural, "ns", "c")]["metadata"]["finalizers"] = [ADDRESS_FINALIZER]
    result = await world.reconciler.reconcile("ns/c")
    assert result == Result(requeue_after=0.2)
    assert world.backend.requests == [("ns/c", "10.0.0.2")]
    assert world.stored_address() is None


async def test_an_ipaddress_of_this_very_claim_deleted_by_hand_stays_as_upstream_keeps_it(
    world: World,
) -> None:
    claim = world.claim()
    world.address(text="10.0.0.2", owners=[claim_owner(claim)], finalizers=[ADDRESS_FINALIZER])
    collected(world)
    assert await world.reconciler.reconcile("ns/c") is None
    stored = world.stored_address()
    assert stored is not None
    assert stored["metadata"]["finalizers"] == [ADDRESS_FINALIZER]
    assert world.backend.requests == []


async def test_a_claim_restored_by_velero_waits_for_its_ipaddress(world: World) -> None:
    world.claim(labels={RESTORE_LABEL: "r1"})
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=RESTORE_GRACE_SECONDS)
    assert ("reserve", "ns/c") not in world.backend.calls
    world.address(text="10.0.0.3")  # the restored IPAddress arrives
    assert await world.reconciler.reconcile("ns/c") is None
    stored = world.stored_address()
    assert stored is not None
    assert stored["spec"]["address"] == "10.0.0.3"
    assert ("reserve", "ns/c") not in world.backend.calls


async def test_a_restored_claim_whose_ipaddress_never_comes_gets_one_after_the_grace(world: World) -> None:
    world.claim(labels={RESTORE_LABEL: "r1"})
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=RESTORE_GRACE_SECONDS)
    world.reconciler._clock = lambda: NOW + RESTORE_GRACE_SECONDS
    assert await world.reconciler.reconcile("ns/c") is None
    stored = world.stored_address()
    assert stored is not None
    assert stored["spec"]["address"] == "10.0.0.1"

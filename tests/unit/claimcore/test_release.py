"""Releasing: a deleted claim's IPAddress (grace period, only the one meant for it, by UID), and
IPAddresses that outlived their claims; plus the checks a backend may ask for."""

from __future__ import annotations

import datetime

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER, CLAIM_FINALIZER
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL
from incluster_ipam.claimcore.reconciler import ORPHAN_GRACE_SECONDS
from incluster_ipam.kube import ApiError
from incluster_ipam.runtime import Result

from .fakes import NOW, NOW_TEXT, World, claim_owner, not_found


def format_time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def world() -> World:
    w = World()
    w.backend.add_pool("p", ["10.0.0.1", "10.0.0.2"])
    return w


async def bound(world: World, name: str = "c") -> None:
    world.claim(name)
    await world.reconciler.reconcile(f"ns/{name}")
    assert world.stored_address(name) is not None


async def delete_claim(world: World, name: str = "c") -> None:
    """What kube-apiserver does to a claim with finalizers on DELETE."""
    await world.api.delete(world.claims_resource, name, "ns")


# ---- a deleted claim ---------------------------------------------------------------------------------------


async def test_deleting_a_claim_deletes_its_ipaddress_and_frees_the_address(world: World) -> None:
    await bound(world)
    await delete_claim(world)
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.stored_address() is None
    assert world.stored_claim() is None  # its finalizer went, so did the claim
    assert world.backend.called("released") == ["ns/c"]
    assert world.backend.pools["Pool/ns/p"].free[-1] == "10.0.0.1"
    assert world.recorder.reasons()[-1] == "AddressReleased"
    assert world.metric("incluster_ipam_releases_total") == 1
    delete = next(c for c in world.api.writes("delete") if c.plural == "ipaddresses")
    assert delete.uid is not None  # a UID precondition: never another incarnation of the name


async def test_the_grace_period_holds_the_address(world: World) -> None:
    await bound(world)
    world.backend.pools["Pool/ns/p"].grace = 42.0
    await delete_claim(world)
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=42.0)
    assert world.stored_address() is not None
    world.backend.pools["Pool/ns/p"].grace = 0.0
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None


async def test_an_ipaddress_the_cache_has_not_seen_is_found_and_released(world: World) -> None:
    await bound(world)
    world.addresses.hide("ns/c")
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None
    assert world.backend.called("released") == ["ns/c"]


async def test_an_ipaddress_that_is_not_the_claims_is_left_in_place(world: World) -> None:
    world.claim()
    world.address(claim_ref="someone-else")
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None
    assert world.stored_claim() is None
    assert world.recorder.reasons() == ["AddressNotReleased"]


async def test_an_ipaddress_of_another_pool_is_left_in_place(world: World) -> None:
    claim = world.claim()
    world.address(pool="elsewhere", owners=[claim_owner(claim)])
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None


async def test_an_ipaddress_held_by_another_finalizer_is_not_reported_freed(world: World) -> None:
    claim = world.claim()
    world.address(owners=[claim_owner(claim)], finalizers=[ADDRESS_FINALIZER, "example.com/backup"])
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["metadata"]["finalizers"] == ["example.com/backup"]
    assert address["metadata"]["deletionTimestamp"] == NOW_TEXT
    assert world.backend.called("released") == []  # it still holds its address
    assert world.stored_claim() is None


async def test_a_deleting_claim_without_our_finalizer_only_drops_reservations(world: World) -> None:
    world.claim(finalizer=False, deleting=NOW_TEXT)
    world.backend.reserved["ns/c"] = ("Pool/ns/p", "10.0.0.2")
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []
    assert world.backend.reserved == {}


async def test_a_deleting_claim_of_a_missing_cluster_is_still_released(world: World) -> None:
    world.claim(cluster="gone", deleting=NOW_TEXT)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_claim() is None


async def test_a_deleting_claim_of_a_gone_pool_is_released(world: World) -> None:
    await bound(world)
    del world.backend.pools["Pool/ns/p"]
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None
    assert world.stored_claim() is None


async def test_an_ipaddress_gone_meanwhile_counts_as_released(world: World) -> None:
    await bound(world)
    await delete_claim(world)
    world.api.fail("delete", not_found("c"), "ipaddresses")
    await world.reconciler.reconcile("ns/c")
    assert world.backend.called("released") == ["ns/c"]
    assert world.stored_claim() is None


# ---- IPAddresses that outlived their claims ----------------------------------------------------------------


async def test_an_ipaddress_whose_claim_vanished_is_deleted(world: World) -> None:
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))  # gone without our finalizer's say (k8s#77988)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None
    assert world.backend.called("released") == ["ns/c"]
    assert world.backend.called("abandon")[-1] == "ns/c"


async def test_a_young_ipaddress_without_its_claim_is_given_time_for_the_claim_to_come(world: World) -> None:
    """A restore may create the IPAddress a moment before its claim: not an orphan yet."""
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    address = world.api.objects[("ipaddresses", "ns", "c")]
    address["metadata"]["creationTimestamp"] = format_time(NOW - 5)
    result = await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None
    assert result is not None
    assert result.requeue_after == pytest.approx(ORPHAN_GRACE_SECONDS - 5)
    address["metadata"]["creationTimestamp"] = format_time(NOW - ORPHAN_GRACE_SECONDS - 1)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None


async def test_what_the_collector_leaves_of_an_ipaddress_whose_claim_vanished_is_deleted(
    world: World,
) -> None:
    """The claim went without our finalizer's say; the collector dropped its owner reference (the pool still
    owns the IPAddress, so the collector does not delete it). Found by tests/e2e/test_deletion_gc.py."""
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    meta = world.api.objects[("ipaddresses", "ns", "c")]["metadata"]
    meta["ownerReferences"] = [o for o in meta["ownerReferences"] if o["kind"] != "IPAddressClaim"]
    assert [o["kind"] for o in meta["ownerReferences"]] == ["InClusterIPPool"]
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None
    assert world.backend.called("released") == ["ns/c"]


async def test_an_ipaddress_the_backend_does_not_hold_is_not_looked_at(world: World) -> None:
    world.address()
    await world.reconciler.reconcile("ns/c")
    assert world.api.calls == []


async def test_a_held_ipaddress_that_is_gone_is_reported_gone(world: World) -> None:
    world.backend.held["ns/c"] = ("Pool/ns/p", "10.0.0.5", "uid-old")
    await world.reconciler.reconcile("ns/c")
    assert world.backend.called("gone") == [("ns/c", None)]
    assert "ns/c" not in world.backend.held


@pytest.mark.parametrize("why", ["not controlled", "paused", "pool paused", "cluster paused", "claim back"])
async def test_an_orphan_is_left_alone_when(world: World, why: str) -> None:
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    address = world.api.objects[("ipaddresses", "ns", "c")]
    if why == "not controlled":
        address["metadata"]["ownerReferences"] = []
    elif why == "paused":
        address["metadata"]["annotations"] = {"cluster.x-k8s.io/paused": ""}
    elif why == "pool paused":
        world.backend.set_pool("p", paused=True)
    elif why == "cluster paused":
        address["metadata"]["labels"] = {CLUSTER_NAME_LABEL: "cl"}
        world.cluster("cl", paused=True)
    else:  # a claim of that name exists (the cache has not seen it yet): it adopts the IPAddress
        world.claim()
        world.claims.hide("ns/c")
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None
    assert world.backend.called("released") == []


async def test_an_orphan_of_an_earlier_claim_in_another_pool_is_deleted_while_the_new_claim_waits(
    world: World,
) -> None:
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    world.claim(pool="q")  # the name is reused for a claim of another pool; the cache has not seen it
    world.claims.hide("ns/c")
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is None


async def test_a_failing_claim_lookup_is_retried(world: World) -> None:
    await bound(world)
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    world.api.fail("get", ApiError(500, "InternalError", "boom"), "ipaddressclaims")
    with pytest.raises(ApiError):
        await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None


# ---- checks the backend asks for ---------------------------------------------------------------------------


async def test_an_ipaddress_the_backend_doubts_is_checked_against_the_apiserver_first(world: World) -> None:
    await bound(world)
    uid = world.api.objects[("ipaddresses", "ns", "c")]["metadata"]["uid"]
    world.backend.check.add("ns/c")
    await world.reconciler.reconcile("ns/c")
    assert world.backend.called("gone") == [("ns/c", uid)]  # this one exists: keep it, forget others
    assert "ns/c" in world.backend.held
    assert world.backend.check == set()


async def test_finalizers_are_removed_by_uid(world: World) -> None:
    await bound(world)
    await delete_claim(world)
    await world.reconciler.reconcile("ns/c")
    patch = next(c for c in world.api.writes("patch") if c.plural == "ipaddresses")
    assert patch.body["metadata"]["uid"]
    assert patch.body["metadata"]["finalizers"] is None
    assert CLAIM_FINALIZER not in (world.api.writes("patch")[-1].body["metadata"].get("finalizers") or [])


# ---- clusterctl move -----------------------------------------------------------------------------------


async def test_a_claim_deleted_for_a_move_keeps_its_ipaddress_and_address(world: World) -> None:
    """clusterctl move annotates, deletes, then strips the finalizers itself: nothing is released."""
    await bound(world)
    claim = world.api.objects[("ipaddressclaims", "ns", "c")]
    claim["metadata"]["annotations"] = {"clusterctl.cluster.x-k8s.io/delete-for-move": ""}
    await delete_claim(world)
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.stored_address() is not None
    assert world.backend.called("released") == []


async def test_the_leftover_of_a_moved_claim_is_kept_and_marked(world: World) -> None:
    """A global pool's IPAddress stays in the source after the move: its address is the target's now."""
    await bound(world)
    claim = dict(world.api.objects.pop(("ipaddressclaims", "ns", "c")))
    claim["metadata"] = {
        **claim["metadata"],
        "annotations": {"clusterctl.cluster.x-k8s.io/delete-for-move": ""},
    }
    world.reconciler.saw_claim(claim)
    await world.reconciler.reconcile("ns/c")
    kept = world.stored_address()
    assert kept is not None
    assert "ipam.cluster.x-k8s.io/moved-away" in kept["metadata"]["annotations"]
    assert world.backend.called("released") == []
    # marked: kept after a restart too (a fresh reconciler never saw the claim)
    world.reconciler._moved.clear()
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None
    assert world.backend.called("released") == []

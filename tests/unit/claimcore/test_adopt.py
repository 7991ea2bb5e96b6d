"""An IPAddress of the claim's name already exists: when the claim takes it, what it changes, and when it
must not take it (another claim's, another controller's, another pool's, somebody else's address, or one
the pool no longer hands out)."""

from __future__ import annotations

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL
from incluster_ipam.kube import ApiError
from incluster_ipam.runtime import Result

from .fakes import World, claim_owner


@pytest.fixture
def world() -> World:
    w = World()
    w.backend.add_pool("p", ["10.0.0.1", "10.0.0.2"])
    w.backend.add_pool("q", ["10.9.0.1"])
    return w


def owner_uids(world: World, name: str = "c") -> list[tuple[str, str, bool]]:
    address = world.stored_address(name)
    assert address is not None
    return [(o["kind"], o["uid"], o["controller"]) for o in address["metadata"]["ownerReferences"]]


async def test_a_restored_ipaddress_without_owners_is_adopted_with_its_address(world: World) -> None:
    world.cluster("cl")
    claim = world.claim(labels={CLUSTER_NAME_LABEL: "cl"})
    world.address(text="10.0.0.2")  # e.g. restored by Velero, owners stripped
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.2"  # its spec is kept
    assert address["metadata"]["finalizers"] == [ADDRESS_FINALIZER]
    assert address["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "cl"}
    assert owner_uids(world) == [
        ("IPAddressClaim", claim["metadata"]["uid"], True),
        ("InClusterIPPool", "pool-uid-p", False),
    ]
    assert world.backend.called("adopted") == ["ns/c"]
    assert world.backend.called("reserve") == []
    stored = world.stored_claim()
    assert stored is not None
    assert stored["status"]["addressRef"] == {"name": "c"}
    ready = world.ready()
    assert ready is not None
    assert "10.0.0.2" in ready["message"]


async def test_a_stale_controller_reference_of_an_earlier_claim_of_the_name_is_replaced(world: World) -> None:
    claim = world.claim()
    world.address(owners=[claim_owner(claim, uid="uid-of-a-deleted-claim")])
    await world.reconciler.reconcile("ns/c")
    assert owner_uids(world) == [
        ("IPAddressClaim", claim["metadata"]["uid"], True),
        ("InClusterIPPool", "pool-uid-p", False),
    ]


async def test_a_patch_that_loses_a_race_is_retried(world: World) -> None:
    world.claim()
    world.address()
    world.api.fail("patch", ApiError(409, "Conflict", "modified"), "ipaddresses")
    assert await world.reconciler.reconcile("ns/c") == Result(requeue=True)


async def test_an_ipaddress_for_another_claim_name_is_refused(world: World) -> None:
    world.claim()
    world.address(claim_ref="someone-else")
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=30.0)
    ready = world.ready()
    assert ready is not None
    assert ready["reason"] == "AllocationFailed"
    assert "for claim 'someone-else'" in ready["message"]
    assert world.recorder.reasons() == ["AllocationFailed"]
    assert world.backend.called("adopted") == []
    address = world.stored_address()
    assert address is not None
    assert address["metadata"]["ownerReferences"] == []  # untouched


async def test_an_ipaddress_controlled_by_something_else_is_refused(world: World) -> None:
    world.claim()
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "cm", "controller": True}
    world.address(owners=[other])
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=30.0)
    ready = world.ready()
    assert ready is not None
    assert "controlled by ConfigMap 'x'" in ready["message"]


async def test_the_backend_may_refuse_an_address_somebody_else_holds(world: World) -> None:
    world.claim()
    world.backend.held["ns/other"] = ("Pool/ns/p", "10.0.0.9", "uid-x")
    world.address(text="10.0.0.9")
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=30.0)
    ready = world.ready()
    assert ready is not None
    assert ready["message"] == "10.0.0.9 is held by ns/other"
    assert world.metric("incluster_ipam_allocation_failures_total", reason="AllocationFailed") == 1


async def test_an_ipaddress_of_another_pool_is_not_taken(world: World) -> None:
    claim = world.claim()
    world.address(pool="q", owners=[claim_owner(claim)])
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=30.0)
    ready = world.ready()
    assert ready is not None
    assert "belongs to another pool" in ready["message"]
    assert world.stored_address() is not None


async def test_an_earlier_claims_ipaddress_in_another_pool_is_replaced(world: World) -> None:
    claim = world.claim()
    world.address(
        pool="q", owners=[claim_owner(claim, uid="uid-of-a-deleted-claim")], finalizers=[ADDRESS_FINALIZER]
    )
    world.backend.held["ns/c"] = ("Pool/ns/q", "10.0.0.9", world.stored_address()["metadata"]["uid"])  # type: ignore[index]
    assert await world.reconciler.reconcile("ns/c") == Result(requeue=True)
    assert world.stored_address() is None
    assert world.backend.called("released") == ["ns/c"]
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["poolRef"]["name"] == "p"


async def test_our_unbound_ipaddress_outside_the_shrunk_pool_is_replaced(world: World) -> None:
    claim = world.claim()
    world.backend.pools["Pool/ns/p"].hands_out = {"10.0.0.1", "10.0.0.2"}
    world.address(text="10.0.0.77", owners=[claim_owner(claim)], finalizers=[ADDRESS_FINALIZER])
    assert await world.reconciler.reconcile("ns/c") == Result(requeue=True)
    assert world.stored_address() is None
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.1"


async def test_a_bound_ipaddress_outside_the_pool_is_kept(world: World) -> None:
    """Handed out already (the claim points at it): a shrink does not take it away."""
    claim = world.claim(status={"addressRef": {"name": "c"}})
    world.backend.pools["Pool/ns/p"].hands_out = {"10.0.0.1"}
    world.address(text="10.0.0.77", owners=[claim_owner(claim)], finalizers=[ADDRESS_FINALIZER])
    assert await world.reconciler.reconcile("ns/c") is None
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.77"


async def test_another_controller_keeps_control_and_the_claim_is_added_beside_it(world: World) -> None:
    """Our adoption patch never takes control away (an API conflict: two controllers)."""
    claim = world.claim()
    world.address(owners=[claim_owner(claim, uid="uid-other", controller=False)])
    await world.reconciler.reconcile("ns/c")
    assert ("IPAddressClaim", claim["metadata"]["uid"], True) in owner_uids(world)


async def test_a_v1beta1_claim_gets_a_v1beta1_condition() -> None:
    world = World(contract="v1beta1")
    world.backend.add_pool("p", [])
    world.claim()
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert ready["severity"] == "Warning"
    assert "observedGeneration" not in ready

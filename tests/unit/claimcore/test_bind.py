"""Binding a claim: the gates before it (ownership, filter, pause, Cluster, finalizer, pool) and the new
IPAddress (reserve, create, confirm), with every way the create can end."""

from __future__ import annotations

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER, CLAIM_FINALIZER, GROUP
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL, WATCH_FILTER_LABEL
from incluster_ipam.kube import ApiError, TransportError
from incluster_ipam.runtime import Result

from .fakes import World, claim_owner, not_found


@pytest.fixture
def world() -> World:
    w = World()
    w.backend.add_pool("p", ["10.0.0.1", "10.0.0.2"], gateway="10.0.0.254")
    return w


# ---- a new IPAddress ---------------------------------------------------------------------------------------


async def test_a_claim_gets_the_first_free_address_with_owners_finalizer_and_label(world: World) -> None:
    world.cluster("cl")
    claim = world.claim(labels={CLUSTER_NAME_LABEL: "cl"})
    assert await world.reconciler.reconcile("ns/c") is None
    address = world.stored_address()
    assert address is not None
    assert address["spec"] == {
        "address": "10.0.0.1",
        "prefix": 24,
        "gateway": "10.0.0.254",
        "claimRef": {"name": "c"},
        "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "p"},
    }
    assert address["metadata"]["finalizers"] == [ADDRESS_FINALIZER]
    assert address["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "cl"}
    owners = address["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
        ("IPAddressClaim", claim["metadata"]["uid"], True),
        ("InClusterIPPool", "pool-uid-p", False),
    ]
    stored = world.stored_claim()
    assert stored is not None
    assert stored["status"]["addressRef"] == {"name": "c"}
    ready = world.ready()
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "AddressAllocated")
    assert "10.0.0.1" in ready["message"]
    assert world.backend.called("confirm") == ["ns/c"]
    assert world.backend.held["ns/c"][1] == "10.0.0.1"
    assert world.recorder.reasons() == ["AddressAllocated"]
    assert world.metric("incluster_ipam_allocations_total") == 1


async def test_two_claims_get_two_addresses_and_a_second_reconcile_writes_nothing(world: World) -> None:
    world.claim("a")
    world.claim("b")
    await world.reconciler.reconcile("ns/a")
    await world.reconciler.reconcile("ns/b")
    a, b = world.stored_address("a"), world.stored_address("b")
    assert a is not None
    assert b is not None
    assert (a["spec"]["address"], b["spec"]["address"]) == ("10.0.0.1", "10.0.0.2")
    writes = len(world.api.writes())
    await world.reconciler.reconcile("ns/a")
    assert len(world.api.writes()) == writes  # adopted as is: nothing to change


async def test_the_claim_finalizer_is_added_first(world: World) -> None:
    world.claim(finalizer=False)
    await world.reconciler.reconcile("ns/c")
    first = world.api.writes()[0]
    assert (first.verb, first.plural) == ("patch", "ipaddressclaims")
    assert first.body["metadata"]["finalizers"] == [CLAIM_FINALIZER]
    stored = world.stored_claim()
    assert stored is not None
    assert stored["metadata"]["finalizers"] == [CLAIM_FINALIZER]
    assert world.stored_address() is not None


async def test_a_claim_that_vanishes_before_its_finalizer_lands_gets_nothing(world: World) -> None:
    world.claim(finalizer=False)
    world.api.fail("patch", not_found("c"), "ipaddressclaims")
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.backend.called("reserve") == []
    assert world.api.writes("create") == []


async def test_an_address_known_to_the_backend_ahead_of_the_cache_is_not_allocated_twice(
    world: World,
) -> None:
    world.claim()
    await world.reconciler.reconcile("ns/c")
    world.addresses.hide("ns/c")  # the informer has not seen the create yet
    world.api.objects.pop(("ipaddressclaims", "ns", "c"))
    world.claim()  # the claim's status write is not in the cache either
    await world.reconciler.reconcile("ns/c")
    assert len(world.api.writes("create")) == 1
    assert world.backend.called("reserve") == ["ns/c"]
    stored = world.stored_claim()
    assert stored is not None
    assert stored["status"]["addressRef"] == {"name": "c"}


# ---- gates -------------------------------------------------------------------------------------------------


async def test_a_claim_of_a_pool_the_backend_does_not_own_is_left_alone(world: World) -> None:
    world.claim(kind="SomeoneElsesPool", finalizer=False)
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.api.writes() == []


async def test_the_watch_filter_leaves_other_claims_alone() -> None:
    world = World(watch_filter="mine")
    world.backend.add_pool("p", ["10.0.0.1"])
    world.claim("other", finalizer=False)
    world.claim("labelled", finalizer=False, labels={WATCH_FILTER_LABEL: "mine"})
    await world.reconciler.reconcile("ns/other")
    await world.reconciler.reconcile("ns/labelled")
    assert world.stored_address("other") is None
    assert world.stored_address("labelled") is not None


async def test_a_paused_claim_is_left_alone(world: World) -> None:
    world.claim(finalizer=False, annotations={"cluster.x-k8s.io/paused": ""})
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []


async def test_a_paused_cluster_stops_its_claims_and_an_unpaused_one_lets_them_go(world: World) -> None:
    world.cluster("cl", paused=True)
    world.claim(cluster="cl")
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []
    world.cluster("cl", paused=False)
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None


async def test_the_cluster_label_names_the_cluster_too(world: World) -> None:
    world.cluster("cl", paused=True)
    world.claim(labels={CLUSTER_NAME_LABEL: "cl"})
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []


async def test_a_claim_waits_for_its_missing_cluster(world: World) -> None:
    world.claim(cluster="not-yet")
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []


async def test_without_cluster_api_core_the_cluster_name_is_ignored() -> None:
    world = World(clusters=False)
    world.backend.add_pool("p", ["10.0.0.1"])
    world.claim(cluster="anything")
    await world.reconciler.reconcile("ns/c")
    assert world.stored_address() is not None


async def test_a_paused_pool_stops_its_claims(world: World) -> None:
    world.backend.set_pool("p", paused=True)
    world.claim()
    await world.reconciler.reconcile("ns/c")
    assert world.api.writes() == []


async def test_a_missing_pool_is_pool_not_ready(world: World) -> None:
    world.claim(pool="nope")
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "PoolNotReady")
    assert ready["message"] == "pool InClusterIPPool ns/nope not found"
    assert world.api.writes("create") == []


async def test_an_unusable_pool_is_pool_not_ready_before_anything_else(world: World) -> None:
    world.backend.pools["Pool/ns/p"].problem = "is invalid: spec.addresses[0]: bad"
    world.claim()
    world.address()  # even an IPAddress of the claim's name is not looked at
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert (ready["reason"], ready["message"]) == (
        "PoolNotReady",
        "pool InClusterIPPool ns/p is invalid: spec.addresses[0]: bad",
    )
    assert world.backend.called("adopted") == []


async def test_a_pool_that_cannot_reserve_now_says_why(world: World) -> None:
    world.backend.pools["Pool/ns/p"].not_ready = "is being deleted"
    world.claim()
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert (ready["reason"], ready["message"]) == (
        "PoolNotReady",
        "pool InClusterIPPool ns/p is being deleted",
    )


async def test_an_exhausted_pool_warns_once_and_counts_each_failure(world: World) -> None:
    world.backend.pools["Pool/ns/p"].free.clear()
    world.claim()
    await world.reconciler.reconcile("ns/c")
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert (ready["reason"], ready["message"]) == (
        "PoolExhausted",
        "pool InClusterIPPool ns/p has no free address",
    )
    assert world.recorder.reasons() == ["PoolExhausted"]  # the condition did not change the second time
    assert world.metric("incluster_ipam_allocation_failures_total", reason="PoolExhausted") == 2


async def test_the_ready_condition_moves_on_when_the_pool_gains_room(world: World) -> None:
    free = list(world.backend.pools["Pool/ns/p"].free)
    world.backend.pools["Pool/ns/p"].free.clear()
    world.claim()
    await world.reconciler.reconcile("ns/c")
    world.backend.pools["Pool/ns/p"].free.extend(free)
    await world.reconciler.reconcile("ns/c")
    ready = world.ready()
    assert ready is not None
    assert ready["reason"] == "AddressAllocated"


# ---- how the create ends -----------------------------------------------------------------------------------


async def test_a_create_that_meets_an_existing_ipaddress_adopts_it(world: World) -> None:
    claim = world.claim()
    world.addresses.hide("ns/c")  # created by us a moment ago (a retry); the cache has not seen it
    world.address(text="10.0.0.2", owners=[claim_owner(claim)], finalizers=[ADDRESS_FINALIZER])
    await world.reconciler.reconcile("ns/c")
    assert world.backend.called("abandon")[-1] == "ns/c"
    assert world.backend.reserved == {}
    assert world.backend.pools["Pool/ns/p"].free[0] == "10.0.0.1"  # the reservation went back
    assert world.backend.held["ns/c"][1] == "10.0.0.2"
    stored = world.stored_claim()
    assert stored is not None
    assert stored["status"]["addressRef"] == {"name": "c"}


async def test_an_already_exists_whose_object_is_gone_again_is_retried(world: World) -> None:
    world.claim()
    world.api.fail("create", ApiError(409, "AlreadyExists", "exists"))
    with pytest.raises(ApiError):
        await world.reconciler.reconcile("ns/c")
    assert world.backend.reserved == {"ns/c": ("Pool/ns/p", "10.0.0.1")}


@pytest.mark.parametrize("status", [400, 403, 404, 422])
async def test_a_refused_create_frees_the_reservation_and_says_so(world: World, status: int) -> None:
    world.claim()
    world.api.fail("create", ApiError(status, "Invalid", "denied by a webhook"))
    with pytest.raises(ApiError):
        await world.reconciler.reconcile("ns/c")
    assert world.backend.reserved == {}
    assert world.backend.pools["Pool/ns/p"].free == ["10.0.0.1", "10.0.0.2"]
    ready = world.ready()
    assert ready is not None
    assert ready["reason"] == "AllocationFailed"
    assert "denied by a webhook" in ready["message"]
    assert world.recorder.reasons() == ["AllocationFailed"]
    assert world.metric("incluster_ipam_allocation_failures_total", reason="AllocationFailed") == 1


@pytest.mark.parametrize(
    "error",
    [
        ApiError(500, "InternalError", "etcd timeout"),
        ApiError(504, "Timeout", "slow"),
        TransportError("reset"),
    ],
)
async def test_a_create_of_unknown_outcome_keeps_its_reservation_for_the_retry(
    world: World, error: Exception
) -> None:
    world.claim()
    world.api.fail("create", error)
    with pytest.raises(type(error)):
        await world.reconciler.reconcile("ns/c")
    assert world.backend.reserved == {"ns/c": ("Pool/ns/p", "10.0.0.1")}
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.1"  # the same address, not a second one
    assert world.backend.pools["Pool/ns/p"].free == ["10.0.0.2"]


async def test_a_create_that_landed_but_lost_its_answer_is_adopted_on_the_retry(world: World) -> None:
    world.claim()
    world.api.lose_answer("create", TransportError("connection reset"))
    with pytest.raises(TransportError):
        await world.reconciler.reconcile("ns/c")
    world.addresses.hide("ns/c")  # the watch event has not come yet
    await world.reconciler.reconcile("ns/c")
    assert len(world.api.writes("create")) == 2  # the retry met AlreadyExists...
    assert world.backend.held["ns/c"][1] == "10.0.0.1"  # ...and took the one that landed
    assert world.backend.reserved == {}
    assert world.backend.pools["Pool/ns/p"].free == ["10.0.0.2"]


async def test_a_conflict_is_a_quiet_retry(world: World) -> None:
    world.claim(finalizer=False)
    world.api.fail("patch", ApiError(409, "Conflict", "the object has been modified"), "ipaddressclaims")
    assert await world.reconciler.reconcile("ns/c") == Result(requeue=True)


async def test_throttling_retries_after_the_servers_delay(world: World) -> None:
    world.claim(finalizer=False)
    body = {"details": {"retryAfterSeconds": 3}}
    world.api.fail("patch", ApiError(429, "TooManyRequests", "slow down", body), "ipaddressclaims")
    assert await world.reconciler.reconcile("ns/c") == Result(requeue_after=3.0)


async def test_other_errors_reach_the_queue(world: World) -> None:
    world.claim(finalizer=False)
    world.api.fail("patch", ApiError(500, "InternalError", "boom"), "ipaddressclaims")
    with pytest.raises(ApiError):
        await world.reconciler.reconcile("ns/c")


# ---- fencing -----------------------------------------------------------------------------------------------


async def test_nothing_is_written_without_leadership_and_the_reservation_is_dropped(world: World) -> None:
    world.claim()
    fence = world.fence
    assert hasattr(fence, "lose")
    fence.lose()
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.api.writes() == []
    assert world.backend.called("reserve") == ["ns/c"]
    assert world.backend.reserved == {}
    assert world.metric("incluster_ipam_writes_fenced_total") == 1

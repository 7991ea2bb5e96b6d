"""A claim that asks for one exact address (the `ipAddress` annotation, or our alias): the lifecycle hands
the request to the backend, reports why it cannot be had, and never moves a bound claim."""

from __future__ import annotations

import pytest

from incluster_ipam.capi.contract import PoolRef
from incluster_ipam.claimcore import rules

from .fakes import World

METAL3 = "ipAddress"
ALIAS = "ipam.cluster.x-k8s.io/requested-address"


@pytest.fixture
def world() -> World:
    w = World()
    w.backend.add_pool("p", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], gateway="10.0.0.254")
    return w


@pytest.mark.parametrize("key", [METAL3, ALIAS])
async def test_the_requested_address_is_asked_of_the_backend_and_bound(world: World, key: str) -> None:
    world.claim(annotations={key: "10.0.0.3"})
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.backend.requests == [("ns/c", "10.0.0.3")]
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.3"
    ready = world.ready()
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "AddressAllocated")
    assert "ignored" not in ready["message"]


async def test_an_unavailable_address_fails_the_claim_with_a_reason_an_event_and_a_metric(
    world: World,
) -> None:
    world.claim(annotations={METAL3: "10.9.9.9"})
    assert await world.reconciler.reconcile("ns/c") is None
    assert world.stored_address() is None
    ready = world.ready()
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "AllocationFailed")
    assert ready["message"] == "requested address 10.9.9.9 (ipAddress annotation) is outside the pool"
    assert world.recorder.reasons() == ["AllocationFailed"]
    assert world.metric("incluster_ipam_allocation_failures_total", reason="AllocationFailed") == 1
    # a second reconcile (nothing changed) neither repeats the Event nor writes the condition again
    await world.reconciler.reconcile("ns/c")
    assert world.recorder.reasons() == ["AllocationFailed"]


async def test_annotations_that_disagree_fail_the_claim_without_asking_the_backend(world: World) -> None:
    world.claim(annotations={METAL3: "10.0.0.2", ALIAS: "10.0.0.3"})
    await world.reconciler.reconcile("ns/c")
    assert world.backend.called("reserve") == []
    ready = world.ready()
    assert ready is not None
    assert ready["reason"] == "AllocationFailed"
    assert "ipAddress='10.0.0.2'" in ready["message"]
    assert f"{ALIAS}='10.0.0.3'" in ready["message"]


async def test_annotations_that_agree_in_other_spellings_are_one_request(world: World) -> None:
    world.backend.add_pool("v6", ["fd00::5"])
    world.claim(pool="v6", annotations={METAL3: "fd00::5", ALIAS: "fd00:0:0::0005"})
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "fd00::5"


async def test_a_bound_claim_keeps_its_address_when_the_annotation_changes_and_says_so(world: World) -> None:
    world.claim(annotations={METAL3: "10.0.0.2"})
    await world.reconciler.reconcile("ns/c")
    world.claim(annotations={METAL3: "10.0.0.3"}, status=world.stored_claim()["status"])  # type: ignore[index]
    await world.reconciler.reconcile("ns/c")
    address = world.stored_address()
    assert address is not None
    assert address["spec"]["address"] == "10.0.0.2"
    assert [r for _, r in world.backend.requests] == ["10.0.0.2"]
    ready = world.ready()
    assert ready is not None
    assert ready["status"] == "True"
    assert "requested address 10.0.0.3 (ipAddress annotation) is ignored" in ready["message"]


def test_no_annotation_is_no_request() -> None:
    assert rules.address_request({"metadata": {"annotations": {"other": "x"}}}) is None
    assert rules.address_request({"metadata": {}}) is None


def test_the_bound_message_compares_canonical_forms() -> None:
    request = rules.AddressRequest(METAL3, " FD00::0001 ")
    pool = PoolRef("Pool/ns/p", "g", "v1", "InClusterIPPool", "p", "ns", "u")
    assert "ignored" not in rules.bound("fd00::1", pool, request).message
    assert "ignored" in rules.bound("fd00::2", pool, request).message

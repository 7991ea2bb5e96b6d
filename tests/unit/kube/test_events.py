"""EventRecorder aggregation and failure handling, against a fake client that records writes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from incluster_ipam.kube import (
    EVENTS,
    EventRecorder,
    Resource,
    TokenBucket,
    TransportError,
    error_from_status,
    object_reference,
)

CLAIM = {
    "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
    "kind": "IPAddressClaim",
    "metadata": {"name": "c1", "namespace": "ns", "uid": "u-1", "resourceVersion": "3"},
}


class FakeClient:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.delay = delay
        self.fail_next: Exception | None = None

    async def _call(self, verb: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(self.delay)
        self.calls.append((verb, name, body))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return body

    async def create(self, resource: Resource, body: dict[str, Any], namespace: str) -> dict[str, Any]:
        assert resource is EVENTS
        assert namespace == body["metadata"]["namespace"]
        return await self._call("create", body["metadata"]["name"], body)

    async def patch(
        self, resource: Resource, name: str, body: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        return await self._call("patch", name, body)


def recorder(client: FakeClient) -> EventRecorder:
    return EventRecorder(client, "incluster-ipam", instance="pod-1")  # type: ignore[arg-type]


async def test_first_event_is_created_with_a_reference() -> None:
    client = FakeClient()
    events = recorder(client)
    events.normal(CLAIM, "AddressAllocated", "allocated 10.0.0.5 from pool-a")
    await events.flush()
    [(verb, name, body)] = client.calls
    assert verb == "create"
    assert name.startswith("c1.")
    assert body["involvedObject"] == {
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
        "kind": "IPAddressClaim",
        "name": "c1",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "3",
    }
    assert (body["type"], body["reason"], body["count"]) == ("Normal", "AddressAllocated", 1)
    assert body["source"] == {"component": "incluster-ipam"}
    assert body["reportingInstance"] == "pod-1"
    await events.close()


async def test_repeats_bump_the_count_of_the_same_event() -> None:
    client = FakeClient()
    events = recorder(client)
    events.warning(CLAIM, "PoolExhausted", "pool-a has no free address")
    await events.flush()
    events.warning(CLAIM, "PoolExhausted", "pool-a has no free address")
    await events.flush()
    events.warning(CLAIM, "PoolExhausted", "pool-a has no free address")
    await events.flush()
    assert [(verb, body.get("count")) for verb, _, body in client.calls] == [
        ("create", 1),
        ("patch", 2),
        ("patch", 3),
    ]
    assert len({name for _, name, _ in client.calls}) == 1
    await events.close()


async def test_repeats_during_a_write_are_coalesced() -> None:
    client = FakeClient(delay=0.05)
    events = recorder(client)
    events.warning(CLAIM, "PoolExhausted", "m")
    await asyncio.sleep(0.01)  # the create is in flight
    for _ in range(10):
        events.warning(CLAIM, "PoolExhausted", "m")
    await events.flush()
    assert [(verb, body.get("count")) for verb, _, body in client.calls] == [("create", 1), ("patch", 11)]
    await events.close()


async def test_different_messages_are_different_events() -> None:
    client = FakeClient()
    events = recorder(client)
    events.normal(CLAIM, "AddressAllocated", "a")
    events.normal(CLAIM, "AddressAllocated", "b")
    await events.flush()
    assert [verb for verb, _, _ in client.calls] == ["create", "create"]
    await events.close()


async def test_expired_event_is_recreated() -> None:
    client = FakeClient()
    events = recorder(client)
    events.normal(CLAIM, "R", "m")
    await events.flush()
    client.fail_next = error_from_status({"code": 404, "reason": "NotFound", "message": "gone"})
    events.normal(CLAIM, "R", "m")
    await events.flush()
    verbs = [(verb, body.get("count")) for verb, _, body in client.calls]
    assert verbs == [("create", 1), ("patch", 2), ("create", 2)]
    assert client.calls[0][1] != client.calls[2][1]
    await events.close()


async def test_failures_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient()
    events = recorder(client)
    client.fail_next = TransportError("apiserver down")
    with caplog.at_level(logging.WARNING):
        events.normal(CLAIM, "R", "m")
        await events.flush()
        events.normal({"metadata": {"name": "no-kind"}}, "R", "m")  # unusable object: logged
    assert "apiserver down" in caplog.text
    assert "could not record event" in caplog.text
    await events.close()


async def test_cluster_scoped_objects_get_events_in_default() -> None:
    client = FakeClient()
    events = recorder(client)
    pool = {
        "apiVersion": "ipam.cluster.x-k8s.io/v1alpha2",
        "kind": "GlobalInClusterIPPool",
        "metadata": {"name": "g"},
    }
    events.normal(pool, "R", "m")
    await events.flush()
    assert client.calls[0][2]["metadata"]["namespace"] == "default"
    await events.close()


async def test_full_queue_drops_instead_of_blocking() -> None:
    client = FakeClient(delay=0.01)
    events = EventRecorder(client, "c", workers=1, max_pending=2)  # type: ignore[arg-type]
    for i in range(5):
        events.normal(CLAIM, "R", f"m{i}")
    assert events.dropped >= 2
    await events.close()


def test_object_reference_accepts_a_reference() -> None:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "namespace": "ns"}
    assert object_reference(ref) == ref
    with pytest.raises(ValueError, match="apiVersion"):
        object_reference({"kind": "ConfigMap", "name": "a"})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def claim_named(name: str) -> dict[str, Any]:
    return {**CLAIM, "metadata": {**CLAIM["metadata"], "name": name, "uid": f"u-{name}"}}


def test_token_bucket_spends_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.4  # 0.8 tokens: not yet one
    assert not bucket.take()
    clock.now += 0.1  # 1.0
    assert bucket.take()
    clock.now += 60  # never more than the burst saved up
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError, match="rate >= 0 and burst >= 1"):
        TokenBucket(1.0, 0)
    zero = TokenBucket(0.0, 1, clock)
    clock.now += 1000
    assert [zero.take(), zero.take()] == [True, False]


async def test_normal_events_over_budget_are_throttled_but_warnings_never(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeClient()
    clock = Clock()
    events = EventRecorder(client, "incluster-ipam", normal_rate=1.0, normal_burst=2, clock=clock)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="incluster_ipam.kube.events")
    for i in range(5):
        events.normal(claim_named(f"n{i}"), "AddressAllocated", f"allocated 10.0.0.{i}")
    for i in range(5):
        events.warning(claim_named(f"w{i}"), "PoolExhausted", "no free address")
    await events.flush()
    written = sorted((body["type"], body["involvedObject"]["name"]) for _, _, body in client.calls)
    assert written == [("Normal", "n0"), ("Normal", "n1")] + [("Warning", f"w{i}") for i in range(5)]
    assert events.throttled == 3
    assert len([r for r in caplog.records if "over budget" in r.getMessage()]) == 1  # once per spell
    clock.now += 1.0
    events.normal(claim_named("n5"), "AddressAllocated", "allocated 10.0.0.5")
    await events.flush()
    assert client.calls[-1][2]["involvedObject"]["name"] == "n5"
    await events.close()


async def test_without_a_budget_every_normal_event_is_written() -> None:
    client = FakeClient()
    events = recorder(client)
    for i in range(150):
        events.normal(claim_named(f"n{i}"), "AddressAllocated", "allocated")
    await events.flush()
    assert len(client.calls) == 150
    assert events.throttled == 0
    await events.close()

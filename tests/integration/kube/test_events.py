"""EventRecorder writes real core/v1 Events and aggregates repeats into a count."""

from __future__ import annotations

from incluster_ipam.kube import EVENTS, EventRecorder, KubeClient
from tests.integration.runtime.conftest import CLAIMS, claim


async def test_events_are_created_and_aggregated(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(CLAIMS, claim("c1", namespace))
    recorder = EventRecorder(kube, "incluster-ipam", instance="test-pod")
    recorder.warning(created, "PoolExhausted", "pool pool-a has no free address")
    await recorder.flush()
    recorder.warning(created, "PoolExhausted", "pool pool-a has no free address")
    recorder.normal(created, "AddressAllocated", "allocated 10.0.0.5 from pool-a")
    await recorder.close()

    events = await kube.list(EVENTS, namespace, field_selector="involvedObject.name=c1")
    by_reason = {e["reason"]: e for e in events.items}
    assert set(by_reason) == {"PoolExhausted", "AddressAllocated"}
    exhausted = by_reason["PoolExhausted"]
    assert exhausted["count"] == 2
    assert exhausted["type"] == "Warning"
    assert exhausted["involvedObject"]["kind"] == "IPAddressClaim"
    assert exhausted["involvedObject"]["uid"] == created["metadata"]["uid"]
    assert exhausted["source"]["component"] == "incluster-ipam"
    assert exhausted["reportingInstance"] == "test-pod"
    assert by_reason["AddressAllocated"]["count"] == 1

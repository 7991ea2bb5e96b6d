"""The provider wires its Normal-event budget through and reports what the budget held back."""

from __future__ import annotations

from typing import Any

from incluster_ipam.provider import Options, Provider

CLAIM = {
    "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
    "kind": "IPAddressClaim",
    "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
}


class NoClient:
    """Nothing may be written in these tests: events are queued, never flushed."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected client call: {name}")


def throttled_metric(provider: Provider) -> float:
    for line in provider._render_metrics().decode().splitlines():
        if line.startswith("incluster_ipam_normal_events_throttled_total "):
            return float(line.split()[1])
    raise AssertionError("metric missing")


async def test_budget_from_options_throttles_normal_events_and_counts_them() -> None:
    provider = Provider(NoClient(), Options(normal_event_rate=0.0, normal_event_burst=2))  # type: ignore[arg-type]
    recorder = provider._recorder
    recorder._start_workers = lambda: None  # type: ignore[method-assign]
    for i in range(5):
        recorder.normal(
            {**CLAIM, "metadata": {**CLAIM["metadata"], "name": f"c{i}"}}, "AddressAllocated", "m"
        )
    recorder.warning(CLAIM, "PoolExhausted", "no room")
    assert recorder.throttled == 3
    assert throttled_metric(provider) == 3
    assert throttled_metric(provider) == 3  # counted once, however often it is scraped


async def test_unlimited_budget_throttles_nothing() -> None:
    provider = Provider(NoClient(), Options(normal_event_rate=None))  # type: ignore[arg-type]
    recorder = provider._recorder
    recorder._start_workers = lambda: None  # type: ignore[method-assign]
    for i in range(300):
        recorder.normal(
            {**CLAIM, "metadata": {**CLAIM["metadata"], "name": f"c{i}"}}, "AddressAllocated", "m"
        )
    assert recorder.throttled == 0
    assert throttled_metric(provider) == 0

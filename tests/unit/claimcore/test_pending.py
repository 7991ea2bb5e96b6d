"""Pending claims: counted from informer events, the oldest one's wait measured from when it was first seen
without an address; bound, deleting, paused, foreign or filtered-out claims are not pending."""

from typing import Any

from prometheus_client import CollectorRegistry

from incluster_ipam.capi.objects import claim_pool_key
from incluster_ipam.claimcore.pending import PendingClaims
from incluster_ipam.kube import DELETED

POOL_REF = {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "pool"}


def claim(name: str, *, address: str | None = None, **metadata: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": name, "namespace": "ns", **metadata},
        "spec": {"poolRef": POOL_REF},
    }
    if address is not None:
        obj["status"] = {"addressRef": {"name": address}}
    return obj


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gauges(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    return (
        registry.get_sample_value("incluster_ipam_claims_pending"),
        registry.get_sample_value("incluster_ipam_claims_pending_max_age_seconds"),
    )


def test_pending_claims_and_the_oldest_wait() -> None:
    registry, clock = CollectorRegistry(), Clock()
    pending = PendingClaims(registry, clock=clock)
    on_claim = pending.handler(claim_pool_key, None)
    assert gauges(registry) == (0, 0)
    on_claim("ADDED", None, claim("a"))
    clock.now = 130.0
    on_claim("ADDED", None, claim("b"))
    on_claim("ADDED", None, claim("c", address="c"))  # bound: not pending
    clock.now = 160.0
    on_claim("SYNC", claim("a"), claim("a"))  # a resync does not restart the wait
    assert gauges(registry) == (2, 60)
    on_claim("MODIFIED", claim("a"), claim("a", address="a"))
    assert gauges(registry) == (1, 30)
    on_claim("MODIFIED", claim("c", address="c"), claim("c"))  # its address went away: pending from now
    clock.now = 170.0
    assert gauges(registry) == (2, 40)
    on_claim(DELETED, claim("b"), None)
    assert gauges(registry) == (1, 10)
    on_claim("MODIFIED", claim("c"), claim("c", deletionTimestamp="2026-01-01T00:00:00Z"))
    assert gauges(registry) == (0, 0)


def test_paused_foreign_and_filtered_claims_are_not_pending() -> None:
    registry = CollectorRegistry()
    pending = PendingClaims(registry, clock=Clock())
    on_claim = pending.handler(claim_pool_key, "mine")
    labelled = {"labels": {"cluster.x-k8s.io/watch-filter": "mine"}}
    on_claim("ADDED", None, claim("paused", annotations={"cluster.x-k8s.io/paused": ""}, **labelled))
    on_claim("ADDED", None, claim("unlabelled"))
    foreign = claim("foreign", **labelled)
    foreign["spec"]["poolRef"] = {"apiGroup": "example.com", "kind": "OtherPool", "name": "x"}
    on_claim("ADDED", None, foreign)
    assert gauges(registry) == (0, 0)
    on_claim("ADDED", None, claim("mine", **labelled))
    assert gauges(registry)[0] == 1
    on_claim("MODIFIED", claim("mine", **labelled), claim("mine"))  # left the filter
    assert gauges(registry)[0] == 0

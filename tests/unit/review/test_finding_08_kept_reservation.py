"""Finding 8 of the December review: a reservation kept across an unknown-outcome create must not be handed
out again, unchecked, after the pool's spec changed (it would create an IPAddress outside its pool)."""

from __future__ import annotations

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.backend.book import PoolBook
from incluster_ipam.ipam import pool as ip_pool
from incluster_ipam.ipam.addresses import parse_address

KEY = "InClusterIPPool/ns/pool"


def _in_pool(address: str, *addresses: str, prefix: int = 24) -> bool:
    allocatable = ip_pool.allocatable_set(ip_pool.IPPoolSpec(addresses=addresses, prefix=prefix))
    return parse_address(address) in allocatable


def test_finding_08_a_kept_reservation_outside_a_shrunk_pool_is_not_reused() -> None:
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, IPPoolSpec(addresses=("10.0.0.10-10.0.0.20",), prefix=24)
    )
    kept = state.reserve("ns/c")
    assert kept.address == "10.0.0.10"
    # The create had an unknown outcome (500, reset): the reservation is kept. Meanwhile the admin shrinks
    # the pool; the retry must not write 10.0.0.10, which is no longer in the pool.
    state.update_spec(IPPoolSpec(addresses=("10.0.0.15-10.0.0.20",), prefix=24))
    retried = state.reserve("ns/c")
    assert _in_pool(retried.address, "10.0.0.15-10.0.0.20")


def test_finding_08_a_kept_reservation_that_became_the_gateway_is_not_reused() -> None:
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, IPPoolSpec(addresses=("10.0.0.10-10.0.0.20",), prefix=24)
    )
    assert state.reserve("ns/c").address == "10.0.0.10"
    state.update_spec(IPPoolSpec(addresses=("10.0.0.10-10.0.0.20",), prefix=24, gateway="10.0.0.10"))
    retried = state.reserve("ns/c")
    assert retried.address != "10.0.0.10"
    assert retried.gateway == "10.0.0.10"


def test_finding_08_a_kept_reservation_still_in_range_is_kept() -> None:
    """The fix must not give up a reservation that is still good: a create that did land is then adopted."""
    state, _ = PoolBook().upsert(
        KEY, IN_CLUSTER_IP_POOL, IPPoolSpec(addresses=("10.0.0.10-10.0.0.20",), prefix=24)
    )
    assert state.reserve("ns/c").address == "10.0.0.10"
    state.update_spec(IPPoolSpec(addresses=("10.0.0.5-10.0.0.20",), prefix=24))
    assert state.reserve("ns/c").address == "10.0.0.10"

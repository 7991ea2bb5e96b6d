"""Finding 15 of the December review: prefix pools treated every in-use IPAddress as one allocation-length
sub-prefix, so a shorter prefix reserved by hand (a /56 in a pool of /64s) was mostly handed out again.
Upstream masks each IPAddress with its own `spec.prefix`. (The integration test runs it through the
apiserver: tests/integration/review/test_finding_15_prefix_lengths.py.)"""

from __future__ import annotations

import ipaddress

from incluster_ipam.api.constants import IN_CLUSTER_PREFIX_POOL
from incluster_ipam.api.models import PrefixPoolSpec
from incluster_ipam.backend.book import PoolBook


def test_finding_15_a_shorter_in_use_prefix_blocks_all_of_its_sub_prefixes() -> None:
    state, _ = PoolBook().upsert(
        "InClusterPrefixPool/ns/p",
        IN_CLUSTER_PREFIX_POOL,
        PrefixPoolSpec(prefixes=("fd00:1::/48",), allocation_prefix_length=64),
    )
    state.observe("ns/blk", "fd00:1::", prefix=56)
    blocked = ipaddress.ip_network("fd00:1::/56")
    for i in range(3):
        grant = state.reserve(f"ns/c{i}")
        got = ipaddress.ip_network(f"{grant.address}/{grant.prefix}")
        assert not got.overlaps(blocked), f"{got} lies inside the reserved {blocked}"

"""Overlap warnings (spec §10.10): which pools meet, and what the warning says."""

from incluster_ipam.api.constants import (
    GLOBAL_IN_CLUSTER_IP_POOL,
    GLOBAL_IN_CLUSTER_PREFIX_POOL,
    IN_CLUSTER_IP_POOL,
    IN_CLUSTER_PREFIX_POOL,
    PoolKind,
)
from incluster_ipam.api.models import IPPoolSpec, Pool, PrefixPoolSpec
from incluster_ipam.api.overlap import MAX_NAMED_POOLS, overlap_warnings


def ip_pool(kind: PoolKind, name: str, namespace: str, *addresses: str, **extra: object) -> Pool:
    spec = IPPoolSpec.from_dict({"addresses": list(addresses), "prefix": 24, **extra})
    return Pool(kind, name, namespace if kind.namespaced else "", spec)


def test_namespaced_pools_meet_only_in_their_namespace_and_globals_meet_everyone() -> None:
    mine = ip_pool(IN_CLUSTER_IP_POOL, "a", "ns1", "10.0.0.10-10.0.0.20")
    same_ns = ip_pool(IN_CLUSTER_IP_POOL, "b", "ns1", "10.0.0.15-10.0.0.30")
    other_ns = ip_pool(IN_CLUSTER_IP_POOL, "c", "ns2", "10.0.0.0/24")
    global_pool = ip_pool(GLOBAL_IN_CLUSTER_IP_POOL, "g", "", "10.0.0.20")
    assert overlap_warnings(mine, [mine, same_ns, other_ns, global_pool]) == [
        'addresses overlap with GlobalInClusterIPPool "g" (10.0.0.20-10.0.0.20); '
        "claims of both pools may receive the same address",
        'addresses overlap with InClusterIPPool "ns1/b" (10.0.0.15-10.0.0.20); '
        "claims of both pools may receive the same address",
    ]
    warnings = overlap_warnings(global_pool, [mine, other_ns, global_pool])
    assert [w.split(" (")[0] for w in warnings] == [
        'addresses overlap with InClusterIPPool "ns1/a"',
        'addresses overlap with InClusterIPPool "ns2/c"',
    ]


def test_allocatable_sets_are_compared_not_raw_entries() -> None:
    # The network address is reserved and 10.0.0.5 excluded: no allocatable address is shared.
    mine = ip_pool(IN_CLUSTER_IP_POOL, "a", "ns", "10.0.0.0-10.0.0.4")
    other = ip_pool(
        IN_CLUSTER_IP_POOL,
        "b",
        "ns",
        "10.0.0.0",
        "10.0.0.5",
        excludedAddresses=["10.0.0.5"],
        allocateReservedIPAddresses=False,
    )
    assert overlap_warnings(mine, [other]) == []


def test_prefix_pools_count_and_families_never_mix() -> None:
    v6_ip = Pool(
        IN_CLUSTER_IP_POOL,
        "v6",
        "ns",
        IPPoolSpec.from_dict({"addresses": ["fd00::10-fd00::20"], "prefix": 64}),
    )
    prefixes = Pool(
        GLOBAL_IN_CLUSTER_PREFIX_POOL, "p", "", PrefixPoolSpec.from_dict({"prefixes": ["fd00::/48"]})
    )
    v4 = ip_pool(IN_CLUSTER_IP_POOL, "v4", "ns", "10.0.0.0/24")
    assert [w.split(" (")[0] for w in overlap_warnings(v6_ip, [prefixes, v4])] == [
        'addresses overlap with GlobalInClusterPrefixPool "p"'
    ]
    excluded = Pool(
        IN_CLUSTER_PREFIX_POOL,
        "x",
        "ns",
        PrefixPoolSpec.from_dict({"prefixes": ["fd00::/64"], "excludedPrefixes": ["fd00::/120"]}),
    )
    assert overlap_warnings(v6_ip, [excluded]) == []


def test_invalid_pools_are_skipped_and_many_overlaps_are_summarised() -> None:
    mine = ip_pool(GLOBAL_IN_CLUSTER_IP_POOL, "g", "", "10.0.0.0/24")
    broken = ip_pool(IN_CLUSTER_IP_POOL, "broken", "ns", "garbage")
    many = [
        ip_pool(IN_CLUSTER_IP_POOL, f"p{i}", "ns", f"10.0.0.{i}", f"10.0.0.{i + 100}") for i in range(1, 9)
    ]
    warnings = overlap_warnings(mine, [broken, *many])
    assert len(warnings) == MAX_NAMED_POOLS + 1
    assert warnings[0].startswith(
        'addresses overlap with InClusterIPPool "ns/p1" (10.0.0.1-10.0.0.1 and 1 more range)'
    )
    assert warnings[-1] == "addresses also overlap with 3 more pools"
    assert overlap_warnings(broken, many) == []

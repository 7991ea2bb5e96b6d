"""Pool usage from specs and IPAddresses: counts as the provider's status has them, free ranges, holders,
and which IPAddress holds an address in whatever spelling."""

from __future__ import annotations

import ipaddress

from incluster_ipam.ipam.addresses import AddressRange
from incluster_ipam.kubectl.usage import allocatable_in, held_text, holds, pool_usage, range_text, usages

from .objects import address, pool

WORKERS = pool("InClusterIPPool", "workers", "ns1", addresses=["10.0.0.10-10.0.0.20"], prefix=24)


def v6(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


def test_ipv4_counts_free_ranges_and_holders() -> None:
    held = [
        address("ns1", "b", "10.0.0.12", "workers", cluster="c1"),
        address("ns1", "a", "10.0.0.10", "workers"),
        address("ns1", "far", "10.0.0.99", "workers"),
        address("ns2", "elsewhere", "10.0.0.11", "workers"),  # another namespace's pool of that name
    ]
    usage = pool_usage(WORKERS, held)
    assert (usage.family, usage.total, usage.used, usage.free, usage.out_of_range) == ("IPv4", 11, 3, 9, 1)
    assert usage.utilisation == 2 / 11
    assert usage.ranges == ("10.0.0.10-10.0.0.20",)
    assert usage.free_ranges == ("10.0.0.11", "10.0.0.13-10.0.0.20")
    assert [(h.address, h.name, h.cluster, h.in_range) for h in usage.holdings] == [
        ("10.0.0.10", "a", "", True),
        ("10.0.0.12", "b", "c1", True),
        ("10.0.0.99", "far", "", False),
    ]


def test_ipv6_addresses_are_canonical_and_counts_exact() -> None:
    shared = pool("GlobalInClusterIPPool", "v6", addresses=["2001:db8::/64"], prefix=64)
    held = [address("ns", "x", "2001:DB8:0:0::00A", "v6", kind="GlobalInClusterIPPool", prefix=64)]
    usage = pool_usage(shared, held)
    assert usage.namespace == ""
    assert usage.total == 2**64 - 1  # the subnet-router anycast address is reserved
    assert (usage.used, usage.free) == (1, 2**64 - 2)
    assert usage.holdings[0].address == "2001:db8::a"
    assert usage.free_ranges == ("2001:db8::1-2001:db8::9", "2001:db8::b-2001:db8::ffff:ffff:ffff:ffff")


def test_prefix_pools_count_candidates_and_list_free_cidrs() -> None:
    nodes = pool(
        "InClusterPrefixPool", "nodes", "ns", prefixes=["2001:db8:1::/62"], allocationPrefixLength=64
    )
    held = [address("ns", "p", "2001:db8:1:1::", "nodes", kind="InClusterPrefixPool", prefix=64)]
    usage = pool_usage(nodes, held)
    assert (usage.total, usage.used, usage.free, usage.prefix) == (4, 1, 3, 64)
    assert usage.ranges == ("2001:db8:1::/62",)
    assert usage.free_ranges == ("2001:db8:1::/64", "2001:db8:1:2::/63")
    assert usage.holdings[0].address == "2001:db8:1:1::/64"


def test_an_unusable_spec_or_address_does_not_crash() -> None:
    broken = pool("InClusterIPPool", "broken", "ns1", addresses=["10.0.0.1-10.0.0.0"], prefix=24)
    usage = pool_usage(broken, [address("ns1", "a", "10.0.0.1", "broken")])
    assert usage.error
    assert usage.utilisation is None
    assert (usage.used, usage.out_of_range) == (1, 1)
    garbage = pool_usage(WORKERS, [address("ns1", "g", "not-an-ip", "workers")])
    assert (garbage.used, garbage.free, garbage.out_of_range) == (1, 11, 1)
    assert garbage.holdings[0].address == "not-an-ip"


def test_usages_sort_namespaced_pools_first_and_skip_foreign_kinds() -> None:
    foreign = {"apiVersion": "x/v1", "kind": "OtherPool", "metadata": {"name": "o", "namespace": "ns1"}}
    shared = pool("GlobalInClusterIPPool", "a-global", addresses=["10.9.0.0/30"], prefix=30)
    found = usages([shared, foreign, WORKERS], [])
    assert [(u.namespace, u.name) for u in found] == [("ns1", "workers"), ("", "a-global")]
    assert found[0].to_dict()["utilisation"] == 0.0
    assert set(found[0].to_dict(details=True)) >= {"ranges", "freeRanges", "holdings"}


def test_holds_matches_any_spelling_and_inside_prefixes() -> None:
    ip = address("ns", "x", "2001:db8::a", "v6", kind="GlobalInClusterIPPool", prefix=64)
    assert holds(ip, 6, v6("2001:DB8:0::0:A"))
    assert not holds(ip, 6, v6("2001:db8::b"))
    assert not holds(ip, 4, 0x0A000001)
    prefix = address("ns", "p", "2001:db8:1:1::", "nodes", kind="InClusterPrefixPool", prefix=64)
    assert holds(prefix, 6, v6("2001:db8:1:1::77"))
    assert not holds(prefix, 6, v6("2001:db8:1:2::"))
    v4 = address("ns", "a", "10.0.0.10", "workers")
    assert holds(v4, 4, 0x0A00000A)
    assert not holds(address("ns", "g", "garbage", "workers"), 4, 0)


def test_allocatable_in_names_the_pools_an_address_belongs_to() -> None:
    shared = pool("GlobalInClusterIPPool", "shared", addresses=["10.0.0.0/16"], prefix=16)
    assert allocatable_in([WORKERS, shared], 4, 0x0A00000F) == [
        "InClusterIPPool ns1/workers",
        "GlobalInClusterIPPool shared",
    ]
    assert allocatable_in([WORKERS, shared], 4, 0x0A000100) == ["GlobalInClusterIPPool shared"]
    assert allocatable_in([WORKERS], 6, 1) == []


def test_range_text_prefers_cidrs() -> None:
    assert range_text(AddressRange(4, 0x0A000000, 0x0A0000FF)) == "10.0.0.0/24"
    assert range_text(AddressRange(4, 0x0A000001, 0x0A000002)) == "10.0.0.1-10.0.0.2"
    assert range_text(AddressRange(4, 0x0A000002, 0x0A000003)) == "10.0.0.2/31"
    assert range_text(AddressRange(6, 5, 5)) == "::5"


def test_held_text_is_canonical() -> None:
    assert held_text(address("ns", "x", "2001:DB8:0::A", "v6", kind="GlobalInClusterIPPool")) == "2001:db8::a"
    prefix = address("ns", "p", "2001:db8:1:1:0::", "nodes", kind="InClusterPrefixPool", prefix=64)
    assert held_text(prefix) == "2001:db8:1:1::/64"
    assert held_text(address("ns", "g", "garbage", "workers")) == "garbage"

"""Allocatable set (§4.2, §10.5) and status counts (§5.7, §10.2)."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.ipam.addresses import AddressError, AddressRange, IPSet, MixedFamilyError, parse_entry
from incluster_ipam.ipam.pool import (
    STATUS_CAP,
    IPPoolSpec,
    PoolCounts,
    allocatable_set,
    count_pool,
    inferred_subnet,
)
from tests.unit.ipam.twin import (
    BASE,
    BITS,
    FAST,
    THOROUGH,
    addresses_in,
    entries_in,
    expand,
    ip,
    offsets,
    twin_allocatable,
    versions,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def spec(*addresses: str, prefix: int = 24, gateway: str | None = None, reserved: bool = False,
         excluded: tuple[str, ...] = ()) -> IPPoolSpec:  # fmt: skip
    return IPPoolSpec(tuple(addresses), prefix, gateway, reserved, excluded)


def members(s: IPSet) -> list[str]:
    return [str(ip(s.version, v)) for v in sorted(expand(s))]


# -- inferred subnet ----------------------------------------------------------------------------------


def test_inferred_subnet_uses_lowest_address_not_first_entry() -> None:
    s = IPSet.from_entries(["10.0.1.5", "10.0.0.200"])
    assert inferred_subnet(s, 24) == parse_entry("10.0.0.0/24")
    assert inferred_subnet(s, 0) == parse_entry("0.0.0.0/0")


@pytest.mark.parametrize(("version", "prefix"), [(4, 33), (4, -1), (6, 129), (4, 9999)])
def test_inferred_subnet_invalid_prefix(version: int, prefix: int) -> None:
    s = IPSet.from_entries(["10.0.0.1" if version == 4 else "fd00::1"])
    assert inferred_subnet(s, prefix) is None


def test_inferred_subnet_of_empty_set() -> None:
    assert inferred_subnet(IPSet.empty(4), 24) is None


# -- allocatable set: upstream examples ---------------------------------------------------------------


def test_prefix_zero_reserves_only_the_ends_of_the_address_space() -> None:
    s = allocatable_set(spec("192.168.0.3-192.168.0.10", prefix=0, gateway="192.168.0.1"))
    assert s.count() == 8
    assert V4("192.168.0.3") in s
    assert V4("192.168.0.10") in s


def test_mixed_entry_types() -> None:
    s = allocatable_set(
        spec("192.168.0.2", "192.168.0.3-192.168.0.4", "192.168.0.6/31", gateway="192.168.0.1")
    )
    assert members(s) == ["192.168.0.2", "192.168.0.3", "192.168.0.4", "192.168.0.6", "192.168.0.7"]


def test_network_address_is_reserved() -> None:
    s = allocatable_set(
        spec("192.168.0.0", "192.168.0.3-192.168.0.4", "192.168.0.6/31", gateway="192.168.0.1")
    )
    assert V4("192.168.0.0") not in s
    assert s.count() == 4


def test_broadcast_of_inferred_subnet_is_reserved() -> None:
    s = allocatable_set(
        spec("192.168.1.0", "192.168.0.255", "192.168.0.3-192.168.0.4", "192.168.0.6/31", "192.168.255.255",
             prefix=16, gateway="192.168.0.1")
    )  # fmt: skip
    assert V4("192.168.1.0") in s
    assert V4("192.168.0.255") in s
    assert V4("192.168.255.255") not in s
    assert s.count() == 6


def test_gateway_is_never_allocatable() -> None:
    s = allocatable_set(
        spec("192.168.0.1", "192.168.0.3-192.168.0.4", "192.168.0.6/31", gateway="192.168.0.1")
    )
    assert V4("192.168.0.1") not in s
    assert s.count() == 4


def test_allocate_reserved_keeps_network_and_broadcast_but_not_gateway() -> None:
    s = allocatable_set(
        spec("192.168.0.0", "192.168.0.1", "192.168.0.3-192.168.0.4", "192.168.0.6/31", "192.168.0.255",
             gateway="192.168.0.1", reserved=True)
    )  # fmt: skip
    assert members(s) == [
        "192.168.0.0", "192.168.0.3", "192.168.0.4", "192.168.0.6", "192.168.0.7", "192.168.0.255",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("excluded", "expected_count", "absent", "present"),
    [
        (("192.168.0.5", "192.168.0.6", "192.168.0.7"), 6, ["192.168.0.5", "192.168.0.7"], ["192.168.0.8"]),
        (("192.168.0.128/25",), None, ["192.168.0.128", "192.168.0.255"], ["192.168.0.127"]),
        (("192.168.0.2-192.168.0.20",), None, ["192.168.0.2", "192.168.0.20"], ["192.168.0.21"]),
    ],
)
def test_exclusions(
    excluded: tuple[str, ...], expected_count: int | None, absent: list[str], present: list[str]
) -> None:
    addresses = "192.168.0.0-192.168.0.10" if expected_count else "192.168.0.0/24"
    s = allocatable_set(spec(addresses, gateway="192.168.0.1", excluded=excluded))
    assert not any(V4(a) in s for a in absent)
    assert all(V4(a) in s for a in present)
    if expected_count:
        assert s.count() == expected_count


def test_exclusion_counts_upstream() -> None:
    by_subnet = allocatable_set(spec("192.168.0.0/24", gateway="192.168.0.1", excluded=("192.168.0.128/25",)))
    assert by_subnet.count() == 126
    assert by_subnet.contains_range(int(V4("192.168.0.2")), int(V4("192.168.0.127")))
    by_range = allocatable_set(
        spec("192.168.0.0/24", gateway="192.168.0.1", excluded=("192.168.0.2-192.168.0.20",))
    )
    assert by_range.count() == 234


def test_subnet_is_inferred_before_exclusions() -> None:
    """§4.2 step 3 uses the lowest address of the unexcluded union: here 10.0.0.0/30, not 10.0.0.4/30."""
    s = allocatable_set(spec("10.0.0.0/29", prefix=30, excluded=("10.0.0.0-10.0.0.3",)))
    assert members(s) == ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]


def test_exclusions_may_lie_outside_the_pool() -> None:
    s = allocatable_set(spec("10.0.0.10-10.0.0.20", excluded=("10.9.0.0/16", "10.0.0.20-10.0.0.40")))
    assert s.count() == 10


def test_ipv6_mixed_entries_and_gateway() -> None:
    s = allocatable_set(spec("fd01::2", "fd01::3-fd01::4", "fd01::6/127", prefix=120, gateway="fd01::1"))
    assert members(s) == ["fd01::2", "fd01::3", "fd01::4", "fd01::6", "fd01::7"]


def test_ipv6_first_address_is_reserved() -> None:
    s = allocatable_set(spec("fd01::0", "fd01::3-fd01::4", "fd01::6/127", prefix=120, gateway="fd01::1"))
    assert V6("fd01::") not in s
    assert s.count() == 4


def test_ipv6_last_address_stays_allocatable() -> None:
    s = allocatable_set(
        spec("fd01::ffff", "fd01::1:0", "fd01::3-fd01::4", "fd01::6/127", "fd01::ffff:ffff", prefix=112,
             gateway="fd01::1")
    )  # fmt: skip
    assert V6("fd01::ffff") in s
    assert V6("fd01::1:0") in s
    assert V6("fd01::ffff:ffff") in s
    assert s.count() == 7


def test_ipv6_allocate_reserved_keeps_anycast_not_gateway() -> None:
    s = allocatable_set(
        spec("fd01::0", "fd01::1", "fd01::3-fd01::4", "fd01::6/127", "fd01::ffff:ffff", prefix=120,
             gateway="fd01::1", reserved=True)
    )  # fmt: skip
    assert V6("fd01::") in s
    assert V6("fd01::1") not in s
    assert s.count() == 6


# -- allocatable set: where we differ (§10.5 RFC 3021) -----------------------------------------------


@pytest.mark.parametrize(
    ("addresses", "prefix", "expected"),
    [
        ("10.0.0.0/31", 31, ["10.0.0.0", "10.0.0.1"]),
        ("10.0.0.4-10.0.0.5", 31, ["10.0.0.4", "10.0.0.5"]),
        ("10.0.0.5", 32, ["10.0.0.5"]),
        ("10.0.0.0", 32, ["10.0.0.0"]),
    ],
)
def test_rfc3021_ipv4_31_and_32_reserve_nothing_unlike_upstream(
    addresses: str, prefix: int, expected: list[str]
) -> None:
    """§10.5: upstream would leave these pools empty (network and broadcast removed)."""
    assert members(allocatable_set(spec(addresses, prefix=prefix))) == expected


def test_rfc3021_still_removes_gateway() -> None:
    assert members(allocatable_set(spec("10.0.0.0/31", prefix=31, gateway="10.0.0.0"))) == ["10.0.0.1"]


def test_ipv4_30_still_reserves_network_and_broadcast() -> None:
    assert members(allocatable_set(spec("10.0.0.0/30", prefix=30))) == ["10.0.0.1", "10.0.0.2"]


def test_ipv6_128_still_reserves_its_only_address() -> None:
    """§10.5 is IPv4 only: an IPv6 /128 subnet keeps upstream's first-address rule."""
    assert allocatable_set(spec("fd00::5", prefix=128)).is_empty
    assert members(allocatable_set(spec("fd00::5", prefix=128, reserved=True))) == ["fd00::5"]


# -- allocatable set: invalid input never escapes as another exception ------------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (spec(), AddressError),
        (spec("10.0.0.1-"), AddressError),
        (spec("10.0.0.1", "fd00::1"), MixedFamilyError),
        (spec("10.0.0.1", excluded=("fd00::1",)), MixedFamilyError),
        (spec("10.0.0.1", excluded=("nope",)), AddressError),
        (spec("10.0.0.1", gateway="fd00::1"), MixedFamilyError),
        (spec("10.0.0.1", gateway="invalid"), AddressError),
        (spec("10.0.0.1", prefix=33), AddressError),
        (spec("fd00::1", prefix=129), AddressError),
        (spec("10.0.0.1", prefix=-1), AddressError),
        (IPPoolSpec("10.0.0.1", 24), AddressError),  # type: ignore[arg-type]  # a bare string
        (IPPoolSpec((None,), 24), AddressError),  # type: ignore[arg-type]
        (IPPoolSpec(("10.0.0.1",), "24"), AddressError),  # type: ignore[arg-type]
        (IPPoolSpec(("10.0.0.1",), 24, 7), AddressError),  # type: ignore[arg-type]
    ],
)
def test_invalid_specs_raise_address_error(bad: IPPoolSpec, error: type[AddressError]) -> None:
    with pytest.raises(error):
        allocatable_set(bad)


def test_empty_gateway_means_none() -> None:
    assert allocatable_set(spec("10.0.0.1", gateway="")).count() == 1


@THOROUGH
@given(
    st.lists(st.text(alphabet="0123456789abcdef.:/-", max_size=20), max_size=3),
    st.integers(-5, 140),
    st.one_of(st.none(), st.text(alphabet="0123456789abcdef.:", max_size=12)),
    st.booleans(),
    st.lists(st.text(alphabet="0123456789abcdef.:/-", max_size=20), max_size=2),
)
def test_allocatable_set_on_noise_raises_only_address_error(
    addresses: list[str], prefix: int, gateway: str | None, reserved: bool, excluded: list[str]
) -> None:
    try:
        result = allocatable_set(IPPoolSpec(tuple(addresses), prefix, gateway, reserved, tuple(excluded)))
    except AddressError:
        return
    assert result.version in (4, 6)


# -- allocatable set vs the twin --------------------------------------------------------------------------


@st.composite
def pool_specs(draw: st.DrawFn) -> IPPoolSpec:
    version = draw(versions)
    bits = BITS[version]
    addresses = draw(st.lists(entries_in(version), min_size=1, max_size=4))
    excluded = draw(st.lists(entries_in(version), max_size=3))
    prefix = draw(st.one_of(st.integers(bits - 9, bits), st.sampled_from([0, 1, bits - 2, bits - 1])))
    gateway = draw(st.one_of(st.none(), addresses_in(version)))
    return IPPoolSpec(tuple(addresses), prefix, gateway, draw(st.booleans()), tuple(excluded))


@THOROUGH
@given(pool_specs())
def test_allocatable_set_matches_twin(s: IPPoolSpec) -> None:
    expected = twin_allocatable(list(s.addresses), s.prefix, s.gateway, s.allocate_reserved, list(s.excluded))
    assert expand(allocatable_set(s)) == expected


# -- counts -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "total"),
    [
        (spec("10.0.0.10-10.0.0.20"), 11),
        (spec("10.0.0.10-10.0.0.20", gateway="10.0.0.10"), 10),
        (spec("10.0.0.10-10.0.0.20", gateway="10.0.0.1"), 11),  # gateway outside the addresses
        (spec("10.0.0.0-10.0.0.1", gateway="10.0.0.2"), 1),  # network address reserved
        (spec("10.0.0.254-10.0.0.255"), 1),  # broadcast reserved
        (spec("fe80::ffff", prefix=120), 1),
    ],
)
def test_status_table(pool: IPPoolSpec, total: int) -> None:
    """§5.7 status-controller table: an empty pool reports total = free."""
    counts = count_pool(allocatable_set(pool), [])
    assert counts.status() == {"total": total, "free": total, "used": 0, "outOfRange": 0}


def test_counts_with_used_addresses() -> None:
    s = allocatable_set(spec("10.0.0.10-10.0.0.20"))
    counts = count_pool(s, [V4("10.0.0.10"), V4("10.0.0.11"), int(V4("10.0.0.12"))])
    assert counts == PoolCounts(total=11, used=3, free=8, out_of_range=0)


def test_honest_free_ignores_out_of_range_unlike_upstream() -> None:
    """§10.2: upstream reports free = total - used = 9 here; the pool has 10 addresses free."""
    s = allocatable_set(spec("10.0.0.10-10.0.0.20"))
    counts = count_pool(s, [V4("10.0.0.10"), V4("10.0.0.50")])
    assert counts == PoolCounts(total=11, used=2, free=10, out_of_range=1)


def test_free_is_never_negative_unlike_upstream() -> None:
    """§10.2: after a shrink to one address with three in use outside, upstream would say -2."""
    s = allocatable_set(spec("10.0.0.10", prefix=32))
    counts = count_pool(s, [V4("10.0.0.50"), V4("10.0.0.51"), V4("10.0.0.52")])
    assert counts == PoolCounts(total=1, used=3, free=1, out_of_range=3)


def test_duplicates_count_as_used_once_per_ipaddress() -> None:
    s = allocatable_set(spec("10.0.0.10-10.0.0.20"))
    counts = count_pool(s, [V4("10.0.0.10"), V4("10.0.0.10"), V4("10.0.0.99"), V4("10.0.0.99")])
    assert counts == PoolCounts(total=11, used=4, free=10, out_of_range=1)


def test_other_family_in_use_is_out_of_range() -> None:
    s = allocatable_set(spec("10.0.0.10-10.0.0.20"))
    counts = count_pool(s, [V6("::a00:a")])  # same int as 10.0.0.10, other family
    assert counts == PoolCounts(total=11, used=1, free=11, out_of_range=1)


def test_invalid_in_use_value_raises() -> None:
    with pytest.raises(ValueError, match="not an IPv4"):
        count_pool(IPSet.from_entries(["10.0.0.1"]), [2**32])


def test_status_caps_every_field() -> None:
    big = count_pool(IPSet.from_entries(["fd00::/64"]), [V6("fd00::1")])
    assert big.total == 2**64
    assert big.status() == {"total": STATUS_CAP, "free": STATUS_CAP, "used": 1, "outOfRange": 0}
    assert PoolCounts(2**70, 2**70, 0, 2**70).status() == {
        "total": STATUS_CAP, "free": 0, "used": STATUS_CAP, "outOfRange": STATUS_CAP,
    }  # fmt: skip


@FAST
@given(versions.flatmap(lambda v: st.tuples(st.just(v), st.lists(entries_in(v), min_size=1, max_size=3),
                                             st.lists(offsets, max_size=12))))  # fmt: skip
def test_counts_match_twin(case: tuple[int, list[str], list[int]]) -> None:
    version, entries, used_offsets = case
    allocatable = IPSet.from_entries(entries)
    in_use = [BASE[version] + o for o in used_offsets]
    members_ = expand(allocatable)
    counts = count_pool(allocatable, in_use)
    assert counts.total == len(members_)
    assert counts.used == len(in_use)
    assert counts.out_of_range == len(set(in_use) - members_)
    assert counts.free == len(members_ - set(in_use))
    assert counts.free >= 0


def test_address_range_helpers() -> None:
    r = parse_entry("10.0.0.0/30")
    assert r.size == 4
    assert r.first_address == V4("10.0.0.0")
    assert r.last_address == V4("10.0.0.3")
    assert V4("10.0.0.3") in r
    assert V4("10.0.0.4") not in r
    assert V6("::a00:1") not in r
    assert r.covers(parse_entry("10.0.0.1-10.0.0.2"))
    assert not r.covers(parse_entry("10.0.0.1/29"))
    assert AddressRange.from_cidr(4, int(V4("10.0.0.3")), 30) == r

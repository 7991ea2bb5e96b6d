"""IPv6 prefix pools (§2.2, §3.5, §4.5, §5.7): examples and a brute-force enumeration twin."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incluster_ipam.ipam.addresses import AddressError, IPSet, MixedFamilyError
from incluster_ipam.ipam.pool import STATUS_CAP, PoolCounts
from incluster_ipam.ipam.prefix import (
    PrefixExhausted,
    PrefixLike,
    PrefixPool,
    PrefixPoolSpec,
    effective_allocation_prefix_length,
    parse_pool_prefix,
)
from tests.unit.ipam.twin import FAST, THOROUGH, entries_in

V6 = ipaddress.IPv6Address


def n(text: str) -> int:
    return int(V6(text))


def allocate_all(p: PrefixPool, limit: int = 10_000) -> list[str]:
    """Allocate until exhausted, feeding each result back as in use."""
    in_use: list[tuple[int, int]] = []
    out: list[str] = []
    for _ in range(limit):
        try:
            found = p.find_free(in_use)
        except PrefixExhausted:
            return out
        in_use.append((found, p.length))
        out.append(str(V6(found)))
    raise AssertionError("did not exhaust")


# -- examples (§4.5, §7) ----------------------------------------------------------------------------------


def test_fd00_62_gives_four_64s_in_order() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",)))
    assert p.count() == 4
    assert allocate_all(p) == ["fd00::", "fd00:0:0:1::", "fd00:0:0:2::", "fd00:0:0:3::"]


def test_fd06_48_at_56() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd06::/48",), 56))
    assert p.count() == 256
    first = p.find_free([])
    assert str(V6(first)) == "fd06::"
    assert str(V6(p.find_free([(first, 56)]))) == "fd06:0:0:100::"


def test_mixed_source_sizes_lowest_first() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd10::/48", "fd00:0:0:1::/64")))
    first = p.find_free([])
    assert str(V6(first)) == "fd00:0:0:1::"
    assert str(V6(p.find_free([(first, 64)]))) == "fd10::"
    assert p.count() == 2**16 + 1


def test_overlapping_prefixes_merge() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/63", "fd00::/62", "fd00:0:0:2::/64")))
    assert p.count() == 4
    assert p.aggregates() == ((n("fd00::"), 62),)


def test_exclusions_block_overlapping_candidates_gateway_does_not() -> None:
    p = PrefixPool.from_spec(
        PrefixPoolSpec(("fd00::/62",), gateway="fd00::1", excluded=("fd00:0:0:1::5", "fd00:0:0:2::/64"))
    )
    assert p.count() == 2
    assert allocate_all(p) == ["fd00::", "fd00:0:0:3::"]
    assert p.gateway_in_prefixes()


def test_exhaustion_message_and_status() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/64",)))
    used = [(p.find_free([]), 64)]
    with pytest.raises(PrefixExhausted, match=r"^no prefix available$"):
        p.find_free(used)
    assert p.counts(used).status() == {"total": 1, "free": 0, "used": 1, "outOfRange": 0}


def test_in_use_prefix_of_another_length_blocks_what_it_overlaps() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",)))
    assert str(V6(p.find_free([(n("fd00::"), 63)]))) == "fd00:0:0:2::"
    assert str(V6(p.find_free([(n("fd00::1"), 128)]))) == "fd00:0:0:1::"  # a /128 blocks its /64
    # An IPv4 address referencing the pool blocks nothing (and counts as out of range).
    assert p.find_free([(ipaddress.IPv4Address("10.0.0.0"), 8)]) == n("fd00::")


def test_in_use_address_is_masked() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/63",)))
    assert str(V6(p.find_free([(n("fd00::abcd"), 64)]))) == "fd00:0:0:1::"


def test_status_counts_64() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",)))
    used = [(n("fd00::"), 64), (n("fd00:0:0:1::"), 64)]
    assert p.counts(used) == PoolCounts(total=4, used=2, free=2, out_of_range=0)


def test_status_counts_custom_length() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/56",), 60))
    assert p.counts([(n("fd00::"), 60)]) == PoolCounts(total=16, used=1, free=15, out_of_range=0)


def test_status_out_of_range_after_shrink() -> None:
    """An allocation outside the shrunk pool is out of range and does not reduce free."""
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/63",)))
    used = [(n("fd00::"), 64), (n("fd00:0:0:2::"), 64)]
    assert p.counts(used) == PoolCounts(total=2, used=2, free=1, out_of_range=1)


def test_status_out_of_range_after_exclusion() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/63",), excluded=("fd00::10",)))
    used = [(n("fd00::"), 64)]
    assert p.counts(used) == PoolCounts(total=1, used=1, free=1, out_of_range=1)


def test_status_wrong_length_or_family_is_out_of_range() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",)))
    used: list[PrefixLike] = [
        (n("fd00::"), 128),
        (ipaddress.IPv4Address("10.0.0.1"), 32),
        (n("fd00:0:0:1::"), 200),
    ]
    assert p.counts(used) == PoolCounts(total=4, used=3, free=4, out_of_range=3)


def test_huge_pool_counts_are_exact_and_capped() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("2000::/3",), 128))
    assert p.count() == 2**125
    assert p.count_capped() == STATUS_CAP
    assert p.find_free([(n("2000::"), 4)]) == n("3000::")


def test_descent_is_fast_in_huge_space() -> None:
    """A /16 carved into /64s (2**48 candidates) with the first 2000 taken: descent, not enumeration."""
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/16",)))
    used = [(n("fd00::") + (i << 64), 64) for i in range(2000)]
    assert p.find_free(used) == n("fd00::") + (2000 << 64)


def test_is_allocatable() -> None:
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",), excluded=("fd00:0:0:3::1",)))
    assert p.is_allocatable(n("fd00:0:0:1::"), 64)
    assert p.is_allocatable(V6("fd00:0:0:1::"), 64)
    assert p.is_allocatable(n("fd00:0:0:1::1"), 64)  # masked first
    assert not p.is_allocatable(n("fd00:0:0:1::"), 63)  # wrong length
    assert not p.is_allocatable(n("fd00:0:0:4::"), 64)  # outside
    assert not p.is_allocatable(n("fd00:0:0:3::"), 64)  # overlaps an exclusion
    assert not p.is_allocatable(ipaddress.IPv4Address("10.0.0.0"), 64)


# -- spec validation (§3.5) -----------------------------------------------------------------------------


def test_effective_length_default() -> None:
    assert effective_allocation_prefix_length(0) == 64
    assert effective_allocation_prefix_length(56) == 56
    assert PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",), 0)).length == 64


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("fd00::1", "provided entry is not a valid IPv6 CIDR"),
        ("fd00::/65x", "provided entry is not a valid IPv6 CIDR"),
        ("10.0.0.0/8", "only IPv6 prefixes are supported"),
        ("fd00::1/64", "CIDR must be network-aligned"),
        ("fd00::/72", "CIDR prefix length must be <= allocationPrefixLength (64)"),
    ],
)
def test_parse_pool_prefix_reasons(entry: str, reason: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_pool_prefix(entry, 64)
    assert err.value.reason == reason
    assert err.value.entry == entry


@pytest.mark.parametrize(
    "bad",
    [
        PrefixPoolSpec(()),
        PrefixPoolSpec(("fd00::/62",), 129),
        PrefixPoolSpec(("fd00::/62",), -1),
        PrefixPoolSpec(("fd00::1/64",)),
        PrefixPoolSpec(("fd00::/62",), gateway="10.0.0.1"),
        PrefixPoolSpec(("fd00::/62",), gateway="nope"),
        PrefixPoolSpec(("fd00::/62",), excluded=("10.0.0.1",)),
        PrefixPoolSpec(("fd00::/62",), excluded=("fd00::/200",)),
        PrefixPoolSpec("fd00::/62"),  # type: ignore[arg-type]  # a bare string
    ],
)
def test_invalid_prefix_specs(bad: PrefixPoolSpec) -> None:
    with pytest.raises(AddressError):
        PrefixPool.from_spec(bad)


def test_constructor_guards() -> None:
    with pytest.raises(MixedFamilyError):
        PrefixPool(IPSet.from_entries(["10.0.0.0/8"]), 24)
    with pytest.raises(AddressError, match="union of /64 blocks"):
        PrefixPool(IPSet.from_entries(["fd00::1-fd00::5"]), 64)
    with pytest.raises(ValueError, match="not an IPv6 prefix"):
        PrefixPool.from_spec(PrefixPoolSpec(("fd00::/62",))).find_free([(n("fd00::"), 129)])


# -- brute force at small scale -------------------------------------------------------------------------

BASE = n("fd00::")  # universe fd00::/120 (256 addresses), allocation lengths 121..128


@st.composite
def prefix_cases(draw: st.DrawFn) -> tuple[PrefixPool, list[tuple[int, int]]]:
    length = draw(st.integers(121, 128))
    prefixes = []
    for _ in range(draw(st.integers(1, 4))):
        plen = draw(st.integers(120, length))
        size = 1 << (128 - plen)
        network = BASE + draw(st.integers(0, (256 // size) - 1)) * size
        prefixes.append(f"{V6(network)}/{plen}")
    excluded = draw(st.lists(entries_in(6), max_size=3))
    in_use = draw(
        st.lists(st.tuples(st.integers(0, 255).map(lambda o: BASE + o), st.integers(118, 128)), max_size=8)
    )
    pool = PrefixPool.from_spec(PrefixPoolSpec(tuple(prefixes), length, None, tuple(excluded)))
    return pool, in_use


def brute_candidates(p: PrefixPool) -> list[int]:
    """Every /length block of the universe inside the pool and clear of exclusions, by enumeration."""
    size = 1 << (128 - p.length)
    out = []
    for network in range(BASE, BASE + 256, size):
        last = network + size - 1
        if all(v in p.pool for v in range(network, last + 1)) and not any(
            v in p.excluded for v in range(network, last + 1)
        ):
            out.append(network)
    return out


@THOROUGH
@given(prefix_cases())
def test_prefix_pool_matches_brute_force(case: tuple[PrefixPool, list[tuple[int, int]]]) -> None:
    p, in_use = case
    candidates = brute_candidates(p)
    assert p.count() == len(candidates)
    blocked: set[int] = set()
    for address, plen in in_use:
        size = 1 << (128 - plen)
        start = address // size * size
        blocked |= set(range(start, start + size))
    size = 1 << (128 - p.length)
    free = [c for c in candidates if not blocked & set(range(c, c + size))]
    if free:
        assert p.find_free(in_use) == free[0]
    else:
        with pytest.raises(PrefixExhausted):
            p.find_free(in_use)
    for network in range(BASE, BASE + 256, size):
        assert p.is_allocatable(network, p.length) == (network in candidates)
    counts = p.counts(in_use)
    allocatable_in_use = sum(1 for a, plen in in_use if plen == p.length and (a // size * size) in candidates)
    assert counts.used == len(in_use)
    assert counts.out_of_range == len(in_use) - allocatable_in_use
    assert counts.free == max(0, len(candidates) - allocatable_in_use)


@FAST
@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=4),
    st.lists(st.integers(0, 255), max_size=40),
)
def test_slash56_at_64_matches_brute_force(excl: list[tuple[int, int]], used_idx: list[int]) -> None:
    """Realistic magnitudes (a /56 of /64s, big ints) with exclusions at arbitrary addresses."""
    base = n("fd00:0:0:ab00::")
    excluded = tuple(
        f"{V6(base + (min(a, b) << 64) + 7)}-{V6(base + (max(a, b) << 64) + 9)}" for a, b in excl
    )
    p = PrefixPool.from_spec(PrefixPoolSpec(("fd00:0:0:ab00::/56",), 64, None, excluded))
    blocked_idx = {i for a, b in excl for i in range(min(a, b), max(a, b) + 1)}
    candidates = [i for i in range(256) if i not in blocked_idx]
    assert p.count() == len(candidates)
    free = [i for i in candidates if i not in set(used_idx)]
    in_use = [(base + (i << 64), 64) for i in used_idx]
    if free:
        assert p.find_free(in_use) == base + (free[0] << 64)
    else:
        with pytest.raises(PrefixExhausted):
            p.find_free(in_use)

"""Parsing, formatting and IPSet algebra (spec §4.1, §4.4), against examples and the stdlib twin."""

import ipaddress
import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from incluster_ipam.ipam import _intervals
from incluster_ipam.ipam.addresses import (
    AddressError,
    AddressRange,
    IPSet,
    MixedFamilyError,
    address_value,
    format_address,
    overlap,
    parse_address,
    parse_entry,
)
from incluster_ipam.ipam.pool import STATUS_CAP, capped
from tests.unit.ipam.twin import (
    FAST,
    THOROUGH,
    entries_in,
    expand,
    interval_lists,
    twin_entries,
    twin_entry,
    versions,
)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


# -- parse_address ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", V4("10.0.0.1")),
        ("0.0.0.0", V4("0.0.0.0")),
        ("255.255.255.255", V4("255.255.255.255")),
        ("fd00::1", V6("fd00::1")),
        ("FD00::1", V6("fd00::1")),
        ("::", V6("::")),
        ("0001:0::1", V6("1::1")),
        ("::ffff:10.0.0.1", V6("::ffff:a00:1")),  # IPv4-mapped stays IPv6, as in Go netip
        ("::10.0.0.1", V6("::a00:1")),
    ],
)
def test_parse_address_accepts(text: str, expected: object) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 10.0.0.1",
        "10.0.0.1 ",
        "10.0.0.1\n",
        "10. 0.0.1",
        "010.0.0.1",  # IPv4 leading zeros are rejected, as in Go netip
        "10.0.0.01",
        "10.0.0",
        "10.0.0.256",
        "10.0.0.1.1",
        "1.2.3.4/32",
        "10.0.0.1-10.0.0.2",
        "fe80::1%eth0",  # zones: rejected (documented choice)
        "fe80::1%1",
        "::ffff:010.0.0.1",
        "1:2:3:4:5:6:7:8:9",
        "12345::",
        ":::",
        "g::1",
        "１.2.3.4",  # non-ASCII digits
        "0x0a.0.0.1",
        "invalid",
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_address(text)
    assert err.value.entry == text


def test_parse_address_rejects_non_string() -> None:
    with pytest.raises(AddressError):
        parse_address(167772161)  # type: ignore[arg-type]


@FAST
@given(versions, st.data())
def test_format_parse_round_trip(version: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, (1 << (32 if version == 4 else 128)) - 1))
    text = format_address(version, value)
    parsed = parse_address(text)
    assert parsed.version == version
    assert int(parsed) == value
    if version == 4 or value >> 32 != 0xFFFF:
        assert text == str(ipaddress.ip_address(value) if version == 4 else V6(value))


def test_format_ipv4_mapped_like_go() -> None:
    assert format_address(6, int(V6("::ffff:a00:1"))) == "::ffff:10.0.0.1"
    assert format_address(6, int(V6("::a00:1"))) == "::a00:1"
    assert format_address(6, int(V6("fd00:0:0:1::"))) == "fd00:0:0:1::"


@THOROUGH
@given(st.text(alphabet="0123456789abcdefABCDEF.:%/- xg\n", max_size=24))
def test_parse_address_agrees_with_stdlib_on_noise(text: str) -> None:
    """Whatever we accept the stdlib accepts identically; we reject only zones beyond it."""
    try:
        ours = parse_address(text)
    except AddressError:
        try:
            theirs = ipaddress.ip_address(text)
        except ValueError:
            return
        assert "%" in text, f"stdlib accepts {text!r} ({theirs}) but we reject it"
        return
    assert ipaddress.ip_address(text) == ours


def _slow_value(text: object) -> tuple[int, int]:
    parsed = parse_address(text)  # type: ignore[arg-type]
    return parsed.version, int(parsed)


octets = st.one_of(
    st.integers(0, 300).map(str),
    st.integers(0, 300).map(lambda n: f"0{n}"),  # leading zeros are refused
    st.sampled_from(["", "00", "1a", " 1", "1 ", "+1", "-1", "٣", "1\n", "0x1", "1000"]),
)


@THOROUGH
@given(st.one_of(st.lists(octets, min_size=3, max_size=5).map(".".join), st.text(max_size=20)))
@example("10.0.0.1")
@example("255.255.255.255")
@example("256.0.0.1")
@example("01.2.3.4")
@example("1.2.3.٣")
@example("::ffff:1.2.3.4")
@example("1.2.3.4.")
def test_address_value_is_parse_address_without_the_object(text: str) -> None:
    try:
        expected: tuple[int, int] | str = _slow_value(text)
    except AddressError as exc:
        expected = str(exc)
    try:
        got: tuple[int, int] | str = address_value(text)
    except AddressError as exc:
        got = str(exc)
    assert got == expected


def test_address_value_of_non_strings_is_the_same_error() -> None:
    with pytest.raises(AddressError, match="not a string"):
        address_value(167772161)  # type: ignore[arg-type]


# -- parse_entry ----------------------------------------------------------------------------------------


def test_entry_cidr_masks_host_bits() -> None:
    assert parse_entry("10.0.0.1/24") == parse_entry("10.0.0.0-10.0.0.255")
    assert str(parse_entry("10.0.0.1/24")) == "10.0.0.0-10.0.0.255"


def test_entry_forms() -> None:
    assert parse_entry("10.0.0.5") == AddressRange(4, int(V4("10.0.0.5")), int(V4("10.0.0.5")))
    assert str(parse_entry("10.0.0.5")) == "10.0.0.5"
    assert parse_entry("10.0.0.5-10.0.0.5").size == 1
    assert parse_entry("fd00::/64").size == 2**64
    assert parse_entry("0.0.0.0/0").size == 2**32
    assert str(parse_entry("fd00::1-fd00::ff")) == "fd00::1-fd00::ff"
    assert parse_entry("::ffff:10.0.0.0/120").version == 6


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.10-10.0.0.5",  # §4.1: start above end
        "10.0.0.1 - 10.0.0.5",
        "10.0.0.1-fd00::1",
        "10.0.0.1/33",
        "fd00::/129",
        "10.0.0.1/",
        "10.0.0.1/024",  # Go rejects leading zeros in the length
        "10.0.0.1/+24",
        "10.0.0.1/-1",
        "10.0.0.1/24/1",
        "10.0.0.1/2x",
        "fe80::1%eth0/64",
        "/24",
        "-",
        # upstream AddressesToIPSet rejections
        "192.168.1.2612",
        "192.168.1.2-192.168.1.4-",
        "192.168.1.2-192.168.1.4-192.168.1.9",
        "192.168.1.4-192.168.1.2",
        "192.168.1.4/21-192.168.1.2",
        "192.168.1.4/-192.168.1.2",
    ],
)
def test_entry_rejects(text: str) -> None:
    with pytest.raises(AddressError) as err:
        parse_entry(text)
    assert err.value.entry == text


@FAST
@given(versions.flatmap(entries_in))
def test_entry_matches_stdlib_twin(text: str) -> None:
    r = parse_entry(text)
    assert set(range(r.first, r.last + 1)) == twin_entry(text)


@THOROUGH
@given(st.text(alphabet="0123456789abcdef.:/-% ", max_size=30))
def test_entry_never_raises_anything_else(text: str) -> None:
    entry: str | None = None
    try:
        r = parse_entry(text)
    except AddressError as err:
        entry = err.entry
    else:
        assert r.first <= r.last
        return
    assert entry == text


# -- IPSet construction and queries ----------------------------------------------------------------


def test_from_entries_examples_upstream_v4() -> None:
    s = IPSet.from_entries(["192.168.1.25", "192.168.1.26-192.168.1.28", "192.168.2.16/30"])
    inside = ["192.168.1.25", "192.168.1.26", "192.168.1.27", "192.168.1.28", "192.168.2.16", "192.168.2.19"]
    outside = ["192.168.1.29", "192.168.2.15", "192.168.2.20"]
    assert all(V4(a) in s for a in inside)
    assert not any(V4(a) in s for a in outside)
    assert s.count() == 8


def test_from_entries_examples_upstream_v6() -> None:
    s = IPSet.from_entries(["fe80::10/127", "fe80::13-fe80::14", "fe80::16"])
    assert [V6(f"fe80::{x}") in s for x in ("9", "10", "11", "12", "13", "14", "15", "16")] == [
        False, True, True, False, True, True, False, True,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["192.168.1.1/24", "192.168.2.1/31"], 258),  # §4.4
        (["10.0.0.1-10.0.0.10", "10.0.0.5-10.0.0.15"], 15),  # §4.4 overlapping ranges
        (["10.0.0.1", "10.0.0.1", "10.0.0.1/32"], 1),
        (["10.0.0.0/8"], 2**24),
        (["0.0.0.0/0"], 2**32),
        (["fd00::/64"], 2**64),
        (["::/0"], 2**128),
        (["fe80::1/65"], 2**63),
    ],
)
def test_count_examples(entries: list[str], expected: int) -> None:
    assert IPSet.from_entries(entries).count() == expected


def test_count_fe80_65_is_capped_for_status() -> None:
    """§4.4: fe80::1/65 has 2**63 addresses, one more than the status can hold."""
    n = IPSet.from_entries(["fe80::1/65"]).count()
    assert capped(n) == STATUS_CAP == 2**63 - 1
    assert capped(n - 1) == n - 1


def test_from_entries_mixed_families() -> None:
    with pytest.raises(MixedFamilyError) as err:
        IPSet.from_entries(["10.0.0.1", "fd00::1", "10.0.0.2"])
    assert err.value.entry == "fd00::1"
    with pytest.raises(MixedFamilyError):
        IPSet.from_entries(["fd00::1"], version=4)


def test_from_entries_parse_errors_before_family_errors() -> None:
    with pytest.raises(AddressError) as err:
        IPSet.from_entries(["10.0.0.1", "fd00::1", "bogus"])
    assert type(err.value) is AddressError
    assert err.value.entry == "bogus"


def test_from_entries_refuses_a_bare_string() -> None:
    with pytest.raises(AddressError):
        IPSet.from_entries("10.0.0.1")


def test_from_entries_empty_needs_a_version() -> None:
    with pytest.raises(AddressError):
        IPSet.from_entries([])
    assert IPSet.from_entries([], version=6) == IPSet.empty(6)


def test_queries() -> None:
    s = IPSet.from_entries(["10.0.0.5-10.0.0.9", "10.0.0.20"])
    assert s.lowest() == int(V4("10.0.0.5"))
    assert s.highest() == int(V4("10.0.0.20"))
    assert s.contains_range(int(V4("10.0.0.6")), int(V4("10.0.0.9")))
    assert not s.contains_range(int(V4("10.0.0.6")), int(V4("10.0.0.10")))
    assert V6("::a00:5") not in s  # the other family is never contained
    with pytest.raises(TypeError):
        assert "10.0.0.5" not in s  # text is not an address value: a mistake, not a miss
    assert str(s) == "10.0.0.5-10.0.0.9, 10.0.0.20"
    assert eval(repr(s), {"IPSet": IPSet}) == s
    assert s.ranges() == (parse_entry("10.0.0.5-10.0.0.9"), parse_entry("10.0.0.20"))
    assert IPSet.empty(4).is_empty
    assert not IPSet.empty(4)
    assert IPSet.empty(4).lowest() is None
    assert not s.is_empty
    assert s
    assert not hasattr(s, "__len__")
    assert len({s, IPSet.from_entries(["10.0.0.20", "10.0.0.5-10.0.0.9"])}) == 1
    assert IPSet.empty(4) != IPSet.empty(6)


def test_cidrs_minimal_cover() -> None:
    s = IPSet.from_entries(["10.0.0.1-10.0.0.6"])
    blocks = [(format_address(4, n), length) for n, length in s.cidrs()]
    assert blocks == [("10.0.0.1", 32), ("10.0.0.2", 31), ("10.0.0.4", 31), ("10.0.0.6", 32)]
    assert IPSet.from_entries(["::/0"]).cidrs() == ((0, 0),)


@FAST
@given(interval_lists(255))
def test_cidrs_cover_exactly(pairs: list[tuple[int, int]]) -> None:
    s = IPSet(4, pairs)
    covered: set[int] = set()
    for network, length in s.cidrs():
        size = 1 << (32 - length)
        assert network % size == 0
        block = set(range(network, network + size))
        assert not covered & block
        covered |= block
    assert covered == expand(s)
    # Minimal: no two consecutive blocks of one length could merge into an aligned parent.
    blocks = s.cidrs()
    for (n1, l1), (n2, l2) in itertools.pairwise(blocks):
        assert not (l1 == l2 and n2 == n1 + (1 << (32 - l1)) and n1 % (1 << (33 - l1)) == 0)


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="version"):
        IPSet(5)
    with pytest.raises(ValueError, match="interval"):
        IPSet(4, [(5, 4)])
    with pytest.raises(ValueError, match="interval"):
        IPSet(4, [(0, 2**32)])
    with pytest.raises(MixedFamilyError):
        IPSet(4, [parse_entry("fd00::1")])
    with pytest.raises(ValueError, match="range"):
        AddressRange(4, 3, 2)


# -- set algebra against Python sets --------------------------------------------------------------------


@THOROUGH
@given(interval_lists(), interval_lists())
@example([(0, 5)], [(6, 9)])  # adjacent across the operands: the union must merge them
@example([(6, 9), (20, 30)], [(0, 5), (10, 19)])
@example([(0, 63)], [(1, 1), (3, 3), (62, 63)])
def test_algebra_matches_python_sets(a_pairs: list[tuple[int, int]], b_pairs: list[tuple[int, int]]) -> None:
    a, b = IPSet(4, a_pairs), IPSet(4, b_pairs)
    sa, sb = expand(a), expand(b)
    assert sa == {v for f, la in a_pairs for v in range(f, la + 1)}
    assert expand(a | b) == sa | sb
    assert expand(a & b) == sa & sb
    assert expand(a - b) == sa - sb
    assert a.overlaps(b) == bool(sa & sb)
    assert overlap(a, b) == a & b
    assert a.count() == len(sa)
    for s in (a, b, a | b, a & b, a - b):
        pairs = s.intervals()
        assert all(f <= la for f, la in pairs)
        assert all(pairs[i][1] + 1 < pairs[i + 1][0] for i in range(len(pairs) - 1)), "not normal form"
    for v in range(-1, 66):
        assert (v in a) == (v in sa)
    for f, la in b_pairs:
        assert a.contains_range(f, la) == set(range(f, la + 1)).issubset(sa)
        assert a.overlaps_range(f, la) == bool(set(range(f, la + 1)) & sa)


@FAST
@given(interval_lists(), interval_lists(), st.integers(0, 2**64))
def test_algebra_with_big_ipv6_values(
    a_pairs: list[tuple[int, int]], b_pairs: list[tuple[int, int]], shift: int
) -> None:
    top = 2**128 - 64
    offset = min(shift * 2**60, top)
    a = IPSet(6, [(f + offset, la + offset) for f, la in a_pairs])
    b = IPSet(6, [(f + offset, la + offset) for f, la in b_pairs])
    sa, sb = expand(a), expand(b)
    assert expand(a - b) == sa - sb
    assert expand(a | b) == sa | sb
    assert expand(a & b) == sa & sb


@FAST
@given(versions.flatmap(lambda v: st.lists(entries_in(v), min_size=1, max_size=5)))
def test_from_entries_matches_twin(entries: list[str]) -> None:
    assert expand(IPSet.from_entries(entries)) == twin_entries(entries)


def test_overlap_across_families_is_empty() -> None:
    a = IPSet.from_entries(["10.0.0.0/24"])
    b = IPSet.from_entries(["::ffff:10.0.0.0/120"])
    assert overlap(a, b) == IPSet.empty(4)
    assert not a.overlaps(b)
    with pytest.raises(MixedFamilyError):
        a.union(b)


def test_overlap_of_two_pools_names_shared_addresses() -> None:
    """§10.10: two pools sharing 10.0.0.8-10.0.0.15 (warned about, not rejected, by the webhook)."""
    a = IPSet.from_entries(["10.0.0.0-10.0.0.15"])
    b = IPSet.from_entries(["10.0.0.8/29", "10.0.1.0/24"])
    assert str(overlap(a, b)) == "10.0.0.8-10.0.0.15"
    assert overlap(a, b).count() == 8


def test_from_addresses_groups_runs() -> None:
    s = IPSet.from_addresses(4, [5, 3, 4, 9, V4("0.0.0.10"), 4])
    assert s.intervals() == ((3, 5), (9, 10))
    assert _intervals.from_sorted_points([]) == []

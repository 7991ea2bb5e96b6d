"""Brute-force twin of the address core, built on stdlib `ipaddress` and Python sets of ints.

Only usable on small pools (it enumerates addresses); the property tests compare the real code with it.
Also holds the hypothesis strategies and settings shared by the ipam tests.
"""

import ipaddress

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from incluster_ipam.ipam.addresses import IPSet

# Examples are cheap, but the machine is small and busy: keep the whole suite within seconds.
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THOROUGH = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BITS = {4: 32, 6: 128}
# Small universes: 256 addresses of each family, so that every set can be enumerated.
BASE = {4: int(ipaddress.IPv4Address("10.0.0.0")), 6: int(ipaddress.IPv6Address("fd00::"))}
UNIVERSE = 256


def ip(version: int, value: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)


def expand(s: IPSet) -> set[int]:
    """Every address of a (small) IPSet."""
    return {v for first, last in s.intervals() for v in range(first, last + 1)}


# -- twin of parse_entry / allocatable_set ------------------------------------------------------------


def twin_entry(text: str) -> set[int]:
    """Addresses of one well-formed entry, computed with ipaddress only."""
    if "-" in text:
        a, b = (ipaddress.ip_address(t) for t in text.split("-"))
        return set(range(int(a), int(b) + 1))
    if "/" in text:
        net = ipaddress.ip_network(text, strict=False)
        return set(range(int(net.network_address), int(net.broadcast_address) + 1))
    return {int(ipaddress.ip_address(text))}


def twin_entries(entries: list[str]) -> set[int]:
    out: set[int] = set()
    for e in entries:
        out |= twin_entry(e)
    return out


def twin_allocatable(
    addresses: list[str], prefix: int, gateway: str | None, allocate_reserved: bool, excluded: list[str]
) -> set[int]:
    """§4.2 with our §10.5 rule: IPv4 /31 and /32 reserve nothing; IPv6 reserves the first address."""
    pool = twin_entries(addresses)
    result = pool - twin_entries(excluded)
    if not allocate_reserved:
        lowest = ipaddress.ip_address(min(pool))
        net = ipaddress.ip_network(f"{lowest}/{prefix}", strict=False)
        if net.version == 6:
            result.discard(int(net.network_address))
        elif net.prefixlen <= 30:
            result -= {int(net.network_address), int(net.broadcast_address)}
    if gateway:
        result.discard(int(ipaddress.ip_address(gateway)))
    return result


# -- strategies ---------------------------------------------------------------------------------------

versions = st.sampled_from([4, 6])
offsets = st.integers(0, UNIVERSE - 1)


def addresses_in(version: int) -> st.SearchStrategy[str]:
    return offsets.map(lambda o: str(ip(version, BASE[version] + o)))


def entries_in(version: int) -> st.SearchStrategy[str]:
    """Single addresses, ranges and CIDRs (host bits often set) inside the family's small universe."""
    base, bits = BASE[version], BITS[version]
    single = addresses_in(version)
    ranges = st.tuples(offsets, offsets).map(
        lambda ab: f"{ip(version, base + min(ab))}-{ip(version, base + max(ab))}"
    )
    cidrs = st.tuples(offsets, st.integers(bits - 6, bits)).map(
        lambda ol: f"{ip(version, base + ol[0])}/{ol[1]}"
    )
    return st.one_of(single, ranges, cidrs)


def interval_lists(limit: int = 63) -> st.SearchStrategy[list[tuple[int, int]]]:
    pair = st.tuples(st.integers(0, limit), st.integers(0, limit)).map(lambda ab: (min(ab), max(ab)))
    return st.lists(pair, max_size=6)

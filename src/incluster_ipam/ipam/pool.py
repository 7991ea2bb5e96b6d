"""The allocatable set of an IP pool (spec §4.2) and its status counts (§5.7, §10.2).

Differences from upstream, on purpose (spec §10):
- IPv4 subnets of length 31 and 32 reserve nothing (RFC 3021): they have no network or broadcast address.
  Upstream removes both ends and leaves such pools empty.
- `free` counts allocatable addresses that are not in use, so it is never negative and out-of-range
  addresses do not reduce it (upstream reports total - used).
"""

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from incluster_ipam.ipam.addresses import (
    BITS,
    MAX_VALUE,
    AddressError,
    AddressLike,
    AddressRange,
    IPSet,
    MixedFamilyError,
    parse_address,
)

STATUS_CAP = 2**63 - 1
"""Largest value a status count can hold (Go's math.MaxInt, the upstream cap)."""


def capped(n: int) -> int:
    """`n` limited to `STATUS_CAP`, for status fields (exact counts can reach 2**128)."""
    return min(n, STATUS_CAP)


@dataclass(frozen=True, slots=True)
class IPPoolSpec:
    """The address-related fields of an (Global)InClusterIPPool v1alpha2 spec.

    `gateway` None or "" means no gateway (the API field is optional).
    """

    addresses: tuple[str, ...]
    prefix: int
    gateway: str | None = None
    allocate_reserved: bool = False
    excluded: tuple[str, ...] = ()


def inferred_subnet(addresses: IPSet, prefix: int) -> AddressRange | None:
    """The pool's subnet: lowest address of `addresses` with length `prefix`, host bits masked.

    None when the set is empty or `prefix` is not a valid length for the family (negative, 33 on IPv4,
    129 on IPv6, not an int).
    """
    lowest = addresses.lowest()
    if lowest is None or not _valid_prefix(addresses.version, prefix):
        return None
    return AddressRange.from_cidr(addresses.version, lowest, prefix)


def _valid_prefix(version: int, prefix: object) -> bool:
    return isinstance(prefix, int) and not isinstance(prefix, bool) and 0 <= prefix <= BITS[version]


def reserved_addresses(subnet: AddressRange) -> IPSet:
    """Addresses of `subnet` that are not handed out unless `allocateReservedIPAddresses` is set.

    IPv4: the network and broadcast addresses, except in /31 and /32 subnets, which have neither
    (RFC 3021; §10.5, upstream reserves both). IPv6: the first address (subnet-router anycast), also in
    /127 and /128 subnets as upstream does; the last IPv6 address stays allocatable.
    """
    if subnet.version == 4:
        if subnet.size <= 2:
            return IPSet.empty(4)
        return IPSet(4, [(subnet.first, subnet.first), (subnet.last, subnet.last)])
    return IPSet(6, [(subnet.first, subnet.first)])


def parse_gateway(gateway: str | None, version: int) -> int | None:
    """The gateway as an int of `version`'s family, None if unset; `AddressError` if unusable."""
    if gateway is None or gateway == "":
        return None
    address = parse_address(gateway)
    if address.version != version:
        raise MixedFamilyError(gateway, "gateway and addresses are of mixed IP families")
    return int(address)


def allocatable_set(spec: IPPoolSpec) -> IPSet:
    """Addresses the pool may hand out (§4.2).

    union(addresses) - union(excluded) - reserved addresses of the inferred subnet (unless
    `allocate_reserved`) - gateway (always). The subnet is inferred from the addresses before exclusion.

    Webhook validation normally rejects bad specs first, but this function checks what it relies on and
    raises `AddressError` (never another exception) for: an empty or unparsable `addresses`, an unparsable
    exclusion or gateway, families that differ (`MixedFamilyError`), or a prefix invalid for the family.
    """
    addresses = IPSet.from_entries(spec.addresses)
    version = addresses.version
    excluded = IPSet.from_entries(spec.excluded, version=version)
    gateway = parse_gateway(spec.gateway, version)
    subnet = inferred_subnet(addresses, spec.prefix)
    if subnet is None:
        raise AddressError(str(spec.prefix), f"not a valid prefix length for IPv{version}")
    result = addresses - excluded
    if not spec.allocate_reserved:
        result = result - reserved_addresses(subnet)
    if gateway is not None:
        result = result - IPSet(version, [(gateway, gateway)])
    return result


@dataclass(frozen=True, slots=True)
class PoolCounts:
    """Exact pool counts; `status()` gives the capped `status.ipAddresses` object."""

    total: int
    used: int
    free: int
    out_of_range: int

    def status(self) -> dict[str, int]:
        """The `status.ipAddresses` dict with each value capped at `STATUS_CAP`."""
        return {
            "total": capped(self.total),
            "free": capped(self.free),
            "used": capped(self.used),
            "outOfRange": capped(self.out_of_range),
        }


def count_pool(allocatable: IPSet, in_use: Iterable[AddressLike]) -> PoolCounts:
    """Status counts for an IP pool from its allocatable set and the addresses of its IPAddresses.

    `in_use` holds one item per IPAddress of the pool: ints (in the pool's family) or address objects
    (an address of the other family is simply out of range).
    - total: addresses in the allocatable set;
    - used: number of IPAddresses, as upstream (duplicates count once per object);
    - out_of_range: distinct in-use addresses outside the allocatable set;
    - free: allocatable addresses no IPAddress holds (§10.2): never negative, not reduced by out-of-range
      addresses or by duplicates, so free + distinct in-range used = total.
    """
    version = allocatable.version
    seen: Counter[tuple[int, int]] = Counter()
    for item in in_use:
        if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
            seen[(item.version, int(item))] += 1
        elif isinstance(item, int) and 0 <= item <= MAX_VALUE[version]:
            seen[(version, item)] += 1
        else:
            raise ValueError(f"{item!r} is not an IPv{version} address value")
    in_range = sum(1 for v, value in seen if v == version and value in allocatable)
    total = allocatable.count()
    return PoolCounts(
        total=total,
        used=sum(seen.values()),
        free=total - in_range,
        out_of_range=len(seen) - in_range,
    )

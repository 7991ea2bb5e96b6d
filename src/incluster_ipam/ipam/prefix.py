"""IPv6 prefix pools: hand out aligned sub-prefixes of one length (spec §2.2, §3.5, §4.5).

A pool is the union of its `prefixes` (aligned IPv6 CIDRs no longer than the allocation length). A
candidate is an aligned sub-prefix of the allocation length inside the pool; it is blocked when it
overlaps an excluded entry or an in-use prefix. The gateway is informational and never blocks.

Allocation is upstream's first-fit binary descent over the pool's minimal CIDR cover: a fully blocked
block is skipped, an unblocked block yields its lowest sub-prefix, a partially blocked block is split in
halves, left first. It returns the lowest free candidate and visits O(depth) blocks per blocked-interval
boundary below it, never enumerating candidates, so a /32 pool carving /64s costs what a /62 does.
Counting works in "candidate index" space instead (address >> (128 - length)), where pool and exclusions
become plain interval lists: O(n) in the number of intervals, the same result as upstream's counting
descent without its O(n * depth) visits.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from incluster_ipam.ipam import _intervals
from incluster_ipam.ipam.addresses import (
    AddressError,
    AddressLike,
    AddressRange,
    IPSet,
    MixedFamilyError,
    parse_cidr,
)
from incluster_ipam.ipam.pool import PoolCounts, capped, parse_gateway

DEFAULT_ALLOCATION_PREFIX_LENGTH = 64

PrefixLike = tuple[AddressLike, int]
"""An in-use prefix as (address, prefix length); an int address is IPv6."""


class PrefixExhausted(Exception):
    """No free sub-prefix of the allocation length is left."""

    def __init__(self) -> None:
        super().__init__("no prefix available")


@dataclass(frozen=True, slots=True)
class PrefixPoolSpec:
    """The fields of an (Global)InClusterPrefixPool spec; allocation length 0 means the default, 64."""

    prefixes: tuple[str, ...]
    allocation_prefix_length: int = DEFAULT_ALLOCATION_PREFIX_LENGTH
    gateway: str | None = None
    excluded: tuple[str, ...] = ()


def effective_allocation_prefix_length(length: int) -> int:
    """The allocation length in force: 0 (unset) means 64."""
    return DEFAULT_ALLOCATION_PREFIX_LENGTH if length == 0 else length


def parse_pool_prefix(text: str, allocation_prefix_length: int) -> AddressRange:
    """One `prefixes` entry: an aligned IPv6 CIDR no longer than the allocation length.

    `AddressError.reason` is the webhook's message (§3.5): "provided entry is not a valid IPv6 CIDR",
    "only IPv6 prefixes are supported", "CIDR must be network-aligned", or
    "CIDR prefix length must be <= allocationPrefixLength (<n>)".
    """
    try:
        block, length, aligned = parse_cidr(text)
    except AddressError:
        entry = text if isinstance(text, str) else repr(text)
        raise AddressError(entry, "provided entry is not a valid IPv6 CIDR") from None
    if block.version != 6:
        raise MixedFamilyError(text, "only IPv6 prefixes are supported")
    if not aligned:
        raise AddressError(text, "CIDR must be network-aligned")
    if length > allocation_prefix_length:
        raise AddressError(
            text, f"CIDR prefix length must be <= allocationPrefixLength ({allocation_prefix_length})"
        )
    return block


class PrefixPool:
    """A validated prefix pool: the pool set, the exclusions and the allocation length."""

    __slots__ = ("_allocatable_count", "excluded", "gateway", "length", "pool")

    def __init__(
        self, pool: IPSet, length: int, excluded: IPSet | None = None, gateway: int | None = None
    ) -> None:
        if pool.version != 6 or (excluded is not None and excluded.version != 6):
            raise MixedFamilyError(f"IPv{pool.version} set", "prefix pools are IPv6 only")
        if not 1 <= length <= 128:
            raise AddressError(str(length), "allocationPrefixLength must be between 1 and 128")
        shift = 128 - length
        for first, last in pool.intervals():
            if first >> shift << shift != first or (last + 1) >> shift << shift != last + 1:
                raise AddressError(str(pool), f"pool is not a union of /{length} blocks")
        self.pool = pool
        self.length = length
        self.excluded = excluded if excluded is not None else IPSet.empty(6)
        self.gateway = gateway
        self._allocatable_count: int | None = None

    @classmethod
    def from_spec(cls, spec: PrefixPoolSpec) -> "PrefixPool":
        """Validate and compile a spec; `AddressError` for anything allocation cannot work with."""
        length = effective_allocation_prefix_length(spec.allocation_prefix_length)
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= 128:
            raise AddressError(str(length), "allocationPrefixLength must be between 1 and 128")
        if isinstance(spec.prefixes, str) or not spec.prefixes:
            raise AddressError(repr(spec.prefixes), "prefixes is required")
        pool = IPSet(6, [parse_pool_prefix(p, length) for p in spec.prefixes])
        excluded = IPSet.from_entries(list(spec.excluded), version=6) if spec.excluded else IPSet.empty(6)
        return cls(pool, length, excluded, parse_gateway(spec.gateway, 6))

    # -- queries -----------------------------------------------------------------------------------

    def aggregates(self) -> tuple[tuple[int, int], ...]:
        """The pool's minimal CIDR cover as (network, length), ascending: where the descent starts."""
        return self.pool.cidrs()

    def gateway_in_prefixes(self) -> bool:
        """Whether the gateway lies inside the pool (it may then be handed out with /128 allocations)."""
        return self.gateway is not None and self.gateway in self.pool

    def count(self) -> int:
        """Exact number of candidates not overlapping an exclusion (in-use prefixes not subtracted)."""
        if self._allocatable_count is None:
            shift = 128 - self.length
            pool = [(first >> shift, last >> shift) for first, last in self.pool.intervals()]
            blocked = _intervals.normalize((f >> shift, la >> shift) for f, la in self.excluded.intervals())
            self._allocatable_count = _intervals.count(_intervals.difference(pool, blocked))
        return self._allocatable_count

    def count_capped(self) -> int:
        return capped(self.count())

    def is_allocatable(self, prefix_address: AddressLike, prefix_len: int) -> bool:
        """Whether `prefix_address/prefix_len` (host bits masked) is a candidate this pool could hand out."""
        block = _block(prefix_address, prefix_len)
        return (
            block is not None
            and prefix_len == self.length
            and self.pool.contains_range(block.first, block.last)
            and not self.excluded.overlaps_range(block.first, block.last)
        )

    def blocked(self, in_use: Iterable[PrefixLike]) -> IPSet:
        """Exclusions plus the address ranges of in-use IPv6 prefixes (IPv4 ones cannot block)."""
        used = [b for b in (_checked_block(a, n) for a, n in in_use) if b is not None]
        return self.excluded | IPSet(6, used)

    def find_free(self, in_use: Iterable[PrefixLike]) -> int:
        """Network address of the lowest free candidate (its length is `self.length`).

        Raises `PrefixExhausted` when there is none, `ValueError` for an in-use length outside 0..128.
        """
        blocked = self.blocked(in_use)
        for network, length in self.aggregates():
            found = _descend(network, length, self.length, blocked)
            if found is not None:
                return found
        raise PrefixExhausted

    def counts(self, in_use: Iterable[PrefixLike]) -> PoolCounts:
        """Status counts (§5.7): used = number of in-use entries; out-of-range = entries that are not
        allocatable under this spec; free = max(0, total - used + out_of_range), as upstream."""
        used = out_of_range = 0
        for address, length in in_use:
            used += 1
            if not self.is_allocatable(address, length):
                out_of_range += 1
        total = self.count()
        return PoolCounts(total, used, max(0, total - used + out_of_range), out_of_range)


def _block(address: AddressLike, length: int) -> AddressRange | None:
    """The masked IPv6 block `address/length`, or None if it is not a valid IPv6 prefix."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    value = int(address)
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= 128:
        return None
    if not 0 <= value < 1 << 128:
        return None
    return AddressRange.from_cidr(6, value, length)


def _checked_block(address: AddressLike, length: int) -> AddressRange | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    block = _block(address, length)
    if block is None:
        raise ValueError(f"{address!r}/{length!r} is not an IPv6 prefix")
    return block


def _descend(network: int, length: int, target: int, blocked: IPSet) -> int | None:
    """Lowest unblocked /target block inside `network/length` (first-fit binary descent)."""
    last = network + (1 << (128 - length)) - 1
    if blocked.contains_range(network, last):
        return None
    if not blocked.overlaps_range(network, last):
        return network
    if length >= target:
        return None
    found = _descend(network, length + 1, target, blocked)
    if found is not None:
        return found
    return _descend(network + (1 << (127 - length)), length + 1, target, blocked)

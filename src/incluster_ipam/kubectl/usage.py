"""How full each pool is, which ranges are free and who holds what: pool objects and IPAddresses in, plain
data out. Pure (no I/O); the counts are the provider's own (`count_pool`, `PrefixPool.counts`) over the
allocatable set built from the spec the one way (`api.specs.compile_spec`), so `kubectl ipam` agrees with
the pools' `status.ipAddresses`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from incluster_ipam.api.constants import PoolFamily, PoolKind
from incluster_ipam.api.models import DecodeError, IPPoolSpec, decode_pool
from incluster_ipam.api.specs import compile_spec
from incluster_ipam.capi.objects import (
    CLUSTER_NAME_LABEL,
    address_pool_key,
    name_of,
    namespace_of,
    pool_key_of,
    prefix_of,
    split_pool_key,
)
from incluster_ipam.ipam.addresses import (
    BITS,
    AddressError,
    AddressRange,
    IPSet,
    address_value,
    format_address,
)
from incluster_ipam.ipam.pool import count_pool
from incluster_ipam.ipam.prefix import PrefixPool

Obj = Mapping[str, Any]


def range_text(block: AddressRange) -> str:
    """One range as people write it: an address, a CIDR when the range is exactly one, else `first-last`."""
    size = block.size
    if size > 1 and size & (size - 1) == 0 and block.first % size == 0:
        return f"{format_address(block.version, block.first)}/{BITS[block.version] - size.bit_length() + 1}"
    return str(block)


def ranges_text(addresses: IPSet) -> tuple[str, ...]:
    return tuple(range_text(r) for r in addresses.ranges())


@dataclass(frozen=True)
class Holding:
    """One IPAddress of a pool: what it holds (canonical text), its claim and Cluster."""

    namespace: str
    name: str
    address: str  # canonical ("2001:db8::1", prefix pools "2001:db8:0:1::/64"); as written if unparsable
    claim: str
    cluster: str
    in_range: bool
    sort_key: tuple[int, int, str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "ipAddress": {"namespace": self.namespace, "name": self.name},
            "claim": self.claim,
            "cluster": self.cluster,
            "inRange": self.in_range,
        }


@dataclass(frozen=True)
class PoolUsage:
    """One pool's counts (exact; IPv6 totals may exceed 2**64), ranges, free ranges and holdings."""

    kind: PoolKind
    namespace: str  # "" for global pools
    name: str
    family: str  # "IPv4", "IPv6", "" when the spec is unusable
    total: int
    used: int
    free: int
    out_of_range: int
    ranges: tuple[str, ...]  # the allocatable set
    free_ranges: tuple[str, ...]
    holdings: tuple[Holding, ...]
    prefix: int | None = None  # IP pools: the subnet length; prefix pools: the allocation length
    gateway: str = ""
    error: str = ""  # why no allocatable set could be built from the spec

    @property
    def utilisation(self) -> float | None:
        """Share of the allocatable addresses held (0..1); None for an empty or unusable pool."""
        if self.error or self.total <= 0:
            return None
        return (self.total - self.free) / self.total

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind.kind,
            "namespace": self.namespace,
            "name": self.name,
            "family": self.family,
            "total": self.total,
            "used": self.used,
            "free": self.free,
            "outOfRange": self.out_of_range,
            "utilisation": self.utilisation,
            "error": self.error or None,
        }
        if details:
            body["prefix"] = self.prefix
            body["gateway"] = self.gateway or None
            body["ranges"] = list(self.ranges)
            body["freeRanges"] = list(self.free_ranges)
            body["holdings"] = [h.to_dict() for h in self.holdings]
        return body


@dataclass(frozen=True)
class _Parsed:
    """An IPAddress's `spec.address` (and prefix): (version, value, length), or None when unparsable."""

    obj: Obj
    value: tuple[int, int, int] | None


def _parse(obj: Obj, family: PoolFamily) -> _Parsed:
    text = (obj.get("spec") or {}).get("address")
    try:
        version, value = address_value(text) if isinstance(text, str) else (0, 0)
    except AddressError:
        return _Parsed(obj, None)
    if version == 0:
        return _Parsed(obj, None)
    if family is PoolFamily.IP:
        return _Parsed(obj, (version, value, BITS[version]))
    length = prefix_of(obj)
    if length is None or not 0 <= length <= BITS[version]:
        return _Parsed(obj, None)
    return _Parsed(obj, (version, AddressRange.from_cidr(version, value, length).first, length))


def _text(parsed: _Parsed, family: PoolFamily) -> str:
    if parsed.value is None:
        return str((parsed.obj.get("spec") or {}).get("address", ""))
    version, value, length = parsed.value
    text = format_address(version, value)
    return f"{text}/{length}" if family is PoolFamily.PREFIX else text


def _holding(parsed: _Parsed, family: PoolFamily, in_range: bool) -> Holding:
    obj = parsed.obj
    spec = obj.get("spec") or {}
    text = _text(parsed, family)
    key = (9, 0) if parsed.value is None else parsed.value[:2]
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return Holding(
        namespace=namespace_of(obj),
        name=name_of(obj),
        address=text,
        claim=str((spec.get("claimRef") or {}).get("name") or ""),
        cluster=str(labels.get(CLUSTER_NAME_LABEL) or ""),
        in_range=in_range,
        sort_key=(*key, namespace_of(obj), name_of(obj)),
    )


def _ip_usage(kind: PoolKind, pool: Obj, spec: IPPoolSpec, parsed: list[_Parsed]) -> PoolUsage:
    allocatable = compile_spec(spec)
    assert isinstance(allocatable, IPSet)
    version = allocatable.version
    values = [p.value[1] for p in parsed if p.value is not None and p.value[0] == version]
    counts = count_pool(allocatable, values)
    foreign = len(parsed) - len(values)  # other family or unparsable: held, never allocatable
    other = {(p.value[0], p.value[1]) for p in parsed if p.value is not None and p.value[0] != version}
    unparsable = sum(1 for p in parsed if p.value is None)
    holdings = [
        _holding(
            p, PoolFamily.IP, p.value is not None and p.value[0] == version and p.value[1] in allocatable
        )
        for p in parsed
    ]
    used = IPSet(version, [(v, v) for v in values])
    return PoolUsage(
        kind,
        namespace_of(pool) if kind.namespaced else "",
        name_of(pool),
        f"IPv{version}",
        total=counts.total,
        used=counts.used + foreign,
        free=counts.free,
        out_of_range=counts.out_of_range + len(other) + unparsable,
        ranges=ranges_text(allocatable),
        free_ranges=ranges_text(allocatable - used),
        holdings=tuple(sorted(holdings, key=lambda h: h.sort_key)),
        prefix=spec.prefix,
        gateway=spec.gateway,
    )


def _prefix_usage(
    kind: PoolKind, pool: Obj, compiled: PrefixPool, gateway: str, parsed: list[_Parsed]
) -> PoolUsage:
    in_use = [(p.value[1], p.value[2]) for p in parsed if p.value is not None and p.value[0] == 6]
    counts = compiled.counts(in_use)
    foreign = len(parsed) - len(in_use)
    # Free candidates, in candidate-index space (address >> host bits), as the allocator's descent sees them.
    shift = 128 - compiled.length
    blocked = compiled.blocked(in_use)
    candidates = IPSet(6, [(f >> shift, last >> shift) for f, last in compiled.pool.intervals()])
    taken = IPSet(6, [(f >> shift, last >> shift) for f, last in blocked.intervals()])
    free = IPSet(6, [(f << shift, ((last + 1) << shift) - 1) for f, last in (candidates - taken).intervals()])
    holdings = [
        _holding(
            p,
            PoolFamily.PREFIX,
            p.value is not None and p.value[0] == 6 and compiled.is_allocatable(p.value[1], p.value[2]),
        )
        for p in parsed
    ]
    return PoolUsage(
        kind,
        namespace_of(pool) if kind.namespaced else "",
        name_of(pool),
        "IPv6",
        total=counts.total,
        used=counts.used + foreign,
        free=counts.free,
        out_of_range=counts.out_of_range + foreign,
        ranges=tuple(f"{format_address(6, n)}/{length}" for n, length in compiled.aggregates()),
        free_ranges=tuple(f"{format_address(6, n)}/{length}" for n, length in free.cidrs()),
        holdings=tuple(sorted(holdings, key=lambda h: h.sort_key)),
        prefix=compiled.length,
        gateway=gateway,
    )


def pool_usage(pool: Obj, addresses: Iterable[Obj]) -> PoolUsage:
    """Usage of one pool (a v1alpha2 object of one of our kinds) from the IPAddresses allocated from it."""
    key = pool_key_of(pool)
    if key is None:
        raise ValueError(f"not a pool of ours: kind {pool.get('kind')!r}")
    kind = split_pool_key(key)[0]
    mine = [a for a in addresses if address_pool_key(a) == key]
    parsed = [_parse(a, kind.family) for a in mine]
    try:
        spec = decode_pool(pool, kind).spec
        if isinstance(spec, IPPoolSpec):
            return _ip_usage(kind, pool, spec, parsed)
        compiled = compile_spec(spec)
        assert isinstance(compiled, PrefixPool)
        return _prefix_usage(kind, pool, compiled, spec.gateway, parsed)
    except (AddressError, DecodeError, ValueError) as exc:
        return PoolUsage(
            kind,
            namespace_of(pool) if kind.namespaced else "",
            name_of(pool),
            "",
            total=0,
            used=len(mine),
            free=0,
            out_of_range=len(mine),
            ranges=(),
            free_ranges=(),
            holdings=tuple(
                sorted((_holding(p, kind.family, False) for p in parsed), key=lambda h: h.sort_key)
            ),
            error=str(exc),
        )


def usages(pools: Sequence[Obj], addresses: Sequence[Obj]) -> list[PoolUsage]:
    """Usage of every pool, IPAddresses grouped by pool once; sorted global pools last, then by name."""
    by_pool: dict[str | None, list[Obj]] = defaultdict(list)
    for address in addresses:
        by_pool[address_pool_key(address)].append(address)
    found = []
    for pool in pools:
        key = pool_key_of(pool)
        if key is not None:
            found.append(pool_usage(pool, by_pool.get(key, ())))
    return sorted(found, key=lambda u: (u.namespace == "", u.namespace, u.name, u.kind.kind))


# ---- who holds an address -------------------------------------------------------------------------------


def _family(address: Obj) -> PoolFamily:
    """The family of the pool an IPAddress is from (IP for other providers' pools)."""
    key = address_pool_key(address)
    return split_pool_key(key)[0].family if key is not None else PoolFamily.IP


def held_text(address: Obj) -> str:
    """What an IPAddress holds, canonical: "2001:db8::a", or "2001:db8:0:1::/64" from a prefix pool."""
    family = _family(address)
    return _text(_parse(address, family), family)


def holds(address: Obj, version: int, value: int) -> bool:
    """Whether an IPAddress holds the address `value` (of `version`): the same address in any spelling
    ("2001:DB8::1" is "2001:db8:0::1"), or, for a prefix pool's IPAddress, inside its prefix."""
    family = _family(address)
    parsed = _parse(address, family).value
    if parsed is None or parsed[0] != version:
        return False
    if family is PoolFamily.IP:
        return parsed[1] == value
    return value in AddressRange.from_cidr(version, parsed[1], parsed[2])


def allocatable_in(pools: Sequence[Obj], version: int, value: int) -> list[str]:
    """The pools (as "Kind namespace/name") whose allocatable set holds the address (prefix pools: whose
    prefixes cover it outside the exclusions); pools with unusable specs are skipped."""
    found = []
    for pool in pools:
        key = pool_key_of(pool)
        if key is None:
            continue
        kind, namespace, name = split_pool_key(key)
        try:
            compiled = compile_spec(decode_pool(pool, kind).spec)
        except (AddressError, DecodeError, ValueError):
            continue
        if isinstance(compiled, IPSet):
            inside = compiled.version == version and value in compiled
        else:
            inside = version == 6 and value in compiled.pool and value not in compiled.excluded
        if inside:
            found.append(f"{kind.kind} {namespace}/{name}" if namespace else f"{kind.kind} {name}")
    return found

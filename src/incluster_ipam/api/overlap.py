"""Overlap warnings (spec §10.10): tell the user when a pool shares addresses with another reachable pool.

Overlap is never refused (it can be deliberate, e.g. NAT'd sites), but two overlapping pools that the same
claims can reach hand out the same address twice, so creating or updating such a pool returns a warning
naming the other pool.

Reachability: a claim references a namespaced pool of its own namespace or any global pool. So a namespaced
pool in namespace N shares claims with the other namespaced pools of N and with every global pool; a global
pool shares claims with every pool. Pools of different namespaces never meet. Prefix pools count too: their
address space is the union of their prefixes minus exclusions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from incluster_ipam.api.models import IPPoolSpec, Pool, PrefixPoolSpec
from incluster_ipam.api.prefix_validation import validate_prefix_pool
from incluster_ipam.api.specs import ip_core_spec, prefix_core_spec
from incluster_ipam.api.validation import validate_ip_pool
from incluster_ipam.ipam import addresses as addr
from incluster_ipam.ipam import pool as ip_core
from incluster_ipam.ipam import prefix as prefix_core

#: Pools named one by one; beyond this a single summary warning counts the rest (warnings have size limits).
MAX_NAMED_POOLS = 5


def share_claims(a: Pool, b: Pool) -> bool:
    """Whether some claim could reference both pools (see the module docstring)."""
    if not a.kind.namespaced or not b.kind.namespaced:
        return True
    return a.namespace == b.namespace


def same_pool(a: Pool, b: Pool) -> bool:
    return a.kind == b.kind and a.name == b.name and a.namespace == b.namespace


def address_space(pool: Pool) -> addr.IPSet | None:
    """What the pool hands out: allocatable set (IP) or prefixes minus exclusions; None if invalid."""
    try:
        if isinstance(pool.spec, IPPoolSpec):
            if validate_ip_pool(pool.spec):
                return None
            return ip_core.allocatable_set(ip_core_spec(pool.spec))
        if isinstance(pool.spec, PrefixPoolSpec):
            if validate_prefix_pool(pool.spec):
                return None
            compiled = prefix_core.PrefixPool.from_spec(prefix_core_spec(pool.spec))
            return compiled.pool - compiled.excluded
    except (addr.AddressError, ValueError):
        return None
    return None


def _describe(shared: addr.IPSet) -> str:
    ranges = shared.ranges()
    first = ranges[0]
    text = (
        f"{addr.format_address(first.version, first.first)}-{addr.format_address(first.version, first.last)}"
    )
    if len(ranges) > 1:
        text += f" and {len(ranges) - 1} more range{'s' if len(ranges) > 2 else ''}"
    return text


class AddressSpaces:
    """`address_space` of stored pools, remembered per pool version (UID and resourceVersion), so that an
    admission does not rebuild every reachable pool's set (finding 5 of the December review). Bounded by
    the number of intervals kept; least recently used first out."""

    def __init__(self, max_intervals: int = 300_000) -> None:
        self._max = max_intervals
        self._kept: OrderedDict[tuple[str, str, str, str, str], addr.IPSet | None] = OrderedDict()
        self._size = 0
        self.computed = 0

    def __call__(self, pool: Pool) -> addr.IPSet | None:
        if not pool.uid or not pool.resource_version:
            self.computed += 1
            return address_space(pool)
        key = (pool.kind.kind, pool.namespace, pool.name, pool.uid, pool.resource_version)
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        self.computed += 1
        space = address_space(pool)
        size = space.interval_count() if space is not None else 0
        if size <= self._max:
            self._kept[key] = space
            self._size += size
            while self._size > self._max:
                _, dropped = self._kept.popitem(last=False)
                self._size -= dropped.interval_count() if dropped is not None else 0
        return space


def overlap_warnings(
    pool: Pool, others: Iterable[Pool], spaces: Callable[[Pool], addr.IPSet | None] = address_space
) -> list[str]:
    """One warning per reachable pool sharing addresses with ``pool``, sorted; at most a few named.
    ``spaces`` computes (or remembers: `AddressSpaces`) the other pools' address spaces."""
    mine = address_space(pool)
    if mine is None or mine.is_empty:
        return []
    found: list[tuple[str, str]] = []
    for other in others:
        if same_pool(pool, other) or not share_claims(pool, other):
            continue
        theirs = spaces(other)
        if theirs is None or theirs.version != mine.version:
            continue
        shared = mine & theirs
        if not shared.is_empty:
            found.append((other.ref, _describe(shared)))
    found.sort()
    warnings = [
        f"addresses overlap with {ref} ({where}); claims of both pools may receive the same address"
        for ref, where in found[:MAX_NAMED_POOLS]
    ]
    if len(found) > MAX_NAMED_POOLS:
        warnings.append(f"addresses also overlap with {len(found) - MAX_NAMED_POOLS} more pools")
    return warnings

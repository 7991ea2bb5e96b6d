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

from collections.abc import Iterable

from incluster_ipam.api.models import IPPoolSpec, Pool, PrefixPoolSpec
from incluster_ipam.api.prefix_validation import core_spec as prefix_core_spec
from incluster_ipam.api.prefix_validation import validate_prefix_pool
from incluster_ipam.api.validation import core_spec as ip_core_spec
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


def overlap_warnings(pool: Pool, others: Iterable[Pool]) -> list[str]:
    """One warning per reachable pool sharing addresses with ``pool``, sorted; at most a few named."""
    mine = address_space(pool)
    if mine is None or mine.is_empty:
        return []
    found: list[tuple[str, str]] = []
    for other in others:
        if same_pool(pool, other) or not share_claims(pool, other):
            continue
        theirs = address_space(other)
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

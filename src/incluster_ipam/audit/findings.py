"""What is wrong with the allocations in a cluster (spec §10.12): Kubernetes JSON dicts in, findings out.

Input: pools (v1alpha2 objects of our four kinds), IPAddressClaims and IPAddresses (either IPAM contract
version: the fields read are the same), optionally Clusters. Objects of other providers are ignored: only
claims and IPAddresses whose `poolRef` names one of our kinds in our group count. Pool identity follows the
provider (`objects.pool_key`): a namespaced pool is found in the namespace of the claim or IPAddress that
references it, a global pool from any namespace.

Findings:
- `duplicate`: two or more IPAddresses of the same pool hold the same address (IP pools) or overlapping
  sub-prefixes (prefix pools).
- `duplicate-across-pools`: the same address (or overlapping sub-prefixes) held by IPAddresses of
  different pools whose allocatable sets both contain it, and which the same claims can reach (the
  reachability of the overlap warnings, §10.10: pools of one namespace plus the global pools). Pools of two
  different namespaces never meet, so tenants may reuse private ranges.
- `out-of-range`: an IPAddress whose address is not allocatable under its pool's current spec (IP pools: not
  in the allocatable set; prefix pools: not an allocatable sub-prefix), or whose pool does not exist or has a
  spec no allocatable set can be built from, or whose address does not parse.
- `orphaned-address`: an IPAddress whose claim (`spec.claimRef.name`, same namespace) does not exist, or
  references another pool, or is bound to another IPAddress (`status.addressRef`; an unbound claim expects
  the IPAddress named after it, as the provider creates it).
- `unbound-claim`: a claim (not being deleted, not paused, Cluster not paused) without an existing
  `status.addressRef` IPAddress while its pool (existing, valid, not paused) has a free address.

Orphans and unbound claims younger than the grace period are skipped: the provider may be mid-way through
binding or releasing them (an IPAddress being deleted counts from its deletionTimestamp).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from incluster_ipam.api.constants import PoolFamily, PoolKind
from incluster_ipam.api.models import DecodeError, IPPoolSpec, decode_pool
from incluster_ipam.api.specs import ip_core_spec, prefix_core_spec
from incluster_ipam.api.timestamps import parse_time
from incluster_ipam.capi.objects import (
    address_pool_key,
    claim_cluster_name,
    claim_pool_key,
    cluster_is_paused,
    has_paused_annotation,
    is_deleting,
    moved_away,
    name_of,
    namespace_of,
    pool_key_of,
    split_pool_key,
)
from incluster_ipam.ipam import pool as ip_core
from incluster_ipam.ipam import prefix as prefix_core
from incluster_ipam.ipam.addresses import (
    BITS,
    AddressError,
    AddressRange,
    IPSet,
    format_address,
    parse_address,
)

DEFAULT_GRACE_SECONDS = 30.0

Obj = Mapping[str, Any]


class FindingKind(enum.StrEnum):
    DUPLICATE = "duplicate"
    DUPLICATE_ACROSS_POOLS = "duplicate-across-pools"
    OUT_OF_RANGE = "out-of-range"
    ORPHANED_ADDRESS = "orphaned-address"
    UNBOUND_CLAIM = "unbound-claim"


_KIND_ORDER = {kind: i for i, kind in enumerate(FindingKind)}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """One Kubernetes object; `namespace` is "" for cluster-scoped ones."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True)
class Finding:
    """One problem: what kind, the objects involved (the subject first), the pool and address concerned."""

    kind: FindingKind
    objects: tuple[ObjectRef, ...]
    message: str
    pool: ObjectRef | None = None
    address: str | None = None

    def sort_key(self) -> tuple[int, tuple[ObjectRef, ...], str]:
        return (_KIND_ORDER[self.kind], self.objects, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "objects": [o.to_dict() for o in self.objects],
            "pool": self.pool.to_dict() if self.pool else None,
            "address": self.address,
        }


@dataclass(frozen=True)
class Report:
    """Findings (sorted by kind, then objects) and notes about what could not be checked."""

    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.findings

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind is kind]


# ---- pools and holdings ------------------------------------------------------------------------------


@dataclass
class _Pool:
    key: str
    kind: PoolKind
    ref: ObjectRef
    obj: Obj
    allocatable: IPSet | None = None  # IP pools
    prefixes: prefix_core.PrefixPool | None = None  # prefix pools
    error: str | None = None


@dataclass(frozen=True)
class _Held:
    """One IPAddress of one of our pools, with the address block it holds (None when unparsable)."""

    ref: ObjectRef
    obj: Obj
    pool_key: str
    text: str
    block: AddressRange | None
    length: int = 0  # prefix length of `block`
    problem: str = ""  # why block is None

    @property
    def display(self) -> str:
        if self.block is None:
            return self.text
        text = format_address(self.block.version, self.block.first)
        if split_pool_key(self.pool_key)[0].family is PoolFamily.PREFIX:
            return f"{text}/{self.length}"
        return text


def _pool_namespace(held: _Held) -> str:
    """The namespace of the pool an IPAddress holds from ("" for global pools)."""
    return split_pool_key(held.pool_key)[1]


def _pool_ref(key: str) -> ObjectRef:
    kind, namespace, name = split_pool_key(key)
    return ObjectRef(kind.kind, namespace, name)


def _compile_pool(key: str, obj: Obj) -> _Pool:
    kind, _, _ = split_pool_key(key)
    pool = _Pool(key, kind, _pool_ref(key), obj)
    try:
        spec = decode_pool(obj, kind).spec
        if isinstance(spec, IPPoolSpec):
            pool.allocatable = ip_core.allocatable_set(ip_core_spec(spec))
        else:
            pool.prefixes = prefix_core.PrefixPool.from_spec(prefix_core_spec(spec))
    except (AddressError, DecodeError, ValueError) as exc:
        pool.error = str(exc)
    return pool


def _held(obj: Obj, pool_key: str) -> _Held:
    ref = ObjectRef("IPAddress", namespace_of(obj), name_of(obj))
    spec = obj.get("spec") or {}
    text = spec.get("address")
    if not isinstance(text, str):
        return _Held(ref, obj, pool_key, repr(text), None, problem="has no address")
    try:
        address = parse_address(text)
    except AddressError:
        return _Held(ref, obj, pool_key, text, None, problem=f"address {text!r} is not a valid IP address")
    value = int(address)
    if split_pool_key(pool_key)[0].family is PoolFamily.IP:
        block = AddressRange(address.version, value, value)
        return _Held(ref, obj, pool_key, text, block, BITS[address.version])
    length = spec.get("prefix")
    if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= BITS[address.version]:
        return _Held(
            ref, obj, pool_key, text, None, problem=f"prefix {length!r} is not a valid prefix length"
        )
    block = AddressRange.from_cidr(address.version, value, length)
    return _Held(ref, obj, pool_key, text, block, length)


def _in_range(held: _Held, pool: _Pool) -> bool:
    if held.block is None:
        return False
    if pool.allocatable is not None:
        return (
            held.block.first in pool.allocatable if held.block.version == pool.allocatable.version else False
        )
    if pool.prefixes is not None and held.block.version == 6:
        return pool.prefixes.is_allocatable(held.block.first, held.length)
    return False


def _overlap_clusters(members: Iterable[_Held]) -> Iterator[list[_Held]]:
    """Groups (of two or more) of address blocks that overlap, chained; one family per group."""
    by_family: dict[int, list[tuple[AddressRange, _Held]]] = defaultdict(list)
    for held in members:
        if held.block is not None:
            by_family[held.block.version].append((held.block, held))
    for family in sorted(by_family):
        ordered = sorted(by_family[family], key=lambda pair: (pair[0].first, pair[0].last, pair[1].ref))
        cluster: list[_Held] = []
        end = -1
        for block, held in ordered:
            if cluster and block.first <= end:
                cluster.append(held)
                end = max(end, block.last)
                continue
            if len(cluster) > 1:
                yield cluster
            cluster, end = [held], block.last
        if len(cluster) > 1:
            yield cluster


# ---- time --------------------------------------------------------------------------------------------


def parse_timestamp(value: object) -> float | None:
    """An RFC 3339 timestamp as epoch seconds; None when absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _settled(obj: Obj, now: float, grace: float) -> bool:
    """Older than the grace period (and, when being deleted, deleting for longer than that)."""
    metadata = obj.get("metadata") or {}
    for key in ("creationTimestamp", "deletionTimestamp"):
        at = parse_timestamp(metadata.get(key))
        if at is not None and now - at < grace:
            return False
    return True


# ---- the audit -----------------------------------------------------------------------------------------


@dataclass
class _Audit:
    pools: dict[str, _Pool]
    claims: dict[tuple[str, str], Obj]
    addresses: dict[tuple[str, str], Obj]
    held: list[_Held]
    clusters: dict[tuple[str, str], Obj] | None
    namespace: str | None
    now: float
    grace: float
    global_usage_complete: bool
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    by_pool: dict[str, list[_Held]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_pool = defaultdict(list)
        for held in self.held:
            self.by_pool[held.pool_key].append(held)

    def in_scope(self, ref: ObjectRef) -> bool:
        return self.namespace is None or ref.namespace == self.namespace

    def add(self, finding: Finding) -> None:
        if any(self.in_scope(o) for o in finding.objects if o.kind in ("IPAddress", "IPAddressClaim")):
            self.findings.append(finding)

    # -- duplicates ------------------------------------------------------------------------------------

    def duplicates(self) -> None:
        for key in sorted(self.by_pool):
            for cluster in _overlap_clusters(self.by_pool[key]):
                pool = _pool_ref(key)
                prefix_pool = split_pool_key(key)[0].family is PoolFamily.PREFIX
                refs = tuple(h.ref for h in cluster)
                if prefix_pool:
                    what = "overlapping prefixes " + ", ".join(f"{h.display} ({h.ref})" for h in cluster)
                    message = f"{what} are held in {pool}"
                else:
                    holders = ", ".join(str(r) for r in refs)
                    message = (
                        f"{cluster[0].display} is held by {len(cluster)} IPAddresses of {pool}: {holders}"
                    )
                self.add(Finding(FindingKind.DUPLICATE, refs, message, pool, cluster[0].display))

    def duplicates_across_pools(self) -> None:
        """Overlaps between in-range holdings of different pools that the same claims can reach.

        One pass finds every overlap among all in-range holdings; only those few groups are then split by
        reach: the global pools alone, and the global pools with each namespace's pools.
        """
        in_range = [h for h in self.held if h.pool_key in self.pools and _in_range(h, self.pools[h.pool_key])]
        for candidates in _overlap_clusters(in_range):
            if len({h.pool_key for h in candidates}) < 2:
                continue
            global_members = [h for h in candidates if not _pool_namespace(h)]
            namespaces = sorted({_pool_namespace(h) for h in candidates} - {""})
            scopes: list[tuple[str | None, list[_Held]]] = [(None, global_members)]
            scopes += [
                (ns, [*global_members, *(h for h in candidates if _pool_namespace(h) == ns)])
                for ns in namespaces
            ]
            for namespace, members in scopes:
                for cluster in _overlap_clusters(members):
                    pools = {h.pool_key for h in cluster}
                    if len(pools) < 2:
                        continue
                    if namespace is not None and not any(_pool_namespace(h) for h in cluster):
                        continue  # only global pools: reported once, in the global scope
                    self._cross_pool(cluster, len(pools))

    def _cross_pool(self, cluster: list[_Held], pools: int) -> None:
        holders = ", ".join(f"{h.ref} ({h.display}, {_pool_ref(h.pool_key)})" for h in cluster)
        message = (
            f"{cluster[0].display} is held in {pools} overlapping pools that the same claims can reach: "
            f"{holders}"
        )
        refs = tuple(h.ref for h in cluster)
        self.add(Finding(FindingKind.DUPLICATE_ACROSS_POOLS, refs, message, None, cluster[0].display))

    # -- per address -------------------------------------------------------------------------------------

    def out_of_range(self) -> None:
        for held in self.held:
            if not self.in_scope(held.ref):
                continue
            pool_ref = _pool_ref(held.pool_key)
            pool = self.pools.get(held.pool_key)
            if pool is None:
                reason = f"its pool {pool_ref} does not exist"
            elif pool.error is not None:
                reason = f"its pool {pool_ref} has an unusable spec ({pool.error})"
            elif held.block is None:
                reason = held.problem
            elif not _in_range(held, pool):
                reason = f"{held.display} is not allocatable in {pool_ref}"
            else:
                continue
            message = f"{held.ref} is out of range: {reason}"
            self.add(Finding(FindingKind.OUT_OF_RANGE, (held.ref, pool_ref), message, pool_ref, held.text))

    def orphaned(self) -> None:
        moved: list[str] = []
        for held in self.held:
            if not self.in_scope(held.ref) or not _settled(held.obj, self.now, self.grace):
                continue
            namespace = held.ref.namespace
            claim_name = ((held.obj.get("spec") or {}).get("claimRef") or {}).get("name")
            pool_ref = _pool_ref(held.pool_key)
            claim_ref = ObjectRef("IPAddressClaim", namespace, str(claim_name or ""))
            claim = self.claims.get((namespace, claim_name)) if isinstance(claim_name, str) else None
            if claim is None and moved_away(held.obj):
                moved.append(f"{held.ref} ({held.display})")
                continue
            if not claim_name:
                reason = "it names no claim (spec.claimRef.name is empty)"
            elif claim is None:
                reason = f"its claim {claim_ref} does not exist"
            elif claim_pool_key(claim) != held.pool_key:
                reason = f"its claim {claim_ref} asks for another pool ({_describe_claim_pool(claim)})"
            else:
                bound = ((claim.get("status") or {}).get("addressRef") or {}).get("name") or ""
                expected = bound or name_of(claim)
                if expected == held.ref.name:
                    continue
                reason = (
                    f"its claim {claim_ref} is bound to IPAddress {namespace}/{bound}"
                    if bound
                    else f"its claim {claim_ref} is unbound and expects IPAddress {namespace}/{expected}"
                )
            refs = (held.ref, claim_ref) if claim_name else (held.ref,)
            message = f"{held.ref} ({held.display}, {pool_ref}) is orphaned: {reason}"
            self.add(Finding(FindingKind.ORPHANED_ADDRESS, refs, message, pool_ref, held.text))
        if moved:
            self.notes.append(
                f"{len(moved)} IPAddress(es) kept for claims that clusterctl moved to another management "
                f"cluster (their addresses are held there; see docs/operations.md): {', '.join(moved)}"
            )

    # -- per claim -----------------------------------------------------------------------------------

    def unbound_claims(self) -> None:
        free_cache: dict[str, int] = {}
        skipped_global = 0
        for (namespace, name), claim in sorted(self.claims.items()):
            ref = ObjectRef("IPAddressClaim", namespace, name)
            key = claim_pool_key(claim)
            if key is None or not self.in_scope(ref) or is_deleting(claim) or has_paused_annotation(claim):
                continue
            if not _settled(claim, self.now, self.grace):
                continue
            bound = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
            if bound and (namespace, bound) in self.addresses:
                continue
            pool = self.pools.get(key)
            if pool is None or pool.error is not None or has_paused_annotation(pool.obj):
                continue
            cluster_note = self._cluster_note(claim)
            if cluster_note is None:
                continue  # its Cluster is paused
            if not split_pool_key(key)[1] and not self.global_usage_complete:
                skipped_global += 1
                continue
            if key not in free_cache:
                free_cache[key] = self._free(pool)
            free = free_cache[key]
            if free <= 0:
                continue
            state = f"points at IPAddress {namespace}/{bound}, which is missing" if bound else "is unbound"
            unit = "prefix" if pool.kind.family is PoolFamily.PREFIX else "address"
            plural = "es" if free != 1 else ""
            message = f"{ref} {state} although {pool.ref} has {free} free {unit}{plural}{cluster_note}"
            self.add(Finding(FindingKind.UNBOUND_CLAIM, (ref, pool.ref), message, pool.ref, None))
        if skipped_global:
            self.notes.append(
                f"{skipped_global} unbound claim(s) of global pools were not judged: IPAddresses of other "
                "namespaces could not be read, so the room left in global pools is unknown"
            )

    def _cluster_note(self, claim: Obj) -> str | None:
        """ "" when the claim's Cluster allows binding, a note when it is missing, None when it is paused."""
        name = claim_cluster_name(claim)
        if name is None or self.clusters is None:
            return ""
        cluster = self.clusters.get((namespace_of(claim), name))
        if cluster is None:
            return f" (its Cluster {namespace_of(claim)}/{name} does not exist; the provider waits for it)"
        return None if cluster_is_paused(cluster) else ""

    def _free(self, pool: _Pool) -> int:
        """Allocatable addresses (or sub-prefixes) of the pool that no IPAddress of the pool holds."""
        blocks = [h.block for h in self.by_pool.get(pool.key, ()) if h.block is not None]
        if pool.allocatable is not None:
            version = pool.allocatable.version
            used = IPSet(version, [b for b in blocks if b.version == version])
            return (pool.allocatable - used).count()
        assert pool.prefixes is not None
        # In "candidate index" space (address >> host bits) a candidate is free when no excluded or in-use
        # block touches it, exactly as the allocator's descent decides.
        shift = 128 - pool.prefixes.length
        blocked = pool.prefixes.excluded | IPSet(6, [b for b in blocks if b.version == 6])
        candidates = IPSet(6, [(f >> shift, last >> shift) for f, last in pool.prefixes.pool.intervals()])
        taken = IPSet(6, [(f >> shift, last >> shift) for f, last in blocked.intervals()])
        return (candidates - taken).count()


def _describe_claim_pool(claim: Obj) -> str:
    key = claim_pool_key(claim)
    if key is not None:
        return str(_pool_ref(key))
    ref = (claim.get("spec") or {}).get("poolRef") or {}
    return f"{ref.get('kind', '?')} {ref.get('name', '?')} of group {ref.get('apiGroup', '?')}"


def _by_name(objects: Iterable[Obj]) -> dict[tuple[str, str], Obj]:
    return {(namespace_of(o), name_of(o)): o for o in objects}


def audit(
    pools: Sequence[Obj],
    claims: Sequence[Obj],
    addresses: Sequence[Obj],
    *,
    now: float,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    clusters: Sequence[Obj] | None = None,
    namespace: str | None = None,
    global_usage_complete: bool = True,
) -> Report:
    """Audit one snapshot of the cluster.

    `now` is epoch seconds (compared with creationTimestamp for the grace period). `clusters` None means
    unknown: Cluster pauses are then not considered. With `namespace`, only findings that involve a claim or
    IPAddress of that namespace are reported; `addresses` may still include other namespaces' IPAddresses
    of global pools, which then count for duplicates and for the room left in global pools.
    `global_usage_complete=False` says they could not be read: unbound claims of global pools are then not
    judged (a note says so).
    """
    compiled: dict[str, _Pool] = {}
    for obj in pools:
        key = pool_key_of(obj)
        if key is not None:
            compiled[key] = _compile_pool(key, obj)
    held: list[_Held] = []
    for obj in addresses:
        key = address_pool_key(obj)
        if key is None:
            continue
        if namespace is not None and namespace_of(obj) != namespace and split_pool_key(key)[1]:
            continue  # another namespace's namespaced pool: out of scope
        held.append(_held(obj, key))
    run = _Audit(
        pools=compiled,
        claims=_by_name(claims),
        addresses=_by_name(addresses),
        held=held,
        clusters=_by_name(clusters) if clusters is not None else None,
        namespace=namespace,
        now=now,
        grace=grace_seconds,
        global_usage_complete=global_usage_complete,
    )
    run.duplicates()
    run.duplicates_across_pools()
    run.out_of_range()
    run.orphaned()
    run.unbound_claims()
    findings = sorted(run.findings, key=Finding.sort_key)
    return Report(tuple(findings), tuple(run.notes))

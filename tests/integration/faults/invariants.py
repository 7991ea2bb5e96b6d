"""The allocation invariants, checked against the real apiserver: reusable by every fault test and the soak.

Two kinds of check:

- **Snapshot** (`check` / `settle`): one consistent read of pools, claims and IPAddresses (the `audit`
  command's own reader), the audit with a grace period of 0, plus an independent recount of every pool's
  `status.ipAddresses` from the IPAddresses that reference it. Findings split into
  *hard* ones, wrong the moment they are seen (an address held twice, an address outside its pool), and
  *soft* ones that in-flight work may show for a moment (an IPAddress whose claim is being released, a claim
  not bound yet, a status not flushed yet). `settle()` polls until the soft ones are gone and fails on the
  first hard one, with the audit's report in the assertion message.
- **Continuous** (`AddressMonitor`): a watch on IPAddresses for the whole test that replays the apiserver's
  history in order and records every moment two live IPAddresses of one pool hold the same address, however
  briefly: a duplicate that appears and vanishes between two snapshots is still caught.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from incluster_ipam.api.models import DecodeError, IPPoolSpec, decode_pool
from incluster_ipam.api.specs import ip_core_spec, prefix_core_spec
from incluster_ipam.audit.command import Snapshot, read_cluster, render_json, render_text
from incluster_ipam.audit.findings import Finding, FindingKind, Report, audit
from incluster_ipam.capi.objects import (
    address_pool_key,
    claim_pool_key,
    is_deleting,
    key_of,
    namespace_of,
    pool_key_of,
)
from incluster_ipam.ipam import pool as ip_core
from incluster_ipam.ipam import prefix as prefix_core
from incluster_ipam.ipam.addresses import AddressError, parse_address
from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.runtime import Informer
from incluster_ipam.runtime.backoff import Backoff

#: Always wrong, whatever is in flight.
HARD = frozenset({FindingKind.DUPLICATE, FindingKind.DUPLICATE_ACROSS_POOLS, FindingKind.OUT_OF_RANGE})
#: Wrong only once the provider had time to finish its work.
SOFT = frozenset({FindingKind.ORPHANED_ADDRESS, FindingKind.UNBOUND_CLAIM})


class InvariantViolation(AssertionError):
    """An invariant does not hold; the message carries the audit report and the status differences."""


@dataclass(frozen=True)
class StatusMismatch:
    pool: str
    reported: Mapping[str, Any] | None
    recount: Mapping[str, int]

    def __str__(self) -> str:
        return f"status of {self.pool}: reported {dict(self.reported or {})}, recount {dict(self.recount)}"


@dataclass
class Verdict:
    """One snapshot's result."""

    snapshot: Snapshot
    report: Report
    namespace: str | None
    allowed: frozenset[FindingKind]
    ignore: Callable[[Finding], bool] | None = None
    mismatches: list[StatusMismatch] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def _counted(self, kinds: frozenset[FindingKind]) -> list[str]:
        return [
            f.message
            for f in self.report.findings
            if f.kind in kinds and f.kind not in self.allowed and not (self.ignore and self.ignore(f))
        ]

    @property
    def hard(self) -> list[str]:
        return self._counted(HARD) + self.extra

    @property
    def soft(self) -> list[str]:
        return self._counted(SOFT) + [str(m) for m in self.mismatches]

    @property
    def clean(self) -> bool:
        return not self.hard and not self.soft

    def text(self) -> str:
        lines = [render_text(self.report, self.snapshot, self.namespace)]
        lines += [f"status-mismatch  {m}" for m in self.mismatches]
        lines += [f"violation  {e}" for e in self.extra]
        return "\n".join(lines)

    def json(self) -> str:
        return render_json(self.report, self.snapshot, self.namespace, 0.0)


# ---- the recount ----------------------------------------------------------------------------------------


def recount(pool: Mapping[str, Any], addresses: Iterable[Mapping[str, Any]]) -> dict[str, int] | None:
    """`status.ipAddresses` as the IPAddresses referencing `pool` imply it; None for an unusable spec.

    IP pools (§5.7 with §10.2): total = allocatable addresses; used = IPAddresses referencing the pool (as
    upstream: two objects on one address count twice, an unparsable one counts); outOfRange = distinct
    held addresses outside the allocatable set (another family included); free = allocatable addresses
    nobody holds. Prefix pools: as upstream (used = IPAddresses, free = max(0, total - used + outOfRange)).
    """
    try:
        decoded = decode_pool(pool)
    except DecodeError:
        return None
    spec = decoded.spec
    try:
        if isinstance(spec, IPPoolSpec):
            allocatable = ip_core.allocatable_set(ip_core_spec(spec))
            held: set[tuple[int, int]] = set()
            addresses = list(addresses)
            for address in addresses:
                try:
                    parsed = parse_address(str((address.get("spec") or {}).get("address", "")))
                except AddressError:
                    continue
                held.add((parsed.version, int(parsed)))
            in_range = {v for fam, v in held if fam == allocatable.version and v in allocatable}
            total = allocatable.count()
            counts = ip_core.PoolCounts(
                total=total,
                used=len(addresses),
                free=total - len(in_range),
                out_of_range=len(held) - len(in_range),
            )
            return counts.status()
        prefixes = prefix_core.PrefixPool.from_spec(prefix_core_spec(spec))
    except (AddressError, ValueError):
        return None
    entries: list[tuple[Any, Any]] = []
    for address in addresses:
        body = address.get("spec") or {}
        try:
            entries.append((parse_address(str(body.get("address", ""))), body.get("prefix")))
        except AddressError:
            entries.append((None, None))
    used = len(entries)
    out_of_range = sum(
        1 for a, length in entries if a is None or not _prefix_allocatable(prefixes, a, length)
    )
    total = prefixes.count()
    return ip_core.PoolCounts(total, used, max(0, total - used + out_of_range), out_of_range).status()


def _prefix_allocatable(pool: prefix_core.PrefixPool, address: Any, length: Any) -> bool:
    if address.version != 6 or isinstance(length, bool) or not isinstance(length, int):
        return False
    return pool.is_allocatable(int(address), length)


def status_mismatches(snapshot: Snapshot, namespace: str | None) -> list[StatusMismatch]:
    by_pool: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for address in snapshot.addresses:
        key = address_pool_key(address)
        if key is not None:
            by_pool[key].append(address)
    # In a namespace, global pools count only when its claims or IPAddresses use them (other tests' global
    # pools may have no provider looking after them).
    used = {address_pool_key(o) for o in snapshot.addresses if namespace in (None, namespace_of(o))}
    used |= {claim_pool_key(o) for o in snapshot.claims if namespace in (None, namespace_of(o))}
    out = []
    for pool in snapshot.pools:
        key = pool_key_of(pool)
        if key is None or is_deleting(pool):
            continue
        if namespace is not None and namespace_of(pool) != namespace and key not in used:
            continue
        expected = recount(pool, by_pool.get(key, []))
        if expected is None:
            continue
        reported = (pool.get("status") or {}).get("ipAddresses")
        if reported != expected:
            out.append(StatusMismatch(key, reported, expected))
    return out


# ---- snapshot checks ------------------------------------------------------------------------------------


async def check(
    client: KubeClient,
    namespace: str | None = None,
    *,
    allow: Iterable[FindingKind] = (),
    ignore: Callable[[Finding], bool] | None = None,
    statuses: bool = True,
) -> Verdict:
    """One snapshot: the audit (grace 0) plus the status recount. `allow` lists finding kinds that are
    expected here; `ignore` drops single expected findings (e.g. about an IPAddress planted on purpose)."""
    snapshot = await read_cluster(client, namespace)
    report = audit(
        snapshot.pools,
        snapshot.claims,
        snapshot.addresses,
        now=time.time(),
        grace_seconds=0.0,
        clusters=snapshot.clusters,
        namespace=namespace,
        global_usage_complete=snapshot.global_usage_complete,
    )
    verdict = Verdict(snapshot, report, namespace, frozenset(allow), ignore)
    if statuses:
        verdict.mismatches = status_mismatches(snapshot, namespace)
    return verdict


class Watched(Protocol):
    """A process a test relies on (`helpers.ProviderProcess` registers itself when it starts)."""

    def died(self) -> str | None:
        """None while it runs or is meant to be down; else what happened, with its log tail."""


#: Processes whose unexpected death fails `settle` at once, instead of waiting out its deadline.
WATCHED: weakref.WeakSet[Watched] = weakref.WeakSet()


def check_watched() -> None:
    """Raise InvariantViolation naming every watched process that died while it was meant to run."""
    deaths = [death for proc in list(WATCHED) if (death := proc.died()) is not None]
    if deaths:
        raise InvariantViolation("a process the test relies on died:\n" + "\n".join(deaths))


async def settle(
    client: KubeClient,
    namespace: str | None = None,
    *,
    within: float = 60.0,
    allow: Iterable[FindingKind] = (),
    ignore: Callable[[Finding], bool] | None = None,
    statuses: bool = True,
    monitor: AddressMonitor | None = None,
    label: str = "",
) -> Verdict:
    """Poll until every invariant holds; raise InvariantViolation on a hard finding at any time, at once
    when a watched process (a provider) died unexpectedly, or on soft findings still there after `within`
    seconds. Returns the clean verdict."""
    deadline = time.monotonic() + within
    allowed = frozenset(allow)
    while True:
        check_watched()
        verdict = await check(client, namespace, allow=allowed, ignore=ignore, statuses=statuses)
        if monitor is not None:
            verdict.extra += monitor.violations
        where = f" ({label})" if label else ""
        if verdict.hard:
            raise InvariantViolation(f"invariant violated{where}:\n{verdict.text()}")
        if verdict.clean:
            return verdict
        if time.monotonic() > deadline:
            raise InvariantViolation(
                f"invariants did not settle within {within:.0f} s{where}:\n{verdict.text()}"
            )
        await asyncio.sleep(0.25)


def summary(verdict: Verdict) -> str:
    """One line: what the clean snapshot covered."""
    s, ns = verdict.snapshot, verdict.namespace
    claims = sum(1 for o in s.claims if ns in (None, namespace_of(o)))
    addresses = sum(1 for o in s.addresses if ns in (None, namespace_of(o)))
    return f"{claims} claims, {addresses} IPAddresses: invariants hold"


# ---- continuous duplicate detection ---------------------------------------------------------------------


class AddressMonitor:
    """Watches IPAddresses and records every moment one pool's address is held by two live objects.

    Prefix pools compare the base address of each sub-prefix (the provider hands out aligned sub-prefixes of
    one length per pool). IPAddresses that are being deleted still hold their address (as for the provider).
    """

    def __init__(self, client: KubeClient, resource: Resource, namespace: str | None = None) -> None:
        self._informer = Informer.for_resource(
            client, resource, namespace=namespace, backoff=Backoff(initial=0.1, cap=1.0), name="monitor"
        )
        self._informer.add_handler(self._on_event)
        self._held: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._of: dict[str, tuple[str, str]] = {}
        self.violations: list[str] = []
        self.events = 0
        self.peak = 0

    async def __aenter__(self) -> AddressMonitor:
        self._informer.start()
        await asyncio.wait_for(self._informer.wait_synced(), 60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._informer.stop()

    @property
    def relists(self) -> int:
        return self._informer.lists

    def _on_event(self, event: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        self.events += 1
        obj = new or old
        assert obj is not None
        key = key_of(obj)
        previous = self._of.pop(key, None)
        if previous is not None:
            self._held[previous].discard(key)
            if not self._held[previous]:
                del self._held[previous]
        if new is None:
            return
        pool = address_pool_key(new)
        address = (new.get("spec") or {}).get("address")
        if pool is None or not isinstance(address, str):
            return
        try:
            canonical = str(parse_address(address))
        except AddressError:
            canonical = address
        slot = (pool, canonical)
        holders = self._held[slot]
        holders.add(key)
        self._of[key] = slot
        self.peak = max(self.peak, len(self._of))
        if len(holders) > 1:
            self.violations.append(
                f"{canonical} of {pool} held at once by {sorted(holders)} ({event} {key} at "
                f"resourceVersion {new['metadata'].get('resourceVersion')})"
            )

    def assert_clean(self) -> None:
        if self.violations:
            raise InvariantViolation("duplicates seen by the watch:\n" + "\n".join(self.violations))

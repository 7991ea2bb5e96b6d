"""The in-cluster pools as a `ClaimBackend`: the leader's book (`book.py`) fed by the pool and IPAddress
informers, behind the claim lifecycle's seam.

Everything that changes the book is here: the reservation protocol the lifecycle calls (reserve, confirm,
abandon, adopted, released, gone), and the upkeep from the informers (`on_address`, `on_pool`), which runs
from the start of a takeover (`live`) so that nothing changing while the book is built is missed. Pool
states are built off the event loop (their cost is linear in the spec's entries). When an address is
freed, the claims waiting on its pool are woken, and the pool is marked for a status write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from incluster_ipam.api.conditions import SpecVerdict, unusable_message
from incluster_ipam.api.constants import PoolFamily
from incluster_ipam.api.models import DecodeError, IPPoolSpec, PrefixPoolSpec, decode_pool
from incluster_ipam.api.timestamps import parse_time
from incluster_ipam.capi.contract import PoolRef
from incluster_ipam.capi.objects import (
    BY_POOL,
    Obj,
    address_pool_key,
    address_text,
    claim_pool_key,
    finalizers_of,
    has_paused_annotation,
    is_deleting,
    key_of,
    pool_key_of,
    prefix_of,
    split_pool_key,
    uid_of,
)
from incluster_ipam.claimcore import Allocation, Exhausted, NotReady, Unavailable
from incluster_ipam.ipam.allocator import PoolExhausted
from incluster_ipam.ipam.request import RequestError, parse_request
from incluster_ipam.kube import DELETED
from incluster_ipam.runtime import Informer

from .book import PoolBook, PoolSpecError, PoolState, RequestRefused, RequestTaken, build_allocatable

log = logging.getLogger(__name__)

Seed = tuple[str, str, str | None, int | None]  # (IPAddress key, address, uid, prefix)
_READ_METADATA = ("generation", "deletionTimestamp", "labels", "annotations")


def pool_spec(pool: Mapping[str, Any]) -> IPPoolSpec | PrefixPoolSpec:
    return decode_pool(pool).spec


def in_use_by(holders: set[str], claim_key: str) -> str:
    """ "is in use by ...", naming holders only in the claim's own namespace (never another tenant's)."""
    namespace = claim_key.partition("/")[0]
    names = sorted(
        h.removeprefix("claim:").partition("/")[2]
        for h in holders
        if h.removeprefix("claim:").partition("/")[0] == namespace
    )
    if names:
        return f"is in use by {', '.join(names)} in this namespace"
    return "is in use in another namespace" if holders else "is in use"


def generation_of(obj: Mapping[str, Any]) -> int:
    generation = obj["metadata"].get("generation")
    return generation if isinstance(generation, int) and not isinstance(generation, bool) else 0


def differs_only_in_status(old: Obj | None, new: Obj | None) -> bool:
    """An update that changed nothing read outside status (finalizers are compared by callers)."""
    if old is None or new is None or old.get("spec") != new.get("spec"):
        return False
    return all(old["metadata"].get(k) == new["metadata"].get(k) for k in _READ_METADATA)


class InClusterPools:
    """InClusterIPPool, GlobalInClusterIPPool and the two prefix-pool kinds, allocated from the book."""

    def __init__(
        self,
        *,
        addresses: Informer,
        pools: Mapping[str, Informer],
        wake: Callable[[str], None],
        claims_of: Callable[[str], set[str]],
    ) -> None:
        self.addresses = addresses
        self.pools = dict(pools)  # by kind name
        self.book = PoolBook()
        self._wake = wake
        self._claims_of = claims_of
        self.changed: Callable[[str], None] = lambda _key: None  # the status writer marks the pool
        self.live = False  # the book follows the informers (from the start of a takeover)
        self.leading = False  # events also wake claims
        #: IPAddress keys to check against the apiserver before their next reconcile.
        self.verify: set[str] = set()
        #: Takeover entries of pools that have no state yet, by pool key.
        self.unplaced: dict[str, list[Seed]] = {}
        #: What was last made of each pool's spec, for its conditions (by pool key).
        self.verdicts: dict[str, SpecVerdict] = {}

    # ---- pools -----------------------------------------------------------------------------------------

    def pool_object(self, pool_key: str) -> Obj | None:
        kind, namespace, name = split_pool_key(pool_key)
        informer = self.pools.get(kind.kind)
        return informer.get_object(namespace or None, name) if informer is not None else None

    def pool_key(self, claim: Mapping[str, Any]) -> str | None:
        return claim_pool_key(claim)

    def pool_of_address(self, address: Mapping[str, Any]) -> str | None:
        return address_pool_key(address)

    def describe(self, pool_key: str) -> str:
        kind, namespace, name = split_pool_key(pool_key)
        return f"{kind.kind} {namespace}/{name}" if namespace else f"{kind.kind} {name}"

    def pool(self, pool_key: str) -> PoolRef | None:
        obj = self.pool_object(pool_key)
        if obj is None:
            return None
        kind, namespace, name = split_pool_key(pool_key)
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        return PoolRef(
            key=pool_key,
            group=group,
            version=version,
            kind=kind.kind,
            name=name,
            namespace=namespace,
            uid=str(obj["metadata"].get("uid", "")),
            paused=has_paused_annotation(obj),
            deleting=is_deleting(obj),
        )

    def verdict(self, pool_key: str) -> SpecVerdict | None:
        """Whether the pool's spec of which generation is in use, or why it cannot be used; None while no
        spec of it has been looked at."""
        return self.verdicts.get(pool_key)

    def _judged(self, pool_key: str, verdict: SpecVerdict) -> None:
        """Record a verdict (mark the pool for a status write; wake its claims once its spec is fixed)
        unless the cache holds a newer spec by now: the event that brought it is judged next."""
        cached = self.pool_object(pool_key)
        if cached is not None and generation_of(cached) != verdict.generation:
            return
        previous = self.verdicts.get(pool_key)
        if previous != verdict:
            self.verdicts[pool_key] = verdict
            self.changed(pool_key)
            if previous is not None and previous.problem is not None and verdict.problem is None:
                # Its spec was fixed: claims told the pool is not ready have no retry pending.
                self._wake_all(pool_key)

    def seed(self, pool_key: str) -> list[Seed]:
        """What a pool's state starts from: its IPAddresses in the cache, plus takeover entries that
        arrived before the pool was known."""
        cached = [
            (key, address_text(a), uid_of(a), prefix_of(a))
            for key, a in self.addresses.each_in_index(BY_POOL, pool_key)
        ]
        return cached + self.unplaced.pop(pool_key, [])

    def state(self, pool_key: str) -> PoolState:
        """The pool's state, built now from the cached pool and its IPAddresses when it has none yet
        (synchronously: a claim of a pool whose event is still being handled). Raises `PoolSpecError`,
        `LookupError` (no such pool)."""
        state = self.book.get(pool_key)
        if state is not None:
            return state
        obj = self.pool_object(pool_key)
        if obj is None:
            raise LookupError(pool_key)
        kind, _, _ = split_pool_key(pool_key)
        spec: IPPoolSpec | PrefixPoolSpec | None = None
        try:
            spec = pool_spec(obj)
            state, _ = self.book.upsert(pool_key, kind, spec, self.seed(pool_key))
        except (DecodeError, PoolSpecError) as exc:
            self._judged(pool_key, SpecVerdict(generation_of(obj), unusable_message(spec, str(exc))))
            if isinstance(exc, PoolSpecError):
                raise
            raise PoolSpecError(str(exc)) from exc
        self._judged(pool_key, SpecVerdict(generation_of(obj)))
        return state

    def freed(self, state: PoolState) -> None:
        """An address of `state` became free: wake the claims waiting for one, refresh the pool status."""
        for claim_key in sorted(state.waiting):
            self._wake(claim_key)
        self.changed(state.key)

    # ---- the reservation protocol (claimcore.ClaimBackend) ---------------------------------------------

    def unusable(self, pool: PoolRef) -> str | None:
        try:
            self.state(pool.key)
        except PoolSpecError as exc:
            return f"is invalid: {exc}"
        except LookupError:
            return "not found"
        return None

    async def reserve(self, claim_key: str, pool: PoolRef, requested: str | None = None) -> Allocation:
        try:
            state = self.state(pool.key)
        except PoolSpecError as exc:
            raise NotReady(f"is invalid: {exc}") from exc
        except LookupError:
            raise NotReady("not found") from None
        if pool.deleting and state.pending(claim_key) is None:
            # Finish what is in flight, start nothing new: the pool is going (finding 16).
            raise NotReady("is being deleted")
        try:
            if requested is None:
                grant = state.reserve(claim_key)
            else:
                grant = state.reserve(claim_key, parse_request(requested))
        except PoolExhausted:
            raise Exhausted from None
        except RequestError as exc:
            if state.withdraw(claim_key):  # it asked for another address before: that one is free again
                self.freed(state)
            raise Unavailable(str(exc)) from None
        except RequestRefused as exc:
            raise Unavailable(f"{exc}: pool {pool.description} never hands it out") from None
        except RequestTaken as exc:
            raise Unavailable(
                f"{in_use_by(exc.holders, claim_key)}; the claim gets it once it is free"
            ) from None
        self.changed(pool.key)
        return Allocation(grant.address, grant.prefix, grant.gateway)

    async def confirm(self, claim_key: str, pool: PoolRef, address: Mapping[str, Any]) -> None:
        state = self.book.get(pool.key)
        if state is not None:
            state.confirm(claim_key, key_of(address), uid_of(address))
            # `used` changes when the watch showed the object first (reservation and object both counted).
            self.changed(pool.key)

    async def abandon(self, claim_key: str) -> None:
        for state in self.book.states():
            reserved = state.pending(claim_key) is not None
            if state.withdraw(claim_key):
                self.freed(state)
            elif reserved:  # the address stays held (by the object that landed), `used` loses one
                self.changed(state.key)

    def known_address(self, claim_key: str, pool: PoolRef) -> str | None:
        state = self.book.get(pool.key)
        return state.address_of(claim_key) if state is not None else None

    def holds(self, address_key: str) -> bool:
        return any(state.holds(address_key) for state in self.book.states())

    def refusal(self, claim: Mapping[str, Any], pool: PoolRef, address: Mapping[str, Any]) -> str | None:
        try:
            state = self.state(pool.key)
        except (PoolSpecError, LookupError) as exc:
            return f"pool {pool.description} cannot be used: {exc}"
        text = address_text(address)
        if not state.is_allocatable(text, prefix_of(address)):
            return (
                f"IPAddress {key_of(address)} already exists with address {text}, which pool "
                f"{pool.description} does not hand out; delete it to get an address"
            )
        if state.holders_of(text) - {key_of(address), f"claim:{key_of(claim)}"}:
            return (
                f"IPAddress {key_of(address)} already exists with address {text}, which is in use in pool "
                f"{pool.description}; delete it to get an address"
            )
        return None

    def outside(self, pool: PoolRef, address: Mapping[str, Any]) -> bool:
        try:
            state = self.state(pool.key)
        except (PoolSpecError, LookupError):
            return False
        return not state.is_allocatable(address_text(address), prefix_of(address))

    async def adopted(self, pool: PoolRef, address: Mapping[str, Any]) -> None:
        state = self.book.get(pool.key)
        if state is not None:
            state.observe(
                key_of(address), address_text(address), uid_of(address), prefix_of(address), ahead=True
            )
            self.changed(pool.key)

    async def released(self, address: Mapping[str, Any]) -> None:
        pool_key = address_pool_key(address)
        state = self.book.get(pool_key) if pool_key else None
        if state is not None and state.forget(key_of(address), uid_of(address)):
            self.freed(state)

    async def gone(self, address_key: str, keep_uid: str | None) -> None:
        self.verify.discard(address_key)
        for state in self.book.states():
            for who in state.identities(address_key):
                if who != keep_uid and state.forget(address_key, who):
                    self.freed(state)

    def needs_check(self, address_key: str) -> bool:
        return address_key in self.verify

    def grace_remaining(self, claim: Mapping[str, Any], pool: PoolRef | None, now: float) -> float:
        """`addressReuseGracePeriodSeconds` of IP pools (none while the pool is going away, as upstream)."""
        obj = self.pool_object(pool.key) if pool is not None else None
        if obj is None or pool is None or pool.deleting:
            return 0.0
        try:
            decoded = decode_pool(obj)
        except DecodeError:
            return 0.0
        spec = decoded.spec
        if decoded.kind.family is not PoolFamily.IP or not isinstance(spec, IPPoolSpec):
            return 0.0
        if not spec.reuse_grace_seconds:
            return 0.0
        deleted_at = parse_time(str(claim["metadata"]["deletionTimestamp"]))
        return max(0.0, spec.reuse_grace_seconds - (now - deleted_at))

    # ---- upkeep from the informers ----------------------------------------------------------------------

    def on_address(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """An IPAddress event: the book follows (by UID), and a freed address wakes its waiters."""
        if not self.live:
            return
        obj = new or old
        assert obj is not None
        key = key_of(obj)
        pool_key = address_pool_key(obj)
        state = self.book.get(pool_key) if pool_key else None
        if event == DELETED:
            if state is None:
                self.book.bury(key, uid_of(obj))
            elif state.forget(key, uid_of(obj)):
                self.freed(state)
        elif new is not None:
            if old is not None and (uid_of(old) != uid_of(new) or address_pool_key(old) != pool_key):
                # The watch says the earlier incarnation (or its place in another pool) is gone.
                before = self.book.get(address_pool_key(old) or "")
                if before is not None and before.forget(key, uid_of(old)):
                    self.freed(before)
            if state is not None:
                state.observe(key, address_text(new), uid_of(new), prefix_of(new))
        if pool_key is not None:
            self.changed(pool_key)

    async def on_pool(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A pool event: its state follows its spec (built off the loop); claims are woken on creation,
        unpause and the start of its deletion, and whenever it gains room."""
        if not self.live:
            return
        obj = new or old
        assert obj is not None
        pool_key = pool_key_of(obj)
        if pool_key is None:
            return
        if event == DELETED:
            self.book.remove(pool_key)  # kept while reservations are in flight: a re-created pool goes on
            self.verdicts.pop(pool_key, None)
            self._wake_all(pool_key)
            return
        assert new is not None
        if old is not None and differs_only_in_status(old, new) and finalizers_of(old) == finalizers_of(new):
            # Usually the echo of our own status write, but it may be the previous leader's, landing after
            # ours: the writer compares and writes only a status that differs. Nothing else to do.
            self.changed(pool_key)
            return
        self.changed(pool_key)
        await self.apply(pool_key, new, create=self.leading)
        unpaused = old is not None and has_paused_annotation(old) and not has_paused_annotation(new)
        going = is_deleting(new) and not (old is not None and is_deleting(old))
        if event != "MODIFIED" or unpaused or going:
            self._wake_all(pool_key)

    def _wake_all(self, pool_key: str) -> None:
        if self.leading:
            for claim_key in self._claims_of(pool_key):
                self._wake(claim_key)

    async def apply(self, pool_key: str, pool: Obj, *, create: bool) -> None:
        """Bring the book's state of a pool in line with its spec, building the allocatable set off the
        event loop. Creates the state only with `create`."""
        state = self.book.get(pool_key)
        if state is None and not create:
            return
        generation = generation_of(pool)
        spec: IPPoolSpec | PrefixPoolSpec | None = None
        try:
            spec = pool_spec(pool)
            if state is not None and state.spec == spec:
                self._judged(pool_key, SpecVerdict(generation))
                return
            built = await asyncio.to_thread(build_allocatable, spec)
            state = self.book.get(pool_key)  # the book may have changed while the set was built
            if state is None:
                kind, _, _ = split_pool_key(pool_key)
                self.book.upsert(pool_key, kind, spec, self.seed(pool_key), built)
            elif state.update_spec(spec, built):
                self.freed(state)
            self._judged(pool_key, SpecVerdict(generation))
        except (PoolSpecError, DecodeError) as exc:
            log.warning("pool %s: %s", pool_key, exc)
            # The field errors cost time linear in the spec's entries, like the set that failed to build.
            problem = await asyncio.to_thread(unusable_message, spec, str(exc))
            self._judged(pool_key, SpecVerdict(generation, problem))

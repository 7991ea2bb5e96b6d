"""Claim reconciliation: bind each IPAddressClaim of one of our pools to an IPAddress, release it on delete.

The flow follows upstream (spec §5.3-5.5) with our differences (§10): a Ready condition and Events on every
claim, immediate wake-up of claims waiting on an exhausted pool, and allocation through the leader's
`PoolBook`, which reserves an address before the IPAddress create is sent. A create whose outcome is
unknown (timeout, 5xx, connection reset) keeps its reservation; the retry either finds the IPAddress
(AlreadyExists: adopt it) or creates it with the same address, as long as the pool still allows it.

Safety rules from the December review:
- every write is fenced (`incluster_ipam.runtime.fence`): nothing is sent once leadership is uncertain;
- IPAddresses are known by UID in the book, so another incarnation of a name never frees an address;
- a claim adopts an existing IPAddress of its name only when that IPAddress is meant for it (claimRef),
  lies in the pool and is held by nobody else; a release deletes only an IPAddress of the claim's pool
  meant for it;
- a pool being deleted hands out nothing new.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from incluster_ipam.api.constants import ADDRESS_FINALIZER, CLAIM_FINALIZER, PoolFamily
from incluster_ipam.api.models import IPPoolSpec, PrefixPoolSpec, decode_pool
from incluster_ipam.ipam.allocator import PoolExhausted
from incluster_ipam.kube import ApiError, EventRecorder, KubeClient, KubeError, Resource, is_already_exists
from incluster_ipam.kube.errors import is_conflict, is_not_found
from incluster_ipam.runtime import Fence, Informer, NotLeading, Result, Unfenced, send_within

from . import contract as c
from .book import PoolBook, PoolSpecError, PoolState
from .metrics import Metrics
from .objects import (
    BY_POOL,
    CLUSTER_NAME_LABEL,
    Obj,
    address_pool_key,
    claim_cluster_name,
    claim_pool_key,
    cluster_is_paused,
    finalizers_of,
    has_paused_annotation,
    is_deleting,
    key_of,
    name_of,
    namespace_of,
    passes_watch_filter,
    project,
    split_pool_key,
)

log = logging.getLogger(__name__)

#: HTTP statuses after which a create certainly did not happen (anything else may have).
_DEFINITIVE = frozenset({400, 403, 404, 405, 415, 422})


def rfc3339_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uid_of(obj: Mapping[str, Any]) -> str | None:
    uid = (obj.get("metadata") or {}).get("uid")
    return uid if isinstance(uid, str) and uid else None


def prefix_of(address: Mapping[str, Any]) -> int | None:
    prefix = (address.get("spec") or {}).get("prefix")
    return prefix if isinstance(prefix, int) and not isinstance(prefix, bool) else None


def address_text(address: Mapping[str, Any]) -> str:
    return str((address.get("spec") or {}).get("address", ""))


def parse_rfc3339(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


@dataclass
class Informers:
    """The provider's caches (all projections, see `objects.project`)."""

    claims: Informer
    addresses: Informer
    clusters: Informer | None
    pools: dict[str, Informer]  # by pool kind name

    def pool(self, pool_key: str) -> Obj | None:
        kind, namespace, name = split_pool_key(pool_key)
        informer = self.pools.get(kind.kind)
        return informer.get_object(namespace or None, name) if informer is not None else None


@dataclass(frozen=True)
class Resources:
    """The API resources written, in the versions the cluster serves."""

    claims: Resource
    addresses: Resource


def pool_spec(pool: Mapping[str, Any]) -> IPPoolSpec | PrefixPoolSpec:
    return decode_pool(pool).spec


class ClaimReconciler:
    """Reconciles one claim key (`namespace/name`) at a time; many keys run concurrently."""

    def __init__(
        self,
        client: KubeClient,
        *,
        contract: c.Contract,
        resources: Resources,
        informers: Informers,
        book: PoolBook,
        recorder: EventRecorder,
        metrics: Metrics,
        wake: Callable[[str], None],
        pool_changed: Callable[[str], None],
        watch_filter: str | None = None,
        clock: Callable[[], float] = time.time,
        fence: Fence | None = None,
    ) -> None:
        self._client = client
        self._contract = contract
        self.resources = resources
        self._informers = informers
        self.book = book
        self._recorder = recorder
        self._metrics = metrics
        self._wake = wake
        self._pool_changed = pool_changed
        self._watch_filter = watch_filter
        self._clock = clock
        self.fence: Fence = fence or Unfenced()
        #: IPAddress keys to check against the apiserver before their next reconcile (takeover entries the
        #: cache may never report on).
        self.verify: set[str] = set()
        #: Takeover entries of pools the pool cache did not know yet: (key, address, uid, prefix) by pool.
        self.unplaced: dict[str, list[tuple[str, str, str | None, int | None]]] = {}

    def _send_within(self) -> float | None:
        """Seconds within which the next write must leave; raises `NotLeading` when leadership is not
        certain (nothing is sent then)."""
        try:
            return send_within(self.fence)
        except NotLeading:
            self._metrics.writes_fenced.inc()
            raise

    # ---- pool state ----------------------------------------------------------------------------------

    def seed(self, pool_key: str) -> list[tuple[str, str, str | None, int | None]]:
        """What the book starts a pool's state from: its IPAddresses in the cache, plus takeover entries
        that arrived before the pool was known."""
        seeded = [
            (key, address_text(a), uid_of(a), prefix_of(a))
            for key, a in self._informers.addresses.each_in_index(BY_POOL, pool_key)
        ]
        return seeded + self.unplaced.pop(pool_key, [])

    def pool_state(self, pool_key: str, pool: Mapping[str, Any]) -> PoolState:
        """The book's state for a pool, built from the pool and its IPAddresses on first use."""
        state = self.book.get(pool_key)
        if state is not None:
            return state
        kind, _, _ = split_pool_key(pool_key)
        state, _ = self.book.upsert(pool_key, kind, pool_spec(pool), self.seed(pool_key))
        return state

    def freed(self, state: PoolState) -> None:
        """An address of `state` became free: wake the claims waiting for one, refresh the pool status."""
        for claim_key in sorted(state.waiting):
            self._wake(claim_key)
        self._pool_changed(state.key)

    # ---- the reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        """Reconcile one claim; a write that lost an optimistic-concurrency race is retried quietly, a
        throttled one after the apiserver's Retry-After, and nothing is written without leadership."""
        try:
            return await self._reconcile(key)
        except NotLeading:
            log.debug("claim %s: leadership not certain; not writing", key)
            return None
        except ApiError as exc:
            if is_conflict(exc):
                log.debug("claim %s: %s; retrying", key, exc)
                return Result(requeue=True)
            if exc.is_too_many_requests and exc.retry_after:
                return Result(requeue_after=exc.retry_after)
            raise

    async def _reconcile(self, key: str) -> Result | None:
        if key in self.verify:
            await self._verify_address(key)
        claim = self._informers.claims.get(key)
        if claim is None:
            self._drop_reservations(key)
            return await self._release_orphan(key)
        pool_key = claim_pool_key(claim)
        if pool_key is None or not passes_watch_filter(claim, self._watch_filter):
            return None
        deleting = is_deleting(claim)
        if not deleting and has_paused_annotation(claim):
            return None
        if not self._cluster_allows(claim, deleting):
            return None
        if not deleting and CLAIM_FINALIZER not in finalizers_of(claim):
            claim = await self._set_claim_finalizers(claim, [*finalizers_of(claim), CLAIM_FINALIZER])
            if CLAIM_FINALIZER not in finalizers_of(claim):
                return None  # the claim vanished (404) before it was ours: allocating would leave an orphan
        pool = self._informers.pool(pool_key)
        if pool is not None and has_paused_annotation(pool):
            return None
        if deleting:
            return await self._release(claim, pool_key, pool)
        if pool is None:
            await self._set_ready(
                claim, c.ReadyState(False, c.POOL_NOT_READY, f"pool {_describe(pool_key)} not found")
            )
            return None
        return await self._bind(claim, pool_key, pool)

    def _cluster_allows(self, claim: Mapping[str, Any], deleting: bool) -> bool:
        """Stop for a paused Cluster; a missing Cluster stops live claims (its creation re-triggers them)."""
        name = claim_cluster_name(claim)
        if name is None or self._informers.clusters is None:
            return True
        cluster = self._informers.clusters.get_object(namespace_of(claim), name)
        if cluster is None:
            return deleting
        return not cluster_is_paused(cluster)

    def _states(self) -> list[PoolState]:
        return self.book.states()

    async def _verify_address(self, key: str) -> None:
        """Ask the apiserver which IPAddress of this name exists, and forget what the book holds under the
        name that is not it (takeover entries deleted while no leader could hear of it)."""
        self.verify.discard(key)
        namespace, _, name = key.partition("/")
        live = await self._live_address({"metadata": {"name": name, "namespace": namespace}})
        live_uid = uid_of(live) if live is not None else None
        for state in self._states():
            for who in state.identities(key):
                if who != live_uid and state.forget(key, who):
                    self.freed(state)

    async def _release_orphan(self, key: str) -> Result | None:
        """The claim is gone: delete an IPAddress we made for it that outlived it.

        kube-apiserver can remove a claim whose finalizer was added while its DELETE was in flight: the
        finalizer patch succeeds, the claim vanishes anyway (kubernetes/kubernetes#77988), and the IPAddress
        created for it would hold its address forever. Only an IPAddress of our pools, controlled by a claim
        of that name, is deleted, and only when no claim of that name exists (a re-created one adopts it).
        When no IPAddress of that name exists any more, the book forgets it (finding 13).
        """
        if not any(state.holds(key) for state in self._states()):
            return None
        namespace, _, name = key.partition("/")
        address = await self._live_address({"metadata": {"name": name, "namespace": namespace}})
        if address is None:
            for state in self._states():
                if state.forget_key(key):
                    self.freed(state)
            return None
        if not _controlled_by_claim(address, name) or self._orphan_paused(address):
            return None
        try:
            live = await self._client.get(self.resources.claims, name, namespace)
        except ApiError as exc:
            if not is_not_found(exc):
                raise
        else:
            if claim_pool_key(live) == address_pool_key(address) or not _of_an_earlier_incarnation(
                live, address
            ):
                return None  # the claim of that name adopts it
        log.info("IPAddress %s outlived its claim; deleting it", key)
        gone = await self._delete_address(address)
        pool_key = address_pool_key(address)
        holder = self.book.get(pool_key) if pool_key else None
        if gone and holder is not None and holder.forget(key, uid_of(address)):
            self.freed(holder)
        return None

    def _orphan_paused(self, address: Obj) -> bool:
        """Paused (the IPAddress, its pool or the Cluster it is labelled with): leave it alone (a move)."""
        pool_key = address_pool_key(address)
        pool = self._informers.pool(pool_key) if pool_key else None
        if has_paused_annotation(address) or (pool is not None and has_paused_annotation(pool)):
            return True
        cluster_name = (address["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL)
        if not cluster_name or self._informers.clusters is None:
            return False
        cluster = self._informers.clusters.get_object(namespace_of(address), cluster_name)
        return cluster is not None and cluster_is_paused(cluster)

    def _drop_reservations(self, claim_key: str) -> None:
        for state in self._states():
            if state.pending(claim_key) is not None and state.abandon(claim_key):
                self.freed(state)
            state.waiting.discard(claim_key)

    # ---- binding ----------------------------------------------------------------------------------------

    async def _bind(self, claim: Obj, pool_key: str, pool: Obj) -> Result | None:
        key = key_of(claim)
        try:
            state = self.pool_state(pool_key, pool)
        except PoolSpecError as exc:
            await self._set_ready(
                claim, c.ReadyState(False, c.POOL_NOT_READY, f"pool {_describe(pool_key)} is invalid: {exc}")
            )
            return None
        existing = self._informers.addresses.get(key)
        known = state.address_of(key)
        if existing is None and known is not None:
            # We created it a moment ago and the cache has not caught up: never reserve a second address.
            await self._set_ready(claim, _bound(known, pool_key), address_name=name_of(claim))
            return None
        if existing is not None:
            return await self._adopt(claim, state, pool_key, pool, existing)
        if is_deleting(pool) and state.pending(key) is None:
            # Finish what is in flight, start nothing new: the pool is going (finding 16).
            message = f"pool {_describe(pool_key)} is being deleted"
            await self._set_ready(claim, c.ReadyState(False, c.POOL_NOT_READY, message))
            return None
        started = time.perf_counter()
        try:
            grant = state.reserve(key)
        except PoolExhausted:
            message = f"pool {_describe(pool_key)} has no free address"
            if await self._set_ready(claim, c.ReadyState(False, c.POOL_EXHAUSTED, message)):
                self._recorder.warning(claim, c.POOL_EXHAUSTED, message)
            self._metrics.failures.labels(reason=c.POOL_EXHAUSTED).inc()
            return None
        self._pool_changed(pool_key)
        body = self._contract.ip_address(
            claim, state.kind, pool, address=grant.address, prefix=grant.prefix, gateway=grant.gateway
        )
        try:
            within = self._send_within()
        except NotLeading:
            if state.abandon(key):
                self.freed(state)
            raise
        try:
            created = await self._client.create(self.resources.addresses, body, send_within=within)
        except ApiError as exc:
            if not is_already_exists(exc):
                return await self._create_failed(claim, state, pool_key, exc)
            existing = await self._live_address(claim)
            if existing is None:
                raise  # deleted in between: retry with backoff
            if state.abandon(key):
                self.freed(state)
            return await self._adopt(claim, state, pool_key, pool, existing)
        except KubeError as exc:
            log.warning(
                "create of IPAddress %s has an unknown outcome (%s); keeping its reservation", key, exc
            )
            raise
        state.confirm(key, key_of(created), uid_of(created))
        self._metrics.allocations.inc()
        self._metrics.latency.observe(time.perf_counter() - started)
        self._recorder.normal(
            claim,
            c.ADDRESS_ALLOCATED,
            f"allocated {grant.address}/{grant.prefix} from pool {_describe(pool_key)}",
        )
        await self._set_ready(claim, _bound(grant.address, pool_key), address_name=name_of(created))
        return None

    async def _create_failed(
        self, claim: Obj, state: PoolState, pool_key: str, exc: ApiError
    ) -> Result | None:
        if exc.status not in _DEFINITIVE:
            log.warning("create of IPAddress %s failed with %s; keeping its reservation", key_of(claim), exc)
            raise exc
        if state.abandon(key_of(claim)):
            self.freed(state)
        message = f"creating the IPAddress from pool {_describe(pool_key)} failed: {exc.message or exc}"
        self._metrics.failures.labels(reason=c.ALLOCATION_FAILED).inc()
        if await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, message)):
            self._recorder.warning(claim, c.ALLOCATION_FAILED, message)
        raise exc

    def _adoption_refusal(self, claim: Obj, state: PoolState, pool_key: str, address: Obj) -> str | None:
        """Why the claim must not take this IPAddress of its name (finding 9), or None when it may."""
        name = name_of(claim)
        claim_ref = ((address.get("spec") or {}).get("claimRef") or {}).get("name")
        if claim_ref != name:
            return (
                f"IPAddress {key_of(address)} already exists for claim {claim_ref!r}, not for this one; "
                "delete it or give the claim another name"
            )
        for owner in address["metadata"].get("ownerReferences") or []:
            if owner.get("controller") and not (
                owner.get("kind") == "IPAddressClaim" and owner.get("name") == name
            ):
                return (
                    f"IPAddress {key_of(address)} already exists and is controlled by "
                    f"{owner.get('kind')} {owner.get('name')!r}; not adopting it"
                )
        text = address_text(address)
        if not state.is_allocatable(text, prefix_of(address)):
            return (
                f"IPAddress {key_of(address)} already exists with address {text}, which pool "
                f"{_describe(pool_key)} does not hand out; delete it to get an address"
            )
        others = state.holders_of(text) - {key_of(address), f"claim:{key_of(claim)}"}
        if others:
            return (
                f"IPAddress {key_of(address)} already exists with address {text}, which is in use in pool "
                f"{_describe(pool_key)}; delete it to get an address"
            )
        return None

    async def _adopt(
        self, claim: Obj, state: PoolState, pool_key: str, pool: Obj, address: Obj
    ) -> Result | None:
        """An IPAddress of the claim's name exists: keep its spec, make sure it is ours and counted."""
        if address_pool_key(address) != pool_key and _of_an_earlier_incarnation(claim, address):
            # Made by us for an earlier claim of this name (a controller reference to another UID of it:
            # that claim is gone) in another pool: it is nobody's now. Replace it.
            log.info("IPAddress %s was made for an earlier claim of that name; replacing it", key_of(address))
            old = self.book.get(address_pool_key(address) or "")
            if (
                await self._delete_address(address)
                and old is not None
                and old.forget(key_of(address), uid_of(address))
            ):
                self.freed(old)
            return Result(requeue=True)
        if address_pool_key(address) != pool_key:
            message = (
                f"IPAddress {key_of(address)} already exists and belongs to another pool; "
                "delete it or point the claim at its pool"
            )
            await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, message))
            return Result(requeue_after=30.0)
        # An IPAddress of the claim's name exists: a reservation kept for it (a create whose answer was
        # lost, that landed after all) has served its purpose, or will not be used while it stands.
        if state.abandon(key_of(claim)):
            self.freed(state)
        text = address_text(address)
        if not _controls(claim, address):
            refusal = self._adoption_refusal(claim, state, pool_key, address)
            if refusal is not None:
                if await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, refusal)):
                    self._recorder.warning(claim, c.ALLOCATION_FAILED, refusal)
                self._metrics.failures.labels(reason=c.ALLOCATION_FAILED).inc()
                return Result(requeue_after=30.0)
        elif not _bound_to(claim, address) and not state.is_allocatable(text, prefix_of(address)):
            # Ours, never handed out (the claim does not point at it yet), and outside the pool as it is
            # now: a create that landed while the pool shrank. Replace it with an address in the pool.
            log.info("IPAddress %s (%s) is outside pool %s; replacing it", key_of(address), text, pool_key)
            if await self._delete_address(address) and state.forget(key_of(address), uid_of(address)):
                self.freed(state)
            return Result(requeue=True)
        state.observe(key_of(address), text, uid_of(address), prefix_of(address), ahead=True)
        patch = self._adoption_patch(claim, state, pool, address)
        if patch is not None:
            try:
                address = project(
                    await self._client.patch(
                        self.resources.addresses,
                        name_of(address),
                        patch,
                        namespace_of(address),
                        send_within=self._send_within(),
                    )
                )
            except ApiError as exc:
                if is_conflict(exc) or is_not_found(exc):
                    return Result(requeue=True)
                raise
        if is_deleting(address):
            log.info("IPAddress %s is being deleted while its claim lives", key_of(address))
        await self._set_ready(claim, _bound(text, pool_key), address_name=name_of(address))
        return None

    def _adoption_patch(self, claim: Obj, state: PoolState, pool: Obj, address: Obj) -> Obj | None:
        metadata = address["metadata"]
        finalizers = finalizers_of(address)
        name, uid = name_of(claim), claim["metadata"]["uid"]
        # A controller reference to an earlier claim of this name (a restore keeps stale UIDs) names an
        # object that cannot exist any more (names are unique): the live claim takes its place.
        owners: list[Obj] = [
            dict(o)
            for o in metadata.get("ownerReferences") or []
            if not (o.get("kind") == "IPAddressClaim" and o.get("name") == name and o.get("uid") != uid)
        ]
        changed = len(owners) != len(metadata.get("ownerReferences") or [])
        wanted = c.owner_references(self._contract, claim, state.kind, pool)
        other_controller = any(o.get("controller") and o.get("uid") != uid for o in owners)
        for ref in wanted:
            if not any(o.get("uid") == ref["uid"] for o in owners):
                owners.append({**ref, "controller": False} if ref["controller"] and other_controller else ref)
                changed = True
        patch_meta: Obj = {"resourceVersion": metadata.get("resourceVersion")}
        if changed:
            patch_meta["ownerReferences"] = owners
        if ADDRESS_FINALIZER not in finalizers and not is_deleting(address):
            patch_meta["finalizers"] = [*finalizers, ADDRESS_FINALIZER]
            changed = True
        cluster = (claim["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL)
        if cluster and (metadata.get("labels") or {}).get(CLUSTER_NAME_LABEL) != cluster:
            patch_meta["labels"] = {CLUSTER_NAME_LABEL: cluster}
            changed = True
        return {"metadata": patch_meta} if changed else None

    # ---- release ----------------------------------------------------------------------------------------

    async def _release(self, claim: Obj, pool_key: str, pool: Obj | None) -> Result | None:
        if CLAIM_FINALIZER not in finalizers_of(claim):
            self._drop_reservations(key_of(claim))
            return None
        delay = self._grace_remaining(claim, pool)
        if delay > 0:
            return Result(requeue_after=delay)
        address = self._informers.addresses.get(key_of(claim))
        state = self.book.get(pool_key)
        if address is None:
            # The cache may not have seen an IPAddress created moments ago: ask the apiserver, never assume.
            address = await self._live_address(claim)
        released = address is not None and _meant_for(claim, pool_key, address)
        if address is not None and not released:
            message = (
                f"left IPAddress {key_of(address)} in place: it is not this claim's (another pool or claim)"
            )
            log.info("claim %s: %s", key_of(claim), message)
            self._recorder.normal(claim, "AddressNotReleased", message)
        if address is not None and released:
            gone = await self._delete_address(address)
            if gone and state is not None and state.forget(key_of(address), uid_of(address)):
                self.freed(state)
        if state is not None and state.abandon(key_of(claim)):
            self.freed(state)
        await self._set_claim_finalizers(claim, [f for f in finalizers_of(claim) if f != CLAIM_FINALIZER])
        self._metrics.releases.inc()
        if address is not None and released:
            self._recorder.normal(
                claim, "AddressReleased", f"released {address_text(address)} to pool {_describe(pool_key)}"
            )
        return None

    def _grace_remaining(self, claim: Obj, pool: Obj | None) -> float:
        """`addressReuseGracePeriodSeconds`: seconds the address stays held after the claim's deletion,
        timed by the apiserver's clock (it wrote the deletionTimestamp)."""
        if pool is None or is_deleting(pool) or decode_pool(pool).kind.family is not PoolFamily.IP:
            return 0.0
        spec = pool_spec(pool)
        grace = spec.reuse_grace_seconds if isinstance(spec, IPPoolSpec) else None
        if not grace:
            return 0.0
        deleted_at = parse_rfc3339(str(claim["metadata"]["deletionTimestamp"]))
        return max(0.0, grace - (self._clock() - deleted_at))

    async def _delete_address(self, address: Obj) -> bool:
        """Remove our finalizer and delete; True when the object is gone (not held by other finalizers)."""
        name, namespace = name_of(address), namespace_of(address)
        finalizers = finalizers_of(address)
        try:
            uid = uid_of(address)
            if ADDRESS_FINALIZER in finalizers:
                remaining = [f for f in finalizers if f != ADDRESS_FINALIZER]
                meta: Obj = {"finalizers": remaining or None}
                if uid:
                    meta["uid"] = uid  # a precondition: never touch another incarnation of the name
                await self._client.patch(
                    self.resources.addresses,
                    name,
                    {"metadata": meta},
                    namespace,
                    send_within=self._send_within(),
                )
            result = await self._client.delete(
                self.resources.addresses, name, namespace, uid=uid, send_within=self._send_within()
            )
        except ApiError as exc:
            if is_not_found(exc):
                return True
            if is_conflict(exc):  # the UID precondition failed: another incarnation has the name now
                return False
            raise
        return result.get("kind") == "Status" or not result.get("metadata", {}).get("finalizers")

    async def _live_address(self, claim: Obj) -> Obj | None:
        try:
            return project(
                await self._client.get(self.resources.addresses, name_of(claim), namespace_of(claim))
            )
        except ApiError as exc:
            if is_not_found(exc):
                return None
            raise

    # ---- writes to the claim ------------------------------------------------------------------------------

    async def _set_claim_finalizers(self, claim: Obj, finalizers: list[str]) -> Obj:
        patch = {
            "metadata": {
                "finalizers": finalizers or None,
                "resourceVersion": claim["metadata"]["resourceVersion"],
            }
        }
        try:
            updated = await self._client.patch(
                self.resources.claims,
                name_of(claim),
                patch,
                namespace_of(claim),
                send_within=self._send_within(),
            )
        except ApiError as exc:
            if is_not_found(exc):
                return claim
            raise
        return project(updated)

    async def _set_ready(self, claim: Obj, state: c.ReadyState, address_name: str | None = None) -> bool:
        """Write the Ready condition (and addressRef); False when nothing needed writing."""
        patch = self._contract.status_patch(claim, state, address_name, rfc3339_now())
        if patch is None:
            return False
        try:
            updated = await self._client.patch(
                self.resources.claims,
                name_of(claim),
                patch,
                namespace_of(claim),
                subresource="status",
                send_within=self._send_within(),
            )
        except ApiError as exc:
            if is_not_found(exc):
                return False
            raise
        claim.update(project(updated))
        return True


def _controller(address: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((o for o in address["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def _controls(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """The IPAddress is already this claim's: its controller is this very claim (by UID)."""
    controller = _controller(address)
    return controller is not None and controller.get("uid") == claim["metadata"].get("uid")


def _of_an_earlier_incarnation(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    """The IPAddress names this claim's name and is controlled by a claim of that name with another UID: an
    earlier claim of the name, which must be gone (names are unique)."""
    if ((address.get("spec") or {}).get("claimRef") or {}).get("name") != name_of(claim):
        return False
    controller = _controller(address)
    return (
        controller is not None
        and controller.get("kind") == "IPAddressClaim"
        and controller.get("name") == name_of(claim)
        and controller.get("uid") != claim["metadata"].get("uid")
    )


def _bound_to(claim: Mapping[str, Any], address: Mapping[str, Any]) -> bool:
    return ((claim.get("status") or {}).get("addressRef") or {}).get("name") == name_of(address)


def _meant_for(claim: Mapping[str, Any], pool_key: str, address: Mapping[str, Any]) -> bool:
    """Whether releasing the claim may delete this IPAddress: it is of the claim's pool, its claimRef names
    the claim, and it has no controller or a claim of that name (this one, or an earlier incarnation)."""
    if address_pool_key(address) != pool_key:
        return False
    if ((address.get("spec") or {}).get("claimRef") or {}).get("name") != name_of(claim):
        return False
    controller = _controller(address)
    return controller is None or (
        controller.get("kind") == "IPAddressClaim" and controller.get("name") == name_of(claim)
    )


def _controlled_by_claim(address: Obj, name: str) -> bool:
    """The IPAddress names the claim and is controlled by an IPAddressClaim of that name (ours)."""
    if ((address.get("spec") or {}).get("claimRef") or {}).get("name") != name:
        return False
    return any(
        ref.get("kind") == "IPAddressClaim" and ref.get("name") == name and ref.get("controller")
        for ref in address["metadata"].get("ownerReferences") or []
    )


def _bound(address: str, pool_key: str) -> c.ReadyState:
    return c.ReadyState(
        True, c.ADDRESS_ALLOCATED, f"address {address} allocated from pool {_describe(pool_key)}"
    )


def _describe(pool_key: str) -> str:
    kind, namespace, name = split_pool_key(pool_key)
    return f"{kind.kind} {namespace}/{name}" if namespace else f"{kind.kind} {name}"

"""The claim lifecycle: bind each IPAddressClaim a backend owns to an IPAddress, release it on delete.

The flow follows upstream's `pkg/ipamutil` (spec §5.3-5.5) with our differences (§10): a Ready condition and
Events on every claim, and allocation through a `ClaimBackend` that reserves an address before the
IPAddress create is sent. A create whose outcome is unknown (timeout, 5xx, connection reset) keeps its
reservation; the retry either finds the IPAddress (AlreadyExists: adopt it) or creates it again.

One claim, in order: the claim's finalizer; the Cluster (paused: stop; missing: stop unless deleting); the
pool (paused: stop; missing: `PoolNotReady`); deletion (grace period, delete the IPAddress that is the
claim's, drop the finalizer); else bind: an IPAddress the backend already knows, or an existing one of the
claim's name (adopted only when it is meant for the claim), or a new one from `reserve`.

Safety rules (the December reliability review):
- every write is fenced (`incluster_ipam.runtime.fence`): nothing is sent once leadership is uncertain;
- a claim adopts an existing IPAddress of its name only when its claimRef names the claim, its controller
  (if any) is a claim of that name, and the backend has nothing against it (in range, nobody else's); one
  controlled by an earlier claim of the name in another pool is nobody's and replaced;
- a release deletes only an IPAddress of the claim's pool meant for it (UID precondition).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from incluster_ipam.api.constants import ADDRESS_FINALIZER, CLAIM_FINALIZER, MOVED_AWAY_ANNOTATION
from incluster_ipam.api.timestamps import now_time, parse_time
from incluster_ipam.capi import contract as c
from incluster_ipam.capi.objects import (
    CLUSTER_NAME_LABEL,
    VELERO_RESTORE_LABEL,
    Obj,
    address_text,
    claim_cluster_name,
    cluster_is_paused,
    deleted_for_move,
    finalizers_of,
    has_paused_annotation,
    is_deleting,
    key_of,
    moved_away,
    name_of,
    namespace_of,
    passes_watch_filter,
    project,
    uid_of,
)
from incluster_ipam.kube import ApiError, KubeError, Resource, is_already_exists
from incluster_ipam.kube.errors import is_conflict, is_not_found, is_refused
from incluster_ipam.runtime import Fence, NotLeading, Result, Unfenced, send_within

from . import rules
from .backend import ClaimBackend, Exhausted, NotReady, PoolRef, Unavailable
from .metrics import ClaimMetrics
from .ports import Caches, Client, Recorder, Resources

log = logging.getLogger(__name__)

#: Seconds an IPAddress whose claim does not exist is left alone after its creation (a restore may create
#: it before its claim); older ones that outlived their claims are deleted.
ORPHAN_GRACE_SECONDS = 15.0
#: Seconds a claim restored by Velero (labelled `RESTORE_LABEL`) waits for its restored IPAddress before
#: an address is allocated: Velero restores claims before IPAddresses (alphabetical order).
RESTORE_GRACE_SECONDS = 15.0
RESTORE_LABEL = VELERO_RESTORE_LABEL
#: IPAddresses being re-created in place (by UID) and restored claims waiting (by key) remembered at most;
#: the oldest are forgotten first.
RENEWALS = 4096


def _forget_oldest(remembered: dict[str, Any]) -> None:
    """Keep at most `RENEWALS` entries, dropping the oldest (insertion order) first."""
    while len(remembered) > RENEWALS:
        del remembered[next(iter(remembered))]


def created_at(obj: Mapping[str, Any]) -> float:
    """POSIX seconds of the object's creationTimestamp; 0 (long ago) when it has none or it is unreadable."""
    text = obj["metadata"].get("creationTimestamp")
    try:
        return parse_time(text) if isinstance(text, str) else 0.0
    except ValueError:
        return 0.0


class ClaimReconciler:
    """Reconciles one claim key (`namespace/name`) at a time; many keys run concurrently."""

    def __init__(
        self,
        client: Client,
        *,
        contract: c.Contract,
        resources: Resources,
        caches: Caches,
        backend: ClaimBackend,
        recorder: Recorder,
        metrics: ClaimMetrics,
        watch_filter: str | None = None,
        clock: Callable[[], float] = time.time,
        fence: Fence | None = None,
    ) -> None:
        self._client = client
        self._contract = contract
        self.resources = resources
        self._caches = caches
        self.backend = backend
        self._recorder = recorder
        self._metrics = metrics
        self._watch_filter = watch_filter
        self._clock = clock
        self.fence: Fence = fence or Unfenced()
        self._renewing: dict[str, None] = {}
        self._restored_seen: dict[str, float] = {}
        self._moved: set[str] = set()

    def saw_claim(self, claim: Mapping[str, Any]) -> None:
        """Called with every claim the informer delivers (deleted ones included): remembers the claims that
        `clusterctl move` deletes, whose IPAddresses must then be kept (`_keep_moved_away`)."""
        if deleted_for_move(claim):
            self._moved.add(key_of(claim))

    def _send_within(self) -> float | None:
        """Seconds within which the next write must leave; raises `NotLeading` when leadership is not
        certain (nothing is sent then)."""
        try:
            return send_within(self.fence)
        except NotLeading:
            self._metrics.writes_fenced.inc()
            raise

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
        if self.backend.needs_check(key):
            await self._check_address(key)
        claim = self._caches.claims.get(key)
        if claim is None:
            await self.backend.abandon(key)
            return await self._release_orphan(key)
        pool_key = self.backend.pool_key(claim)
        if pool_key is None or not passes_watch_filter(claim, self._watch_filter):
            return None
        deleting = is_deleting(claim)
        if not deleting and has_paused_annotation(claim):
            return None
        if deleting and deleted_for_move(claim):
            # clusterctl move: the claim and its IPAddress were created in the target and clusterctl removes
            # the finalizers itself; releasing the address here would hand it out twice.
            self._moved.add(key)
            return None
        if not self._cluster_allows(claim, deleting):
            return None
        if not deleting and CLAIM_FINALIZER not in finalizers_of(claim):
            claim = await self._set_claim_finalizers(claim, [*finalizers_of(claim), CLAIM_FINALIZER])
            if CLAIM_FINALIZER not in finalizers_of(claim):
                return None  # the claim vanished (404) before it was ours: allocating would leave an orphan
        pool = self.backend.pool(pool_key)
        if pool is not None and pool.paused:
            return None
        if deleting:
            return await self._release(claim, pool_key, pool)
        if pool is None:
            message = f"pool {self.backend.describe(pool_key)} not found"
            await self._set_ready(claim, c.ReadyState(False, c.POOL_NOT_READY, message))
            return None
        return await self._bind(claim, pool)

    def _cluster_allows(self, claim: Mapping[str, Any], deleting: bool) -> bool:
        """Stop for a paused Cluster; a missing Cluster stops live claims (its creation re-triggers them)."""
        name = claim_cluster_name(claim)
        if name is None or self._caches.clusters is None:
            return True
        cluster = self._caches.clusters.get_object(namespace_of(claim), name)
        if cluster is None:
            return deleting
        return not cluster_is_paused(cluster)

    async def _check_address(self, key: str) -> None:
        """Ask the apiserver which IPAddress of this name exists, and tell the backend (it may hold entries
        it could not confirm, deleted while no leader could hear of it)."""
        namespace, _, name = key.partition("/")
        live = await self._live_address(namespace, name)
        await self.backend.gone(key, uid_of(live) if live is not None else None)

    async def _release_orphan(self, key: str) -> Result | None:
        """The claim is gone: delete an IPAddress we made for it that outlived it.

        kube-apiserver can remove a claim whose finalizer was added while its DELETE was in flight: the
        finalizer patch succeeds, the claim vanishes anyway (kubernetes/kubernetes#77988), and the IPAddress
        created for it would hold its address forever. Only an IPAddress of the backend's pools, controlled
        by a claim of that name (or left by the garbage collector without that reference, since the pool
        still owns it: `rules.left_by_collector`), is deleted, and only when no claim of that name exists
        that would adopt it. When no IPAddress of that name exists any more, the backend hears so. A young
        IPAddress is given `ORPHAN_GRACE_SECONDS` first: a restore (Velero, a hand-made backup) may create
        the IPAddress a moment before its claim, and the claim then adopts it.
        """
        if not self.backend.holds(key):
            return None
        namespace, _, name = key.partition("/")
        address = await self._live_address(namespace, name)
        if address is None:
            await self.backend.gone(key, None)
            return None
        made_for_it = rules.controlled_by_claim(address, name) or rules.left_by_collector(address, name)
        if not made_for_it:
            return None
        if key in self._moved or moved_away(address):
            await self._keep_moved_away(key, address)
            return None
        if self._orphan_paused(address):
            return None
        try:
            live = await self._client.get(self.resources.claims, name, namespace)
        except ApiError as exc:
            if not is_not_found(exc):
                raise
        else:
            same_pool = self.backend.pool_key(live) == self.backend.pool_of_address(address)
            if same_pool or not rules.of_an_earlier_incarnation(live, address):
                return None  # the claim of that name adopts it
        young = ORPHAN_GRACE_SECONDS - (self._clock() - created_at(address))
        if young > 0:
            return Result(requeue_after=young)
        log.info("IPAddress %s outlived its claim; deleting it", key)
        if await self._delete_address(address):
            await self.backend.released(address)
        return None

    async def _keep_moved_away(self, key: str, address: Obj) -> None:
        """The claim went to another management cluster with `clusterctl move`, its IPAddress stayed (a
        global pool's: clusterctl leaves cluster-scoped pools and what they own in the source). The address
        is the target's now: keep the IPAddress so that it stays held here, and mark it so that a restart
        keeps it too (docs/operations.md, "clusterctl move")."""
        self._moved.discard(key)
        if moved_away(address):
            return
        log.info(
            "claim %s was moved to another cluster by clusterctl; keeping IPAddress %s (%s) so that its "
            "address is not handed out here again",
            key,
            key,
            address_text(address),
        )
        patch = {"metadata": {"annotations": {MOVED_AWAY_ANNOTATION: now_time()}}}
        try:
            await self._patch(self.resources.addresses, address, patch)
        except ApiError as exc:
            if not is_not_found(exc):
                raise

    def _orphan_paused(self, address: Obj) -> bool:
        """Paused (the IPAddress, its pool or the Cluster it is labelled with): leave it alone (a move)."""
        pool_key = self.backend.pool_of_address(address)
        pool = self.backend.pool(pool_key) if pool_key else None
        if has_paused_annotation(address) or (pool is not None and pool.paused):
            return True
        cluster_name = (address["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL)
        if not cluster_name or self._caches.clusters is None:
            return False
        cluster = self._caches.clusters.get_object(namespace_of(address), cluster_name)
        return cluster is not None and cluster_is_paused(cluster)

    # ---- binding ----------------------------------------------------------------------------------------

    async def _bind(self, claim: Obj, pool: PoolRef) -> Result | None:
        key = key_of(claim)
        problem = self.backend.unusable(pool)
        if problem is not None:
            await self._set_ready(
                claim, c.ReadyState(False, c.POOL_NOT_READY, f"pool {pool.description} {problem}")
            )
            return None
        conflict: str | None = None
        try:
            request = rules.address_request(claim)
        except rules.ConflictingRequest as exc:
            request, conflict = None, str(exc)
        existing = self._caches.addresses.get(key)
        known = self.backend.known_address(key, pool) if existing is None else None
        if known is not None:
            # We created it a moment ago and the cache has not caught up: never reserve a second address.
            await self._set_ready(claim, rules.bound(known, pool, request), address_name=name_of(claim))
            return None
        if existing is not None:
            return await self._adopt(claim, pool, existing, request)
        if conflict is not None:
            await self.backend.abandon(key)
            return await self._request_failed(claim, conflict)
        waiting = self._restore_wait(claim)
        if waiting > 0:
            return Result(requeue_after=waiting)
        started = time.perf_counter()
        try:
            grant = await self.backend.reserve(key, pool, request.text if request is not None else None)
        except Unavailable as exc:
            assert request is not None
            return await self._request_failed(claim, f"{request.describe()} {exc}")
        except Exhausted:
            message = f"pool {pool.description} has no free address"
            if await self._set_ready(claim, c.ReadyState(False, c.POOL_EXHAUSTED, message)):
                self._recorder.warning(claim, c.POOL_EXHAUSTED, message)
            self._metrics.failures.labels(reason=c.POOL_EXHAUSTED).inc()
            return None
        except NotReady as exc:
            await self._set_ready(
                claim, c.ReadyState(False, c.POOL_NOT_READY, f"pool {pool.description} {exc}")
            )
            return None
        body = self._contract.ip_address(
            claim, pool, address=grant.address, prefix=grant.prefix, gateway=grant.gateway
        )
        try:
            within = self._send_within()
        except NotLeading:
            await self.backend.abandon(key)
            raise
        try:
            created = await self._client.create(self.resources.addresses, body, send_within=within)
        except ApiError as exc:
            if not is_already_exists(exc):
                return await self._create_failed(claim, pool, exc)
            existing = await self._live_address(namespace_of(claim), name_of(claim))
            if existing is None:
                raise  # deleted in between: retry with backoff
            await self.backend.abandon(key)
            return await self._adopt(claim, pool, existing, request)
        except KubeError as exc:
            log.warning(
                "create of IPAddress %s has an unknown outcome (%s); keeping its reservation", key, exc
            )
            raise
        await self.backend.confirm(key, pool, created)
        self._metrics.allocations.inc()
        self._metrics.latency.observe(time.perf_counter() - started)
        self._recorder.normal(
            claim,
            c.ADDRESS_ALLOCATED,
            f"allocated {grant.address}/{grant.prefix} from pool {pool.description}",
        )
        await self._set_ready(claim, rules.bound(grant.address, pool, request), address_name=name_of(created))
        return None

    async def _request_failed(self, claim: Obj, message: str) -> Result | None:
        """The requested address cannot be had: say why (condition and Event) and wait to be woken."""
        self._metrics.failures.labels(reason=c.ALLOCATION_FAILED).inc()
        if await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, message)):
            self._recorder.warning(claim, c.ALLOCATION_FAILED, message)
        return None

    async def _create_failed(self, claim: Obj, pool: PoolRef, exc: ApiError) -> Result | None:
        if not is_refused(exc):  # it may have landed: the reservation must stay
            log.warning("create of IPAddress %s failed with %s; keeping its reservation", key_of(claim), exc)
            raise exc
        await self.backend.abandon(key_of(claim))
        message = f"creating the IPAddress from pool {pool.description} failed: {exc.message or exc}"
        self._metrics.failures.labels(reason=c.ALLOCATION_FAILED).inc()
        if await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, message)):
            self._recorder.warning(claim, c.ALLOCATION_FAILED, message)
        raise exc

    async def _adopt(
        self, claim: Obj, pool: PoolRef, address: Obj, request: rules.AddressRequest | None = None
    ) -> Result | None:
        """An IPAddress of the claim's name exists: keep its spec, make sure it is ours and counted."""
        ours = rules.controls(claim, address)
        if self._renewable(claim, pool, address, ours):
            return await self._renew(claim, pool, address)
        # A reservation kept for it (a create whose answer was lost, that landed after all) has served its
        # purpose, or will not be used while the IPAddress stands.
        await self.backend.abandon(key_of(claim))
        same_pool = rules.same_pool(address, pool)
        if not same_pool and rules.of_an_earlier_incarnation(claim, address):
            # Made for an earlier claim of this name (a controller reference to another UID of it: that
            # claim is gone) in another pool: nobody's now. Replace it.
            log.info("IPAddress %s was made for an earlier claim of that name; replacing it", key_of(address))
            if await self._delete_address(address):
                await self.backend.released(address)
            return Result(requeue=True)
        if not same_pool:
            message = (
                f"IPAddress {key_of(address)} already exists and belongs to another pool; "
                "delete it or point the claim at its pool"
            )
            await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, message))
            return Result(requeue_after=30.0)
        text = address_text(address)
        if not rules.controls(claim, address):
            refusal = rules.adoption_refusal(claim, address) or self.backend.refusal(claim, pool, address)
            if refusal is not None:
                if await self._set_ready(claim, c.ReadyState(False, c.ALLOCATION_FAILED, refusal)):
                    self._recorder.warning(claim, c.ALLOCATION_FAILED, refusal)
                self._metrics.failures.labels(reason=c.ALLOCATION_FAILED).inc()
                return Result(requeue_after=30.0)
        elif not rules.bound_to(claim, address) and self.backend.outside(pool, address):
            # Ours, never handed out (the claim does not point at it yet), and outside the pool as it is
            # now: a create that landed while the pool shrank. Replace it with an address in the pool.
            log.info("IPAddress %s (%s) is outside %s; replacing it", key_of(address), text, pool.description)
            if await self._delete_address(address):
                await self.backend.released(address)
            return Result(requeue=True)
        await self.backend.adopted(pool, address)
        patch = rules.adoption_patch(self._contract, claim, pool, address)
        if patch is not None:
            try:
                address = project(await self._patch(self.resources.addresses, address, patch))
            except ApiError as exc:
                if is_conflict(exc) or is_not_found(exc):
                    return Result(requeue=True)
                raise
        if is_deleting(address):
            if not ours:
                return await self._renew(claim, pool, address)
            log.info("IPAddress %s is being deleted while its claim lives", key_of(address))
        await self._set_ready(claim, rules.bound(text, pool, request), address_name=name_of(address))
        return None

    def _restore_wait(self, claim: Obj) -> float:
        """Seconds a claim restored by Velero still waits for its restored IPAddress (0: allocate now),
        counted from when this process first saw it unbound (the cache keeps no creation times)."""
        if RESTORE_LABEL not in (claim["metadata"].get("labels") or {}):
            return 0.0
        key, now = key_of(claim), self._clock()
        first = self._restored_seen.setdefault(key, now)
        _forget_oldest(self._restored_seen)
        remaining = RESTORE_GRACE_SECONDS - (now - first)
        if remaining <= 0:
            self._restored_seen.pop(key, None)
            return 0.0
        return remaining

    def _renewable(self, claim: Obj, pool: PoolRef, address: Obj, ours: bool) -> bool:
        """Being deleted, not as the claim's own IPAddress (or already being renewed), and one the claim
        may take: of its pool, meant for it, its address held by nobody else."""
        if not is_deleting(address) or (ours and uid_of(address) not in self._renewing):
            return False
        if not rules.same_pool(address, pool) or rules.adoption_refusal(claim, address) is not None:
            return False
        return self.backend.refusal(claim, pool, address) is None

    async def _renew(self, claim: Obj, pool: PoolRef, address: Obj) -> Result:
        """The IPAddress the claim takes is being deleted, and not as the claim's own: the garbage collector
        deletes a restored IPAddress whose owner references carry the UIDs of objects that are gone. Keep
        its address: queue the claim for exactly that address (it is the claim's the moment the old object
        goes), let the old object go, and create it anew (the next reconcile)."""
        uid = uid_of(address)
        if uid is not None and uid not in self._renewing:
            self._renewing[uid] = None
            _forget_oldest(self._renewing)
            log.info(
                "IPAddress %s (%s) is being deleted while its claim lives (stale owners): re-creating it",
                key_of(address),
                address_text(address),
            )
        with contextlib.suppress(Unavailable, Exhausted, NotReady):  # queued for it behind the old object
            await self.backend.reserve(key_of(claim), pool, address_text(address))
        if await self._delete_address(address):
            await self.backend.released(address)
        return Result(requeue_after=0.2)

    # ---- release ----------------------------------------------------------------------------------------

    async def _release(self, claim: Obj, pool_key: str, pool: PoolRef | None) -> Result | None:
        if CLAIM_FINALIZER not in finalizers_of(claim):
            await self.backend.abandon(key_of(claim))
            return None
        delay = self.backend.grace_remaining(claim, pool, self._clock())
        if delay > 0:
            return Result(requeue_after=delay)
        address = self._caches.addresses.get(key_of(claim))
        if address is None:
            # The cache may not have seen an IPAddress created moments ago: ask the apiserver, never assume.
            address = await self._live_address(namespace_of(claim), name_of(claim))
        released = address is not None and rules.meant_for(claim, address)
        if address is not None and not released:
            message = (
                f"left IPAddress {key_of(address)} in place: it is not this claim's (another pool or claim)"
            )
            log.info("claim %s: %s", key_of(claim), message)
            self._recorder.normal(claim, "AddressNotReleased", message)
        if address is not None and released and await self._delete_address(address):
            await self.backend.released(address)
        await self.backend.abandon(key_of(claim))
        await self._set_claim_finalizers(claim, [f for f in finalizers_of(claim) if f != CLAIM_FINALIZER])
        self._metrics.releases.inc()
        if address is not None and released:
            self._recorder.normal(
                claim,
                "AddressReleased",
                f"released {address_text(address)} to pool {self.backend.describe(pool_key)}",
            )
        return None

    async def _delete_address(self, address: Obj) -> bool:
        """Remove our finalizer and delete; True when that object (by UID) is gone."""
        name, namespace = name_of(address), namespace_of(address)
        finalizers = finalizers_of(address)
        try:
            uid = uid_of(address)
            if ADDRESS_FINALIZER in finalizers:
                remaining = [f for f in finalizers if f != ADDRESS_FINALIZER]
                meta: Obj = {"finalizers": remaining or None}
                if uid:
                    meta["uid"] = uid  # a precondition: never touch another incarnation of the name
                await self._patch(self.resources.addresses, address, {"metadata": meta})
            result = await self._client.delete(
                self.resources.addresses, name, namespace, uid=uid, send_within=self._send_within()
            )
        except ApiError as exc:
            if is_not_found(exc) or is_conflict(exc):  # gone, or the name is another incarnation's now
                return True
            raise
        return result.get("kind") == "Status" or not result.get("metadata", {}).get("finalizers")

    async def _patch(
        self, resource: Resource, obj: Obj, patch: Obj, *, subresource: str | None = None
    ) -> Obj:
        """A merge patch of `obj` (by name), sent only within leadership (`_send_within`)."""
        return await self._client.patch(
            resource,
            name_of(obj),
            patch,
            namespace_of(obj),
            subresource=subresource,
            send_within=self._send_within(),
        )

    async def _live_address(self, namespace: str, name: str) -> Obj | None:
        """The IPAddress as the apiserver has it now, projected (with its creation time)."""
        try:
            live = await self._client.get(self.resources.addresses, name, namespace)
        except ApiError as exc:
            if is_not_found(exc):
                return None
            raise
        projected = project(live)
        created = live["metadata"].get("creationTimestamp")
        if created is not None:
            projected["metadata"]["creationTimestamp"] = created
        return projected

    # ---- writes to the claim ------------------------------------------------------------------------------

    async def _set_claim_finalizers(self, claim: Obj, finalizers: list[str]) -> Obj:
        patch = {
            "metadata": {
                "finalizers": finalizers or None,
                "resourceVersion": claim["metadata"]["resourceVersion"],
            }
        }
        try:
            updated = await self._patch(self.resources.claims, claim, patch)
        except ApiError as exc:
            if is_not_found(exc):
                return claim
            raise
        return project(updated)

    async def _set_ready(self, claim: Obj, state: c.ReadyState, address_name: str | None = None) -> bool:
        """Write the Ready condition (and addressRef); False when nothing needed writing."""
        patch = self._contract.status_patch(claim, state, address_name, now_time())
        if patch is None:
            return False
        try:
            updated = await self._patch(self.resources.claims, claim, patch, subresource="status")
        except ApiError as exc:
            if is_not_found(exc):
                return False
            raise
        claim.update(project(updated))
        return True

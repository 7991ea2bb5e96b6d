"""The provider process, composed: informers, the claim lifecycle over the in-cluster backend, servers,
leader election.

Every replica keeps its caches warm and serves webhooks, health and metrics (started before the caches sync:
pools stored as v1alpha1 can only be listed through our own `/convert`; admission answers 503 until the
caches have synced, and SIGTERM is honoured meanwhile). Only the elected leader (or the single process,
without `--leader-elect`) reconciles: on taking over the backend builds its book from the caches plus a
fresh list (`backend.takeover`); a leader that cannot finish within its renew deadline gives the lease up and
exits, so a standby leads. Every write is fenced by the lease's validity. Losing leadership ends the process
(exit code 1), as with controller-runtime: a replacement starts clean.

Who does what: `claimcore` (the lifecycle), `backend` (the pools and their book), `claimcore.watches` (which
events wake which claims), `servers` (HTTP), this module (wiring and the process's life).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client import generate_latest

from incluster_ipam.api.constants import POOL_KINDS
from incluster_ipam.backend import InClusterPools, PoolStatusWriter, build_book, fresh_list
from incluster_ipam.capi.contract import Contract
from incluster_ipam.capi.objects import (
    BY_CLUSTER,
    BY_POOL,
    Obj,
    claim_pool_key,
    index_by_cluster,
    index_by_pool_of_address,
    index_by_pool_of_claim,
    project,
)
from incluster_ipam.capi.resources import pool_resource
from incluster_ipam.claimcore import Caches, ClaimReconciler, Resources, discover, watches
from incluster_ipam.claimcore.discovery import served
from incluster_ipam.kube import EventRecorder, KubeClient, Resource
from incluster_ipam.runtime import (
    Informer,
    LeaderElectionConfig,
    LeaderElector,
    LeaseFence,
    Result,
    WorkQueue,
    default_identity,
)
from incluster_ipam.runtime.informer import Handler

from . import servers
from .metrics import Metrics
from .options import Options

log = logging.getLogger(__name__)

LEASE_NAME = "7bb7acb4.ipam.cluster.x-k8s.io"
COMPONENT = "incluster-ipam"
CONTROLLER = "ipaddressclaim"


class Provider:
    """One provider process. `await run(stop)` until `stop` is set or leadership is lost."""

    def __init__(
        self,
        client: KubeClient,
        options: Options,
        metrics: Metrics | None = None,
        *,
        lease_client: KubeClient | None = None,
    ) -> None:
        self.client = client
        self.options = options
        client.watch_idle_timeout = options.watch_idle_timeout
        self.metrics = metrics or Metrics()
        self.queue: WorkQueue[str] = WorkQueue(name="claims")
        self.leading = asyncio.Event()
        self.ready = asyncio.Event()  # caches synced (and stay current: see `_not_ready`)
        self.serving = asyncio.Event()  # health and webhooks are up (before the caches sync)
        self.lost_leadership = False
        self.contract: Contract | None = None
        self.claims: Informer | None = None
        self.addresses: Informer | None = None
        self.clusters: Informer | None = None
        self.pools: InClusterPools | None = None
        self.reconciler: ClaimReconciler | None = None
        self.status: PoolStatusWriter | None = None
        self.elector: LeaderElector | None = None
        self.webhook_url: str | None = None
        self.diagnostics_url: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._status_task: asyncio.Task[None] | None = None
        # The lease gets a connection pool of its own: nothing else the process does (metrics reviews,
        # a burst of writes) can keep a renewal waiting for a connection (finding 10).
        self._own_lease_client = lease_client is None and options.leader_elect
        self.lease_client = lease_client or (
            client.fork(max_connections=4, user_agent=f"{COMPONENT}-lease")
            if options.leader_elect
            else client
        )
        self._recorder = EventRecorder(
            client,
            COMPONENT,
            normal_rate=options.normal_event_rate,
            normal_burst=options.normal_event_burst,
        )
        self._throttled_seen = 0

    @property
    def book(self) -> Any:
        """The in-cluster backend's allocation book (for tests and diagnosis)."""
        assert self.pools is not None
        return self.pools.book

    # ---- set-up ---------------------------------------------------------------------------------------

    def _informer(self, resource: Resource, **kwargs: Any) -> Informer:
        namespace = self.options.namespace if resource.namespaced else None
        kwargs.setdefault("page_size", self.options.list_page_size)
        return Informer.for_resource(self.client, resource, namespace=namespace, projection=project, **kwargs)

    async def _build(self) -> None:
        found = await discover(self.client)
        self.contract = found.contract
        pools = await served(self.client, [pool_resource(kind) for kind in POOL_KINDS])
        for kind in POOL_KINDS:
            if pool_resource(kind) not in pools:
                log.warning("%s is not installed; claims for it stay unbound", kind.kind)
        log.info(
            "contract %s, clusters %s, pools %s",
            self.contract.api_version,
            found.clusters and found.clusters.version,
            [p.kind for p in pools],
        )
        # A periodic resync re-queues every claim: a safety net for anything an event could not carry.
        self.claims = claims = self._informer(
            found.claims,
            indexers={BY_POOL: index_by_pool_of_claim, BY_CLUSTER: index_by_cluster},
            resync_period=self.options.resync_seconds,
        )
        self.addresses = addresses = self._informer(
            found.addresses, indexers={BY_POOL: index_by_pool_of_address}
        )
        self.clusters = clusters = self._informer(found.clusters) if found.clusters else None
        self.pools = backend = InClusterPools(
            addresses=addresses,
            pools={p.kind: self._informer(p) for p in pools},
            wake=self.queue.add,
            claims_of=lambda pool_key: claims.index_keys(BY_POOL, pool_key),
        )
        self.reconciler = ClaimReconciler(
            self.client,
            contract=self.contract,
            resources=Resources(found.claims, found.addresses),
            caches=Caches(claims, addresses, clusters),
            backend=backend,
            recorder=self._recorder,
            metrics=self.metrics.claims,
            watch_filter=self.options.watch_filter,
            clock=self.client.server_time,
        )
        self.status = PoolStatusWriter(
            self.client, backend, self.metrics.pools, interval=self.options.status_interval
        )
        claims.add_handler(self._saw_claim)  # leading or not: a claim deleted for a move, seen once
        claims.add_handler(self._when_leading(self._on_claim))
        claims.add_handler(self.metrics.claims.pending.handler(claim_pool_key, self.options.watch_filter))
        self.metrics.claims.start_controller(CONTROLLER)
        addresses.add_handler(backend.on_address)
        addresses.add_handler(self._when_leading(self._on_address))
        if clusters is not None:
            clusters.add_handler(self._when_leading(self._on_cluster))
        for informer in backend.pools.values():
            informer.add_handler(backend.on_pool)

    def _all_informers(self) -> list[Informer]:
        assert self.claims is not None
        assert self.addresses is not None
        assert self.pools is not None
        found = [self.claims, self.addresses, *self.pools.pools.values()]
        return [*found, self.clusters] if self.clusters is not None else found

    # ---- event handlers --------------------------------------------------------------------------------

    def _when_leading(self, handler: Handler) -> Handler:
        def guarded(event: str, old: Obj | None, new: Obj | None) -> Any:
            return handler(event, old, new) if self.leading.is_set() else None

        return guarded

    def _enqueue(self, keys: list[str]) -> None:
        for key in keys:
            self.queue.add(key)

    def _saw_claim(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None and self.reconciler is not None:
            self.reconciler.saw_claim(obj)

    def _on_claim(self, event: str, old: Obj | None, new: Obj | None) -> None:
        self._enqueue(watches.claim_event(event, old, new, claim_pool_key, self.options.watch_filter))

    def _on_address(self, event: str, old: Obj | None, new: Obj | None) -> None:
        claims = self.claims
        assert claims is not None
        self._enqueue(watches.address_event(event, old, new, lambda key: key in claims))

    def _on_cluster(self, event: str, old: Obj | None, new: Obj | None) -> None:
        claims = self.claims
        assert claims is not None
        self._enqueue(watches.cluster_event(event, old, new, lambda key: claims.index_keys(BY_CLUSTER, key)))

    # ---- leading -------------------------------------------------------------------------------------------

    async def _start_leading(self) -> None:
        """Build the book (with a fresh list under leader election), then reconcile every claim."""
        assert self.pools is not None
        assert self.claims is not None
        assert self.addresses is not None
        assert self.reconciler is not None
        assert self.status is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.pools.live = True  # from here the book follows the informers, while it is being built
        # Without leader election there is no other writer: the synced cache is the truth.
        listed = []
        if self.options.leader_elect:
            resource = self.reconciler.resources.addresses
            listed = await fresh_list(
                self.client,
                resource,
                self.options.namespace,
                started + self.options.renew_deadline,
                page_size=self.options.list_page_size,
            )
        await build_book(self.pools, listed)
        self.pools.leading = True
        self.leading.set()
        self.metrics.leader.set(1)
        self.metrics.takeover_seconds.set(loop.time() - started)
        waiting, bound = watches.takeover_order(self.claims.each(), claim_pool_key)
        for claim_key in waiting:
            self.queue.add(claim_key)
        for claim_key in bound:  # only re-checked: behind anything an event brings meanwhile
            self.queue.add_background(claim_key)
        for key in self.pools.verify:
            self.queue.add(key)
        for address_key in [e.key for e in listed] if self.options.leader_elect else self.addresses.keys():
            if address_key not in self.claims:  # IPAddresses whose claim vanished
                self.queue.add(address_key)
        log.info(
            "leading: %d pools, %d claims queued, took over in %.2f s",
            len(self.pools.book.keys()),
            len(self.queue),
            loop.time() - started,
        )
        self._status_task = asyncio.create_task(self.status.run(), name="pool-status")
        self._tasks.append(self._status_task)
        self._tasks.append(
            asyncio.create_task(
                self.queue.run_workers(self.options.workers, self._reconcile), name="claim-workers"
            )
        )

    async def _reconcile(self, key: str) -> Result | None:
        """One claim, with controller-runtime's reconcile metrics."""
        assert self.reconciler is not None
        metrics = self.metrics.claims
        started = time.perf_counter()
        try:
            result = await self.reconciler.reconcile(key)
        except Exception:
            metrics.reconciles.labels(CONTROLLER, "error").inc()
            metrics.reconcile_errors.labels(CONTROLLER).inc()
            raise
        finally:
            metrics.reconcile_time.labels(CONTROLLER).observe(time.perf_counter() - started)
        outcome = "success"
        if result is not None and result.requeue_after:
            outcome = "requeue_after"
        elif result is not None and result.requeue:
            outcome = "requeue"
        metrics.reconciles.labels(CONTROLLER, outcome).inc()
        return result

    # ---- health ------------------------------------------------------------------------------------------

    def _unhealthy(self) -> str | None:
        """Holding the lease without leading, longer than a takeover may take."""
        elector = self.elector
        if elector is None or self.leading.is_set() or not elector.is_leader:
            return None
        loop = asyncio.get_running_loop()
        if loop.time() - elector.acquired_at > self.options.renew_deadline + self.options.retry_period:
            return "holding the lease without leading"
        return None

    def _not_ready(self) -> str | None:
        if not self.ready.is_set():
            return "caches not synced"
        limit = 2 * self.options.watch_idle_timeout
        stale = [i.name for i in self._all_informers() if i.has_synced and i.stale_seconds > limit]
        return f"no word from the apiserver for: {', '.join(stale)}" if stale else None

    def _render_metrics(self) -> bytes:
        self.metrics.queue_depth.set(len(self.queue))
        throttled = self._recorder.throttled
        self.metrics.events_throttled.inc(throttled - self._throttled_seen)
        self._throttled_seen = throttled
        if self.claims is not None:
            for informer in self._all_informers():
                if informer.has_synced:
                    self.metrics.informer_stale.labels(informer.name).set(informer.stale_seconds)
                    self.metrics.informer_objects.labels(informer.name).set(len(informer))
                    self.metrics.informer_bytes.labels(informer.name).set(informer.stored_bytes)
        return generate_latest(self.metrics.registry)

    async def _serve(self, stack: contextlib.AsyncExitStack) -> None:
        assert self.addresses is not None
        assert self.pools is not None
        app = servers.health_app(healthy=self._unhealthy, ready=self._not_ready, render=self._render_metrics)
        await servers.serve_health(stack, self.options, app)
        self.webhook_url = await servers.serve_webhooks(
            stack, self.options, self.addresses, self.pools.pools, self.metrics.webhooks
        )
        self.diagnostics_url = await servers.serve_diagnostics(
            stack, self.options, self.client, self._render_metrics
        )
        self.serving.set()

    # ---- run -------------------------------------------------------------------------------------------

    async def _synced_or_stopped(self, stop: asyncio.Event) -> bool:
        """Wait for every informer's first list; False when `stop` came first (SIGTERM is honoured while
        a slow or impossible sync goes on: finding 18)."""
        synced: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(i.wait_synced() for i in self._all_informers()))
        )
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if synced.done():
            return True
        synced.cancel()
        log.info("stopping before the caches synced")
        return False

    async def run(self, stop: asyncio.Event) -> int:
        """Run until `stop` is set (exit 0) or leadership is lost (exit 1)."""
        await self._build()
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._shutdown)
            await self._serve(stack)
            for informer in self._all_informers():
                informer.start()
            if not await self._synced_or_stopped(stop):
                return 0
            self.ready.set()
            log.info("caches synced; ready")
            lost = asyncio.Event()
            if self.options.leader_elect:
                self.elector = elector = self._elector(lost)
                assert self.reconciler is not None
                assert self.status is not None
                self.reconciler.fence = self.status.fence = LeaseFence(elector)
                election = asyncio.create_task(elector.run(), name="leader-election")
                self._tasks.append(election)
                stack.push_async_callback(self._stand_down, elector, election, lost)
            else:
                await self._start_leading()
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self.lost_leadership = lost.is_set() and not stop.is_set()
        return 1 if self.lost_leadership else 0

    def _elector(self, lost: asyncio.Event) -> LeaderElector:
        namespace = self.options.leader_election_namespace or self.client.default_namespace or "default"
        config = LeaderElectionConfig(
            name=LEASE_NAME,
            namespace=namespace,
            identity=self.options.identity or default_identity(),
            lease_duration=self.options.lease_duration,
            renew_deadline=self.options.renew_deadline,
            retry_period=self.options.retry_period,
        )

        def stopped() -> None:
            if self.leading.is_set():
                log.error("leadership lost; stopping")
            self._stop_leading()
            self.metrics.leader.set(0)
            lost.set()

        return LeaderElector(
            self.lease_client, config, on_started_leading=self._start_leading, on_stopped_leading=stopped
        )

    def _stop_leading(self) -> None:
        self.leading.clear()
        if self.pools is not None:
            self.pools.leading = self.pools.live = False

    async def _finish_claims(self, grace: float) -> bool:
        """Take no new claim, let the reconciles in flight finish their writes (at most `grace` seconds);
        True when they all did. Idempotent."""
        try:
            async with asyncio.timeout(grace):
                await self.queue.shutdown(drain=False)
        except TimeoutError:
            log.warning(
                "%d claim reconciles still running after %.0f s; cancelling them",
                self.queue.processing,
                grace,
            )
            return False
        return True

    async def _stop_status(self) -> None:
        task, self._status_task = self._status_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _stand_down(
        self, elector: LeaderElector, election: asyncio.Task[None], lost: asyncio.Event
    ) -> None:
        """Graceful stop as leader: finish the writes in flight, then hand the lease back. A standby that
        takes the lease lists the IPAddresses afresh, so nothing we wrote may land after that; if the
        reconciles did not finish, the lease is kept to expire instead of being released. Once leadership
        is lost, nothing more is written: the reconciles are cancelled at once. The status writer stops
        before the lease goes, so no stale pool status lands after the next leader's."""
        finished = await self._finish_claims(0.0 if lost.is_set() else self.options.shutdown_grace)
        await self._stop_status()
        self._stop_leading()
        elector.stop(release=finished)
        try:
            async with asyncio.timeout(5.0):
                await asyncio.shield(election)
        except TimeoutError:
            log.warning("leader election did not stop within 5 s")
        except Exception:
            log.exception("leader election failed while stopping")

    async def _shutdown(self) -> None:
        if not self.queue.shutting_down:  # with leader election, `_stand_down` has already done this
            await self._finish_claims(self.options.shutdown_grace)
        self._stop_leading()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for informer in self._all_informers():
            await informer.stop()
        await self._recorder.close()
        if self._own_lease_client:
            await self.lease_client.close()

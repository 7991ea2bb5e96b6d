"""The provider process: informers, webhooks, health and metrics for every replica; allocation for the leader.

Every replica keeps its caches warm and serves webhooks. Only the elected leader (or the single process,
without `--leader-elect`) reconciles: on taking over it builds its `PoolBook` from the caches plus a fresh
list of IPAddresses read straight from the apiserver, so nothing the previous leader wrote can be missed.
Losing leadership ends the process (exit code 1), as with controller-runtime: a replacement starts clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incluster_ipam.api.constants import CLAIM_FINALIZER, GROUP, POOL_KINDS
from incluster_ipam.kube import DELETED, EventRecorder, KubeClient, Resource, WatchExpired
from incluster_ipam.runtime import (
    SYNC,
    Informer,
    LeaderElectionConfig,
    LeaderElector,
    WorkQueue,
    default_identity,
)
from incluster_ipam.runtime.informer import Handler
from incluster_ipam.webhooks import WebhookServer
from incluster_ipam.webhooks.certwatch import DEFAULT_INTERVAL, CertWatcher
from incluster_ipam.webhooks.lookups import InformerLookups

from .book import PoolBook, PoolSpecError
from .claims import ClaimReconciler, Informers, Resources, pool_spec
from .contract import Contract, choose_contract
from .diagnostics import DiagnosticsServer, KubeAuthorizer, tls_version
from .metrics import Metrics
from .objects import (
    BY_CLUSTER,
    BY_POOL,
    Obj,
    address_pool_key,
    claim_pool_key,
    cluster_is_paused,
    finalizers_of,
    has_paused_annotation,
    index_by_cluster,
    index_by_pool_of_address,
    index_by_pool_of_claim,
    key_of,
    name_of,
    namespace_of,
    passes_watch_filter,
    pool_key_of,
    project,
)
from .pools import PoolStatusWriter, pool_resource

log = logging.getLogger(__name__)

LEASE_NAME = "7bb7acb4.ipam.cluster.x-k8s.io"
COMPONENT = "incluster-ipam"
CLUSTER_GROUP = "cluster.x-k8s.io"


@dataclass(frozen=True)
class Options:
    """Runtime configuration (the command line maps onto it)."""

    namespace: str | None = None
    watch_filter: str | None = None
    leader_elect: bool = False
    leader_election_namespace: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_cert_dir: Path = Path("/tmp/k8s-webhook-server/serving-certs")
    webhook_cert_name: str = "tls.crt"
    webhook_key_name: str = "tls.key"
    health_address: str = ":8081"
    metrics_address: str = ":8080"
    # Secure /metrics (provider/diagnostics.py). Off by default here (the command line defaults to ":8443")
    # so that tests and extra replicas in one process need no port.
    diagnostics_address: str = "0"
    insecure_diagnostics: bool = False
    diagnostics_cert_dir: Path | None = None  # tls.crt/tls.key; None: a self-signed certificate
    tls_min_version: str = "VersionTLS12"  # webhook and diagnostics servers
    cert_poll_interval: float = DEFAULT_INTERVAL  # seconds between looks at the certificate files
    workers: int = 32
    # Budget for Normal Events (None: every one is written); Warnings are never limited (kube/events.py).
    normal_event_rate: float | None = 10.0
    normal_event_burst: int = 100
    resync_seconds: float = 600.0
    status_interval: float = 0.25
    shutdown_grace: float = 10.0  # seconds the reconciles in flight get to finish at a graceful stop


def split_address(address: str) -> tuple[str, int] | None:
    """`host:port` or `:port` -> (host, port); "0" or "" disables the server."""
    if address in ("", "0"):
        return None
    host, _, port = address.rpartition(":")
    return (host or "0.0.0.0", int(port))


_READ_METADATA = ("generation", "deletionTimestamp", "labels", "annotations")


def _differs_only_in_status(old: Obj | None, new: Obj | None) -> bool:
    """An update that changed nothing a handler reads outside status (and finalizers, compared by callers)."""
    if old is None or new is None or old.get("spec") != new.get("spec"):
        return False
    return all(old["metadata"].get(k) == new["metadata"].get(k) for k in _READ_METADATA)


def _only_our_writes(old: Obj | None, new: Obj | None) -> bool:
    """A claim update that only echoes our own writes (status, or our finalizer being added): the reconcile
    that made it already did the rest, and re-running it on a stale copy only earns 409 Conflicts."""
    if old is None or new is None or not _differs_only_in_status(old, new):
        return False
    before, after = old["metadata"].get("finalizers") or [], new["metadata"].get("finalizers") or []
    return after == before or (CLAIM_FINALIZER not in before and after == [*before, CLAIM_FINALIZER])


class Provider:
    """One provider process. `await run(stop)` until `stop` is set or leadership is lost."""

    def __init__(self, client: KubeClient, options: Options, metrics: Metrics | None = None) -> None:
        self.client = client
        self.options = options
        self.metrics = metrics or Metrics()
        self.book = PoolBook()
        self.queue: WorkQueue[str] = WorkQueue(name="claims")
        self.leading = asyncio.Event()
        self.ready = asyncio.Event()
        self.lost_leadership = False
        self.contract: Contract | None = None
        self.informers: Informers | None = None
        self.reconciler: ClaimReconciler | None = None
        self.status: PoolStatusWriter | None = None
        self.webhook_url: str | None = None
        self.diagnostics_url: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._recorder = EventRecorder(
            client,
            COMPONENT,
            normal_rate=options.normal_event_rate,
            normal_burst=options.normal_event_burst,
        )
        self._throttled_seen = 0

    # ---- set-up ---------------------------------------------------------------------------------------

    async def _discover(self) -> tuple[Resources, Resource | None, list[Resource]]:
        served = await self.client.server_versions(GROUP, "ipaddressclaims")
        self.contract = choose_contract(served)
        resources = Resources(
            claims=Resource(GROUP, self.contract.version, "ipaddressclaims", "IPAddressClaim", True),
            addresses=Resource(GROUP, self.contract.version, "ipaddresses", "IPAddress", True),
        )
        cluster_versions = await self.client.server_versions(CLUSTER_GROUP, "clusters")
        cluster = next(
            (
                Resource(CLUSTER_GROUP, v, "clusters", "Cluster", True)
                for v in ("v1beta2", "v1beta1")
                if v in cluster_versions
            ),
            None,
        )
        pools = []
        for kind in POOL_KINDS:
            if "v1alpha2" in await self.client.server_versions(GROUP, kind.plural):
                pools.append(pool_resource(kind))
            else:
                log.warning("%s is not installed; claims for it stay unbound", kind.kind)
        log.info(
            "contract %s, clusters %s, pools %s",
            self.contract.api_version,
            cluster and cluster.version,
            [p.kind for p in pools],
        )
        return resources, cluster, pools

    def _informer(self, resource: Resource, **kwargs: Any) -> Informer:
        namespace = self.options.namespace if resource.namespaced else None
        return Informer.for_resource(self.client, resource, namespace=namespace, projection=project, **kwargs)

    def _build(self, resources: Resources, cluster: Resource | None, pools: list[Resource]) -> None:
        assert self.contract is not None
        # A periodic resync re-queues every claim: a safety net for anything an event could not carry.
        claims = self._informer(
            resources.claims,
            indexers={BY_POOL: index_by_pool_of_claim, BY_CLUSTER: index_by_cluster},
            resync_period=self.options.resync_seconds,
        )
        addresses = self._informer(resources.addresses, indexers={BY_POOL: index_by_pool_of_address})
        clusters = self._informer(cluster) if cluster else None
        self.informers = Informers(claims, addresses, clusters, {p.kind: self._informer(p) for p in pools})
        self.reconciler = ClaimReconciler(
            self.client,
            contract=self.contract,
            resources=resources,
            informers=self.informers,
            book=self.book,
            recorder=self._recorder,
            metrics=self.metrics,
            wake=self.queue.add,
            pool_changed=self._pool_changed,
            watch_filter=self.options.watch_filter,
        )
        self.status = PoolStatusWriter(
            self.client,
            self.informers,
            self.reconciler.pool_state,
            self.metrics,
            interval=self.options.status_interval,
        )
        claims.add_handler(self._leader_only(self._on_claim))
        addresses.add_handler(self._leader_only(self._on_address))
        if clusters is not None:
            clusters.add_handler(self._leader_only(self._on_cluster))
        for informer in self.informers.pools.values():
            informer.add_handler(self._leader_only(self._on_pool))

    def _all_informers(self) -> list[Informer]:
        assert self.informers is not None
        found = [self.informers.claims, self.informers.addresses, *self.informers.pools.values()]
        return [*found, self.informers.clusters] if self.informers.clusters is not None else found

    # ---- event handlers (leader only) --------------------------------------------------------------------

    def _leader_only(self, handler: Handler) -> Handler:
        def guarded(event: str, old: Obj | None, new: Obj | None) -> None:
            if self.leading.is_set():
                handler(event, old, new)

        return guarded

    def _pool_changed(self, pool_key: str) -> None:
        if self.status is not None:
            self.status.mark(pool_key)

    def _on_claim(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        if claim_pool_key(obj) is None or not passes_watch_filter(obj, self.options.watch_filter):
            return
        if event not in (DELETED, SYNC) and _only_our_writes(old, new):
            return
        self.queue.add(key_of(obj))

    def _on_address(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        assert self.reconciler is not None
        pool_key = address_pool_key(obj)
        state = self.book.get(pool_key) if pool_key else None
        if event == DELETED:
            if state is not None and state.forget(key_of(obj)):
                self.reconciler.freed(state)
            self.queue.add(key_of(obj))  # a live claim of that name gets a new address
        elif state is not None and new is not None:
            state.observe(key_of(new), str((new.get("spec") or {}).get("address", "")))
            if self.informers is not None and key_of(new) not in self.informers.claims:
                self.queue.add(key_of(new))  # its claim is gone: the reconcile deletes it if it is ours
        if pool_key is not None:
            self._pool_changed(pool_key)

    def _on_pool(self, event: str, old: Obj | None, new: Obj | None) -> None:
        assert self.informers is not None
        assert self.reconciler is not None
        obj = new or old
        assert obj is not None
        pool_key = pool_key_of(obj)
        if pool_key is None:
            return
        if event == DELETED:
            self.book.remove(pool_key)
            self._wake_claims_of(pool_key)
            return
        assert new is not None
        if old is not None and _differs_only_in_status(old, new) and finalizers_of(old) == finalizers_of(new):
            return  # the echo of our own status write: nothing to recount, nobody to wake
        self._pool_changed(pool_key)
        try:
            known = self.book.get(pool_key)
            if known is None:
                self.reconciler.pool_state(pool_key, new)
            else:
                state, room = self.book.upsert(pool_key, known.kind, pool_spec(new))
                if room:
                    self.reconciler.freed(state)
        except PoolSpecError as exc:
            log.warning("pool %s: %s", pool_key, exc)
        unpaused = old is not None and has_paused_annotation(old) and not has_paused_annotation(new)
        if event != "MODIFIED" or unpaused:
            self._wake_claims_of(pool_key)

    def _wake_claims_of(self, pool_key: str) -> None:
        assert self.informers is not None
        for claim_key in self.informers.claims.index_keys(BY_POOL, pool_key):
            self.queue.add(claim_key)

    def _on_cluster(self, event: str, old: Obj | None, new: Obj | None) -> None:
        assert self.informers is not None
        obj = new or old
        assert obj is not None
        if event == "MODIFIED":
            if not (old is not None and cluster_is_paused(old) and not cluster_is_paused(obj)):
                return
        elif event != DELETED and cluster_is_paused(obj):
            return
        for claim_key in self.informers.claims.index_keys(BY_CLUSTER, f"{namespace_of(obj)}/{name_of(obj)}"):
            self.queue.add(claim_key)

    # ---- leading -------------------------------------------------------------------------------------------

    async def _fresh_addresses(self) -> list[tuple[str, str | None, str]]:
        """`(IPAddress key, pool key, address)` of every IPAddress, read from the apiserver now.

        With leader election a previous leader may have written moments ago, after our cache last heard
        from the apiserver. Read page by page, keeping three strings per object.
        """
        assert self.reconciler is not None
        resource, namespace = self.reconciler.resources.addresses, self.options.namespace
        held: list[tuple[str, str | None, str]] = []
        try:
            async for page in self.client.list_pages(resource, namespace):
                held.extend(_held(item) for item in page.items)
        except WatchExpired:  # the continue token expired mid-way: one unpaginated snapshot instead
            listed = await self.client.list(resource, namespace, page_size=None)
            held = [_held(item) for item in listed.items]
        return held

    async def _start_leading(self) -> None:
        """Build the book from the caches plus a fresh list, then reconcile every claim."""
        assert self.informers is not None
        assert self.reconciler is not None
        assert self.status is not None
        # Without leader election there is no other writer: the synced cache, which seeds each pool's state
        # below, is the truth, and nothing needs reading again.
        fresh = await self._fresh_addresses() if self.options.leader_elect else []
        self.book = self.reconciler.book = PoolBook()
        for informer in self.informers.pools.values():
            for _, pool in informer.each():
                key = pool_key_of(pool)
                if key is None:
                    continue
                try:
                    self.reconciler.pool_state(key, pool)
                except PoolSpecError as exc:
                    log.warning("pool %s: %s", key, exc)
                self._pool_changed(key)
        for address_key, pool_key, address in fresh:
            state = self.book.get(pool_key) if pool_key else None
            if state is not None:
                state.observe(address_key, address)
        self.leading.set()
        self.metrics.leader.set(1)
        for claim_key, claim in self.informers.claims.each():
            if claim_pool_key(claim) is not None:
                self.queue.add(claim_key)
        address_keys = (
            [key for key, _, _ in fresh] if self.options.leader_elect else self.informers.addresses.keys()
        )
        for address_key in address_keys:  # IPAddresses whose claim vanished (e.g. while no leader ran)
            if address_key not in self.informers.claims:
                self.queue.add(address_key)
        log.info("leading: %d pools, %d claims queued", len(self.book.keys()), len(self.queue))
        self._tasks.append(asyncio.create_task(self.status.run(), name="pool-status"))
        self._tasks.append(
            asyncio.create_task(
                self.queue.run_workers(self.options.workers, self.reconciler.reconcile), name="claim-workers"
            )
        )

    # ---- servers ---------------------------------------------------------------------------------------

    async def _health_app(self) -> web.Application:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            return (
                web.Response(text="ok") if self.ready.is_set() else web.Response(status=503, text="not ready")
            )

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self._render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        return app

    def _render_metrics(self) -> bytes:
        self.metrics.queue_depth.set(len(self.queue))
        throttled = self._recorder.throttled
        self.metrics.events_throttled.inc(throttled - self._throttled_seen)
        self._throttled_seen = throttled
        return generate_latest(self.metrics.registry)

    async def _serve(self, stack: contextlib.AsyncExitStack) -> None:
        app = await self._health_app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        seen: set[tuple[str, int]] = set()
        for address in (self.options.health_address, self.options.metrics_address):
            parsed = split_address(address)
            if parsed is None or parsed in seen:
                continue
            seen.add(parsed)
            await web.TCPSite(runner, parsed[0], parsed[1]).start()
        if self.options.webhook_port:
            await self._serve_webhooks(stack)
        await self._serve_diagnostics(stack)

    async def _serve_diagnostics(self, stack: contextlib.AsyncExitStack) -> None:
        parsed = split_address(self.options.diagnostics_address)
        if parsed is None:
            return
        insecure = self.options.insecure_diagnostics
        cert_dir = self.options.diagnostics_cert_dir
        server = DiagnosticsServer(
            parsed[0],
            parsed[1],
            self._render_metrics,
            authorizer=None if insecure else KubeAuthorizer(self.client),
            insecure=insecure,
            cert_file=cert_dir / "tls.crt" if cert_dir else None,
            key_file=cert_dir / "tls.key" if cert_dir else None,
            min_tls_version=tls_version(self.options.tls_min_version),
        )
        await stack.enter_async_context(server)
        self.diagnostics_url = server.url
        if server.watched_files is not None:
            watcher = CertWatcher(
                *server.watched_files,
                server.reload_certificates,
                interval=self.options.cert_poll_interval,
                name="diagnostics certificate",
            )
            await stack.enter_async_context(watcher)

    async def _serve_webhooks(self, stack: contextlib.AsyncExitStack) -> None:
        assert self.informers is not None
        lookups = InformerLookups(self.informers.addresses, self.informers.pools)
        cert_dir = self.options.webhook_cert_dir
        server = WebhookServer(
            self.options.webhook_host,
            self.options.webhook_port,
            str(cert_dir / self.options.webhook_cert_name),
            str(cert_dir / self.options.webhook_key_name),
            addresses=lookups.addresses,
            pools=lookups.pools,
            min_tls_version=tls_version(self.options.tls_min_version),
        )
        await stack.enter_async_context(server)
        watcher = CertWatcher(
            server.cert_file,
            server.key_file,
            server.reload_certificates,
            interval=self.options.cert_poll_interval,
            name="webhook certificate",
        )
        await stack.enter_async_context(watcher)
        self.webhook_url = server.url
        log.info("webhooks served at %s", server.url)

    # ---- run -------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Run until `stop` is set (exit 0) or leadership is lost (exit 1)."""
        resources, cluster, pools = await self._discover()
        self._build(resources, cluster, pools)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._shutdown)
            for informer in self._all_informers():
                informer.start()
            await asyncio.gather(*(i.wait_synced() for i in self._all_informers()))
            await self._serve(stack)
            self.ready.set()
            log.info("caches synced; ready")
            lost = asyncio.Event()
            if self.options.leader_elect:
                elector = self._elector(lost)
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
            self.leading.clear()
            self.metrics.leader.set(0)
            lost.set()

        return LeaderElector(
            self.client, config, on_started_leading=self._start_leading, on_stopped_leading=stopped
        )

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

    async def _stand_down(
        self, elector: LeaderElector, election: asyncio.Task[None], lost: asyncio.Event
    ) -> None:
        """Graceful stop as leader: finish the writes in flight, then hand the lease back. A standby that
        takes the lease lists the IPAddresses afresh, so nothing we wrote may land after that; if the
        reconciles did not finish, the lease is kept to expire instead of being released. Once leadership
        is lost, nothing more is written: the reconciles are cancelled at once."""
        finished = await self._finish_claims(0.0 if lost.is_set() else self.options.shutdown_grace)
        self.leading.clear()
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
        self.leading.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for informer in self._all_informers():
            await informer.stop()
        await self._recorder.close()


def _held(address: Obj) -> tuple[str, str | None, str]:
    return key_of(address), address_pool_key(address), str((address.get("spec") or {}).get("address", ""))

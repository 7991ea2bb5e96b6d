"""The provider process: informers, webhooks, health and metrics for every replica; allocation for the leader.

Every replica keeps its caches warm and serves webhooks. Only the elected leader (or the single process,
without `--leader-elect`) reconciles: on taking over it builds its `PoolBook` from the caches plus a fresh
list of IPAddresses read straight from the apiserver, so nothing the previous leader wrote can be missed.
Losing leadership ends the process (exit code 1), as with controller-runtime: a replacement starts clean.

From the December review:
- webhooks and health are served before the caches sync (pools still stored as v1alpha1 need `/convert`
  to be listed at all), admission answers 503 until they have (finding 7); SIGTERM is honoured meanwhile;
- taking over retries a failed list, and a leader that cannot finish taking over within its renew deadline
  gives the lease up and exits, so the standby leads (finding 2);
- every allocation write is fenced by the lease's validity (finding 4), and the lease has a connection
  pool of its own (finding 10);
- pool states are built off the event loop, one pool at a time, so a takeover over huge pools never
  starves the lease renewals (finding 5); the book follows the caches from the start of a takeover;
- `/readyz` fails while an informer has heard nothing for twice the watch idle timeout (finding 11), and
  `/healthz` while the process holds the lease without leading (findings 2 and 18).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from incluster_ipam.api.constants import CLAIM_FINALIZER, GROUP, POOL_KINDS
from incluster_ipam.api.models import DecodeError
from incluster_ipam.kube import DELETED, EventRecorder, KubeClient, KubeError, Resource, WatchExpired
from incluster_ipam.kube.client import WATCH_IDLE_TIMEOUT
from incluster_ipam.runtime import (
    SYNC,
    Backoff,
    Informer,
    LeaderElectionConfig,
    LeaderElector,
    LeaseFence,
    WorkQueue,
    default_identity,
)
from incluster_ipam.runtime.informer import Handler
from incluster_ipam.runtime.tls import cipher_list, tls_version
from incluster_ipam.webhooks import WebhookServer
from incluster_ipam.webhooks.certwatch import DEFAULT_INTERVAL, CertWatcher
from incluster_ipam.webhooks.lookups import InformerLookups

from .book import PoolBook, PoolSpecError, build_allocatable
from .claims import ClaimReconciler, Informers, Resources, address_text, pool_spec, prefix_of, uid_of
from .contract import Contract, choose_contract
from .diagnostics import DiagnosticsServer, KubeAuthorizer
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
    split_pool_key,
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
    tls_cipher_suites: tuple[str, ...] | None = None  # Go names; None: every forward-secret AEAD suite
    cert_poll_interval: float = DEFAULT_INTERVAL  # seconds between looks at the certificate files
    workers: int = 32
    # Budget for Normal Events (None: every one is written); Warnings are never limited (kube/events.py).
    normal_event_rate: float | None = 10.0
    normal_event_burst: int = 100
    resync_seconds: float = 600.0
    status_interval: float = 0.25
    shutdown_grace: float = 10.0  # seconds the reconciles in flight get to finish at a graceful stop
    watch_idle_timeout: float = WATCH_IDLE_TIMEOUT  # a watch silent this long counts as dead


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


class TakeoverFailed(Exception):
    """The fresh list could not be read within the renew deadline: this replica must not keep leading."""


@dataclass(frozen=True)
class _Fresh:
    """One IPAddress of the takeover's fresh list."""

    key: str
    pool_key: str | None
    address: str
    uid: str | None
    prefix: int | None


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
        self.book = PoolBook()
        self.queue: WorkQueue[str] = WorkQueue(name="claims")
        self.leading = asyncio.Event()
        self.ready = asyncio.Event()  # caches synced (and stay current: see `_readyz`)
        self.serving = asyncio.Event()  # health and webhooks are up (before the caches sync)
        self.lost_leadership = False
        self.contract: Contract | None = None
        self.informers: Informers | None = None
        self.reconciler: ClaimReconciler | None = None
        self.status: PoolStatusWriter | None = None
        self.elector: LeaderElector | None = None
        self.webhook_url: str | None = None
        self.diagnostics_url: str | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._status_task: asyncio.Task[None] | None = None
        self._book_live = False  # handlers keep the book current (from the start of a takeover)
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
            clock=self.client.server_time,
        )
        self.status = PoolStatusWriter(
            self.client,
            self.informers,
            self.reconciler.pool_state,
            self.metrics,
            interval=self.options.status_interval,
            known_state=lambda key: self.book.get(key),  # noqa: PLW0108 - the book is replaced on takeover
        )
        claims.add_handler(self._leader_only(self._on_claim))
        addresses.add_handler(self._book_live_only(self._on_address))
        if clusters is not None:
            clusters.add_handler(self._leader_only(self._on_cluster))
        for informer in self.informers.pools.values():
            informer.add_handler(self._book_live_only(self._on_pool))

    def _all_informers(self) -> list[Informer]:
        assert self.informers is not None
        found = [self.informers.claims, self.informers.addresses, *self.informers.pools.values()]
        return [*found, self.informers.clusters] if self.informers.clusters is not None else found

    # ---- event handlers ----------------------------------------------------------------------------------

    def _leader_only(self, handler: Handler) -> Handler:
        def guarded(event: str, old: Obj | None, new: Obj | None) -> Any:
            if self.leading.is_set():
                return handler(event, old, new)
            return None

        return guarded

    def _book_live_only(self, handler: Handler) -> Handler:
        """Book upkeep runs from the start of a takeover (the book must not miss what changes while it is
        being built); the handlers queue work only once leading."""

        def guarded(event: str, old: Obj | None, new: Obj | None) -> Any:
            if self._book_live:
                return handler(event, old, new)
            return None

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
        key = key_of(obj)
        pool_key = address_pool_key(obj)
        state = self.book.get(pool_key) if pool_key else None
        leading = self.leading.is_set()
        if event == DELETED:
            if state is None:
                self.book.bury(key, uid_of(obj))
            elif state.forget(key, uid_of(obj)):
                self.reconciler.freed(state)
            if leading:
                self.queue.add(key)  # a live claim of that name gets a new address
        elif new is not None:
            if old is not None and (uid_of(old) != uid_of(new) or address_pool_key(old) != pool_key):
                # The watch says the earlier incarnation (or its place in another pool) is gone.
                before = self.book.get(address_pool_key(old) or "")
                if before is not None and before.forget(key, uid_of(old)):
                    self.reconciler.freed(before)
            if state is not None:
                state.observe(key, address_text(new), uid_of(new), prefix_of(new))
            if leading and self.informers is not None and key not in self.informers.claims:
                self.queue.add(key)  # its claim is gone: the reconcile deletes it if it is ours
        if pool_key is not None:
            self._pool_changed(pool_key)

    async def _on_pool(self, event: str, old: Obj | None, new: Obj | None) -> None:
        assert self.informers is not None
        assert self.reconciler is not None
        obj = new or old
        assert obj is not None
        pool_key = pool_key_of(obj)
        if pool_key is None:
            return
        leading = self.leading.is_set()
        if event == DELETED:
            self.book.remove(pool_key)  # kept while reservations are in flight: a re-created pool goes on
            if leading:
                self._wake_claims_of(pool_key)
            return
        assert new is not None
        if old is not None and _differs_only_in_status(old, new) and finalizers_of(old) == finalizers_of(new):
            return  # the echo of our own status write: nothing to recount, nobody to wake
        self._pool_changed(pool_key)
        await self._apply_pool(pool_key, new, create=leading)
        unpaused = old is not None and has_paused_annotation(old) and not has_paused_annotation(new)
        if leading and (event != "MODIFIED" or unpaused or is_deleting_now(old, new)):
            self._wake_claims_of(pool_key)

    async def _apply_pool(self, pool_key: str, pool: Obj, *, create: bool) -> None:
        """Bring the book's state of a pool in line with its spec, building the allocatable set off the
        event loop (it costs time linear in the spec's entries)."""
        assert self.reconciler is not None
        state = self.book.get(pool_key)
        if state is None and not create:
            return
        try:
            spec = pool_spec(pool)
            if state is not None and state.spec == spec:
                return
            built = await asyncio.to_thread(build_allocatable, spec)
            state = self.book.get(pool_key)  # the book may have changed while the set was built
            if state is None:
                kind, _, _ = split_pool_key(pool_key)
                self.book.upsert(pool_key, kind, spec, self.reconciler.seed(pool_key), built)
            elif state.update_spec(spec, built):
                self.reconciler.freed(state)
        except (PoolSpecError, DecodeError) as exc:
            log.warning("pool %s: %s", pool_key, exc)

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

    async def _fresh_addresses(self) -> list[_Fresh]:
        """Every IPAddress, read from the apiserver now (page by page, keeping a few strings per object).

        With leader election a previous leader may have written moments ago, after our cache last heard
        from the apiserver."""
        assert self.reconciler is not None
        resource, namespace = self.reconciler.resources.addresses, self.options.namespace
        held: list[_Fresh] = []
        try:
            async for page in self.client.list_pages(resource, namespace):
                held.extend(_fresh(item) for item in page.items)
        except WatchExpired:  # the continue token expired mid-way: one unpaginated snapshot instead
            listed = await self.client.list(resource, namespace, page_size=None)
            held = [_fresh(item) for item in listed.items]
        return held

    async def _fresh_addresses_within(self, deadline: float) -> list[_Fresh]:
        """`_fresh_addresses`, retried with back-off (at least the server's Retry-After) until `deadline`
        (event-loop time); `TakeoverFailed` after that."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(initial=0.2, cap=2.0)
        while True:
            try:
                return await self._fresh_addresses()
            except KubeError as exc:
                delay = max(backoff.next(), getattr(exc, "retry_after", None) or 0.0)
                if loop.time() + delay > deadline:
                    raise TakeoverFailed(f"could not list IPAddresses to take over: {exc}") from exc
                log.warning("taking over: listing IPAddresses failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _start_leading(self) -> None:
        """Build the book from the caches plus a fresh list, then reconcile every claim."""
        assert self.informers is not None
        assert self.reconciler is not None
        assert self.status is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.book = self.reconciler.book = PoolBook()
        self.reconciler.unplaced, self.reconciler.verify = {}, set()
        self._book_live = True
        # Without leader election there is no other writer: the synced cache, which seeds each pool's state
        # below, is the truth, and nothing needs reading again.
        fresh: list[_Fresh] = []
        if self.options.leader_elect:
            fresh = await self._fresh_addresses_within(started + self.options.renew_deadline)
        by_pool: dict[str, list[tuple[str, str, str | None, int | None]]] = defaultdict(list)
        for entry in fresh:
            if entry.pool_key is not None:
                by_pool[entry.pool_key].append((entry.key, entry.address, entry.uid, entry.prefix))
        for informer in self.informers.pools.values():
            cache_keys = informer.keys()  # a snapshot: the cache changes while pools are built
            for cache_key in cache_keys:
                pool = informer.get(cache_key)
                key = pool_key_of(pool) if pool is not None else None
                if pool is None or key is None:
                    continue
                await self._apply_pool(key, pool, create=True)
                state = self.book.get(key)
                if state is not None:
                    for address_key, address, uid, prefix in by_pool.pop(key, []):
                        state.observe(address_key, address, uid, prefix, ahead=True)
                self._pool_changed(key)
        # Entries of pools without a state (not in the pool cache yet, or invalid for now): the pool's
        # state starts from them too when it is built.
        self.reconciler.unplaced = dict(by_pool)
        self.leading.set()
        self.metrics.leader.set(1)
        self.metrics.takeover_seconds.set(loop.time() - started)
        for claim_key, claim in self.informers.claims.each():
            if claim_pool_key(claim) is not None:
                self.queue.add(claim_key)
        addresses = self.informers.addresses
        if self.options.leader_elect:
            for entry in fresh:
                cached = addresses.get(entry.key) if entry.key in addresses else None
                if cached is None or uid_of(cached) != entry.uid:
                    # Listed, but gone from (or replaced in) the cache since: the DELETED event may have
                    # come while nobody led. Ask the apiserver before trusting either (finding 13).
                    self.reconciler.verify.add(entry.key)
                    self.queue.add(entry.key)
        for address_key in [e.key for e in fresh] if self.options.leader_elect else addresses.keys():
            if address_key not in self.informers.claims:  # IPAddresses whose claim vanished
                self.queue.add(address_key)
        log.info(
            "leading: %d pools, %d claims queued, took over in %.2f s",
            len(self.book.keys()),
            len(self.queue),
            loop.time() - started,
        )
        self._status_task = asyncio.create_task(self.status.run(), name="pool-status")
        self._tasks.append(self._status_task)
        self._tasks.append(
            asyncio.create_task(
                self.queue.run_workers(self.options.workers, self.reconciler.reconcile), name="claim-workers"
            )
        )

    # ---- servers ---------------------------------------------------------------------------------------

    def _stale_informers(self) -> list[str]:
        limit = 2 * self.options.watch_idle_timeout
        return [i.name for i in self._all_informers() if i.has_synced and i.stale_seconds > limit]

    def _wedged(self) -> bool:
        """Holding the lease without leading, longer than a takeover may take."""
        elector = self.elector
        if elector is None or self.leading.is_set() or not elector.is_leader:
            return False
        loop = asyncio.get_running_loop()
        return loop.time() - elector.acquired_at > self.options.renew_deadline + self.options.retry_period

    async def _health_app(self) -> web.Application:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            if self._wedged():
                return web.Response(status=500, text="holding the lease without leading")
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            if not self.ready.is_set():
                return web.Response(status=503, text="caches not synced")
            stale = self._stale_informers() if self.informers is not None else []
            if stale:
                return web.Response(status=503, text=f"no word from the apiserver for: {', '.join(stale)}")
            return web.Response(text="ok")

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
        if self.informers is not None:
            for informer in self._all_informers():
                if informer.has_synced:
                    self.metrics.informer_stale.labels(informer.name).set(informer.stale_seconds)
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
        self.serving.set()

    def _ciphers(self) -> str:
        return cipher_list(self.options.tls_cipher_suites)

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
            ciphers=self._ciphers(),
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
            stored_uid=lookups.stored_uid,
            min_tls_version=tls_version(self.options.tls_min_version),
            ciphers=self._ciphers(),
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
        resources, cluster, pools = await self._discover()
        self._build(resources, cluster, pools)
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
                fence = LeaseFence(elector)
                assert self.reconciler is not None
                assert self.status is not None
                self.reconciler.fence = self.status.fence = fence
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
            self._book_live = False
            self.metrics.leader.set(0)
            lost.set()

        return LeaderElector(
            self.lease_client, config, on_started_leading=self._start_leading, on_stopped_leading=stopped
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
        self._book_live = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for informer in self._all_informers():
            await informer.stop()
        await self._recorder.close()
        if self._own_lease_client:
            await self.lease_client.close()


def is_deleting_now(old: Obj | None, new: Obj | None) -> bool:
    """The update that set the deletionTimestamp (claims waiting on the pool learn it is going)."""
    return bool(new and new["metadata"].get("deletionTimestamp")) and not (
        old and old["metadata"].get("deletionTimestamp")
    )


def _fresh(address: Obj) -> _Fresh:
    return _Fresh(
        key_of(address), address_pool_key(address), address_text(address), uid_of(address), prefix_of(address)
    )

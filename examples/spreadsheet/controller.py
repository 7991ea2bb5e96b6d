"""The smallest process around the claim lifecycle: informers for claims, IPAddresses and Clusters, a work
queue, and `ClaimReconciler` over a backend. One replica, no leader election, no servers: what the
in-cluster provider adds on top (`incluster_ipam.provider.app`) is described in `docs/extending.md`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry

from incluster_ipam.capi.objects import BY_CLUSTER, Obj, index_by_cluster, project
from incluster_ipam.claimcore import Caches, ClaimMetrics, ClaimReconciler, Resources, discover
from incluster_ipam.claimcore.watches import address_event, claim_event, cluster_event
from incluster_ipam.kube import EventRecorder, KubeClient, Resource
from incluster_ipam.runtime import Informer, WorkQueue

from .backend import SpreadsheetBackend

log = logging.getLogger(__name__)


async def run_claims(
    client: KubeClient,
    backend: SpreadsheetBackend,
    stop: asyncio.Event,
    *,
    namespace: str | None = None,
    workers: int = 4,
    registry: CollectorRegistry | None = None,
) -> None:
    """Reconcile the backend's claims until `stop` is set."""
    found = await discover(client)

    def informer(resource: Resource, **kwargs: Any) -> Informer:
        return Informer.for_resource(client, resource, namespace=namespace, projection=project, **kwargs)

    claims = informer(found.claims, indexers={BY_CLUSTER: index_by_cluster})
    addresses = informer(found.addresses)
    clusters = informer(found.clusters) if found.clusters is not None else None
    queue: WorkQueue[str] = WorkQueue(name="spreadsheet-claims")
    backend.wake = queue.add
    recorder = EventRecorder(client, "spreadsheet-ipam")
    reconciler = ClaimReconciler(
        client,
        contract=found.contract,
        resources=Resources(found.claims, found.addresses),
        caches=Caches(claims, addresses, clusters),
        backend=backend,
        recorder=recorder,
        metrics=ClaimMetrics(registry or CollectorRegistry()),
        clock=client.server_time,
    )

    def on_claim(event: str, old: Obj | None, new: Obj | None) -> None:
        for key in claim_event(event, old, new, backend.pool_key, None):
            queue.add(key)

    def on_address(event: str, old: Obj | None, new: Obj | None) -> None:
        for key in address_event(event, old, new, lambda k: k in claims):
            queue.add(key)

    def on_cluster(event: str, old: Obj | None, new: Obj | None) -> None:
        for key in cluster_event(event, old, new, lambda k: claims.index_keys(BY_CLUSTER, k)):
            queue.add(key)

    claims.add_handler(on_claim)
    addresses.add_handler(on_address)
    informers = [claims, addresses]
    if clusters is not None:
        clusters.add_handler(on_cluster)
        informers.append(clusters)
    for each in informers:
        each.start()
    try:
        await asyncio.gather(*(each.wait_synced() for each in informers))
        log.info("caches synced; reconciling claims of %s pools", "Spreadsheet")
        for key, _ in claims.each():
            queue.add(key)
        workers_done = asyncio.create_task(queue.run_workers(workers, reconciler.reconcile))
        await stop.wait()
        await queue.shutdown(drain=False)
        await workers_done
    finally:
        for each in informers:
            await each.stop()
        await recorder.close()

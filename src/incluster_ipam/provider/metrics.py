"""The provider's Prometheus registry: the claim lifecycle's and reconcile metrics (`claimcore.metrics`),
the pools' gauges (`backend.status`), the webhook server's (`webhooks.metrics`), and the process's own:
leadership, queue, informers, takeover, Events held back."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from incluster_ipam.backend import PoolMetrics
from incluster_ipam.claimcore import ClaimMetrics
from incluster_ipam.webhooks.metrics import WebhookMetrics

_PREFIX = "incluster_ipam"


class Metrics:
    """One registry per provider process (tests create their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.claims = ClaimMetrics(self.registry)
        self.pools = PoolMetrics(self.registry)
        self.webhooks = WebhookMetrics(self.registry)
        self.leader = Gauge(
            f"{_PREFIX}_leader", "1 while this replica is the elected leader.", registry=self.registry
        )
        self.events_throttled = Counter(
            f"{_PREFIX}_normal_events_throttled",
            "Normal Events not written because they were over the --normal-event-rate budget.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            f"{_PREFIX}_claim_queue_depth", "Claims waiting to be reconciled.", registry=self.registry
        )
        self.informer_stale = Gauge(
            f"{_PREFIX}_informer_stale_seconds",
            "Seconds since the apiserver last told an informer anything (list, event, bookmark, watch end).",
            ["resource"],
            registry=self.registry,
        )
        self.informer_objects = Gauge(
            f"{_PREFIX}_informer_objects",
            "Objects an informer holds in its cache.",
            ["resource"],
            registry=self.registry,
        )
        self.informer_bytes = Gauge(
            f"{_PREFIX}_informer_cache_bytes",
            "Bytes the objects of an informer's cache take, compressed (keys and indexes not counted).",
            ["resource"],
            registry=self.registry,
        )
        self.takeover_seconds = Gauge(
            f"{_PREFIX}_takeover_duration_seconds",
            "How long the last start of leading took (fresh list and book built).",
            registry=self.registry,
        )

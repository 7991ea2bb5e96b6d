"""Prometheus metrics of the provider (§10.12): allocations, failures by reason, latency, pool usage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from incluster_ipam.ipam.pool import PoolCounts

_PREFIX = "incluster_ipam"


class Metrics:
    """One registry per provider process (tests create their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.allocations = Counter(
            f"{_PREFIX}_allocations", "Addresses allocated to claims.", registry=self.registry
        )
        self.releases = Counter(
            f"{_PREFIX}_releases", "Claims whose address was released.", registry=self.registry
        )
        self.failures = Counter(
            f"{_PREFIX}_allocation_failures",
            "Claims that could not be bound, by Ready-condition reason.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{_PREFIX}_allocation_duration_seconds",
            "Time from reserving an address to its IPAddress being created.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        labels = ["kind", "namespace", "name"]
        self.pool_total = Gauge(
            f"{_PREFIX}_pool_addresses_total", "Allocatable addresses.", labels, registry=self.registry
        )
        self.pool_used = Gauge(
            f"{_PREFIX}_pool_addresses_used", "Addresses in use.", labels, registry=self.registry
        )
        self.pool_free = Gauge(
            f"{_PREFIX}_pool_addresses_free",
            "Allocatable addresses not in use.",
            labels,
            registry=self.registry,
        )
        self.pool_out_of_range = Gauge(
            f"{_PREFIX}_pool_addresses_out_of_range",
            "In-use addresses outside the pool.",
            labels,
            registry=self.registry,
        )
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
        self.takeover_seconds = Gauge(
            f"{_PREFIX}_takeover_duration_seconds",
            "How long the last start of leading took (fresh list and book built).",
            registry=self.registry,
        )
        self.writes_fenced = Counter(
            f"{_PREFIX}_writes_fenced",
            "Writes not sent because leadership was no longer certain.",
            registry=self.registry,
        )

    def set_pool(self, labels: tuple[str, str, str], counts: PoolCounts) -> None:
        """Per-pool gauges; `labels` is (kind, namespace, name)."""
        total, used, free, out_of_range = counts.total, counts.used, counts.free, counts.out_of_range
        self.pool_total.labels(*labels).set(total)
        self.pool_used.labels(*labels).set(used)
        self.pool_free.labels(*labels).set(free)
        self.pool_out_of_range.labels(*labels).set(out_of_range)

    def forget_pool(self, kind: str, namespace: str, name: str) -> None:
        for gauge in (self.pool_total, self.pool_used, self.pool_free, self.pool_out_of_range):
            try:
                gauge.remove(kind, namespace, name)
            except KeyError:
                continue

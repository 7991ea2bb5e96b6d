"""Metrics of the claim lifecycle (§10.12) and of reconciles, as controller-runtime names them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from incluster_ipam.capi import contract as c

from .pending import PendingClaims

_PREFIX = "incluster_ipam"


class ClaimMetrics:
    """Allocation counters and latency, claims pending, plus controller-runtime's per-controller reconcile
    metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.allocations = Counter(
            f"{_PREFIX}_allocations", "Addresses allocated to claims.", registry=registry
        )
        self.releases = Counter(
            f"{_PREFIX}_releases", "Claims whose address was released.", registry=registry
        )
        self.failures = Counter(
            f"{_PREFIX}_allocation_failures",
            "Claims that could not be bound, by Ready-condition reason.",
            ["reason"],
            registry=registry,
        )
        for reason in (c.POOL_EXHAUSTED, c.ALLOCATION_FAILED):  # exposed at 0, so the first one is a rise
            self.failures.labels(reason=reason)
        self.latency = Histogram(
            f"{_PREFIX}_allocation_duration_seconds",
            "Time from reserving an address to its IPAddress being created.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.pending = PendingClaims(registry)
        self.writes_fenced = Counter(
            f"{_PREFIX}_writes_fenced",
            "Writes not sent because leadership was no longer certain.",
            registry=registry,
        )
        # controller-runtime's names, so dashboards made for Cluster API providers work unchanged.
        self.reconciles = Counter(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller, by result "
            "(success, error, requeue, requeue_after).",
            ["controller", "result"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller.",
            ["controller"],
            registry=registry,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller.",
            ["controller"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )

    def start_controller(self, controller: str) -> None:
        """Expose the controller's reconcile counters at 0, as controller-runtime does when it starts."""
        for result in ("success", "error", "requeue", "requeue_after"):
            self.reconciles.labels(controller, result)
        self.reconcile_errors.labels(controller)

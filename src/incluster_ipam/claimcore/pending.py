"""Claims waiting for an address, as two label-free gauges: how many, and how long the oldest has waited.

Fed by every claim informer event (so standby replicas report too, and nothing is scanned at scrape time):
a claim of ours (a pool of this backend, passing the watch filter) that is not deleting, not paused and has
no `status.addressRef` is pending from the moment this process first sees it so; binding, deletion,
pausing or leaving our pools ends it. Ages restart with the process (the projection keeps no creation
time): an alert on the age needs a `for:` shorter than a restart loop would hide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from incluster_ipam.capi.objects import (
    Obj,
    has_paused_annotation,
    is_deleting,
    key_of,
    passes_watch_filter,
)
from incluster_ipam.kube import DELETED

_PREFIX = "incluster_ipam"

PoolOf = Callable[[Mapping[str, Any]], "str | None"]


def is_pending(claim: Mapping[str, Any]) -> bool:
    """Live, not paused, and without an address."""
    if is_deleting(claim) or has_paused_annotation(claim):
        return False
    return not ((claim.get("status") or {}).get("addressRef") or {}).get("name")


class PendingClaims:
    """`incluster_ipam_claims_pending` and `incluster_ipam_claims_pending_max_age_seconds` (0 when none)."""

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: dict[str, float] = {}
        self.count = Gauge(
            f"{_PREFIX}_claims_pending",
            "Claims of our pools that are live, not paused and have no address yet.",
            registry=registry,
        )
        self.count.set_function(lambda: len(self._since))
        self.max_age = Gauge(
            f"{_PREFIX}_claims_pending_max_age_seconds",
            "Seconds the longest-pending claim has been without an address, as this process saw it "
            "(0 when none is pending).",
            registry=registry,
        )
        self.max_age.set_function(self.oldest_age)

    def oldest_age(self) -> float:
        if not self._since:
            return 0.0
        return max(0.0, self._clock() - min(self._since.values()))

    def observe(self, key: str, claim: Mapping[str, Any] | None) -> None:
        """Record the claim's latest known state (None: gone, or not ours)."""
        if claim is not None and is_pending(claim):
            self._since.setdefault(key, self._clock())
        else:
            self._since.pop(key, None)

    def handler(
        self, pool_of: PoolOf, watch_filter: str | None
    ) -> Callable[[str, Obj | None, Obj | None], None]:
        """An informer handler that keeps the gauges current."""

        def on_claim(event: str, old: Obj | None, new: Obj | None) -> None:
            claim = new if new is not None else old
            if claim is None:
                return
            ours = pool_of(claim) is not None and passes_watch_filter(claim, watch_filter)
            self.observe(key_of(claim), claim if event != DELETED and ours else None)

        return on_claim

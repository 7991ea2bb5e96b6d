"""Retry delays: capped exponential back-off, per stream (`Backoff`) or per work item (`ItemBackoff`)."""

from __future__ import annotations

import random
from collections.abc import Hashable


class Backoff:
    """Capped exponential delays with jitter, for one retrying loop (informer reconnects)."""

    def __init__(
        self, initial: float = 0.8, cap: float = 30.0, factor: float = 2.0, jitter: float = 0.2
    ) -> None:
        if initial <= 0 or cap < initial or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1 and 0 <= jitter <= 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._next = initial

    def next(self) -> float:
        """The next delay; each call grows the following one up to `cap`."""
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay * (1 + random.uniform(0, self.jitter)) if self.jitter else delay

    def reset(self) -> None:
        self._next = self.initial


class ItemBackoff:
    """Per-item exponential delay: `base * 2**failures`, capped; controller-runtime's default is 5 ms
    doubling to 1000 s (its additional overall token bucket is left out: it would cap our throughput)."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError("item backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        """Record one more failure of `item` and return how long to wait before retrying it."""
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        if failures >= 64:  # 2**64 * base overflows any sane cap
            return self.cap
        return float(min(self.base * (2**failures), self.cap))

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def retries(self, item: Hashable) -> int:
        return self._failures.get(item, 0)

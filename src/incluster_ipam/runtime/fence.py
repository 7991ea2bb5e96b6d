"""Write fencing: no allocation write leaves the process unless its leadership is still certain.

A leader can be stalled (a CPU burst under a CFS quota, GC, a frozen VM) for longer than its lease; when it
resumes, asyncio delivers the buffered answers before the elector's timer fires, so the reconciles that were
waiting would write from a stale book while another replica already leads. Every write therefore asks the
fence first, synchronously, right before it is sent: the fence says how many seconds of certain leadership
are left (by the monotonic clock of the event loop), and the write must leave within that (`send_within`:
a connection acquired in time, or nothing is sent), so no write is sent later than the leadership it
relies on. The answer may take longer (a large object's patch can take seconds): the lease's safety
margin (lease duration minus renew deadline) covers the request's way to the apiserver, and the next
leader lists afresh only after the lease expired. What the fence cannot cover: an apiserver that queues a
request it received in time for longer than that margin (API Priority and Fairness under overload).
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


class NotLeading(Exception):
    """Leadership is not (or no longer) certain: the write was not sent."""


class Fence(Protocol):
    def remaining(self) -> float:
        """Seconds of certain leadership left; 0 or less: stop writing."""
        ...


class Unfenced:
    """Without leader election there is no other writer: every write may go."""

    def remaining(self) -> float:
        return math.inf


class ValidUntil(Protocol):
    @property
    def valid_until(self) -> float: ...


class LeaseFence:
    """Fences writes by a lease's validity deadline (`LeaderElector.valid_until`, event-loop time)."""

    def __init__(self, valid_until: ValidUntil) -> None:
        self._valid_until = valid_until

    def remaining(self) -> float:
        return self._valid_until.valid_until - asyncio.get_running_loop().time()


def send_within(fence: Fence) -> float | None:
    """Seconds within which the next write must leave (None: no limit); `NotLeading` when none is left."""
    left = fence.remaining()
    if left <= 0:
        raise NotLeading("leadership is not certain: not writing")
    return None if left == math.inf else left

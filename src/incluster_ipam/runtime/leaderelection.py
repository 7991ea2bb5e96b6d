"""`LeaderElector`: leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics.

- A candidate takes the lease when it does not exist, when its holder is empty (released), or when the
  record has not changed for `leaseDurationSeconds` as measured on the candidate's own monotonic clock since
  it last saw the record change (no trust in other hosts' wall clocks).
- Every write carries the resourceVersion that was read, so of two candidates racing for the same lease
  exactly one wins (the other gets 409 Conflict): two electors can never both hold it.
- The leader renews every `retry_period`; if it has not renewed for `renew_deadline` (< lease duration, so it
  stops before anyone else may start), or sees another holder, it steps down and `on_stopped_leading` runs.
- On graceful stop the leader releases the lease (empty holder), so a standby takes over at its next retry
  instead of waiting out the lease.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.timestamps import micro_time
from ..kube.client import KubeClient
from ..kube.errors import ApiError, KubeError
from ..kube.resources import LEASES, Obj

log = logging.getLogger(__name__)

_JITTER = 1.2  # client-go's JitterFactor for acquire retries

Callback = Callable[[], Awaitable[None] | None]


def default_identity() -> str:
    """`hostname_uuid`, as controller-runtime does (unique even for two processes on one host)."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which lease, who we are, and the timings (client-go defaults: 15 s / 10 s / 2 s)."""

    name: str
    namespace: str
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not self.renew_deadline > _JITTER * self.retry_period:
            raise ValueError("renew_deadline must be greater than 1.2 * retry_period")
        if self.retry_period <= 0 or not self.identity:
            raise ValueError("retry_period must be positive and identity non-empty")


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease spec."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Obj) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> Obj:
        spec: Obj = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


def held_by_other(record: LeaseRecord, identity: str, observed_at: float, now: float) -> bool:
    """Whether someone else validly holds the lease: a non-empty holder that is not us, whose record changed
    less than its lease duration ago (by our clock: `observed_at` is when we saw it change)."""
    return (
        bool(record.holder)
        and record.holder != identity
        and observed_at + record.lease_duration_seconds > now
    )


def next_record(current: LeaseRecord | None, identity: str, lease_duration: float, now: str) -> LeaseRecord:
    """The record we write to acquire or renew: keeps acquireTime and transitions while we hold it."""
    duration = max(1, math.ceil(lease_duration))
    if current is None:
        return LeaseRecord(identity, duration, now, now, 0)
    if current.holder == identity:
        return LeaseRecord(identity, duration, current.acquire_time or now, now, current.transitions)
    return LeaseRecord(identity, duration, now, now, current.transitions + 1)


class LeaderElector:
    """Campaigns for a Lease, leads while it can renew, and reports the transitions through callbacks.

    `on_started_leading` may be a coroutine function: it then runs as a task that is cancelled when
    leadership ends. `on_stopped_leading` runs whenever leadership ends (lost, stopped or cancelled).
    """

    def __init__(
        self,
        client: KubeClient,
        config: LeaderElectionConfig,
        *,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._stop = asyncio.Event()
        self._release_wanted = True
        self._leading_event = asyncio.Event()
        self._leading = False
        self._renewed_at = -math.inf
        self._lease: Obj | None = None
        self._observed: LeaseRecord | None = None
        self._observed_at = -math.inf
        self._leader = ""
        self._leading_task: asyncio.Task[Any] | None = None
        self._acquired_at = -math.inf

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def leader(self) -> str:
        """The holder we last observed ("" if none)."""
        return self._leader

    @property
    def is_leader(self) -> bool:
        """True while we hold the lease and renewed it less than `renew_deadline` ago."""
        loop = asyncio.get_running_loop()
        return self._leading and loop.time() < self.valid_until

    @property
    def valid_until(self) -> float:
        """The event-loop time until which our leadership is certain: the start of the last successful
        renewal plus the renew deadline, i.e. the lease duration minus a safety margin of
        `lease_duration - renew_deadline` for clock rates and requests in transit. A standby times the
        lease from after it saw our renewal, so it cannot take over before this. -inf when not leading."""
        return self._renewed_at + self.config.renew_deadline if self._leading else -math.inf

    @property
    def acquired_at(self) -> float:
        """Event-loop time of the renewal that made us leader (-inf when not leading)."""
        return self._acquired_at if self._leading else -math.inf

    async def wait_leading(self) -> None:
        await self._leading_event.wait()

    def stop(self, release: bool = True) -> None:
        """Ask `run` to end: a leader steps down and releases the lease (if `release_on_cancel` and
        `release`). Pass `release=False` when work done as leader may still be landing: the lease then
        expires in its own time, and no standby takes over before that."""
        self._release_wanted = self._release_wanted and release
        self._stop.set()

    # ---- the election loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign until elected, then lead until leadership is lost or `stop()`; returns afterwards.
        Cancelling it also steps down (and releases)."""
        try:
            if not await self._acquire():
                return
            self._become_leader()
            await self._renew()
        finally:
            await self._step_down()

    async def _acquire(self) -> bool:
        log.info("%s: campaigning for lease %s/%s", self.identity, self.config.namespace, self.config.name)
        while not self._stop.is_set():
            if await self._try(self.config.renew_deadline):
                log.info("%s: acquired lease %s/%s", self.identity, self.config.namespace, self.config.name)
                return True
            delay = self.config.retry_period * (1 + random.uniform(0, _JITTER))
            if await self._sleep(delay):
                break
        return False

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        while not await self._sleep(self.config.retry_period):
            while True:
                remaining = self._renewed_at + self.config.renew_deadline - loop.time()
                if remaining <= 0:
                    log.error(
                        "%s: failed to renew the lease within %.1f s",
                        self.identity,
                        self.config.renew_deadline,
                    )
                    return
                if await self._try(remaining):
                    break
                if self._leader and self._leader != self.identity:
                    log.error("%s: lease taken over by %s", self.identity, self._leader)
                    return
                if await self._sleep(min(self.config.retry_period, max(remaining, 0.0))):
                    return

    async def _try(self, budget: float) -> bool:
        """One tryAcquireOrRenew; True if we hold the lease afterwards. Errors count as failure."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = max(0.1, min(budget, self._client.timeout))
        try:
            async with asyncio.timeout(timeout):
                taken = await self._try_acquire_or_renew(timeout)
        except (KubeError, TimeoutError) as exc:
            log.warning("%s: lease %s/%s: %r", self.identity, self.config.namespace, self.config.name, exc)
            return False
        if taken:
            self._renewed_at = started  # conservative: the write may have landed at any time after `started`
        return taken

    async def _try_acquire_or_renew(self, request_timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        # As client-go: `now` (before the GET) judges expiry, so a slow GET errs on the side of "not yet
        # expired"; a record that changed is timed from *after* the GET, so a slow GET that brings news
        # never makes the lease look older than it is (finding 6 of the December review).
        now = loop.time()
        name, namespace = self.config.name, self.config.namespace
        try:
            lease = await self._client.get(LEASES, name, namespace, request_timeout=request_timeout)
            seen = loop.time()
        except ApiError as exc:
            if not exc.is_not_found:
                raise
            record = next_record(None, self.identity, self.config.lease_duration, micro_time())
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": record.spec(),
            }
            try:
                self._lease = await self._client.create(LEASES, body, request_timeout=request_timeout)
            except ApiError as create_exc:
                if create_exc.status == 409:
                    return False  # another candidate created it first
                raise
            self._observe(record, loop.time())
            return True

        current = LeaseRecord.from_lease(lease)
        if current != self._observed:
            self._observe(current, seen)
        if held_by_other(current, self.identity, self._observed_at, now):
            return False
        record = next_record(current, self.identity, self.config.lease_duration, micro_time())
        updated = {**lease, "spec": {**(lease.get("spec") or {}), **record.spec()}}
        try:
            self._lease = await self._client.replace(LEASES, updated, request_timeout=request_timeout)
        except ApiError as exc:
            if exc.status == 409:
                return False  # someone wrote in between; re-read next time
            raise
        self._observe(record, loop.time())
        return True

    def _observe(self, record: LeaseRecord, now: float) -> None:
        self._observed = record
        self._observed_at = now
        if record.holder != self._leader:
            self._leader = record.holder
            if record.holder and self._on_new_leader is not None:
                try:
                    self._on_new_leader(record.holder)
                except Exception:
                    log.exception("on_new_leader callback failed")

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True if stopping."""
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True

    # ---- transitions ---------------------------------------------------------------------------------

    def _become_leader(self) -> None:
        self._leading = True
        self._acquired_at = self._renewed_at
        self._leading_event.set()
        if self._on_started is None:
            return
        try:
            result = self._on_started()
        except Exception:
            log.exception("on_started_leading callback failed; stepping down")
            self._stop.set()
            return
        if inspect.isawaitable(result):
            self._leading_task = asyncio.ensure_future(result)
            self._leading_task.add_done_callback(self._leading_done)

    def _leading_done(self, task: asyncio.Task[Any]) -> None:
        """A leader whose start-up work failed must not keep the lease (nobody else could lead)."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s: starting to lead failed (%r); stepping down", self.identity, exc)
            self._stop.set()

    async def _step_down(self) -> None:
        was_leading, self._leading = self._leading, False
        self._leading_event.clear()
        if self._leading_task is not None:
            self._leading_task.cancel()
            await asyncio.gather(self._leading_task, return_exceptions=True)
            self._leading_task = None
        if not was_leading:
            return
        fresh = self._renewed_at + self.config.renew_deadline > asyncio.get_running_loop().time()
        if self.config.release_on_cancel and self._release_wanted and fresh:
            await self._release()
        log.info("%s: stopped leading", self.identity)
        if self._on_stopped is not None:
            try:
                result = self._on_stopped()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_stopped_leading callback failed")

    async def _release(self) -> None:
        """Hand the lease back (empty holder) so a standby need not wait for it to expire."""
        if self._lease is None or self._observed is None or self._observed.holder != self.identity:
            return
        now = micro_time()
        record = LeaseRecord("", 1, now, now, self._observed.transitions)
        released = {**self._lease, "spec": {**(self._lease.get("spec") or {}), **record.spec()}}
        try:
            await self._client.replace(LEASES, released, request_timeout=min(self._client.timeout, 5.0))
        except KubeError as exc:
            log.warning("%s: could not release the lease: %s", self.identity, exc)
            return
        self._observe(record, asyncio.get_running_loop().time())
        log.info("%s: released lease %s/%s", self.identity, self.config.namespace, self.config.name)

"""Leader election rules and two electors racing over an in-memory Lease API with optimistic concurrency.
(The same scenarios run against the real apiserver in tests/integration/runtime.)"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from incluster_ipam.kube import LEASES, Resource, TransportError, error_from_status
from incluster_ipam.runtime import LeaderElectionConfig, LeaderElector, LeaseRecord
from incluster_ipam.runtime.leaderelection import held_by_other, next_record

FAST = {"lease_duration": 0.6, "renew_deadline": 0.4, "retry_period": 0.05}


class FakeLeases:
    """get/create/replace on Lease objects with resourceVersion checks; `down` makes calls from an
    identity fail (a partitioned leader)."""

    timeout = 5.0

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down: set[str] = set()
        self.current: str = ""

    def client(self, identity: str) -> FakeClient:
        return FakeClient(self, identity)


class FakeClient:
    timeout = 5.0

    def __init__(self, api: FakeLeases, identity: str) -> None:
        self.api = api
        self.identity = identity

    def _check(self) -> None:
        if self.identity in self.api.down:
            raise TransportError("partitioned")

    async def get(self, resource: Resource, name: str, namespace: str, **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._check()
        if self.api.lease is None:
            raise error_from_status({"code": 404, "reason": "NotFound", "message": "not found"})
        return copy.deepcopy(self.api.lease)

    async def create(self, resource: Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._check()
        assert resource is LEASES
        if self.api.lease is not None:
            raise error_from_status({"code": 409, "reason": "AlreadyExists", "message": "exists"})
        return self._store(body)

    async def replace(self, resource: Resource, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._check()
        assert self.api.lease is not None
        if body["metadata"]["resourceVersion"] != self.api.lease["metadata"]["resourceVersion"]:
            raise error_from_status({"code": 409, "reason": "Conflict", "message": "modified"})
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.api.version += 1
        lease = copy.deepcopy(body)
        lease["metadata"]["resourceVersion"] = str(self.api.version)
        self.api.lease = lease
        return copy.deepcopy(lease)


def elector(api: FakeLeases, identity: str, log: list[str], **overrides: Any) -> LeaderElector:
    config = LeaderElectionConfig(name="lock", namespace="ns", identity=identity, **{**FAST, **overrides})
    return LeaderElector(
        api.client(identity),  # type: ignore[arg-type]
        config,
        on_started_leading=lambda: log.append(f"start {identity}"),
        on_stopped_leading=lambda: log.append(f"stop {identity}"),
    )


def test_config_validation_follows_client_go() -> None:
    LeaderElectionConfig(name="l", namespace="n")
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElectionConfig(name="l", namespace="n", lease_duration=5, renew_deadline=5)
    with pytest.raises(ValueError, match=r"1\.2"):
        LeaderElectionConfig(name="l", namespace="n", renew_deadline=2, retry_period=2)
    assert "_" in LeaderElectionConfig(name="l", namespace="n").identity  # hostname_uuid


def test_lease_rules() -> None:
    held = LeaseRecord("a", 15, "t0", "t1", 3)
    assert held_by_other(held, "b", observed_at=100.0, now=110.0)
    assert not held_by_other(held, "b", observed_at=100.0, now=115.0)  # expired by our clock
    assert not held_by_other(held, "a", observed_at=100.0, now=101.0)  # it is ours
    assert not held_by_other(LeaseRecord("", 1), "b", observed_at=100.0, now=100.0)  # released
    renewed = next_record(held, "a", 15, "t2")
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == ("t0", "t2", 3)
    taken = next_record(held, "b", 2.5, "t3")
    assert (taken.holder, taken.lease_duration_seconds, taken.acquire_time, taken.transitions) == (
        "b",
        3,
        "t3",
        4,
    )
    assert next_record(None, "a", 15, "t").transitions == 0
    assert LeaseRecord.from_lease({"spec": renewed.spec()}) == renewed


Running = tuple[LeaderElector, "asyncio.Task[None]"]


async def leader_then_standby() -> tuple[FakeLeases, list[str], Running, Running]:
    """ "a" elected first, then "b" campaigning as its standby."""
    api = FakeLeases()
    log: list[str] = []
    first = elector(api, "a", log)
    first_task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.wait_leading(), 1)
    second = elector(api, "b", log)
    second_task = asyncio.create_task(second.run())
    await asyncio.sleep(0.2)
    assert not second.is_leader
    return api, log, (first, first_task), (second, second_task)


async def test_only_one_of_two_leads_and_release_hands_over_at_once() -> None:
    api = FakeLeases()
    log: list[str] = []
    first, second = elector(api, "a", log), elector(api, "b", log)
    tasks = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    await asyncio.sleep(0.3)
    leaders = [e for e in (first, second) if e.is_leader]
    assert len(leaders) == 1
    leader, standby = (first, second) if first.is_leader else (second, first)
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == leader.identity
    assert standby.leader == leader.identity

    loop = asyncio.get_running_loop()
    started = loop.time()
    leader.stop()
    await asyncio.wait_for(standby.wait_leading(), 1)
    assert loop.time() - started < FAST["lease_duration"]  # released: no need to wait out the lease
    assert not leader.is_leader
    assert api.lease["spec"]["holderIdentity"] == standby.identity
    # created (0), released (kept), taken by the other (+1)
    assert api.lease["spec"]["leaseTransitions"] == 1
    assert log == [f"start {leader.identity}", f"stop {leader.identity}", f"start {standby.identity}"]
    standby.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert api.lease["spec"]["holderIdentity"] == ""


async def test_partitioned_leader_steps_down_before_the_standby_takes_over() -> None:
    api, log, (_, first_task), (second, second_task) = await leader_then_standby()

    loop = asyncio.get_running_loop()
    cut = loop.time()
    api.down.add("a")
    await asyncio.wait_for(first_task, 2)  # run() returns once leadership is lost
    stepped_down = loop.time() - cut
    await asyncio.wait_for(second.wait_leading(), 2)
    took_over = loop.time() - cut
    assert stepped_down < FAST["renew_deadline"] + 0.2
    assert took_over >= FAST["lease_duration"] - 0.2  # had to wait for the lease to expire
    assert stepped_down < took_over  # never two leaders
    assert log == ["start a", "stop a", "start b"]
    second.stop()
    await asyncio.wait_for(second_task, 2)


async def test_cancelling_run_releases_and_stops_the_leading_task() -> None:
    api = FakeLeases()
    work_cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            work_cancelled.set()
            raise

    config = LeaderElectionConfig(name="lock", namespace="ns", identity="a", **FAST)
    elect = LeaderElector(api.client("a"), config, on_started_leading=work)  # type: ignore[arg-type]
    task = asyncio.create_task(elect.run())
    await asyncio.wait_for(elect.wait_leading(), 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert work_cancelled.is_set()
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == ""


async def test_many_candidates_never_share_the_lease() -> None:
    api = FakeLeases()
    electors = [elector(api, f"e{i}", []) for i in range(5)]
    tasks = [asyncio.create_task(e.run()) for e in electors]
    try:
        for _ in range(40):
            await asyncio.sleep(0.02)
            assert sum(e.is_leader for e in electors) <= 1
        assert sum(e.is_leader for e in electors) == 1
    finally:
        for e in electors:
            e.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 2)


async def test_stop_without_release_keeps_the_lease_until_it_expires() -> None:
    api, log, (first, first_task), (second, second_task) = await leader_then_standby()

    loop = asyncio.get_running_loop()
    stopped = loop.time()
    first.stop(release=False)
    await asyncio.wait_for(first_task, 1)
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "a"  # not handed back
    await asyncio.wait_for(second.wait_leading(), 2)
    assert loop.time() - stopped >= FAST["lease_duration"] - 0.25  # the standby waited for expiry
    assert log == ["start a", "stop a", "start b"]
    second.stop(release=True)
    await asyncio.wait_for(second_task, 2)
    assert api.lease["spec"]["holderIdentity"] == ""

"""Write fencing by a lease's validity and the elector's failure handling of its leading callback."""

from __future__ import annotations

import asyncio
import math

import pytest

from incluster_ipam.runtime import (
    LeaderElectionConfig,
    LeaderElector,
    LeaseFence,
    NotLeading,
    Unfenced,
    send_within,
)
from tests.unit.runtime.test_leaderelection import FAST, FakeLeases


class Deadline:
    def __init__(self, valid_until: float) -> None:
        self.valid_until = valid_until


async def test_a_write_must_leave_within_the_leadership_left() -> None:
    assert send_within(Unfenced()) is None
    now = asyncio.get_running_loop().time()
    assert 4.0 < (send_within(LeaseFence(Deadline(now + 5.0))) or 0) <= 5.0
    with pytest.raises(NotLeading):
        send_within(LeaseFence(Deadline(now - 0.001)))
    with pytest.raises(NotLeading):
        send_within(LeaseFence(Deadline(-math.inf)))


async def test_valid_until_follows_renewals_and_ends_with_leadership() -> None:
    api = FakeLeases()
    config = LeaderElectionConfig(name="lock", namespace="ns", identity="a", **FAST)
    elector = LeaderElector(api.client("a"), config)  # type: ignore[arg-type]
    assert elector.valid_until == -math.inf
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(elector.wait_leading(), 2)
    loop = asyncio.get_running_loop()
    assert loop.time() < elector.valid_until <= loop.time() + FAST["renew_deadline"]
    api.down.add("a")  # renewals fail from here: the validity is not extended, then ends
    await asyncio.wait_for(task, 2)
    assert elector.valid_until == -math.inf
    assert not elector.is_leader


async def test_a_failing_start_of_leading_gives_the_lease_up() -> None:
    """Finding 2: work started on leading that fails must not leave a leader that only renews."""
    api = FakeLeases()
    config = LeaderElectionConfig(name="lock", namespace="ns", identity="a", **FAST)

    async def take_over() -> None:
        raise RuntimeError("the takeover list failed")

    stopped: list[str] = []
    elector = LeaderElector(
        api.client("a"),  # type: ignore[arg-type]
        config,
        on_started_leading=take_over,
        on_stopped_leading=lambda: stopped.append("a"),
    )
    await asyncio.wait_for(elector.run(), 2)  # it ends by itself
    assert stopped == ["a"]
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == ""  # released: a standby takes over at once

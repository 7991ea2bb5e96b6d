"""A leader told to stop finishes the claim it is half-way through, and only then hands the lease back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import LEASES, KubeClient, Resource
from incluster_ipam.provider import LEASE_NAME, Options, Provider

from .conftest import ADDRESSES, CLAIMS, Harness, eventually


class HeldCreates(KubeClient):
    """Holds every IPAddress create until `release` is set (a slow apiserver, seen from the provider), and
    notes who held the lease when the create went through."""

    held: asyncio.Event
    release: asyncio.Event
    lease_when_created: str | None

    async def create(self, resource: Resource, body: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if resource.plural != "ipaddresses":
            return await super().create(resource, body, *args, **kwargs)
        self.held.set()
        await self.release.wait()
        created = await super().create(resource, body, *args, **kwargs)
        lease = await self.get(LEASES, LEASE_NAME, "default")
        self.lease_when_created = lease["spec"].get("holderIdentity")
        return created


@dataclass
class Leader:
    slow: HeldCreates
    task: asyncio.Task[int]
    stop: asyncio.Event
    h: Harness
    ns: str

    async def holder(self) -> str | None:
        lease = await self.h.get(LEASES, LEASE_NAME, "default")
        assert lease is not None
        return lease["spec"].get("holderIdentity") or None


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path / "cp") as plane:
        yield plane


async def leader_with_a_claim_in_flight(
    plane: ControlPlane, client: KubeClient, slow: KubeClient, identity: str, grace: float
) -> Leader:
    """A leader-elected provider whose first claim's IPAddress create is held on the wire."""
    assert isinstance(slow, HeldCreates)
    slow.held, slow.release, slow.lease_when_created = asyncio.Event(), asyncio.Event(), None
    options = Options(
        webhook_port=0,
        health_address="0",
        metrics_address="0",
        leader_elect=True,
        leader_election_namespace="default",
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=1,
        shutdown_grace=grace,
    )
    provider = Provider(slow, options)
    stop = asyncio.Event()
    task = asyncio.create_task(provider.run(stop))
    await asyncio.wait_for(provider.leading.wait(), 60)
    h = Harness(plane, client, provider)
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.60.0.0/24"], prefix=24)
    await h.claim(ns, "machine-1", "pool")
    await asyncio.wait_for(slow.held.wait(), 20)
    return Leader(slow, task, stop, h, ns)


async def test_leader_finishes_the_claim_in_flight_before_releasing_the_lease(plane: ControlPlane) -> None:
    async with (
        HeldCreates.from_kubeconfig(plane.kubeconfig_path) as slow,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        leader = await leader_with_a_claim_in_flight(plane, client, slow, "leader-a", grace=20)
        leader.stop.set()
        await asyncio.sleep(0.5)
        assert not leader.task.done(), "the provider stopped with a reconcile half-way through"
        assert await leader.holder() == "leader-a", "the lease was released before the work finished"
        leader.slow.release.set()
        assert await asyncio.wait_for(leader.task, 30) == 0

        assert leader.slow.lease_when_created == "leader-a"
        claim = await leader.h.get(CLAIMS, "machine-1", leader.ns)
        assert claim is not None
        assert claim["status"]["addressRef"]["name"] == "machine-1"  # bound: status written before stopping
        address = await leader.h.get(ADDRESSES, "machine-1", leader.ns)
        assert address is not None
        assert address["spec"]["address"] == "10.60.0.1"

        async def released() -> bool:
            return await leader.holder() is None

        await eventually(released, 5, "the lease to be handed back after the work finished")


async def test_work_still_in_flight_after_the_grace_period_keeps_the_lease(plane: ControlPlane) -> None:
    async with (
        HeldCreates.from_kubeconfig(plane.kubeconfig_path) as slow,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        leader = await leader_with_a_claim_in_flight(plane, client, slow, "leader-b", grace=0.5)
        leader.stop.set()
        assert await asyncio.wait_for(leader.task, 30) == 0  # gave up on the reconcile after 0.5 s
        assert await leader.holder() == "leader-b"  # left to expire, not handed back

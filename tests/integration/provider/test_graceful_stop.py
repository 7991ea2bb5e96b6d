"""A leader told to stop finishes the claim it is half-way through, and only then hands the lease back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import LEASES, KubeClient, Resource
from incluster_ipam.provider.manager import LEASE_NAME, Options, Provider

from .conftest import ADDRESSES, CLAIMS, Harness, eventually


class HeldCreates(KubeClient):
    """Holds every IPAddress create until `release` is set (a slow apiserver, seen from the provider)."""

    held: asyncio.Event
    release: asyncio.Event
    lease_when_created: str | None

    async def create(self, resource: Resource, body: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if resource.plural == "ipaddresses":
            self.held.set()
            await self.release.wait()
            created = await super().create(resource, body, *args, **kwargs)
            lease = await self.get(LEASES, LEASE_NAME, "default")
            self.lease_when_created = lease["spec"].get("holderIdentity")
            return created
        return await super().create(resource, body, *args, **kwargs)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path / "cp") as plane:
        yield plane


async def test_leader_finishes_the_claim_in_flight_before_releasing_the_lease(plane: ControlPlane) -> None:
    async with (
        HeldCreates.from_kubeconfig(plane.kubeconfig_path) as slow,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        assert isinstance(slow, HeldCreates)
        slow.held, slow.release, slow.lease_when_created = asyncio.Event(), asyncio.Event(), None
        options = Options(
            webhook_port=0,
            health_address="0",
            metrics_address="0",
            leader_elect=True,
            leader_election_namespace="default",
            identity="leader-a",
            lease_duration=15,
            renew_deadline=10,
            retry_period=1,
            shutdown_grace=20,
        )
        provider = Provider(slow, options)
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        await asyncio.wait_for(provider.leading.wait(), 60)
        h = Harness(plane, client, provider)
        ns = await h.namespace()
        await h.ip_pool(ns, "pool", addresses=["10.60.0.0/24"], prefix=24)
        await h.claim(ns, "machine-1", "pool")
        await asyncio.wait_for(slow.held.wait(), 20)  # the reconcile is waiting on its IPAddress create

        stop.set()
        await asyncio.sleep(0.5)
        assert not task.done(), "the provider stopped with a reconcile half-way through"
        lease = await h.get(LEASES, LEASE_NAME, "default")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "leader-a", "released before the work finished"
        slow.release.set()
        assert await asyncio.wait_for(task, 30) == 0

        assert slow.lease_when_created == "leader-a"
        claim = await h.get(CLAIMS, "machine-1", ns)
        assert claim is not None
        assert claim["status"]["addressRef"]["name"] == "machine-1"  # bound: status written before stopping
        address = await h.get(ADDRESSES, "machine-1", ns)
        assert address is not None
        assert address["spec"]["address"] == "10.60.0.1"

        async def released() -> bool:
            lease = await h.get(LEASES, LEASE_NAME, "default")
            return lease is not None and not lease["spec"].get("holderIdentity")

        await eventually(released, 5, "the lease to be handed back after the work finished")


async def test_work_still_in_flight_after_the_grace_period_keeps_the_lease(plane: ControlPlane) -> None:
    async with (
        HeldCreates.from_kubeconfig(plane.kubeconfig_path) as slow,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        assert isinstance(slow, HeldCreates)
        slow.held, slow.release, slow.lease_when_created = asyncio.Event(), asyncio.Event(), None
        options = Options(
            webhook_port=0,
            health_address="0",
            metrics_address="0",
            leader_elect=True,
            leader_election_namespace="default",
            identity="leader-b",
            lease_duration=15,
            renew_deadline=10,
            retry_period=1,
            shutdown_grace=0.5,
        )
        provider = Provider(slow, options)
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        await asyncio.wait_for(provider.leading.wait(), 60)
        h = Harness(plane, client, provider)
        ns = await h.namespace()
        await h.ip_pool(ns, "pool", addresses=["10.61.0.0/24"], prefix=24)
        await h.claim(ns, "machine-1", "pool")
        await asyncio.wait_for(slow.held.wait(), 20)
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0  # gave up on the reconcile after 0.5 s
        lease = await h.get(LEASES, LEASE_NAME, "default")
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "leader-b"  # left to expire, not handed back

"""Two replicas with leader election never both allocate; the older IPAM contract (v1beta1) works too."""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import OLD_CAPI, ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.devcluster.process import ManagedProcess
from incluster_ipam.kube import LEASES, KubeClient, Resource
from incluster_ipam.provider import LEASE_NAME, Options, Provider

from .conftest import Harness, eventually

CLI = [sys.executable, "-m", "incluster_ipam.cli"]


async def allocations(metrics_port: int) -> float:
    """The replica's own count of allocations, from its Prometheus endpoint."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("incluster_ipam_allocations_total "):
            return float(line.split()[1])
    raise AssertionError("allocations metric missing")


@pytest.fixture
async def ha_plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path / "cp") as plane:
        yield plane


async def test_two_replicas_one_leader_failover_without_duplicates(
    ha_plane: ControlPlane, tmp_path: Path
) -> None:
    replicas: dict[str, tuple[ManagedProcess, int]] = {}
    for name in ("replica-a", "replica-b"):
        metrics_port = free_port()
        argv = [
            *CLI,
            "run",
            f"--kubeconfig={ha_plane.kubeconfig_path}",
            "--leader-elect",
            "--leader-election-namespace=default",
            f"--leader-elect-identity={name}",
            "--leader-elect-lease-duration=3",
            "--leader-elect-renew-deadline=2",
            "--leader-elect-retry-period=0.5",
            "--webhook-port=0",
            "--health-probe-bind-address=0",
            f"--metrics-bind-address=127.0.0.1:{metrics_port}",
            "--diagnostics-address=0",
        ]
        proc = ManagedProcess(name, argv, tmp_path / f"{name}.log", env={"PYTHONUNBUFFERED": "1"})
        await proc.start()
        replicas[name] = (proc, metrics_port)
    try:
        async with KubeClient.from_kubeconfig(ha_plane.kubeconfig_path) as client:
            h = Harness(ha_plane, client, provider=None)  # type: ignore[arg-type]

            async def holder() -> str | None:
                lease = await h.get(LEASES, LEASE_NAME, "default")
                return ((lease or {}).get("spec") or {}).get("holderIdentity") or None

            leader = await eventually(holder, 60, "a leader to be elected")

            async def serving(port: int) -> bool:
                try:
                    await allocations(port)
                except aiohttp.ClientError:
                    return False
                return True

            for name, (_, port) in replicas.items():  # a loaded machine may start the standby slowly
                await eventually(lambda port=port: serving(port), 60, f"{name} to serve metrics")
            standby = next(name for name in replicas if name != leader)
            ns = await h.namespace()
            await h.ip_pool(ns, "pool", addresses=["10.30.0.0/24"], prefix=24)
            await asyncio.gather(*(h.claim(ns, f"a{i}", "pool") for i in range(30)))
            first = await asyncio.gather(*(h.bound_address(ns, f"a{i}", within=60) for i in range(30)))
            assert await allocations(replicas[standby][1]) == 0, "the standby allocated while not leading"
            assert await allocations(replicas[leader][1]) == 30

            await replicas[leader][0].kill()
            await asyncio.gather(*(h.claim(ns, f"b{i}", "pool") for i in range(30)))
            assert await eventually(holder_is(holder, standby), 15, f"{standby} to take over") is True
            second = await asyncio.gather(*(h.bound_address(ns, f"b{i}", within=60) for i in range(30)))
            everything = [*first, *second]
            assert len(set(everything)) == 60, "an address was handed out twice"
            assert sorted(everything, key=ipaddress.ip_address) == [f"10.30.0.{i}" for i in range(1, 61)]
    finally:
        for proc, _ in replicas.values():
            await proc.stop(grace=5)


def holder_is(holder: Any, name: str) -> Any:
    async def probe() -> bool:
        return await holder() == name

    return probe


@pytest.fixture
async def old_capi(tmp_path: Path) -> AsyncIterator[Harness]:
    """Cluster API v1.10 CRDs (IPAM v1beta1 only) with an in-process provider."""
    async with (
        ControlPlane(capi_version=OLD_CAPI, extra_crds=crds(""), workdir=tmp_path / "cp") as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        provider = Provider(client, Options(webhook_port=0, health_address="0", metrics_address="0"))
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        await asyncio.wait_for(provider.leading.wait(), 60)
        yield Harness(plane, client, provider)
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


V1BETA1_CLAIMS = Resource(GROUP, "v1beta1", "ipaddressclaims", "IPAddressClaim", True)
V1BETA1_ADDRESSES = Resource(GROUP, "v1beta1", "ipaddresses", "IPAddress", True)


async def test_v1beta1_contract_binds_claims_with_v1beta1_conditions(old_capi: Harness) -> None:
    h = old_capi
    assert h.provider.contract is not None
    assert h.provider.contract.version == "v1beta1"
    ns = await h.namespace()
    await h.ip_pool(ns, "pool", addresses=["10.40.0.10"], prefix=24, gateway="10.40.0.1")

    def claim(name: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "IPAddressClaim",
            "metadata": {"name": name},
            "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool"}},
        }

    await h.client.create(V1BETA1_CLAIMS, claim("one"), ns)

    async def bound() -> dict[str, Any] | None:
        obj = await h.get(V1BETA1_CLAIMS, "one", ns)
        return obj if ((obj or {}).get("status") or {}).get("addressRef") else None

    one = await eventually(bound, 20, "the v1beta1 claim to be bound")
    ready = next(c for c in one["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert "observedGeneration" not in ready  # Cluster API v1beta1 conditions have no such field
    address = await h.get(V1BETA1_ADDRESSES, "one", ns)
    assert address is not None
    assert address["apiVersion"] == f"{GROUP}/v1beta1"
    assert address["spec"]["address"] == "10.40.0.10"
    assert address["spec"]["gateway"] == "10.40.0.1"

    await h.client.create(V1BETA1_CLAIMS, claim("two"), ns)

    async def exhausted() -> dict[str, Any] | None:
        obj = await h.get(V1BETA1_CLAIMS, "two", ns)
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("reason") == "PoolExhausted"), None)

    condition = await eventually(exhausted, 20, "PoolExhausted in v1beta1 format")
    assert (condition["status"], condition["severity"]) == ("False", "Warning")

    await h.client.delete(V1BETA1_CLAIMS, "one", ns)

    async def rebound() -> str | None:
        obj = await h.get(V1BETA1_ADDRESSES, "two", ns)
        return (obj or {}).get("spec", {}).get("address")

    assert await eventually(rebound, 10, "the second claim to get the released address") == "10.40.0.10"

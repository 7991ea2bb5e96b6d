"""API server trouble: kube-apiserver restarted and etcd killed mid-allocation, then a fault proxy between the
provider and the apiserver injecting latency, connection resets and a full cut-off.

The provider runs in-process here so the test can read its informers' counters: a restarted apiserver's watch
cache starts after the provider's resourceVersions, so resuming a watch answers 410 Gone and the informers
must relist (not just reconnect). The module has its own control plane (it restarts it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient
from incluster_ipam.provider import Provider

from . import invariants
from .helpers import ADDRESSES, Cluster, in_process, seeded, write_kubeconfig
from .proxy import FaultProxy


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path_factory.mktemp("apiserver-cp")) as cp:
        yield cp


def informer_counts(provider: Provider) -> dict[str, tuple[int, int]]:
    """(lists, watches) per informer of the provider."""
    assert provider.claims is not None
    assert provider.addresses is not None
    assert provider.pools is not None
    found = {"claims": provider.claims, "addresses": provider.addresses}
    found.update(provider.pools.pools)
    return {name: (i.lists, i.watches) for name, i in found.items()}


async def paced(calls: list[Awaitable[None]], spacing: float) -> None:
    async def one(call: Awaitable[None], delay: float) -> None:
        await asyncio.sleep(delay)
        await call

    await asyncio.gather(*(one(c, i * spacing) for i, c in enumerate(calls)))


async def test_apiserver_restart_and_etcd_outage_mid_allocation(cluster: Cluster) -> None:
    seed, rng = seeded("apiserver")
    ns = await cluster.namespace("restart")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.100.0.0/23"], prefix=23)
    await cluster.pool("InClusterIPPool", "small", ns, addresses=["10.101.0.1-10.101.0.30"], prefix=24)
    started = time.monotonic()
    async with (
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        in_process(cluster.client) as provider,
    ):
        before = informer_counts(provider)
        # 1. restart kube-apiserver while 160 claims are being created and allocated
        creates = [cluster.claim(ns, f"a{i}", "small" if i % 5 == 0 else "pool") for i in range(160)]
        restart_at = rng.uniform(0.3, 1.5)

        async def restart() -> float:
            await asyncio.sleep(restart_at)
            t0 = time.monotonic()
            await cluster.plane.restart_apiserver()
            return time.monotonic() - t0

        _, outage = await asyncio.gather(paced(creates, 0.015), restart())
        first = await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="after restart")
        after_restart = informer_counts(provider)
        # After a restart the apiserver usually answers the resumed watch with 410 (relist), but it may also
        # serve the old resourceVersion (a new watch): either way the informer reconnected by itself.
        reconnected = [
            n
            for n in ("claims", "addresses")
            if after_restart[n][0] > before[n][0] or after_restart[n][1] > before[n][1]
        ]
        print(
            f"apiserver restarted {restart_at:.2f} s into the creates (down {outage:.1f} s); informers "
            f"(lists, watches) before {before} after {after_restart}; {invariants.summary(first)}"
        )
        assert reconnected == ["claims", "addresses"], "the informers did not reconnect after the restart"

        # 2. kill etcd for 2 s while claims are created and deleted
        assert cluster.plane.etcd is not None
        more = [cluster.claim(ns, f"b{i}", "pool") for i in range(60)]
        deletes = [cluster.delete_claim(ns, f"a{i}") for i in range(0, 160, 7)]

        async def etcd_outage() -> None:
            await asyncio.sleep(0.3)
            assert cluster.plane.etcd is not None
            await cluster.plane.etcd.kill()
            await asyncio.sleep(2.0)
            await cluster.plane.etcd.start()

        await asyncio.gather(paced(more + deletes, 0.02), etcd_outage())
        final = await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="after etcd")
        monitor.assert_clean()
        assert provider.leading.is_set()
    print(
        f"apiserver: seed {seed}, 1 apiserver restart + 1 etcd SIGKILL (2 s down), {monitor.events} "
        f"IPAddress events, {time.monotonic() - started:.0f} s; {invariants.summary(final)}; violations: 0"
    )


async def test_proxy_latency_resets_and_cut_off(cluster: Cluster, tmp_path: Path) -> None:
    seed, rng = seeded("proxy")
    ns = await cluster.namespace("proxy")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.110.0.0/24"], prefix=24)
    await cluster.pool("InClusterPrefixPool", "v6", ns, prefixes=["fd00:110::/56"], allocationPrefixLength=64)
    port = int(cluster.plane.server.rsplit(":", 1)[1])
    started = time.monotonic()
    serial = 0

    def batch(count: int) -> list[Awaitable[None]]:
        nonlocal serial
        names = [f"p{serial + i}" for i in range(count)]
        serial += count
        return [cluster.claim(ns, n, "v6" if rng.random() < 0.3 else "pool") for n in names]

    async with FaultProxy(port, lifetime=180, seed=seed) as proxy:
        kubeconfig = write_kubeconfig(cluster.plane.kubeconfig_path, tmp_path / "via-proxy", proxy.url)
        async with (
            invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
            KubeClient.from_kubeconfig(kubeconfig, timeout=5.0) as via_proxy,
            in_process(via_proxy) as provider,
        ):
            phases: list[str] = []
            # latency on every chunk, both ways
            proxy.latency, proxy.jitter = 0.03, 0.07
            await paced(batch(50), 0.02)
            await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="latency")
            phases.append(f"latency 30-100 ms per chunk: {proxy.stats.delayed_chunks} chunks delayed")
            proxy.clear_faults()

            # reset every connection every 0.4 s while claims come and go
            resets_before = proxy.stats.resets

            async def resetter() -> None:
                for _ in range(8):
                    await asyncio.sleep(0.4)
                    proxy.reset_all()

            deletes = [cluster.delete_claim(ns, f"p{i}") for i in range(0, 50, 4)]
            await asyncio.gather(paced(batch(50) + deletes, 0.05), resetter())
            await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="resets")
            phases.append(f"8 rounds of reset-all: {proxy.stats.resets - resets_before} connections reset")

            # random resets mid-stream
            resets_before = proxy.stats.resets
            proxy.reset_rate = 0.03
            await paced(batch(40), 0.03)
            proxy.clear_faults()
            await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="random resets")
            phases.append(f"3% of chunks reset their connection: {proxy.stats.resets - resets_before} resets")

            # full cut-off for 3 s: every connection reset, new ones refused
            proxy.refuse = True
            proxy.reset_all()
            cut = batch(30)
            await paced(cut, 0.1)
            proxy.clear_faults()
            healed = time.monotonic()
            await invariants.settle(cluster.client, ns, within=60, monitor=monitor, label="cut-off")
            phases.append(
                f"3 s cut-off ({proxy.stats.refused} connections refused): settled "
                f"{time.monotonic() - healed:.1f} s after the link came back"
            )
            monitor.assert_clean()
            assert provider.leading.is_set()
            counts = informer_counts(provider)
    print("proxy: " + "; ".join(phases))
    print(
        f"proxy: seed {seed}, {serial} claims, {proxy.stats.connections} connections through the proxy, "
        f"informers (lists, watches) {counts}, {time.monotonic() - started:.0f} s; violations: 0"
    )

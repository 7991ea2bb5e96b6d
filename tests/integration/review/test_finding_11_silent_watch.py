"""Finding 11 of the December review, end to end: a connection that goes silent without being closed (a
half-open TCP flow) used to hold a watch for up to 10.5 minutes; the provider saw no new claim meanwhile,
and its readiness never changed.

The provider talks to kube-apiserver through the fault proxy. Its watch idle timeout is 6 s here (120 s by
default; see docs/reliability.md), its request timeout 5 s.
- Connections older than 5 s go silent: watches are cut by the idle timeout and resumed on new
  connections, so a claim created meanwhile is still bound.
- Every connection goes silent: `/readyz` turns 503 within twice the idle timeout, and back to 200 once the
  network heals.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import KubeClient, load_kubeconfig

from ..faults.helpers import Cluster, write_kubeconfig
from ..faults.proxy import FaultProxy
from ..support import eventually
from .harness import options, running, wait_bound

IDLE = 6.0


async def readyz(port: int) -> int:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


async def test_finding_11_a_silent_connection_is_noticed_and_readiness_tells(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = await cluster.namespace("f11")
    await cluster.pool("InClusterIPPool", "pool", ns, addresses=["10.111.0.1-10.111.0.20"], prefix=24)
    port = int(cluster.plane.server.rsplit(":", 1)[1])
    health = free_port()
    async with FaultProxy(port, lifetime=240) as proxy:
        kubeconfig = write_kubeconfig(cluster.plane.kubeconfig_path, tmp_path / "proxied", proxy.url)
        client = KubeClient(load_kubeconfig(kubeconfig), timeout=5.0)
        opts = options(watch_idle_timeout=IDLE, health_address=f"127.0.0.1:{health}")
        async with client, running(client, opts) as run:
            await eventually(lambda: _is(readyz(health), 200), 60, "/readyz 200")
            await cluster.claim(ns, "before", "pool")
            await wait_bound(cluster, ns, "before", within=30)

            proxy.blackhole_after = 5.0
            started = time.monotonic()
            await cluster.claim(ns, "during", "pool")
            await wait_bound(cluster, ns, "during", within=60)
            print(f"silent connections: a new claim bound after {time.monotonic() - started:.1f} s")

            proxy.blackhole_after = 0.0  # nothing gets through at all
            began = time.monotonic()
            await eventually(lambda: _is(readyz(health), 503), 4 * IDLE, "/readyz to turn 503")
            print(f"no connection works: /readyz 503 after {time.monotonic() - began:.1f} s")
            assert proxy.stats.swallowed_chunks > 0

            proxy.clear_faults()
            await eventually(lambda: _is(readyz(health), 200), 60, "/readyz 200 again")
            await cluster.claim(ns, "after", "pool")
            await wait_bound(cluster, ns, "after", within=30)
            assert await run.finish() == 0


async def _is(status: object, wanted: int) -> bool:
    return await status == wanted  # type: ignore[misc]

"""Churn soak, short form: 2,000 claim creates and deletes across three pools, invariants every 500.

The pools are a namespaced IPv4 pool small enough to run out (claims wait, then get released addresses at
once, §10.7), a global IPv4 pool and an IPv6 prefix pool. The operations mix plain creates, deletes of
random live claims, create-then-delete at once and delete-as-soon-as-bound (see `helpers.Churn`). The long
form is `bench/soak.py`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from . import invariants
from .helpers import ADDRESSES, Churn, Cluster, ProviderProcess, providers, rss_kib, seeded

OPERATIONS = 2000
CHECK_EVERY = 500


async def test_churn_keeps_every_invariant(cluster: Cluster, tmp_path: Path) -> None:
    seed, rng = seeded("churn")
    ns = await cluster.namespace("churn")
    shared = f"churn-global-{uuid.uuid4().hex[:6]}"
    await cluster.pool("InClusterIPPool", "small", ns, addresses=["10.70.0.1-10.70.0.48"], prefix=24)
    await cluster.pool("GlobalInClusterIPPool", shared, None, addresses=["10.71.0.0/24"], prefix=24)
    await cluster.pool("InClusterPrefixPool", "v6", ns, prefixes=["fd00:70::/56"], allocationPrefixLength=64)
    churn = Churn(
        cluster,
        ns,
        [("small", "InClusterIPPool"), (shared, "GlobalInClusterIPPool"), ("v6", "InClusterPrefixPool")],
        rng,
        target_live=150,
        concurrency=24,
    )
    provider = ProviderProcess("churn-provider", cluster.plane.kubeconfig_path, tmp_path)
    started = time.monotonic()
    rss: list[int] = []
    try:
        async with invariants.AddressMonitor(cluster.client, ADDRESSES) as monitor, providers(provider):
            while churn.stats.operations < OPERATIONS:
                await churn.run(CHECK_EVERY)
                verdict = await invariants.settle(
                    cluster.client, ns, within=60, monitor=monitor, label=f"churn seed {seed}"
                )
                provider.check_alive()
                assert provider.pid is not None
                rss.append(rss_kib(provider.pid))
                print(
                    f"after {churn.stats.operations} operations ({time.monotonic() - started:.0f} s): "
                    f"{invariants.summary(verdict)}; provider RSS {rss[-1] / 1024:.0f} MiB"
                )
            monitor.assert_clean()
    finally:
        await cluster.cleanup_global_pools()
    s = churn.stats
    print(
        f"churn: seed {seed}, {s.operations} operations ({s.creates} creates, {s.deletes} deletes; "
        f"{s.flash} deleted at once, {s.bound_then_deleted} deleted as soon as bound), "
        f"{len(rss)} checkpoints, {monitor.events} IPAddress events watched, "
        f"{time.monotonic() - started:.0f} s, RSS {rss[0] / 1024:.0f} -> {rss[-1] / 1024:.0f} MiB; "
        "violations: 0"
    )

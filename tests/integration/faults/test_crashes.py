"""Crashes: SIGKILL the provider at random moments while claims are being allocated and released.

One `incluster-ipam run` process (no leader election: a restart takes over at once) allocates from three
pools: a roomy IPv4 pool, a small one that runs out (claims must wait with PoolExhausted and be bound as
addresses are released), and an IPv6 prefix pool. Each round creates a wave of claims and deletes a few
older ones while a killer SIGKILLs the provider at a random moment (some rounds twice, the second time during
the restart's list-and-lead phase), restarts it, waits for the wave to be served, and checks every
invariant (`invariants.settle`). A watch replays the whole history looking for an address held twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path

from incluster_ipam.audit.findings import FindingKind

from . import invariants
from .helpers import ADDRESSES, Cluster, ProviderProcess, providers, seeded

ROUNDS = 10
WAVE = 40  # claims per round: 400 in all
PACE = 0.01  # seconds between two claim creates: a burst of 0.4 s, whose allocation the kill interrupts
DELETE_PER_ROUND = 6
SMALL_POOL = 40


async def test_sigkill_during_allocation_never_duplicates(cluster: Cluster, tmp_path: Path) -> None:
    seed, rng = seeded("crashes")
    ns = await cluster.namespace("crash")
    await cluster.pool("InClusterIPPool", "roomy", ns, addresses=["10.60.0.0/22"], prefix=22)
    await cluster.pool(
        "InClusterIPPool", "small", ns, addresses=[f"10.61.0.1-10.61.0.{SMALL_POOL}"], prefix=24
    )
    await cluster.pool("InClusterPrefixPool", "v6", ns, prefixes=["fd00:60::/56"], allocationPrefixLength=64)
    pools = [("roomy", "InClusterIPPool")] * 4 + [("small", "InClusterIPPool"), ("v6", "InClusterPrefixPool")]
    provider = ProviderProcess("crash-provider", cluster.plane.kubeconfig_path, tmp_path)
    live: list[str] = []
    kills = 0
    recoveries: list[float] = []
    in_flight: list[int] = []
    started = time.monotonic()

    async with (
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        providers(provider),
    ):
        for round_no in range(ROUNDS):
            names = [f"r{round_no}-c{i}" for i in range(WAVE)]
            chosen = [pools[rng.randrange(len(pools))] for _ in names]
            doomed = rng.sample(live, min(DELETE_PER_ROUND, len(live)))
            kill_after = rng.uniform(0.05, 0.8)
            twice = rng.random() < 0.3

            async def killer(kill_after: float = kill_after, twice: bool = twice) -> tuple[int, int]:
                await asyncio.sleep(kill_after)
                await provider.kill()
                claims = await cluster.claims(ns)  # frozen while the provider is dead
                unbound = sum(
                    1
                    for c in claims
                    if c["spec"]["poolRef"]["name"] != "small"
                    and not (c.get("status") or {}).get("addressRef")
                )
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                await provider.start()
                if not twice:
                    return 1, unbound
                await asyncio.sleep(rng.uniform(0.5, 2.0))  # again while it lists and takes over
                await provider.kill()
                await provider.start()
                return 2, unbound

            async def paced(call: Awaitable[None], delay: float) -> None:
                await asyncio.sleep(delay)
                await call

            kill_task = asyncio.create_task(killer())
            creates = [
                paced(cluster.claim(ns, n, pool, kind), i * PACE)
                for i, (n, (pool, kind)) in enumerate(zip(names, chosen, strict=True))
            ]
            deletes = [paced(cluster.delete_claim(ns, n), rng.uniform(0, PACE * WAVE)) for n in doomed]
            await asyncio.gather(*creates, *deletes)
            killed, unbound = await kill_task
            kills += killed
            in_flight.append(unbound)
            live = [n for n in live if n not in doomed] + names
            recovered_at = time.monotonic()
            verdict = await invariants.settle(
                cluster.client,
                ns,
                within=90,
                monitor=monitor,
                label=f"round {round_no}, seed {seed}",
            )
            recoveries.append(time.monotonic() - recovered_at)
            provider.check_alive()
            print(
                f"round {round_no}: SIGKILL x{killed} at {kill_after:.2f} s with {unbound} claims unbound; "
                f"settled in {recoveries[-1]:.1f} s; {invariants.summary(verdict)}"
            )

        final = await invariants.settle(
            cluster.client, ns, within=90, monitor=monitor, label=f"end, seed {seed}"
        )
        monitor.assert_clean()

    claims = [c for c in final.snapshot.claims if c["metadata"]["namespace"] == ns]
    exhausted = [c for c in claims if not (c.get("status") or {}).get("addressRef")]
    # everything unbound must be waiting on the small pool, with a condition that says so
    assert all(c["spec"]["poolRef"]["name"] == "small" for c in exhausted), exhausted[:3]
    for claim in exhausted:
        ready = next(x for x in claim["status"]["conditions"] if x["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "PoolExhausted")
    assert kills >= ROUNDS
    assert sum(1 for n in in_flight if n > 0) >= ROUNDS // 3, f"too few kills hit in-flight work: {in_flight}"
    assert not final.report.of_kind(FindingKind.DUPLICATE)
    print(
        f"crashes: seed {seed}, {kills} SIGKILLs ({sum(in_flight)} claims of the roomy pools unbound at "
        f"the kills), {len(live)} live claims ({len(exhausted)} waiting on the exhausted pool), "
        f"{monitor.events} IPAddress events watched, settle after restart: max {max(recoveries):.1f} s, "
        f"total {time.monotonic() - started:.0f} s; violations: 0"
    )

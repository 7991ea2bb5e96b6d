"""Same-name churn under a lagging IPAddress watch (the December review's scenario 3, for finding 3).

Claims are drawn from 15 names: deleted and re-created under the same name at once, created under a unique
name, deleted at random; 24 in flight, across pools of 20 and 40 addresses. The provider's IPAddress watch
lags, so events of one incarnation of a name arrive while the next already exists:

- in-process, its client delivers each IPAddress event 100-600 ms late, and breaks the watch every 3 s so
  the informer resumes from an old resourceVersion and replays history (1,500 operations);
- through the fault proxy, with 150 ms added to every chunk and every connection reset every 4 s (600
  operations).

(The review proposed a break every 20 s for a longer run; these runs take 10 to 30 s, so they break more
often.)

No address may ever be held twice (the watch sees every moment), and the invariants must settle.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from incluster_ipam.kube import KubeClient, TransportError
from incluster_ipam.kube.watch import WatchEvent

from ..review.doctored import DoctoredClient
from . import invariants
from .helpers import ADDRESSES, Cluster, in_process, seeded, write_kubeconfig
from .proxy import FaultProxy

NAMES = [f"n{i}" for i in range(15)]
CONCURRENCY = 24


@dataclass
class NameReuse:
    cluster: Cluster
    namespace: str
    pools: list[str]
    rng: random.Random
    live: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    serial: int = 0
    operations: int = 0
    recreated: int = 0

    def _pool(self) -> str:
        return self.pools[self.rng.randrange(len(self.pools))]

    async def _delete(self, name: str) -> None:
        await self.cluster.delete_claim(self.namespace, name)
        self.live.discard(name)
        self.operations += 1

    async def _create(self, name: str) -> None:
        await self.cluster.claim(self.namespace, name, self._pool())
        self.live.add(name)
        self.operations += 1

    async def _gone(self, name: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            claims = await self.cluster.claims(self.namespace)
            if all(c["metadata"]["name"] != name for c in claims):
                return
            await asyncio.sleep(0.05)

    async def one(self) -> None:
        roll = self.rng.random()
        free = [n for n in NAMES if n not in self.busy]
        if roll < 0.5 and free:
            name = self.rng.choice(free)
            self.busy.add(name)
            try:
                if name in self.live:
                    await self._delete(name)
                    await self._gone(name)
                    self.recreated += 1
                await self._create(name)
            finally:
                self.busy.discard(name)
        elif roll < 0.65:
            self.serial += 1
            await self._create(f"u{self.serial}")
        else:
            victims = [n for n in self.live if n not in self.busy]
            if victims:
                name = self.rng.choice(victims)
                self.busy.add(name)
                try:
                    await self._delete(name)
                finally:
                    self.busy.discard(name)

    async def run(self, operations: int) -> None:
        goal = self.operations + operations

        async def worker() -> None:
            while self.operations < goal:
                await self.one()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


class LaggingWatch:
    """Delivers each IPAddress event 100-600 ms late (in order) and breaks the watch every `break_every`."""

    def __init__(self, rng: random.Random, break_every: float = 3.0) -> None:
        self.rng = rng
        self.break_every = break_every
        self.breaks = 0
        self._next_break = time.monotonic() + break_every

    async def wrap(self, events: AsyncIterator[WatchEvent]) -> AsyncIterator[WatchEvent]:
        queue: asyncio.Queue[tuple[float, WatchEvent] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for event in events:
                    await queue.put((time.monotonic() + self.rng.uniform(0.1, 0.6), event))
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                if time.monotonic() > self._next_break:
                    self._next_break = time.monotonic() + self.break_every
                    self.breaks += 1
                    raise TransportError("watch broken by the test")
                item = await queue.get()
                if item is None:
                    return
                due, event = item
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                yield event
        finally:
            reader.cancel()


async def churn_under(
    cluster: Cluster, client: KubeClient, label: str, operations: int, rng: random.Random
) -> None:
    ns = await cluster.namespace("reuse")
    await cluster.pool("InClusterIPPool", "twenty", ns, addresses=["10.120.0.1-10.120.0.20"], prefix=24)
    await cluster.pool("InClusterIPPool", "forty", ns, addresses=["10.121.0.1-10.121.0.40"], prefix=24)
    churn = NameReuse(cluster, ns, ["twenty", "forty"], rng)
    started = time.monotonic()
    async with (
        invariants.AddressMonitor(cluster.client, ADDRESSES, ns) as monitor,
        in_process(client, status_interval=0.05),
    ):
        await churn.run(operations)
        verdict = await invariants.settle(cluster.client, ns, within=90, monitor=monitor, label=label)
        monitor.assert_clean()
    claims = await cluster.claims(ns)
    print(
        f"{label}: {churn.operations} operations ({churn.recreated} same-name re-creations) in "
        f"{time.monotonic() - started:.0f} s; {invariants.summary(verdict)}; {len(claims)} claims left"
    )


@pytest.mark.timeout(600)
async def test_name_reuse_under_a_lagging_watch(cluster: Cluster) -> None:
    seed, rng = seeded("name-reuse-lagging")
    client = DoctoredClient(cluster.plane.kubeconfig_path)
    lag = LaggingWatch(rng)
    client.watch_wrappers["ipaddresses"] = lag.wrap
    async with client:
        await churn_under(cluster, client, f"lagging watch, seed {seed}", 1500, rng)
    assert lag.breaks >= 1


@pytest.mark.timeout(600)
async def test_name_reuse_through_a_slow_resetting_proxy(cluster: Cluster, tmp_path: Path) -> None:
    seed, rng = seeded("name-reuse-proxy")
    port = int(cluster.plane.server.rsplit(":", 1)[1])
    async with FaultProxy(port, lifetime=560, seed=seed) as proxy:
        kubeconfig = write_kubeconfig(cluster.plane.kubeconfig_path, tmp_path / "proxied", proxy.url)
        proxy.latency = 0.15

        async def resets() -> None:
            while True:
                await asyncio.sleep(4)
                proxy.reset_all()

        resetting = asyncio.create_task(resets())
        try:
            async with KubeClient.from_kubeconfig(kubeconfig) as client:
                await churn_under(cluster, client, f"proxy, seed {seed}", 600, rng)
        finally:
            resetting.cancel()
        assert proxy.stats.resets >= 1

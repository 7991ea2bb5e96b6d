"""Finding 5 of the December review: admitting a pool validated it twice and rebuilt the allocatable set of
every other reachable pool, synchronously on the event loop that also renews the lease; a tenant with pool
rights could stall the leader for seconds per request. Now there is a documented limit of entries per list
with a clear message, validation and overlap run off the event loop, and each reachable pool's address space
is computed once per version of it."""

from __future__ import annotations

import asyncio
import itertools
import time

from incluster_ipam.api.constants import GLOBAL_IN_CLUSTER_IP_POOL, IN_CLUSTER_IP_POOL
from incluster_ipam.api.models import IPPoolSpec, Pool
from incluster_ipam.webhooks.admission import ROUTES, PoolAdmission, parse_review
from tests.unit.webhooks.fakes import FakeCluster, pool_object, review

VALIDATE_IP = next(r for r in ROUTES if r.kind is IN_CLUSTER_IP_POOL and not r.mutating)
VALIDATE_GLOBAL = next(r for r in ROUTES if r.kind is GLOBAL_IN_CLUSTER_IP_POOL and not r.mutating)


def singles(second: int, count: int) -> list[str]:
    return [f"10.{second}.{i // 256}.{i % 256}" for i in range(count)]


async def test_finding_05_a_pool_over_the_entry_limit_is_refused_with_the_field_and_the_limit() -> None:
    admission = PoolAdmission(FakeCluster().addresses_of)
    entries = [f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(50_001)]
    obj = pool_object("InClusterIPPool", {"addresses": entries, "prefix": 8})
    verdict = await admission.review(VALIDATE_IP, parse_review(review("CREATE", obj)))
    assert not verdict.allowed
    assert verdict.status is not None
    assert verdict.status.code == 422
    assert "spec.addresses: Too many: 50001: must have at most 50000 items" in verdict.status.message


async def test_finding_05_admitting_a_pool_among_big_ones_does_not_stall_the_event_loop() -> None:
    cluster = FakeCluster()
    cluster.pools = [
        Pool(IN_CLUSTER_IP_POOL, f"big-{i}", "t", IPPoolSpec(addresses=tuple(singles(i, 20_000)), prefix=8))
        for i in range(6)
    ]
    admission = PoolAdmission(cluster.addresses_of, cluster.pools_from)
    obj = pool_object("GlobalInClusterIPPool", {"addresses": singles(200, 20_000), "prefix": 8}, name="g")
    request = parse_review(review("CREATE", obj))
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    verdict = await admission.review(VALIDATE_GLOBAL, request)
    took = time.perf_counter() - started
    await asyncio.sleep(0.05)  # the tick that spans the review, if it blocked the loop
    ticking.cancel()
    stall = max(later - earlier for earlier, later in itertools.pairwise(ticks))
    assert verdict.allowed
    assert len(verdict.warnings) == 0
    # Validating seven 20k-entry pools takes seconds of CPU; the loop must keep turning meanwhile.
    assert stall < max(0.5, took / 4), f"loop stalled {stall:.2f} s during a {took:.2f} s review"

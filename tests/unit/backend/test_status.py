"""The pool status writer: counts and conditions go out in one patch, only when something changed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from incluster_ipam.api.constants import GROUP
from incluster_ipam.backend import InClusterPools, PoolStatusWriter
from incluster_ipam.backend.status import PoolMetrics
from incluster_ipam.capi.contract import PoolRef
from incluster_ipam.capi.objects import BY_POOL, index_by_pool_of_address, pool_key_of
from incluster_ipam.claimcore import Exhausted
from incluster_ipam.runtime.store import Store


class Cache:
    """The informer reads the backend makes, over a real `Store`."""

    def __init__(self, indexers: dict[str, Any] | None = None) -> None:
        self.store = Store(indexers)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.store.get(key)

    def get_object(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.store.get(f"{namespace}/{name}" if namespace else name)

    def keys(self) -> list[str]:
        return self.store.keys()

    def each_in_index(self, index: str, value: str) -> Any:
        return self.store.each_in_index(index, value)

    def index_keys(self, index: str, value: str) -> set[str]:
        return self.store.index_keys(index, value)

    def __contains__(self, key: object) -> bool:
        return key in self.store


class Api:
    """Records status patches and applies them to the cached pool, as the watch would echo them."""

    def __init__(self, pools: Cache) -> None:
        self.pools = pools
        self.patches: list[dict[str, Any]] = []

    async def patch(self, resource: Any, name: str, patch: dict[str, Any], namespace: str | None, **kw: Any):
        key = f"{namespace}/{name}" if namespace else name
        obj = self.pools.get(key)
        assert obj is not None
        if kw.get("subresource") == "status":
            self.patches.append({**patch, "name": name})
            obj["status"] = {**(obj.get("status") or {}), **patch["status"]}
        else:
            obj["metadata"]["finalizers"] = patch["metadata"]["finalizers"]
        self.pools.store.upsert(key, obj)
        return obj


def pool(name: str, generation: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "InClusterIPPool",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation},
        "spec": spec,
    }


class World:
    def __init__(self) -> None:
        self.cache = Cache()
        self.woken: list[str] = []
        self.addresses = Cache({BY_POOL: index_by_pool_of_address})
        self.pools = InClusterPools(
            addresses=self.addresses,  # type: ignore[arg-type]
            pools={"InClusterIPPool": self.cache},  # type: ignore[dict-item]
            wake=self.woken.append,
            claims_of=lambda _key: {"ns/waiting"},
        )
        self.pools.live = self.pools.leading = True
        self.api = Api(self.cache)
        self.writer = PoolStatusWriter(self.api, self.pools, PoolMetrics(CollectorRegistry()))  # type: ignore[arg-type]

    async def put(self, obj: dict[str, Any]) -> str:
        key = pool_key_of(obj)
        assert key is not None
        old = self.cache.get(f"ns/{obj['metadata']['name']}")
        if old is not None:
            obj = {**obj, "status": old.get("status"), "metadata": {**old["metadata"], **obj["metadata"]}}
        self.cache.store.upsert(f"ns/{obj['metadata']['name']}", obj)
        await self.pools.on_pool("ADDED" if old is None else "MODIFIED", old, obj)
        return key

    def status(self, name: str) -> dict[str, Any]:
        obj = self.cache.get(f"ns/{name}")
        assert obj is not None
        return dict(obj.get("status") or {})

    def conditions(self, name: str) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in self.status(name).get("conditions", [])}

    def ref(self, key: str) -> PoolRef:
        ref = self.pools.pool(key)
        assert ref is not None
        return ref


@pytest.fixture
def world() -> World:
    return World()


async def test_counts_and_conditions_go_out_in_one_patch_and_a_second_flush_writes_nothing(
    world: World,
) -> None:
    key = await world.put(pool("p", 1, addresses=["10.0.0.1-10.0.0.2"], prefix=24))
    await world.writer.flush(key)
    status_patches = world.api.patches
    assert len(status_patches) == 1
    assert status_patches[0]["status"]["ipAddresses"] == {"total": 2, "free": 2, "used": 0, "outOfRange": 0}
    ready = world.conditions("p")["Ready"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "SpecInUse", 1)
    await world.writer.flush(key)
    await world.writer.flush(key)
    assert len(world.api.patches) == 1


async def test_a_burst_of_reservations_costs_one_write_and_exhaustion_flips_available(world: World) -> None:
    key = await world.put(pool("p", 1, addresses=["10.0.0.1-10.0.0.3"], prefix=24))
    await world.writer.flush(key)
    before = world.conditions("p")["Available"]
    for claim in ("ns/a", "ns/b", "ns/c"):
        await world.pools.reserve(claim, world.ref(key))
    with pytest.raises(Exhausted):
        await world.pools.reserve("ns/d", world.ref(key))
    await world.writer.flush(key)
    assert len(world.api.patches) == 2
    available = world.conditions("p")["Available"]
    assert (available["status"], available["reason"]) == ("False", "PoolExhausted")
    assert world.status("p")["ipAddresses"]["free"] == 0
    assert world.conditions("p")["Ready"]["lastTransitionTime"] == before["lastTransitionTime"]
    await world.pools.abandon("ns/a")
    await world.writer.flush(key)
    assert world.conditions("p")["Available"]["status"] == "True"
    assert len(world.api.patches) == 3


async def test_an_unusable_pool_gets_ready_false_with_the_field_and_no_counts(world: World) -> None:
    key = await world.put(pool("bad", 1, addresses=["10.0.0.300"], prefix=24))
    await world.writer.flush(key)
    assert "ipAddresses" not in world.status("bad")
    ready = world.conditions("bad")["Ready"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidSpec", 1)
    assert ready["message"].startswith('spec.addresses: Invalid value: "10.0.0.300"')
    assert world.conditions("bad")["Available"]["reason"] == "PoolNotReady"
    with pytest.raises(Exception, match="not a valid IP"):
        world.pools.state(key)  # a claim's look-up judges it the same way: nothing new to write
    await world.writer.flush(key)
    assert len(world.api.patches) == 1
    # Fixed: Ready flips, with the new generation.
    await world.put(pool("bad", 2, addresses=["10.0.0.3"], prefix=24))
    await world.writer.flush(key)
    ready = world.conditions("bad")["Ready"]
    assert (ready["status"], ready["observedGeneration"]) == ("True", 2)
    assert world.status("bad")["ipAddresses"]["total"] == 1


async def test_an_unusable_update_keeps_the_old_spec_counting_and_says_so(world: World) -> None:
    key = await world.put(pool("p", 1, addresses=["10.0.0.1"], prefix=24))
    await world.writer.flush(key)
    await world.put(pool("p", 2, addresses=["10.0.0.1", "fd00::1"], prefix=24))
    await world.writer.flush(key)
    ready = world.conditions("p")["Ready"]
    assert (ready["status"], ready["observedGeneration"]) == ("False", 2)
    assert "spec.addresses" in ready["message"]
    assert "mixed IP families" in ready["message"]
    assert "last valid spec" in ready["message"]
    assert world.conditions("p")["Available"]["status"] == "True"
    assert world.status("p")["ipAddresses"]["total"] == 1


async def test_a_verdict_of_an_older_generation_than_the_cache_is_not_recorded(world: World) -> None:
    key = await world.put(pool("p", 1, addresses=["10.0.0.1"], prefix=24))
    newer = pool("p", 2, addresses=["10.0.0.1-10.0.0.2"], prefix=24)
    world.cache.store.upsert("ns/p", newer)  # the cache moved on; its event is handled next
    await world.pools.apply(key, pool("p", 1, addresses=["10.0.0.300"], prefix=24), create=True)
    verdict = world.pools.verdict(key)
    assert verdict is not None
    assert (verdict.generation, verdict.problem) == (1, None)
    await world.pools.on_pool("MODIFIED", None, newer)
    verdict = world.pools.verdict(key)
    assert verdict is not None
    assert (verdict.generation, verdict.problem) == (2, None)


async def test_a_pool_is_marked_again_once_its_new_spec_is_judged(world: World) -> None:
    """The build runs off the loop and may outlast the writer's interval: the verdict marks the pool again,
    so the last write is of the judged spec."""
    seen: list[int | None] = []  # the generation judged when the pool was marked

    def mark(key: str) -> None:
        verdict = world.pools.verdict(key)
        seen.append(verdict.generation if verdict else None)

    world.pools.changed = mark
    await world.put(pool("p", 1, addresses=["10.0.0.1"], prefix=24))
    assert seen == [None, 1]  # the event, then the verdict
    seen.clear()
    await world.put(pool("p", 2, addresses=["10.0.0.1-10.0.0.2"], prefix=24))
    assert seen[0] == 1
    assert seen[-1] == 2


async def test_fixing_a_spec_wakes_the_claims_told_the_pool_is_not_ready(world: World) -> None:
    await world.put(pool("p", 1, addresses=["10.0.0.300"], prefix=24))
    world.woken.clear()
    await world.put(pool("p", 2, addresses=["10.0.0.1"], prefix=24))
    assert world.woken == ["ns/waiting"]
    world.woken.clear()
    await world.put(pool("p", 3, addresses=["10.0.0.1"], prefix=24, gateway="10.0.0.254"))
    assert world.woken == []  # usable before and after, no more room: nobody to wake


def _address(name: str, address: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": {"name": name, "namespace": "ns", "uid": uid},
        "spec": {
            "address": address,
            "prefix": 24,
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "p"},
        },
    }


async def test_a_create_the_watch_shows_before_its_answer_is_recounted_once_confirmed(world: World) -> None:
    """The watch often delivers our own IPAddress before the create's answer: for a moment the claim's
    reservation and the object both count as used. If the writer flushes in that moment, the confirmation
    must mark the pool again, or `used` stays one too high until something else changes in the pool (seen
    as a status mismatch that never settled in the crash test under load)."""
    key = await world.put(pool("p", 1, addresses=["10.0.0.1-10.0.0.3"], prefix=24))
    grant = await world.pools.reserve("ns/a", world.ref(key))
    created = _address("a", grant.address, "uid-a")
    world.addresses.store.upsert("ns/a", created)
    world.pools.on_address("ADDED", None, created)
    await world.writer.flush(key)  # between the watch event and the create's answer
    marked: list[str] = []
    world.pools.changed = marked.append
    await world.pools.confirm("ns/a", world.ref(key), created)
    assert marked == [key], "the pool's counts changed but it was not marked for a status write"
    await world.writer.flush(key)
    assert world.status("p")["ipAddresses"] == {"total": 3, "free": 2, "used": 1, "outOfRange": 0}


async def test_dropping_a_reservation_whose_address_stays_held_is_recounted(world: World) -> None:
    """A kept reservation (a create with an unknown outcome that landed after all) is dropped when the claim
    adopts the IPAddress: the address stays held by the object, but `used` loses the reservation."""
    key = await world.put(pool("p", 1, addresses=["10.0.0.1-10.0.0.3"], prefix=24))
    grant = await world.pools.reserve("ns/a", world.ref(key))
    landed = _address("a", grant.address, "uid-a")
    world.addresses.store.upsert("ns/a", landed)
    world.pools.on_address("ADDED", None, landed)
    await world.writer.flush(key)
    assert world.status("p")["ipAddresses"]["used"] == 2  # the reservation and the object, for now
    marked: list[str] = []
    world.pools.changed = marked.append
    await world.pools.abandon("ns/a")
    assert marked == [key]
    await world.writer.flush(key)
    assert world.status("p")["ipAddresses"] == {"total": 3, "free": 2, "used": 1, "outOfRange": 0}


async def test_a_stale_status_written_by_the_previous_leader_is_corrected(world: World) -> None:
    """A status patch the old leader sent just before its leadership ended can land after the new leader's
    last write. Its watch event differs from the cached pool only in status, like the echo of our own write;
    ignored, the stale count stayed for good (seen as `used 61` of 60 in the partition test under load)."""
    key = await world.put(pool("p", 1, addresses=["10.0.0.1-10.0.0.3"], prefix=24))
    await world.writer.flush(key)
    old = world.cache.get("ns/p")
    assert old is not None
    stale = {
        **old,
        "status": {**old["status"], "ipAddresses": {"total": 3, "free": 0, "used": 4, "outOfRange": 0}},
    }
    world.cache.store.upsert("ns/p", stale)
    marked: list[str] = []
    world.pools.changed = marked.append
    await world.pools.on_pool("MODIFIED", old, stale)
    assert marked == [key], "a status that is not ours was left in place"
    await world.writer.flush(key)
    assert world.status("p")["ipAddresses"] == {"total": 3, "free": 3, "used": 0, "outOfRange": 0}
    # Our own echo costs a recount, never a write.
    patches = len(world.api.patches)
    echo = world.cache.get("ns/p")
    await world.pools.on_pool("MODIFIED", stale, echo)
    await world.writer.flush(key)
    assert len(world.api.patches) == patches


async def _churn(world: World, pools: int, seconds: float, interval: float) -> dict[str, int]:
    """Reserve an address in each of `pools` busy pools every 10 ms for `seconds`, with the writer running
    at `interval`; then let it settle. Returns the status patches per pool."""
    world.writer = PoolStatusWriter(
        world.api, world.pools, PoolMetrics(CollectorRegistry()), interval=interval
    )  # type: ignore[arg-type]
    keys = [await world.put(pool(f"p{i}", 1, addresses=["10.0.0.0/16"], prefix=16)) for i in range(pools)]
    task = asyncio.create_task(world.writer.run())
    loop = asyncio.get_running_loop()
    end, n = loop.time() + seconds, 0
    while loop.time() < end:
        for key in keys:
            await world.pools.reserve(f"ns/c{n}", world.ref(key))
            n += 1
        await asyncio.sleep(0.01)
    await asyncio.sleep(pools * interval + 0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for i, key in enumerate(keys):
        state = world.pools.book.get(key)
        assert state is not None
        assert world.status(f"p{i}")["ipAddresses"] == state.counts().status(), (
            "a pool's status never settled"
        )
    written: dict[str, int] = {}
    for patch in world.api.patches:
        written[patch["name"]] = written.get(patch["name"], 0) + 1
    return written


async def test_ten_busy_pools_share_one_budget_of_status_writes_and_none_starves(world: World) -> None:
    """Each busy pool used to get a status write every interval: ten pools cost ten times the writes of one
    (3.45 against 3.16 writes per claim in the benchmark). The writes now share one budget of one per
    interval (after a burst of a few), oldest-dirty first, so no pool is starved and every one settles."""
    interval, seconds = 0.05, 1.0
    written = await _churn(world, 10, seconds, interval)
    assert sorted(written) == [f"p{i}" for i in range(10)], "a pool was starved of status writes"
    budget = seconds / interval + 4 + 10  # the rate over the churn, the burst, and the settling writes
    assert sum(written.values()) <= budget, f"{sum(written.values())} status writes for a budget of {budget}"
    assert min(written.values()) >= 2, written

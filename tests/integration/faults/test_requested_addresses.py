"""Requested addresses (the `ipAddress` annotation, Metal3's key, or our alias) through the real apiserver
and the real provider: exact addresses under concurrency with plain claims, never a duplicate; refusals and
taken addresses explained on the claim and in an Event; a queued claim gets its address before any plain
claim can; namespaced and global pools; a bound claim never moves."""

from __future__ import annotations

import asyncio
from typing import Any

from incluster_ipam.kube import NAMESPACES
from incluster_ipam.kube.resources import Resource

from . import invariants
from .helpers import ADDRESSES, CLAIMS, Cluster, bounded_gather, claim_body, eventually, in_process

EVENTS = Resource("", "v1", "events", "Event", True)
METAL3 = "ipAddress"
ALIAS = "ipam.cluster.x-k8s.io/requested-address"


async def ask(cluster: Cluster, ns: str, name: str, pool: str, address: str | None, **kw: Any) -> None:
    kind = kw.pop("kind", "InClusterIPPool")
    key = kw.pop("key", METAL3)
    annotations = {key: address} if address is not None else {}
    body = (
        claim_body(name, pool, kind, annotations=annotations) if annotations else claim_body(name, pool, kind)
    )
    await cluster.client.create(CLAIMS, body, ns)


async def address_of(cluster: Cluster, ns: str, name: str) -> str | None:
    claim = await cluster.client.get(CLAIMS, name, ns)
    if not ((claim.get("status") or {}).get("addressRef") or {}).get("name"):
        return None
    return str((await cluster.client.get(ADDRESSES, name, ns))["spec"]["address"])


async def ready(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    claim = await cluster.client.get(CLAIMS, name, ns)
    found = [c for c in (claim.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return found[0] if found else None


async def failed(cluster: Cluster, ns: str, name: str, words: str) -> str:
    async def probe() -> str | None:
        condition = await ready(cluster, ns, name)
        if condition and condition["reason"] == "AllocationFailed" and words in condition["message"]:
            return str(condition["message"])
        return None

    return await eventually(probe, 20, f"claim {name} to say AllocationFailed: ...{words}...")


async def test_requested_and_plain_claims_at_once_get_exact_addresses_and_no_duplicates(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("req")
    await cluster.pool(
        "InClusterIPPool", "pool", ns, addresses=["10.96.0.0/27"], prefix=27, gateway="10.96.0.1"
    )
    # Above what the 20 plain claims take (.2-.21): a plain claim that gets there first holds it, and the
    # requested claim would (rightly) wait for it.
    wanted = {"vip": "10.96.0.25", "cp": "10.96.0.28", "lb": "10.96.0.30"}
    async with in_process(cluster.client):
        creates = [ask(cluster, ns, name, "pool", address) for name, address in wanted.items()]
        creates += [ask(cluster, ns, f"m{i}", "pool", None) for i in range(20)]
        await bounded_gather(creates, limit=23)
        await cluster.wait_all_bound(ns, within=60)
        for name, address in wanted.items():
            assert await address_of(cluster, ns, name) == address
        verdict = await invariants.settle(cluster.client, ns, within=20, label="requested and plain")
        assert verdict.snapshot.addresses, "nothing was read"
    addresses = [a["spec"]["address"] for a in await cluster.addresses(ns)]
    assert len(addresses) == 23
    assert len(set(addresses)) == 23


async def test_refusals_and_a_taken_address_say_why_and_the_queued_claim_wins_the_address(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("req")
    await cluster.pool(
        "InClusterIPPool", "pool", ns, addresses=["10.97.0.0/29"], prefix=29, gateway="10.97.0.1"
    )
    async with in_process(cluster.client):
        await ask(cluster, ns, "holder", "pool", "10.97.0.4")
        await eventually(lambda: address_of(cluster, ns, "holder"), 20, "holder to be bound")
        refusals = {
            "gw": ("10.97.0.1", "is the pool's gateway"),
            "far": ("10.98.0.1", "is outside the pool's addresses"),
            "net": ("10.97.0.0", "is a reserved address of the subnet 10.97.0.0/29"),
            "junk": ("ten-dot-something", "is not an IP address"),
            "six": ("fd00::1", "is an IPv6 address"),
        }
        for name, (address, _) in refusals.items():
            await ask(cluster, ns, name, "pool", address)
        await ask(cluster, ns, "second", "pool", "10.97.0.4", key=ALIAS)
        for name, (address, why) in refusals.items():
            message = await failed(cluster, ns, name, why)
            assert message.startswith(f"requested address {address} (ipAddress annotation) ")
        taken = await failed(cluster, ns, "second", "is in use by holder in this namespace")
        assert taken.startswith(f"requested address 10.97.0.4 ({ALIAS} annotation)")

        async def warned() -> bool:
            events = (await cluster.client.list(EVENTS, ns)).items
            return any(
                e["involvedObject"]["name"] == "second" and e["reason"] == "AllocationFailed" for e in events
            )

        await eventually(warned, 20, "an AllocationFailed Event for claim second")

        # The pool has .2-.6 minus .4: fill it, then free .4 while plain claims wait for room.
        for i in range(4):
            await ask(cluster, ns, f"p{i}", "pool", None)
        await eventually(
            lambda: _all_bound(cluster, ns, [f"p{i}" for i in range(4)]), 20, "the plain claims to be bound"
        )
        await ask(cluster, ns, "late", "pool", None)  # waits: the pool is full
        await cluster.delete_claim(ns, "holder")
        assert (
            await eventually(lambda: address_of(cluster, ns, "second"), 20, "second to get .4") == "10.97.0.4"
        )
        await asyncio.sleep(1)
        assert await address_of(cluster, ns, "late") is None, "a plain claim took the queued address"

        # A bound claim keeps its address when the annotation changes, and says so.
        await cluster.client.patch(CLAIMS, "second", {"metadata": {"annotations": {ALIAS: "10.97.0.6"}}}, ns)

        async def noted() -> bool:
            condition = await ready(cluster, ns, "second")
            return bool(condition and condition["status"] == "True" and "is ignored" in condition["message"])

        await eventually(noted, 20, "the Ready condition to say the new request is ignored")
        assert await address_of(cluster, ns, "second") == "10.97.0.4"
        await invariants.settle(cluster.client, ns, within=20, label="refusals and queue")


async def test_a_global_pool_never_names_another_namespaces_holder_and_ipv6_is_canonical(
    cluster: Cluster,
) -> None:
    one, two = await cluster.namespace("req"), await cluster.namespace("req")
    await cluster.pool(
        "GlobalInClusterIPPool", "req-global-v6", None, addresses=["fd00:97::/120"], prefix=120
    )
    kind = "GlobalInClusterIPPool"
    try:
        async with in_process(cluster.client):
            await ask(cluster, one, "a", "req-global-v6", "FD00:0097:0000::00A0", kind=kind)
            assert (
                await eventually(lambda: address_of(cluster, one, "a"), 20, "a to be bound") == "fd00:97::a0"
            )
            await ask(cluster, two, "b", "req-global-v6", "fd00:97::a0", kind=kind)
            message = await failed(cluster, two, "b", "is in use in another namespace")
            assert one not in message
            assert "'a'" not in message
            assert " a " not in message
    finally:
        await cluster.cleanup_global_pools()
        for ns in (one, two):
            await cluster.client.delete(NAMESPACES, ns)


async def _all_bound(cluster: Cluster, ns: str, names: list[str]) -> bool:
    return all([await address_of(cluster, ns, name) for name in names])

"""Finding 9 of the December review: adoption and release trusted the IPAddress's name alone. A claim adopted
any IPAddress of its name and pool (a squatted duplicate, an address outside the pool, an admin's
reservation made for something else) and reported it Ready; deleting a claim deleted whatever IPAddress had
its name, another pool's included.

Now a claim adopts an IPAddress only when its claimRef names the claim, its address is in the pool and held
by nobody else, and its controller (if any) is a claim of that name; otherwise the claim says why
(Ready=False, AllocationFailed). A release deletes only an IPAddress of the claim's pool that the claim
controls (or that names it and has no controller)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from incluster_ipam.api.constants import GROUP

from ..faults import invariants
from ..faults.helpers import ADDRESSES, CLAIMS, Cluster, claim_body
from ..support import eventually
from .harness import options, ready_condition, running, wait_bound

POOL = "InClusterIPPool"


def planted(
    name: str,
    address: str,
    pool: str,
    *,
    claim: str | None = None,
    owners: list[dict[str, Any]] | None = None,
    prefix: int = 24,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if owners:
        metadata["ownerReferences"] = owners
    return {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddress",
        "metadata": metadata,
        "spec": {
            "address": address,
            "prefix": prefix,
            "claimRef": {"name": claim or name},
            "poolRef": {"apiGroup": GROUP, "kind": POOL, "name": pool},
        },
    }


async def refused(cluster: Cluster, ns: str, name: str, *words: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        condition = await ready_condition(cluster, ns, name)
        if condition and condition["status"] == "False" and condition.get("reason") == "AllocationFailed":
            return condition
        return None

    condition = await eventually(probe, 20, f"claim {name} to be refused with AllocationFailed")
    for word in words:
        assert word in condition["message"], condition["message"]
    claim = await cluster.client.get(CLAIMS, name, ns)
    assert not (claim.get("status") or {}).get("addressRef"), "a refused claim must not point at the address"
    return condition


async def exists(cluster: Cluster, ns: str, name: str) -> bool:
    return any(a["metadata"]["name"] == name for a in await cluster.addresses(ns))


async def test_finding_09_a_squatted_duplicate_is_not_adopted(cluster: Cluster) -> None:
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "p", ns, addresses=["10.90.0.10-10.90.0.20"], prefix=24)
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.claim(ns, "a", "p")
        assert await wait_bound(cluster, ns, "a") == "10.90.0.10"
        await cluster.client.create(ADDRESSES, planted("b", "10.90.0.10", "p"), ns)
        await cluster.claim(ns, "b", "p")
        await refused(cluster, ns, "b", "10.90.0.10")


async def test_finding_09_an_address_outside_the_pool_is_not_adopted(cluster: Cluster) -> None:
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "p", ns, addresses=["10.91.0.10-10.91.0.20"], prefix=24)
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.client.create(ADDRESSES, planted("z", "10.99.0.1", "p"), ns)
        await cluster.claim(ns, "z", "p")
        await refused(cluster, ns, "z", "10.99.0.1")


async def test_finding_09_a_reservation_for_something_else_is_neither_adopted_nor_deleted(
    cluster: Cluster,
) -> None:
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "p", ns, addresses=["10.92.0.10-10.92.0.20"], prefix=24)
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.client.create(ADDRESSES, planted("vip", "10.92.0.15", "p", claim="load-balancer"), ns)
        await cluster.claim(ns, "vip", "p")
        await refused(cluster, ns, "vip", "load-balancer")
        await cluster.delete_claim(ns, "vip")
        await eventually(lambda: _claim_gone(cluster, ns, "vip"), 20, "claim vip to go")
        assert await exists(cluster, ns, "vip"), "deleting the claim deleted the admin's reservation"


async def test_finding_09_deleting_a_claim_never_deletes_another_pools_ipaddress(cluster: Cluster) -> None:
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "p", ns, addresses=["10.93.0.10-10.93.0.20"], prefix=24)
    await cluster.pool(POOL, "q", ns, addresses=["10.94.0.10-10.94.0.20"], prefix=24)
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.client.create(ADDRESSES, planted("x", "10.94.0.10", "q"), ns)
        await cluster.claim(ns, "x", "p")
        await refused(cluster, ns, "x", "another pool")
        await cluster.delete_claim(ns, "x")
        await eventually(lambda: _claim_gone(cluster, ns, "x"), 20, "claim x to go")
        assert await exists(cluster, ns, "x"), "deleting claim x (pool p) deleted pool q's IPAddress x"


async def test_finding_09_a_restored_ipaddress_is_adopted_and_released(cluster: Cluster) -> None:
    """The legitimate case: restored from a backup, its controller is a claim of the same name whose UID is
    stale. It is adopted (the controller now names the live claim) and released with the claim."""
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "p", ns, addresses=["10.95.0.10-10.95.0.20"], prefix=24)
    stale = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "name": "m",
        "uid": str(uuid.uuid4()),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        await cluster.client.create(ADDRESSES, planted("m", "10.95.0.17", "p", owners=[stale]), ns)
        await cluster.claim(ns, "m", "p")
        assert await wait_bound(cluster, ns, "m") == "10.95.0.17"
        claim = await cluster.client.get(CLAIMS, "m", ns)
        address = await cluster.client.get(ADDRESSES, "m", ns)
        controllers = [o for o in address["metadata"]["ownerReferences"] if o.get("controller")]
        assert [o["uid"] for o in controllers] == [claim["metadata"]["uid"]]
        await cluster.delete_claim(ns, "m")
        await eventually(lambda: _address_gone(cluster, ns, "m"), 20, "IPAddress m to be released")
        await invariants.settle(cluster.client, ns)


async def _claim_gone(cluster: Cluster, ns: str, name: str) -> bool:
    return all(c["metadata"]["name"] != name for c in await cluster.claims(ns))


async def _address_gone(cluster: Cluster, ns: str, name: str) -> bool:
    return not await exists(cluster, ns, name)


async def test_finding_09_an_earlier_claims_address_in_another_pool_is_replaced(cluster: Cluster) -> None:
    """Found by the same-name churn (tests/integration/faults/test_name_reuse.py): a claim re-created under
    the same name for another pool, while an IPAddress made for the earlier claim of that name still
    exists, was refused forever ("belongs to another pool") and the IPAddress was left orphaned. An
    IPAddress controlled by another UID of the claim's name is ours and nobody's now: it is replaced."""
    ns = await cluster.namespace("f09")
    await cluster.pool(POOL, "twenty", ns, addresses=["10.96.0.1-10.96.0.20"], prefix=24)
    await cluster.pool(POOL, "forty", ns, addresses=["10.97.0.1-10.97.0.40"], prefix=24)
    earlier = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "name": "n3",
        "uid": str(uuid.uuid4()),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    left = planted("n3", "10.96.0.9", "twenty", owners=[earlier])
    left["metadata"]["finalizers"] = ["ipam.cluster.x-k8s.io/ProtectAddress"]
    async with running(cluster.client, options()) as run:
        await asyncio.wait_for(run.provider.leading.wait(), 60)
        # The new claim exists first (paused, so nothing happens yet), then the earlier claim's IPAddress
        # lands, as when a reconcile of the earlier claim was still creating it.
        paused = claim_body("n3", "forty", annotations={"cluster.x-k8s.io/paused": ""})
        await cluster.client.create(CLAIMS, paused, ns)
        await asyncio.sleep(1.0)
        await cluster.client.create(ADDRESSES, left, ns)
        await asyncio.sleep(1.0)
        await cluster.client.patch(CLAIMS, "n3", {"metadata": {"annotations": None}}, ns)
        assert await wait_bound(cluster, ns, "n3", within=30) == "10.97.0.1"
        await invariants.settle(cluster.client, ns)

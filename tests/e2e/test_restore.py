"""Backup and restore: pools, claims and IPAddresses dumped, deleted (finalizers stripped) and re-created
from the dump the way restore tools do it, with the garbage collector running and our provider (a process,
webhooks registered) working throughout.

Two dump styles:
- `velero`: Velero's defaults: status, uid, resourceVersion, creation time, owner references and
  finalizers dropped; every object labelled with the backup's and the restore's names.
- `kubectl`: a hand-made backup (`kubectl get -o yaml`, then `kubectl create`): status and uid dropped,
  owner references kept with the UIDs of the objects that are gone, finalizers kept.
And two orders after the pools: claims before IPAddresses (Velero's, alphabetical by resource) and
IPAddresses before claims. A create that finds the object there already is skipped, as the tools do.

Afterwards every claim has the address it had, every IPAddress is owned by the live claim (controller) and
pool, carries our finalizer and is not being deleted, the audit and the status recount are clean, and new
claims get addresses nobody holds.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER, SKIP_VALIDATE_DELETE_ANNOTATION
from incluster_ipam.kube import NAMESPACES, ApiError, Resource
from tests.integration.faults.helpers import ADDRESSES, CLAIMS, GLOBAL_IP_POOLS, IP_POOLS
from tests.integration.support import eventually

from .gcstack import Stack, gc_stack

VELERO_BACKUP_LABEL = "velero.io/backup-name"
VELERO_RESTORE_LABEL = "velero.io/restore-name"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with gc_stack(tmp_path_factory.mktemp("restore")) as running:
        yield running


def dumped(obj: dict[str, Any], style: str, resource: Resource) -> dict[str, Any]:
    """The object as the restore tool re-creates it."""
    meta = obj["metadata"]
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    if style == "velero":
        labels = {**(kept.get("labels") or {}), VELERO_BACKUP_LABEL: "nightly", VELERO_RESTORE_LABEL: "r1"}
        kept["labels"] = labels
    else:
        kept.update({k: meta[k] for k in ("ownerReferences", "finalizers") if k in meta})
    return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": kept, "spec": obj["spec"]}


async def restore(stack: Stack, resource: Resource, bodies: list[dict[str, Any]]) -> tuple[int, int]:
    """Create one by one; (created, skipped because it exists)."""
    created = skipped = 0
    for body in bodies:
        try:
            await stack.client.create(resource, body, body["metadata"].get("namespace"))
            created += 1
        except ApiError as exc:
            if exc.status != 409:
                raise
            skipped += 1
    return created, skipped


async def bound(stack: Stack, namespace: str) -> dict[str, str]:
    listed = await stack.cluster.addresses(namespace)
    addresses = {a["metadata"]["name"]: a["spec"]["address"] for a in listed}
    out = {}
    for claim in await stack.cluster.claims(namespace):
        ref = ((claim.get("status") or {}).get("addressRef") or {}).get("name")
        if ref in addresses:
            out[claim["metadata"]["name"]] = addresses[ref]
    return out


async def delete_all(stack: Stack, namespace: str, shared: str) -> None:
    """Everything of the namespace and the global pool, finalizers stripped first (a lost cluster)."""
    strip = {"metadata": {"finalizers": None}}
    for resource in (CLAIMS, ADDRESSES):
        for obj in (await stack.client.list(resource, namespace)).items:
            name = obj["metadata"]["name"]
            try:  # the provider may delete an IPAddress whose claim went first
                await stack.client.patch(resource, name, strip, namespace)
                await stack.client.delete(resource, name, namespace)
            except ApiError as exc:
                if exc.status != 404:
                    raise
    for resource, name, where in ((IP_POOLS, "workers", namespace), (GLOBAL_IP_POOLS, shared, None)):
        await stack.client.patch(resource, name, strip, where)

        async def deleted(resource: Resource = resource, name: str = name, where: str | None = where) -> bool:
            try:
                await stack.client.delete(resource, name, where)
            except ApiError as exc:
                if exc.status == 404:
                    return True
                if exc.status != 400:  # 400: the protection, while the provider's book still counts them
                    raise
                return False
            return True

        await eventually(deleted, 30.0, f"{resource.kind} {name} to be deletable")
        await stack.gone(resource, name, where, within=30.0)

    async def empty() -> bool:
        return not await stack.cluster.claims(namespace) and not await stack.cluster.addresses(namespace)

    await eventually(empty, 30.0, "every claim and IPAddress to be gone")


VARIANTS = [
    ("velero", "claims-first"),
    ("velero", "addresses-first"),
    ("kubectl", "addresses-first"),
    # the provider down while the collector deletes the IPAddresses with stale owners, up again after
    ("kubectl", "addresses-first-collected"),
]


@pytest.fixture
async def where(stack: Stack) -> AsyncIterator[tuple[str, str]]:
    """A namespace and a global pool name; both removed afterwards, also after a failure."""
    ns = await stack.cluster.namespace("restore")
    shared = f"restore-shared-{uuid.uuid4().hex[:6]}"
    yield ns, shared
    with contextlib.suppress(ApiError):
        await stack.client.delete(NAMESPACES, ns)
    with contextlib.suppress(ApiError):
        skip = {SKIP_VALIDATE_DELETE_ANNOTATION: "cleanup"}
        await stack.client.patch(GLOBAL_IP_POOLS, shared, {"metadata": {"annotations": skip}})
        await stack.client.delete(GLOBAL_IP_POOLS, shared)


@pytest.mark.parametrize(("style", "order"), VARIANTS)
async def test_restore_keeps_every_address_and_repairs_ownership(
    stack: Stack, where: tuple[str, str], style: str, order: str
) -> None:
    ns, shared = where
    net = VARIANTS.index((style, order))  # each variant its own global range: they share the cluster
    pool = stack.cluster.pool
    await pool("InClusterIPPool", "workers", ns, addresses=["10.66.0.10-10.66.0.40"], prefix=24)
    await pool("GlobalInClusterIPPool", shared, None, addresses=[f"10.67.{net}.10-10.67.{net}.40"], prefix=24)
    for i in range(12):
        await stack.cluster.claim(ns, f"c{i:02}", "workers")
    await stack.cluster.wait_all_bound(ns)
    # Holes, filled by later claims: the restored addresses are not simply the lowest ones in name order.
    for name in ("c03", "c07"):
        await stack.cluster.delete_claim(ns, name)
    await eventually(lambda: _count(stack, ns, 10), 30.0, "two claims to be released")
    for name in ("z1", "z2", "z3"):
        await stack.cluster.claim(ns, name, "workers")
    for i in range(3):
        await stack.cluster.claim(ns, f"g{i}", shared, "GlobalInClusterIPPool")
    await stack.cluster.wait_all_bound(ns)
    before = await bound(stack, ns)
    assert len(before) == 16
    await stack.settle(ns, f"{style}/{order}: before the backup")

    pools = [
        dumped(await stack.client.get(GLOBAL_IP_POOLS, shared), style, GLOBAL_IP_POOLS),
        dumped(await stack.client.get(IP_POOLS, "workers", ns), style, IP_POOLS),
    ]
    claims = [dumped(o, style, CLAIMS) for o in await stack.cluster.claims(ns)]
    addresses = [dumped(o, style, ADDRESSES) for o in await stack.cluster.addresses(ns)]

    await delete_all(stack, ns, shared)

    started = time.monotonic()
    await restore(stack, GLOBAL_IP_POOLS, pools[:1])
    await restore(stack, IP_POOLS, pools[1:])
    steps = [(CLAIMS, claims), (ADDRESSES, addresses)]
    skipped = collected = 0
    if order == "addresses-first-collected":
        await stack.provider.stop()
        try:
            skipped += (await restore(stack, ADDRESSES, addresses))[1]

            async def all_collected() -> int:
                listed = await stack.cluster.addresses(ns)
                marked = sum(1 for a in listed if a["metadata"].get("deletionTimestamp"))
                return marked if marked == len(addresses) else 0

            collected = await eventually(all_collected, 30.0, "the collector to delete the IPAddresses")
            skipped += (await restore(stack, CLAIMS, claims))[1]
        finally:
            await stack.provider.start()
    else:
        for resource, bodies in steps if order == "claims-first" else reversed(steps):
            skipped += (await restore(stack, resource, bodies))[1]
    restored = time.monotonic() - started
    await stack.cluster.wait_all_bound(ns)
    verdict = await stack.settle(ns, f"{style}/{order}: after the restore")
    repaired = time.monotonic() - started

    after = await bound(stack, ns)
    changed = {name: (before[name], after.get(name)) for name in before if after.get(name) != before[name]}
    assert not changed, f"addresses changed by the restore (before, after): {changed}"
    live_claims = {o["metadata"]["name"]: o["metadata"]["uid"] for o in await stack.cluster.claims(ns)}
    pool_uids = {
        "InClusterIPPool": (await stack.client.get(IP_POOLS, "workers", ns))["metadata"]["uid"],
        "GlobalInClusterIPPool": (await stack.client.get(GLOBAL_IP_POOLS, shared))["metadata"]["uid"],
    }
    for address in await stack.cluster.addresses(ns):
        meta = address["metadata"]
        assert not meta.get("deletionTimestamp"), f"IPAddress {meta['name']} is being deleted"
        assert ADDRESS_FINALIZER in (meta.get("finalizers") or []), meta
        owners = {(o["kind"], o["uid"], bool(o.get("controller"))) for o in meta.get("ownerReferences") or []}
        pool_kind = address["spec"]["poolRef"]["kind"]
        assert owners == {
            ("IPAddressClaim", live_claims[meta["name"]], True),
            (pool_kind, pool_uids[pool_kind], False),
        }, meta
    for claim in await stack.cluster.claims(ns):
        ready = [c for c in claim["status"].get("conditions") or [] if c["type"] == "Ready"]
        assert [c["status"] for c in ready] == ["True"], claim["status"]

    # New claims get addresses nobody holds.
    for i in range(4):
        await stack.cluster.claim(ns, f"new{i}", "workers")
    await stack.cluster.wait_all_bound(ns)
    final = await bound(stack, ns)
    fresh = [final[f"new{i}"] for i in range(4)]
    assert len(set(fresh)) == 4, fresh
    assert not set(fresh) & set(before.values()), fresh
    await stack.settle(ns, f"{style}/{order}: after new claims")
    print(
        f"{style}/{order}: {len(pools)} pools, {len(claims)} claims, {len(addresses)} IPAddresses restored "
        f"in {restored:.1f} s ({skipped} skipped as existing, {collected} marked for deletion by the "
        f"collector), repaired and audited clean after "
        f"{repaired:.1f} s; {len(verdict.snapshot.addresses)} IPAddresses in the final snapshot",
        flush=True,
    )


async def _count(stack: Stack, namespace: str, n: int) -> bool:
    return (
        len(await stack.cluster.addresses(namespace)) == n and len(await stack.cluster.claims(namespace)) == n
    )

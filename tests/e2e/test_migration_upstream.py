"""Migration from upstream's provider (v1.1.0, built by hack/upstream/build.sh) to ours, and back.

One control plane with Cluster API's CRDs and upstream's pool CRDs. Upstream allocates from a namespaced and
a global pool; it is stopped and ours starts with its webhooks registered as shipped (the pool CRDs replaced
by ours, conversion and admission served by the process). We must take over without rewriting any
IPAddress (resourceVersion and spec compared), hand out the lowest free addresses, and release upstream's
claims. Then the way back: ours stops, its webhooks are removed, upstream's CRDs are applied again and
upstream starts: it must count our IPAddresses (its new claims get addresses nobody holds) and release them.

The v1alpha1 era: pools stored as v1alpha1 (upstream's CRDs with v1alpha1 as the storage version, as its
early releases shipped them), with claims bound and IPAddresses as the old provider left them; ours starts
with its conversion webhook and serves them, again without rewriting an IPAddress.

Each phase ends with the invariant checks (audit with grace 0 plus a recount of every pool's status) and
`incluster-ipam audit` run as an operator runs it; the figures are printed.
"""

from __future__ import annotations

import copy
import ipaddress
import time
from pathlib import Path
from typing import Any

import pytest

from incluster_ipam.api.constants import ADDRESS_FINALIZER, CLAIM_FINALIZER, GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.api.models import decode_pool
from incluster_ipam.api.specs import ip_core_spec
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.ipam import pool as ip_core
from incluster_ipam.ipam.addresses import IPSet, parse_address
from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from ..integration.faults import invariants
from ..integration.faults.helpers import ADDRESSES, CLAIMS, GLOBAL_IP_POOLS, IP_POOLS, Cluster
from ..integration.review.harness import wait_bound
from ..integration.support import eventually
from .providers import BUILD_TIMEOUT, OurProcess, UpstreamProcess, apply_crds, audit_cli, upstream_build

POOL_RESOURCES = {"InClusterIPPool": IP_POOLS, "GlobalInClusterIPPool": GLOBAL_IP_POOLS}
V1ALPHA1 = {
    "InClusterIPPool": Resource(GROUP, "v1alpha1", "inclusterippools", "InClusterIPPool", True),
    "GlobalInClusterIPPool": Resource(
        GROUP, "v1alpha1", "globalinclusterippools", "GlobalInClusterIPPool", False
    ),
}
N = 6  # claims per pool that upstream allocates


def snapshot(addresses: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (resourceVersion, spec) of every IPAddress: what "not rewritten" compares."""
    return {a["metadata"]["name"]: (a["metadata"]["resourceVersion"], a["spec"]) for a in addresses}


def rewritten(
    before: dict[str, tuple[str, dict[str, Any]]], after: dict[str, tuple[str, dict[str, Any]]]
) -> list[str]:
    return sorted(name for name, seen in before.items() if name in after and after[name] != seen)


async def lowest_free(cluster: Cluster, kind: str, name: str, namespace: str | None) -> str:
    """The address the allocation rule must hand out next: the lowest allocatable one nobody holds (every
    namespace's IPAddresses count for a global pool)."""
    pool = await cluster.client.get(POOL_RESOURCES[kind], name, namespace)
    allocatable = ip_core.allocatable_set(ip_core_spec(decode_pool(pool).spec))
    held = [
        parse_address(a["spec"]["address"])
        for a in (await cluster.client.list(ADDRESSES, namespace)).items
        if a["spec"]["poolRef"]["kind"] == kind and a["spec"]["poolRef"]["name"] == name
    ]
    lowest = allocatable.difference(IPSet.from_addresses(allocatable.version, held)).lowest()
    assert lowest is not None, f"pool {name} is full"
    return str(ipaddress.ip_address(lowest))


async def claim_packed(cluster: Cluster, ns: str, claim: str, kind: str, pool: str) -> str:
    """Create one claim and check it gets the lowest free address of its pool."""
    expected = await lowest_free(cluster, kind, pool, ns if kind == "InClusterIPPool" else None)
    await cluster.claim(ns, claim, pool, kind)
    got = await wait_bound(cluster, ns, claim, within=30)
    assert got == expected, f"claim {claim} got {got}, the lowest free address of {pool} is {expected}"
    return got


async def release(cluster: Cluster, ns: str, claim: str) -> None:
    """Delete a claim and wait until the provider released it (claim and IPAddress gone)."""
    await cluster.delete_claim(ns, claim)

    async def gone() -> bool:
        names = {o["metadata"]["name"] for o in await cluster.claims(ns) + await cluster.addresses(ns)}
        return claim not in names

    await eventually(gone, 30, f"claim {claim} and its IPAddress to be released")


async def take_over(client: KubeClient, plane: ControlPlane, ours: OurProcess) -> None:
    """Install ours as a release does: our pool CRDs first (conversion at our webhook server), then the
    provider, then the webhook configurations (`install_webhooks` waits until the apiserver calls them)."""
    await apply_crds(client, crds(ours.webhook_url, plane.ca.cert_pem))
    await ours.start()
    await install_webhooks(client, ours.webhook_url, plane.ca.cert_pem)
    await ours.wait_ready()


async def check_all(cluster: Cluster, ns: str, label: str) -> str:
    verdict = await invariants.settle(cluster.client, ns, within=30, label=label)
    code, report = await audit_cli(cluster.plane.kubeconfig_path, ns)
    assert code == 0, f"incluster-ipam audit ({label}) exited {code}:\n{report}"
    return invariants.summary(verdict)


@pytest.mark.timeout(BUILD_TIMEOUT + 300)  # a cold upstream build takes minutes; cached afterwards
async def test_upstream_to_ours_and_back(tmp_path: Path) -> None:
    upstream = await upstream_build()
    figures: list[str] = []
    async with (
        ControlPlane(extra_crds=upstream.crds, workdir=tmp_path / "cp") as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        cluster = Cluster(plane, client)
        ns = await cluster.namespace("mig")
        gpool = f"mig-{ns[-8:]}"
        await cluster.pool(
            "InClusterIPPool",
            "nspool",
            ns,
            addresses=["10.80.0.10-10.80.0.40"],
            prefix=24,
            gateway="10.80.0.1",
        )
        await cluster.pool(
            "GlobalInClusterIPPool", gpool, None, addresses=["10.81.0.0/26"], prefix=24, gateway="10.81.0.1"
        )

        # 1. upstream allocates
        started = time.monotonic()
        async with UpstreamProcess(upstream, plane.kubeconfig_path, tmp_path, "upstream-1"):
            for i in range(N):
                await cluster.claim(ns, f"u{i}", "nspool")
                await cluster.claim(ns, f"g{i}", gpool, "GlobalInClusterIPPool")
            await cluster.wait_all_bound(ns, within=60)
            figures.append(
                f"upstream {upstream.version}: {2 * N} claims bound in {time.monotonic() - started:.1f} s"
            )
            figures.append("upstream: " + await check_all(cluster, ns, "upstream allocated"))
        sample = next(a for a in await cluster.addresses(ns) if a["metadata"]["name"] == "u0")
        assert ADDRESS_FINALIZER in sample["metadata"]["finalizers"], sample["metadata"]
        before = snapshot(await cluster.addresses(ns))
        assert len(before) == 2 * N

        # 2. ours takes over, webhooks as shipped
        ours = OurProcess(plane, tmp_path, "ours")
        started = time.monotonic()
        await take_over(client, plane, ours)
        try:
            figures.append(f"ours: ready with webhooks in {time.monotonic() - started:.1f} s")
            summary = await check_all(cluster, ns, "ours took over")
            after = snapshot(await cluster.addresses(ns))
            assert not rewritten(before, after), f"ours rewrote IPAddresses: {rewritten(before, after)}"
            assert after == before
            claims = {c["metadata"]["name"]: c for c in await cluster.claims(ns)}
            assert all(CLAIM_FINALIZER in c["metadata"]["finalizers"] for c in claims.values())
            figures.append(f"ours: took over {len(before)} IPAddresses, none rewritten; {summary}")
            # new claims: unique and packed
            for i in range(2):
                await claim_packed(cluster, ns, f"n{i}", "InClusterIPPool", "nspool")
                await claim_packed(cluster, ns, f"m{i}", "GlobalInClusterIPPool", gpool)
            # releasing upstream's claims works, and the freed addresses are handed out again
            freed = {name: before[name][1]["address"] for name in ("u1", "g2")}
            await release(cluster, ns, "u1")
            await release(cluster, ns, "g2")
            assert await claim_packed(cluster, ns, "n2", "InClusterIPPool", "nspool") == freed["u1"]
            assert await claim_packed(cluster, ns, "m2", "GlobalInClusterIPPool", gpool) == freed["g2"]
            summary = await check_all(cluster, ns, "ours allocated and released")
            kept = snapshot(await cluster.addresses(ns))
            assert not rewritten(before, kept), rewritten(before, kept)
            figures.append(f"ours: 6 new claims packed, 2 of upstream's released and reused; {summary}")
            ours_state = {
                o["metadata"]["name"]: o["status"]["ipAddresses"] for o in await _pools(cluster, ns)
            }
        finally:
            await ours.stop()
        assert ours.returncode == 0, ours.log_tail()

        # 3. back to upstream: its CRDs again, no webhooks of ours
        await uninstall_webhooks(client)
        await apply_crds(client, upstream.crds)
        before_back = snapshot(await cluster.addresses(ns))
        async with UpstreamProcess(upstream, plane.kubeconfig_path, tmp_path, "upstream-2"):
            await claim_packed(cluster, ns, "b0", "InClusterIPPool", "nspool")
            await claim_packed(cluster, ns, "h0", "GlobalInClusterIPPool", gpool)
            await release(cluster, ns, "n0")  # an IPAddress we created, released by upstream
            await release(cluster, ns, "m1")
            summary = await check_all(cluster, ns, "back to upstream")
            back = snapshot(await cluster.addresses(ns))
            figures.append(
                f"upstream again: 2 new claims packed, 2 of ours released; IPAddresses rewritten by "
                f"upstream: {len(rewritten(before_back, back))}; {summary}"
            )
        addresses = [a["spec"]["address"] for a in await cluster.addresses(ns)]
        assert len(addresses) == len(set(addresses)) == 2 * N + 6 - 2 - 2 + 2
        figures.append(f"pool status under ours: {ours_state}")
    print("\nmigration from upstream and back:\n  " + "\n  ".join(figures))


async def _pools(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    namespaced = (await cluster.client.list(IP_POOLS, ns)).items
    global_ = [
        p
        for p in (await cluster.client.list(GLOBAL_IP_POOLS)).items
        if p["metadata"]["name"].endswith(ns[-8:])
    ]
    return namespaced + global_


# ---- the v1alpha1 era -----------------------------------------------------------------------------------


def v1alpha1_storage(crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """upstream's pool CRDs with v1alpha1 as the storage version, as its early releases stored pools."""
    out = []
    for shipped in crds:
        crd = copy.deepcopy(shipped)
        names = [v["name"] for v in crd["spec"]["versions"]]
        if "v1alpha1" in names:
            for version in crd["spec"]["versions"]:
                version["storage"] = version["name"] == "v1alpha1"
        out.append(crd)
    return out


async def left_by_the_old_provider(
    cluster: Cluster, ns: str, claim: str, pool: dict[str, Any], *, address: str
) -> None:
    """A bound claim and its IPAddress as the early provider left them: finalizers on both, the IPAddress
    owned by the claim (controller) and the pool, the claim's status pointing at it."""
    kind = pool["kind"]
    body = {
        "apiVersion": f"{GROUP}/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {"name": claim, "namespace": ns, "finalizers": [CLAIM_FINALIZER]},
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool["metadata"]["name"]}},
    }
    created = await cluster.client.create(CLAIMS, body, ns)
    owners = [
        {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddressClaim",
            "name": claim,
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        },
        {
            "apiVersion": pool["apiVersion"],
            "kind": kind,
            "name": pool["metadata"]["name"],
            "uid": pool["metadata"]["uid"],
            "controller": False,
            "blockOwnerDeletion": True,
        },
    ]
    await cluster.client.create(
        ADDRESSES,
        {
            "apiVersion": f"{GROUP}/v1beta2",
            "kind": "IPAddress",
            "metadata": {
                "name": claim,
                "namespace": ns,
                "finalizers": [ADDRESS_FINALIZER],
                "ownerReferences": owners,
            },
            "spec": {
                "address": address,
                "prefix": 24,
                "gateway": pool["spec"]["gateway"],
                "claimRef": {"name": claim},
                "poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool["metadata"]["name"]},
            },
        },
        ns,
    )
    await cluster.client.patch(
        CLAIMS, claim, {"status": {"addressRef": {"name": claim}}}, ns, subresource="status"
    )


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
async def test_pools_stored_as_v1alpha1_are_served_by_ours(tmp_path: Path) -> None:
    upstream = await upstream_build()
    async with (
        ControlPlane(extra_crds=v1alpha1_storage(upstream.crds), workdir=tmp_path / "cp") as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        cluster = Cluster(plane, client)
        ns = await cluster.namespace("era")
        gpool = f"era-{ns[-8:]}"
        spec = {"start": "10.82.0.10", "end": "10.82.0.30", "prefix": 24, "gateway": "10.82.0.1"}
        old = {
            "InClusterIPPool": await client.create(
                V1ALPHA1["InClusterIPPool"],
                {
                    "apiVersion": f"{GROUP}/v1alpha1",
                    "kind": "InClusterIPPool",
                    "metadata": {"name": "old", "namespace": ns},
                    "spec": spec,
                },
                ns,
            ),
            "GlobalInClusterIPPool": await client.create(
                V1ALPHA1["GlobalInClusterIPPool"],
                {
                    "apiVersion": f"{GROUP}/v1alpha1",
                    "kind": "GlobalInClusterIPPool",
                    "metadata": {"name": gpool},
                    "spec": {"subnet": "10.83.0.0/24", "gateway": "10.83.0.1"},
                },
            ),
        }
        for i in range(3):
            await left_by_the_old_provider(
                cluster, ns, f"a{i}", old["InClusterIPPool"], address=f"10.82.0.{10 + i}"
            )
            await left_by_the_old_provider(
                cluster, ns, f"b{i}", old["GlobalInClusterIPPool"], address=f"10.83.0.{2 + i}"
            )
        before = snapshot(await cluster.addresses(ns))

        ours = OurProcess(plane, tmp_path, "ours-era")
        started = time.monotonic()
        await take_over(client, plane, ours)
        try:
            took = time.monotonic() - started
            # served at both versions through our conversion webhook
            served = await client.get(IP_POOLS, "old", ns)
            assert served["spec"]["addresses"] == ["10.82.0.10-10.82.0.30"], served["spec"]
            assert (await client.get(V1ALPHA1["InClusterIPPool"], "old", ns))["spec"]["start"] == "10.82.0.10"
            summary = await check_all(cluster, ns, "v1alpha1 era taken over")
            assert snapshot(await cluster.addresses(ns)) == before, "ours rewrote an IPAddress"
            new = await claim_packed(cluster, ns, "c0", "InClusterIPPool", "old")
            new_global = await claim_packed(cluster, ns, "d0", "GlobalInClusterIPPool", gpool)
            assert (new, new_global) == ("10.82.0.13", "10.83.0.5")
            await release(cluster, ns, "a1")
            summary = await check_all(cluster, ns, "v1alpha1 era allocated")
        finally:
            await ours.stop()
        assert ours.returncode == 0, ours.log_tail()
    print(
        f"\nv1alpha1 era: ours ready with webhooks in {took:.1f} s over {len(before)} IPAddresses left by "
        f"the old provider, none rewritten; new claims {new}, {new_global}; {summary}"
    )

"""`clusterctl move` of a Cluster whose machines hold addresses from a namespaced and a global pool.

Two control planes, each initialised by the project's clusterctl (v1.14.2) from a local repository (Cluster
API's providers from its module, our release from hack/release.py, a minimal infrastructure provider) and
each with our provider running, webhooks registered as the release ships them (tests/e2e/clusterctl.py).

The source holds a Cluster with two Machines, each with an infrastructure machine that owns two claims
(one per pool), labelled only with the cluster name, as vSphere, Proxmox and Metal3 build them. The move's
preconditions are met as Cluster API's controllers would (infrastructure provisioned, control plane
initialised, a nodeRef on every Machine). A claim of another namespace stays in the source and keeps using
the global pool.

Checked after `clusterctl move --namespace`: every IPAddress arrives with its spec unchanged, the target
allocates nothing (its allocation counter stays at 0), the source's delete protection let the move's deletes
through (it still refuses an ordinary delete before), the target has no duplicate once unpaused, and the
source namespace is empty. Global pools: clusterctl creates the pool in the target and leaves the source's
pool and the IPAddresses it owns in place. The source must keep those leftovers (they keep the moved
addresses from being handed out there again), and after the operator's split of the pool's free addresses
(docs/operations.md) no address is held twice across the two clusters.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.constants import MOVED_AWAY_ANNOTATION as MOVED_AWAY
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.ipam.addresses import IPSet, parse_address
from incluster_ipam.kube import ApiError, KubeClient, Resource

from ..integration.faults import invariants
from ..integration.faults.helpers import ADDRESSES, CLAIMS, GLOBAL_IP_POOLS, IP_POOLS, Cluster
from ..integration.review.harness import wait_bound
from ..integration.support import eventually
from .clusterctl import (
    CLUSTERCTL_LABEL,
    INFRA_GROUP,
    PROVIDERS,
    TEST_MACHINES,
    Clusterctl,
    cert_manager_crds,
    point_webhooks_at,
    prepare,
)
from .providers import BUILD_TIMEOUT, OurProcess, audit_cli

CAPI = "cluster.x-k8s.io"
CLUSTERS = Resource(CAPI, "v1beta2", "clusters", "Cluster", True)
MACHINES = Resource(CAPI, "v1beta2", "machines", "Machine", True)
CLUSTER_NAME = "cluster.x-k8s.io/cluster-name"
MACHINES_PER_CLUSTER = 2


def owner(obj: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


async def workload_cluster(cluster: Cluster, ns: str, name: str, gpool: str) -> list[str]:
    """A provisioned Cluster with Machines, infrastructure machines and their claims; the claim names."""
    client = cluster.client
    labels = {CLUSTER_NAME: name}
    capi = await client.create(
        CLUSTERS,
        {
            "apiVersion": f"{CAPI}/v1beta2",
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"controlPlaneEndpoint": {"host": "192.0.2.10", "port": 6443}},
        },
        ns,
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "initialization": {"infrastructureProvisioned": True, "controlPlaneInitialized": True},
        "conditions": [
            {
                "type": "ControlPlaneInitialized",
                "status": "True",
                "reason": "Initialized",
                "message": "",
                "lastTransitionTime": now,
            }
        ],
    }
    await client.patch(CLUSTERS, name, {"status": status}, ns, subresource="status")
    claims = []
    for i in range(MACHINES_PER_CLUSTER):
        machine_name = f"{name}-md-{i}"
        machine = await client.create(
            MACHINES,
            {
                "apiVersion": f"{CAPI}/v1beta2",
                "kind": "Machine",
                "metadata": {
                    "name": machine_name,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner(capi, controller=False)],
                },
                "spec": {
                    "clusterName": name,
                    "bootstrap": {"dataSecretName": f"{machine_name}-bootstrap"},
                    "infrastructureRef": {
                        "apiGroup": INFRA_GROUP,
                        "kind": "TestMachine",
                        "name": machine_name,
                    },
                },
            },
            ns,
        )
        await client.patch(
            MACHINES, machine_name, {"status": {"nodeRef": {"name": f"node-{i}"}}}, ns, subresource="status"
        )
        infra = await client.create(
            TEST_MACHINES,
            {
                "apiVersion": f"{INFRA_GROUP}/v1beta2",
                "kind": "TestMachine",
                "metadata": {
                    "name": machine_name,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner(machine)],
                },
                "spec": {},
            },
            ns,
        )
        for suffix, kind, pool in (
            ("ns", "InClusterIPPool", "nspool"),
            ("global", "GlobalInClusterIPPool", gpool),
        ):
            claim = f"{machine_name}-{suffix}"
            body = {
                "apiVersion": f"{GROUP}/v1beta2",
                "kind": "IPAddressClaim",
                "metadata": {
                    "name": claim,
                    "namespace": ns,
                    "labels": labels,
                    "ownerReferences": [owner(infra)],
                },
                "spec": {"poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool}},
            }
            await client.create(CLAIMS, body, ns)
            claims.append(claim)
    return claims


def specs(addresses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a["spec"] for a in addresses}


async def allocations(provider: OurProcess) -> float:
    """The provider's allocation counter, from its metrics endpoint."""
    url = f"http://127.0.0.1:{provider.metrics_port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith("incluster_ipam_allocations_total "):
            return float(line.split()[1])
    raise AssertionError(f"no incluster_ipam_allocations_total at {url}")


def held_in(addresses: list[dict[str, Any]], kind: str, pool: str) -> dict[str, str]:
    """address -> IPAddress name, for one pool."""
    return {
        a["spec"]["address"]: f"{a['metadata']['namespace']}/{a['metadata']['name']}"
        for a in addresses
        if a["spec"]["poolRef"]["kind"] == kind and a["spec"]["poolRef"]["name"] == pool
    }


def ranges(addresses: IPSet) -> list[str]:
    return [
        f"{ipaddress.ip_address(first)}-{ipaddress.ip_address(last)}" for first, last in addresses.intervals()
    ]


@contextlib.asynccontextmanager
async def management_cluster(
    tmp_path: Path, name: str, extra: list[dict[str, Any]]
) -> AsyncIterator[tuple[ControlPlane, KubeClient]]:
    async with (
        ControlPlane(capi_version=None, extra_crds=extra, workdir=tmp_path / name) as plane,
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
    ):
        yield plane, client


@pytest.mark.timeout(BUILD_TIMEOUT + 300)  # a cold clusterctl build takes minutes; cached afterwards
async def test_clusterctl_move_keeps_every_address(tmp_path: Path) -> None:
    clusterctl = await prepare(tmp_path)
    cm = await cert_manager_crds()
    figures: list[str] = []
    async with (
        management_cluster(tmp_path, "source", cm) as (src_plane, src_client),
        management_cluster(tmp_path, "target", cm) as (dst_plane, dst_client),
    ):
        started = time.monotonic()
        for plane in (src_plane, dst_plane):
            await clusterctl.init(plane.kubeconfig_path)
        inventory = sorted(
            f"{p['type']}/{p['providerName']}:{p['version']}"
            for p in (await src_client.list(PROVIDERS)).items
        )
        assert len(inventory) == 5, inventory
        assert "IPAMProvider/in-cluster:v0.1.0" in inventory, inventory
        pool_crd = await src_client.get(
            Resource(
                "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
            ),
            f"globalinclusterippools.{GROUP}",
        )
        assert CLUSTERCTL_LABEL in pool_crd["metadata"]["labels"], pool_crd["metadata"]["labels"]
        figures.append(f"clusterctl init x2 in {time.monotonic() - started:.1f} s: {', '.join(inventory)}")

        src_ours, dst_ours = (
            OurProcess(src_plane, tmp_path, "source"),
            OurProcess(dst_plane, tmp_path, "target"),
        )
        try:
            for provider, plane, client in (
                (src_ours, src_plane, src_client),
                (dst_ours, dst_plane, dst_client),
            ):
                await provider.start()
                await point_webhooks_at(client, plane, provider.webhook_url)
                await provider.wait_ready()
            await _move(
                clusterctl,
                Cluster(src_plane, src_client),
                Cluster(dst_plane, dst_client),
                src_ours,
                dst_ours,
                figures,
            )
        finally:
            for provider in (src_ours, dst_ours):
                await provider.stop()
        assert (src_ours.returncode, dst_ours.returncode) == (0, 0), src_ours.log_tail() + dst_ours.log_tail()
    print("\nclusterctl move:\n  " + "\n  ".join(figures))


async def _move(  # noqa: PLR0917
    clusterctl: Clusterctl,
    src: Cluster,
    dst: Cluster,
    src_ours: OurProcess,
    dst_ours: OurProcess,
    figures: list[str],
) -> None:
    """The workload, the move and the checks (see the module docstring)."""
    src_plane, dst_plane = src.plane, dst.plane
    ns = await src.namespace("move")
    stay = await src.namespace("stay")
    gpool = f"shared-{ns[-8:]}"
    await src.pool(
        "InClusterIPPool",
        "nspool",
        ns,
        addresses=["10.90.0.10-10.90.0.40"],
        prefix=24,
        gateway="10.90.0.1",
    )
    await src.pool(
        "GlobalInClusterIPPool", gpool, None, addresses=["10.91.0.0/24"], prefix=24, gateway="10.91.0.1"
    )
    claims = await workload_cluster(src, ns, "work", gpool)
    await src.wait_all_bound(ns, within=60)
    await src.claim(stay, "stays", gpool, "GlobalInClusterIPPool")
    staying = await wait_bound(src, stay, "stays", within=30)
    await invariants.settle(src.client, ns, within=30, label="source before the move")
    before = specs(await src.addresses(ns))
    assert sorted(before) == sorted(claims)
    moved_global = held_in(list((await src.client.list(ADDRESSES, ns)).items), "GlobalInClusterIPPool", gpool)
    # the delete protection is on: an ordinary delete of a pool in use is refused
    with pytest.raises(ApiError) as refused:
        await src.client.delete(IP_POOLS, "nspool", ns)
    assert refused.value.status in (400, 403, 422), refused.value

    started = time.monotonic()
    out = await clusterctl.run(
        "move",
        "--kubeconfig",
        str(src_plane.kubeconfig_path),
        "--to-kubeconfig",
        str(dst_plane.kubeconfig_path),
        "--namespace",
        ns,
        "-v",
        "1",
    )
    took = time.monotonic() - started

    # the target: every address arrived unchanged, bound again once unpaused, nothing allocated
    await dst.wait_all_bound(ns, within=60)
    after = specs(await dst.addresses(ns))
    assert after == before, f"IPAddresses changed in the move:\nbefore {before}\nafter {after}"
    bound = {c["metadata"]["name"]: c["status"]["addressRef"]["name"] for c in await dst.claims(ns)}
    assert bound == {name: name for name in claims}
    assert await allocations(dst_ours) == 0, "the target allocated addresses"
    target = await invariants.settle(dst.client, ns, within=30, label="target after the move")
    code, report = await audit_cli(dst_plane.kubeconfig_path, ns)
    assert code == 0, report
    dst_cluster = await dst.client.get(CLUSTERS, "work", ns)
    assert not dst_cluster["spec"].get("paused"), "the target Cluster is still paused"

    # the source: the namespace is empty; the global pool and the IPAddresses it owns stay
    for resource in (CLAIMS, IP_POOLS, MACHINES, TEST_MACHINES, CLUSTERS):
        left = (await src.client.list(resource, ns)).items
        assert not left, f"{resource.kind} left in the source: {[o['metadata']['name'] for o in left]}"
    left = held_in(list((await src.client.list(ADDRESSES, ns)).items), "InClusterIPPool", "nspool")
    assert not left, f"IPAddresses of the moved namespaced pool left in the source: {left}"
    assert (await dst.client.get(GLOBAL_IP_POOLS, gpool))["spec"]["addresses"] == ["10.91.0.0/24"]
    leftovers = held_in(list((await src.client.list(ADDRESSES)).items), "GlobalInClusterIPPool", gpool)
    assert set(moved_global) <= set(leftovers), f"clusterctl deleted a global pool's IPAddress: {leftovers}"

    async def marked() -> bool:
        items = (await src.client.list(ADDRESSES, ns)).items
        kept = [a for a in items if a["spec"]["address"] in moved_global]
        notes = [a["metadata"].get("annotations") or {} for a in kept]
        return len(kept) == len(moved_global) and all(MOVED_AWAY in n for n in notes)

    await eventually(marked, 30, "the source provider to mark the moved-away leftovers")
    # a restart (or a failover) of the source provider: it must still keep them
    await src_ours.stop()
    await src_ours.start()
    await src_ours.wait_ready()
    # the source must not hand out a moved address again: its leftovers keep them held
    await src.claim(stay, "after-move", gpool, "GlobalInClusterIPPool")
    src_new = await wait_bound(src, stay, "after-move", within=30)
    assert src_new not in moved_global, f"the source handed out {src_new}, moved to the target"
    leftovers_now = held_in(list((await src.client.list(ADDRESSES)).items), "GlobalInClusterIPPool", gpool)
    assert set(moved_global) <= set(leftovers_now), f"leftovers released: {leftovers} -> {leftovers_now}"

    # the operator splits the pool's free addresses: the source keeps the lower half, the target the
    # upper one (each excludes the other's part, minus the addresses it holds itself)
    lower, upper = (
        IPSet.from_entries(["10.91.0.0-10.91.0.127"]),
        IPSet.from_entries(["10.91.0.128-10.91.0.255"]),
    )
    held_by_target = IPSet.from_addresses(4, [parse_address(a) for a in moved_global])
    held_by_source = IPSet.from_addresses(4, [parse_address(a) for a in (staying, src_new)])
    dst_excluded = ranges(lower.union(held_by_source).difference(held_by_target))
    # the moved addresses stay held in the source by the leftovers (excluding them would strand them: the
    # webhook refuses that)
    src_excluded = ranges(upper.difference(held_by_source))
    await dst.client.patch(GLOBAL_IP_POOLS, gpool, {"spec": {"excludedAddresses": dst_excluded}})
    await src.client.patch(GLOBAL_IP_POOLS, gpool, {"spec": {"excludedAddresses": src_excluded}})
    dst_ns = await dst.namespace("new")
    for i in range(2):
        await dst.claim(dst_ns, f"t{i}", gpool, "GlobalInClusterIPPool")
        await src.claim(stay, f"s{i}", gpool, "GlobalInClusterIPPool")
    await dst.wait_all_bound(dst_ns, within=30)
    await src.wait_all_bound(stay, within=30)
    live_src = await _live_holders(src, gpool)
    live_dst = await _live_holders(dst, gpool)
    twice = sorted(set(live_src) & set(live_dst))
    assert not twice, f"held in both clusters: {[(a, live_src[a], live_dst[a]) for a in twice]}"
    await invariants.settle(dst.client, dst_ns, within=30, label="target after the split")
    await invariants.settle(src.client, stay, within=30, label="source after the split")
    src_code, src_report = await audit_cli(src_plane.kubeconfig_path)
    mentioned = sorted(n for n in moved_global.values() if n in src_report)
    assert src_code == 0, f"the source's audit:\n{src_report}"  # the leftovers are a note, not a finding
    assert mentioned == sorted(moved_global.values()), src_report
    figures += [
        f"incluster-ipam audit in the source: exit {src_code}, the leftovers named: {mentioned}",
        f"moved {len(before)} claims with their IPAddresses in {took:.1f} s; none changed, target "
        f"allocations 0; target: {invariants.summary(target)}",
        f"global pool {gpool}: created in the target; the source keeps its {len(moved_global)} "
        f"leftovers {sorted(moved_global)}; after the split the source holds {sorted(live_src)}, "
        f"the target {sorted(live_dst)}",
        f"clusterctl output tail: {out.strip().splitlines()[-1] if out.strip() else ''}",
    ]


async def _live_holders(cluster: Cluster, pool: str) -> dict[str, str]:
    """address -> claim, for the global pool's IPAddresses whose claim exists (leftovers of moved claims
    hold their address in the source but have no claim there)."""
    out = {}
    for address in (await cluster.client.list(ADDRESSES)).items:
        ref = address["spec"]["poolRef"]
        if ref["kind"] != "GlobalInClusterIPPool" or ref["name"] != pool:
            continue
        ns, name = address["metadata"]["namespace"], address["spec"]["claimRef"]["name"]
        try:
            await cluster.client.get(CLAIMS, name, ns)
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        out[address["spec"]["address"]] = f"{ns}/{name}"
    return out

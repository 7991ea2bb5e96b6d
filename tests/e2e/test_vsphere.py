"""Cluster API Provider vSphere (CAPV v1.16.1) as the client of our provider, against a vSphere simulator.

One lab for the module (tests/e2e/vsphere.py): a control plane, our simulator, CAPV's manager and our
provider, each a process on loopback. CAPV creates every IPAddressClaim (one per device and pool, labelled
with the cluster name only, owned by its VSphereVM), reads our IPAddresses and writes them into the VM's
`guestinfo.metadata`, which the tests read back through the simulator's vSphere API. Every test ends with
the audit's invariants (no duplicate, no orphan, every claim bound when its pool has room).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from incluster_ipam.api.constants import CLAIM_FINALIZER
from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane

from ..integration.faults.helpers import ProviderProcess
from ..integration.faults.invariants import settle, summary
from ..integration.support import eventually
from .vsphere import (
    ADDRESSES,
    CLAIMS,
    CLUSTER_NAME_LABEL,
    VSPHERE_VMS,
    Lab,
    condition,
    metadata_text,
    vsphere_lab,
)

CAPV_CLAIM_FINALIZER = "vspherevm.infrastructure.cluster.x-k8s.io/ip-claim-protection"
V4 = "InClusterIPPool"
V6 = "GlobalInClusterIPPool"

pytestmark = pytest.mark.timeout(900)


def report(line: str) -> None:
    print(f"[vsphere] {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Lab]:
    workdir: Path = tmp_path_factory.mktemp("vsphere")

    def ours(plane: ControlPlane, logs: Path) -> ProviderProcess:
        return ProviderProcess("incluster-ipam", plane.kubeconfig_path, logs)

    started = time.monotonic()
    async with vsphere_lab(workdir, crds(""), ours) as the_lab:
        report(f"lab up in {time.monotonic() - started:.1f} s (control plane, vcsim, CAPV, our provider)")
        yield the_lab


async def check_invariants(lab: Lab, label: str) -> None:
    try:
        verdict = await settle(lab.client, within=30.0, label=label)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{lab.logs()}") from None
    audit = await lab.audit()
    assert audit["clean"], f"incluster-ipam audit ({label}): {audit['findings']}{lab.logs()}"
    report(f"{label}: {summary(verdict)}; incluster-ipam audit clean, scanned {audit['scanned']}")


async def bound_address(lab: Lab, namespace: str, claim: str, within: float = 60.0) -> dict:
    """The IPAddress bound to a claim CAPV created (waits for CAPV to create it and for us to bind it)."""

    async def probe() -> dict | None:
        obj = await lab.get_or_none(CLAIMS, claim, namespace)
        ref = (((obj or {}).get("status") or {}).get("addressRef") or {}).get("name")
        return await lab.get_or_none(ADDRESSES, ref, namespace) if ref else None

    try:
        return await eventually(probe, within, f"claim {namespace}/{claim} to be bound")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{lab.logs()}") from None


async def test_vsphere_two_devices_ipv4_and_ipv6(lab: Lab) -> None:
    """Device 0 from a namespaced IPv4 pool, device 1 from a global IPv6 pool: CAPV claims both, we bind
    both, the VM's metadata carries exactly our addresses, and the VSphereVM's condition follows our Ready."""
    ns = await lab.namespace("vs-two")
    v6 = f"vs-v6-{uuid.uuid4().hex[:6]}"
    await lab.pool(V4, "v4", ns, addresses=["10.20.0.10-10.20.0.19"], prefix=24, gateway="10.20.0.1")
    await lab.pool(V6, v6, None, addresses=["fd00:20::10-fd00:20::1f"], prefix=64, gateway="fd00:20::1")
    await lab.cluster(ns, "c1")
    created = await lab.machine(ns, "c1", "m1", [[(V4, "v4")], [(V6, v6)]])
    seen = await lab.wait_metadata(["m1"], devices=2)
    at, metadata = seen["m1"]
    report(f"VSphereMachine create -> addresses in the VM metadata (ours, 2 devices): {at - created:.2f} s")

    claims = await lab.claims(ns)
    assert sorted(claims) == ["m1-0-0", "m1-1-0"], f"CAPV's claims: {sorted(claims)}{lab.logs()}"
    vm = await lab.get_or_none(VSPHERE_VMS, "m1", ns)
    assert vm is not None
    expected = []
    for name, (kind, pool) in (("m1-0-0", (V4, "v4")), ("m1-1-0", (V6, v6))):
        claim = claims[name]
        assert claim["metadata"].get("labels") == {CLUSTER_NAME_LABEL: "c1"}, claim["metadata"]
        owners = claim["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o.get("controller", False)) for o in owners] == [
            ("VSphereVM", "m1", False)
        ], owners
        assert claim["spec"]["poolRef"] == {"apiGroup": "ipam.cluster.x-k8s.io", "kind": kind, "name": pool}
        assert {CLAIM_FINALIZER, CAPV_CLAIM_FINALIZER} <= set(claim["metadata"]["finalizers"])
        ready = condition(claim, "Ready")
        assert ready, claim
        assert (ready["status"], ready["reason"]) == ("True", "AddressAllocated"), claim
        address = await bound_address(lab, ns, name)
        assert address["spec"]["poolRef"]["name"] == pool
        assert address["spec"]["claimRef"]["name"] == name
        expected.append([f"{address['spec']['address']}/{address['spec']['prefix']}"])
    assert metadata == expected, f"VM metadata {metadata} != our IPAddresses {expected}"
    assert expected == [["10.20.0.10/24"], ["fd00:20::10/64"]]
    report("m1's guestinfo.metadata:\n" + metadata_text((await lab.simulator.extra_config())["m1"]))

    # CAPV writes the metadata, then the VSphereVM's status in the same reconcile: wait for the condition.
    async def fulfilled_true() -> dict | None:
        latest = await lab.get_or_none(VSPHERE_VMS, "m1", ns)
        found = condition(latest or {}, "IPAddressClaimsFulfilled")
        return found if found and found["status"] == "True" else None

    try:
        await eventually(fulfilled_true, 30, "the VSphereVM's IPAddressClaimsFulfilled to be True")
    except AssertionError as exc:
        last = condition(await lab.get_or_none(VSPHERE_VMS, "m1", ns) or {}, "IPAddressClaimsFulfilled")
        raise AssertionError(f"{exc}: {last}{lab.logs()}") from None
    await check_invariants(lab, "two devices")


async def test_vsphere_exhausted_pool_then_freed(lab: Lab) -> None:
    """A machine beyond the pool's size: the VSphereVM shows our PoolExhausted message; when another
    machine is deleted, the freed address goes to the waiting machine at once."""
    ns = await lab.namespace("vs-full")
    await lab.pool(V4, "small", ns, addresses=["10.21.0.10-10.21.0.11"], prefix=24, gateway="10.21.0.1")
    await lab.cluster(ns, "c2")
    for name in ("a", "b"):
        await lab.machine(ns, "c2", name, [[(V4, "small")]])
    await lab.wait_metadata(["a", "b"], devices=1)
    await lab.machine(ns, "c2", "c", [[(V4, "small")]])

    async def exhausted() -> tuple[dict, dict] | None:
        claim = await lab.get_or_none(CLAIMS, "c-0-0", ns)
        vm = await lab.get_or_none(VSPHERE_VMS, "c", ns)
        ready, fulfilled = condition(claim, "Ready"), condition(vm, "IPAddressClaimsFulfilled")
        if (
            ready
            and ready["reason"] == "PoolExhausted"
            and fulfilled
            and ready["message"] in (fulfilled.get("message") or "")
        ):
            return ready, fulfilled
        return None

    try:
        ready, fulfilled = await eventually(exhausted, 60.0, "our PoolExhausted on the VSphereVM")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{lab.logs()}") from None
    assert (ready["status"], fulfilled["status"]) == ("False", "False")
    assert "InClusterIPPool" in ready["message"], ready
    assert "small" in ready["message"], ready
    report(f"VSphereVM IPAddressClaimsFulfilled: {fulfilled['reason']}: {fulfilled['message']!r}")
    extra = await lab.simulator.extra_config()
    assert "c" not in extra or not extra["c"].get("guestinfo.metadata"), "metadata written without an address"

    freed_address = (await bound_address(lab, ns, "a-0-0"))["spec"]["address"]
    await lab.delete_machine(ns, "a")
    assert await lab.collect_garbage(ns) == ["a-0-0"]
    freed = time.monotonic()
    seen = await lab.wait_metadata(["c"], devices=1)
    report(f"address freed -> in the waiting VM's metadata: {seen['c'][0] - freed:.2f} s")
    assert seen["c"][1][0] == [f"{freed_address}/24"]
    await check_invariants(lab, "exhausted then freed")


async def test_vsphere_twenty_machines_at_once(lab: Lab) -> None:
    """20 VSphereMachines created together: 20 unique addresses, packed lowest-first."""
    ns = await lab.namespace("vs-many")
    await lab.pool(V4, "wide", ns, addresses=["10.22.0.10-10.22.0.59"], prefix=24, gateway="10.22.0.1")
    await lab.cluster(ns, "c3")
    names = [f"w{i:02d}" for i in range(20)]
    created = await asyncio.gather(*(lab.machine(ns, "c3", n, [[(V4, "wide")]]) for n in names))
    seen = await lab.wait_metadata(names, devices=1, within=150.0)
    latencies = sorted(seen[n][0] - c for n, c in zip(names, created, strict=True))
    report(
        f"20 machines: create -> metadata median {statistics.median(latencies):.2f} s, "
        f"max {latencies[-1]:.2f} s"
    )
    addresses = [seen[n][1][0] for n in names]
    assert all(len(a) == 1 for a in addresses), addresses
    flat = [a[0].split("/")[0] for a in addresses]
    assert len(set(flat)) == 20, f"duplicates: {sorted(flat)}"
    assert sorted(flat, key=ip_address) == [f"10.22.0.{i}" for i in range(10, 30)], sorted(flat)
    bound = {a["spec"]["address"] for a in (await lab.addresses(ns)).values()}
    assert bound == set(flat)
    await check_invariants(lab, "twenty machines")


async def test_vsphere_delete_releases_and_paused_cluster_holds(lab: Lab) -> None:
    """Deleting a machine: its addresses stay held while the VM exists, CAPV drops its claim finalizer once
    the VM is gone, ours releases the address when the claim is deleted. A claim of a paused Cluster does not
    take the freed address until the Cluster is unpaused."""
    ns = await lab.namespace("vs-del")
    await lab.pool(V4, "del", ns, addresses=["10.23.0.10-10.23.0.11"], prefix=24, gateway="10.23.0.1")
    await lab.cluster(ns, "live")
    await lab.cluster(ns, "held")
    for name in ("d1", "d2"):
        await lab.machine(ns, "live", name, [[(V4, "del")]])
    await lab.wait_metadata(["d1", "d2"], devices=1)
    await lab.machine(ns, "held", "p1", [[(V4, "del")]])

    async def waiting() -> bool:
        ready = condition(await lab.get_or_none(CLAIMS, "p1-0-0", ns), "Ready")
        return bool(ready and ready["reason"] == "PoolExhausted")

    await eventually(waiting, 60.0, "p1's claim to wait for an address")
    await lab.set_paused(ns, "held", True)

    async def capv_paused() -> bool:
        paused = condition(await lab.get_or_none(VSPHERE_VMS, "p1", ns), "Paused")
        return bool(paused and paused["status"] == "True")

    await eventually(capv_paused, 30.0, "CAPV to see the Cluster paused")
    await asyncio.sleep(1.0)  # our provider's own watch sees the same update; give it a moment

    d1 = await bound_address(lab, ns, "d1-0-0")
    await lab.begin_delete_machine(ns, "d1")
    # While CAPV deletes the VM, the claim stays and so does its address.
    deadline = time.monotonic() + 60
    polls = 0
    while await lab.get_or_none(VSPHERE_VMS, "d1", ns) is not None:
        polls += 1
        claim = (await lab.claims(ns))["d1-0-0"]
        assert "deletionTimestamp" not in claim["metadata"], "claim deleted before its VM"
        assert d1["metadata"]["name"] in await lab.addresses(ns), "address released while the VM exists"
        assert time.monotonic() < deadline, f"VSphereVM d1 not deleted within 60 s{lab.logs()}"
        await asyncio.sleep(0.05)
    await lab.finish_delete_machine(ns, "d1")
    assert polls > 0, "the VSphereVM was gone before the first look"
    assert "d1" not in await lab.simulator.extra_config(), "the VSphereVM is gone but its VM is not"
    claim = (await lab.claims(ns))["d1-0-0"]
    assert claim["metadata"]["finalizers"] == [CLAIM_FINALIZER], claim["metadata"]
    assert d1["metadata"]["name"] in await lab.addresses(ns), "released before the claim was deleted"

    assert await lab.collect_garbage(ns) == ["d1-0-0"]

    async def released() -> bool:
        claims, addresses = await lab.claims(ns), await lab.addresses(ns)
        return "d1-0-0" not in claims and d1["metadata"]["name"] not in addresses

    await eventually(released, 30.0, "d1's claim and IPAddress to be gone")
    await check_invariants(lab, "machine deleted, p1's Cluster paused")

    hold_until = time.monotonic() + 3.0
    while time.monotonic() < hold_until:
        claim = (await lab.claims(ns))["p1-0-0"]
        assert not (claim.get("status") or {}).get("addressRef"), f"bound while paused: {claim}"
        await asyncio.sleep(0.2)

    await lab.set_paused(ns, "held", False)
    unpaused = time.monotonic()
    seen = await lab.wait_metadata(["p1"], devices=1)
    report(f"Cluster unpaused -> address in p1's metadata: {seen['p1'][0] - unpaused:.2f} s")
    assert seen["p1"][1][0] == [f"{d1['spec']['address']}/24"]
    await check_invariants(lab, "unpaused")

"""Hostile and malformed input through the real apiserver, with the provider's webhooks registered.

The provider runs in-process with its webhook server on (`Options(webhook_port=..., webhook_cert_dir=...)`,
registered with `install_webhooks`, as `incluster-ipam dev-cluster` does). Hypothesis generates pools (huge
address lists, huge CIDRs, overlapping and inverted ranges, IPv4-mapped IPv6, garbage, wrong JSON types),
edits of pools in use, and claims pointing at missing, foreign-kind, foreign-group and other-namespace pools;
IPAddresses are planted to squat an address or a claim's name. Every bad input must be refused with a clear
message (schema or webhook) or leave the claim with a clear Ready=False condition; after every example a
canary claim must still be bound (the provider neither crashed nor stalled) and the invariants must hold.
Bounded: 25 + 8 + 12 examples, no deadline per example.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from incluster_ipam.api.constants import GROUP
from incluster_ipam.api.crds import crds
from incluster_ipam.audit.findings import Finding, FindingKind
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import ApiError
from incluster_ipam.provider import Provider
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from . import invariants
from .helpers import ADDRESSES, CLAIMS, Cluster, claim_body, eventually, in_process, pool_body

#: Each example goes through kube-apiserver: no deadline, no shrinking (a failure reports its example as is).
EXAMPLES = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
READY_REASONS = {"PoolExhausted", "PoolNotReady", "AllocationFailed"}


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path_factory.mktemp("hostile-cp")) as cp:
        yield cp


@dataclass
class Hostile:
    cluster: Cluster
    provider: Provider
    http: aiohttp.ClientSession
    canary_ns: str
    canaries: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any], list[str]]:
        async with self.http.request(method, path, json=body) as resp:
            raw = await resp.read()
            return resp.status, json.loads(raw) if raw else {}, resp.headers.getall("Warning", [])

    async def canary(self) -> None:
        """A claim on a healthy pool is bound promptly: the provider is alive and not stalled."""
        name = f"canary-{len(self.canaries)}"
        started = time.monotonic()
        await self.cluster.claim(self.canary_ns, name, "canary")

        async def bound() -> bool:
            claim = await self.cluster.client.get(CLAIMS, name, self.canary_ns)
            return bool((claim.get("status") or {}).get("addressRef"))

        await eventually(bound, 15, f"canary {name} to be bound")
        self.canaries.append(time.monotonic() - started)
        assert self.provider.leading.is_set()


@pytest.fixture(scope="module")
async def hostile(
    cluster: Cluster, plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Hostile]:
    cert_dir: Path = tmp_path_factory.mktemp("hostile-certs")
    serving = plane.ca.serving(("127.0.0.1", "localhost"))
    (cert_dir / "tls.crt").write_bytes(serving.cert_pem)
    (cert_dir / "tls.key").write_bytes(serving.key_pem)
    options = {"webhook_host": "127.0.0.1", "webhook_port": free_port(), "webhook_cert_dir": cert_dir}
    async with in_process(cluster.client, **options) as provider, plane.session() as http:
        assert provider.webhook_url is not None
        await install_webhooks(cluster.client, provider.webhook_url, plane.ca.cert_pem, wait_seconds=30)
        canary_ns = await cluster.namespace("canary")
        await cluster.pool("InClusterIPPool", "canary", canary_ns, addresses=["10.250.0.0/16"], prefix=16)
        hostile = Hostile(cluster, provider, http, canary_ns)
        yield hostile
        print(
            f"hostile: outcomes {dict(sorted(hostile.outcomes.items()))}; {len(hostile.canaries)} canaries, "
            f"bound in {max(hostile.canaries, default=0):.2f} s at worst"
        )
        await uninstall_webhooks(cluster.client, wait_seconds=30)


def pool_path(kind: str, namespace: str | None, name: str = "") -> str:
    plural = kind.lower() + "s"
    where = f"namespaces/{namespace}/" if namespace else ""
    return f"/apis/{GROUP}/v1alpha2/{where}{plural}" + (f"/{name}" if name else "")


def clear_rejection(status: int, body: dict[str, Any]) -> bool:
    """A refusal a user can act on: 400/422 with a message naming what is wrong."""
    message = str(body.get("message", ""))
    return status in (400, 422) and bool(message) and ("spec" in message or "pool" in message.lower())


async def ready_condition(hostile: Hostile, namespace: str, claim: str, within: float = 15) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        obj = await hostile.cluster.client.get(CLAIMS, claim, namespace)
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready":
                return dict(condition)
        return None

    return await eventually(probe, within, f"a Ready condition on {namespace}/{claim}")


def explains(condition: dict[str, Any], pool: str) -> bool:
    """Ready=False with a Cluster API reason and a message that names the pool."""
    return (
        condition["status"] == "False"
        and condition.get("reason") in READY_REASONS
        and pool in str(condition.get("message", ""))
    )


# ---- 1. hostile pool specs ------------------------------------------------------------------------------

octet = st.integers(0, 255)
v4_host = st.builds(lambda c, d: f"10.9.{c}.{d}", st.integers(8, 9), octet)
mapped = st.builds(lambda d: f"::ffff:10.9.8.{d}", octet)
v6_host = st.builds(lambda n: f"fd09:8::{n:x}", st.integers(0, 0x1FF))
host = st.one_of(v4_host, mapped, v6_host)
entry = st.one_of(
    host,
    st.builds(lambda a, b: f"{a}-{b}", host, host),  # inverted when a > b
    st.builds(lambda a, n: f"{a}/{n}", host, st.integers(0, 130)),
    st.sampled_from(["10.9.8.0/24", "10.9.8.10-10.9.8.20", "10.9.8.15-10.9.8.30", "::ffff:10.9.8.0/120"]),
    st.text(alphabet="0123456789abcdef.:/-% x", max_size=20),
)
gateway = st.one_of(host, st.sampled_from(["", "10.9.8.1", "::ffff:10.9.8.1", "banana", "10.9.8.999"]))
plain_spec = st.fixed_dictionaries(
    {
        "addresses": st.lists(entry, min_size=0, max_size=6),
        "prefix": st.sampled_from([0, 8, 16, 22, 23, 24, 30, 31, 32, 64, 96, 112, 120, 127, 128]),
    },
    optional={
        "gateway": gateway,
        "excludedAddresses": st.lists(entry, max_size=3),
        "allocateReservedIPAddresses": st.booleans(),
    },
)
huge_list = st.builds(
    lambda n, prefix: {"addresses": [f"10.{i >> 8 & 255}.{i & 255}.7" for i in range(n)], "prefix": prefix},
    st.integers(500, 3000),
    st.sampled_from([8, 16]),  # /16 puts most entries in other subnets: a long, clear rejection
)
huge_cidr = st.sampled_from(
    [
        {"addresses": ["10.0.0.0/8"], "prefix": 8},
        {"addresses": ["fd00::/16"], "prefix": 16},
        {"addresses": ["::/0"], "prefix": 0},
        {"addresses": ["0.0.0.0/0"], "prefix": 0, "gateway": "0.0.0.1"},
    ]
)
wrong_types = st.sampled_from(
    [
        {"addresses": "10.9.8.1", "prefix": 24},
        {"addresses": ["10.9.8.1"], "prefix": "24"},
        {"addresses": [24], "prefix": 24},
        {"addresses": ["10.9.8.1"], "prefix": -1},
        {"addresses": ["10.9.8.1"], "prefix": 129},
        {"addresses": ["10.9.8.1"]},
        {"prefix": 24},
        {"addresses": ["10.9.8.1"], "prefix": 24, "addressReuseGracePeriodSeconds": -5},
    ]
)
hostile_spec = st.one_of(plain_spec, plain_spec, huge_list, huge_cidr, wrong_types)


@settings(EXAMPLES, max_examples=25)
@given(spec=hostile_spec)
async def test_hostile_pools_are_refused_or_explained(hostile: Hostile, spec: dict[str, Any]) -> None:
    cluster = hostile.cluster
    ns = await cluster.namespace("pool")
    status, body, _ = await hostile.call(
        "POST", pool_path("InClusterIPPool", ns), pool_body("InClusterIPPool", "p", ns, spec)
    )
    if status != 201:
        assert clear_rejection(status, body), f"unclear refusal of {spec!r}: {status} {body}"
        hostile.outcomes[f"pool refused ({status})"] += 1
    else:
        await cluster.claim(ns, "c", "p")
        condition = await ready_condition(hostile, ns, "c")
        if condition["status"] == "True":
            hostile.outcomes["pool accepted, claim bound"] += 1
        else:
            assert explains(condition, "p"), f"unclear condition for {spec!r}: {condition}"
            hostile.outcomes[f"pool accepted, claim {condition['reason']}"] += 1
    await hostile.canary()
    await invariants.settle(cluster.client, ns, within=15, label=f"hostile pool {spec!r:.200}")


# ---- 2. pools edited while in use -------------------------------------------------------------------------

edit = st.fixed_dictionaries(
    {
        "addresses": st.lists(
            st.sampled_from(
                [
                    "10.9.8.10-10.9.8.40",
                    "10.9.8.10-10.9.8.12",
                    "10.9.8.20-10.9.8.60",
                    "10.9.8.0/24",
                    "10.9.8.41-10.9.8.50",
                    "10.9.9.0/24",
                    "::ffff:10.9.8.10",
                    "10.9.8.30-10.9.8.10",
                ]
            ),
            min_size=1,
            max_size=3,
        ),
        "prefix": st.sampled_from([24, 23, 28, 33]),
    },
    optional={
        "gateway": st.sampled_from(["10.9.8.10", "10.9.8.1", "10.9.8.11"]),
        "excludedAddresses": st.lists(
            st.sampled_from(["10.9.8.10", "10.9.8.11-10.9.8.13", "10.9.8.0/28"]), max_size=2
        ),
    },
)


@settings(EXAMPLES, max_examples=8)
@given(edits=st.lists(edit, min_size=2, max_size=3))
async def test_pools_edited_while_in_use_never_strand_an_address(
    hostile: Hostile, edits: list[dict[str, Any]]
) -> None:
    cluster = hostile.cluster
    ns = await cluster.namespace("edit")
    await cluster.pool("InClusterIPPool", "p", ns, addresses=["10.9.8.10-10.9.8.40"], prefix=24)
    await asyncio.gather(*(cluster.claim(ns, f"c{i}", "p") for i in range(4)))
    await cluster.wait_all_bound(ns, within=20)
    serial = 4
    for spec in edits:
        # claims keep arriving while the pool changes
        arriving = [cluster.claim(ns, f"c{serial + i}", "p") for i in range(2)]
        serial += 2
        _, current, _ = await hostile.call("GET", pool_path("InClusterIPPool", ns, "p"))
        updated = {**current, "spec": spec}
        (status, body, _), *_ = await asyncio.gather(
            hostile.call("PUT", pool_path("InClusterIPPool", ns, "p"), updated), *arriving
        )
        if status == 200:
            hostile.outcomes["edit accepted"] += 1
        else:
            assert clear_rejection(status, body) or status == 409, (
                f"unclear refusal of {spec}: {status} {body}"
            )
            hostile.outcomes[f"edit refused ({status})"] += 1
        for i in range(serial):
            condition = await ready_condition(hostile, ns, f"c{i}")
            assert condition["status"] == "True" or explains(condition, "p"), condition
        await invariants.settle(cluster.client, ns, within=15, label=f"edits {edits}")
    await hostile.canary()


# ---- 3. claims aimed at pools they must not get -----------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    a: str  # namespace with pools "shared", "only-a" and prefix pool "v6-a"
    b: str  # namespace with its own "shared" (another range); the claims live here
    global_pool: str


SCENE: dict[str, Scene] = {}


async def scene(hostile: Hostile) -> Scene:
    if "scene" not in SCENE:
        cluster = hostile.cluster
        a, b = await cluster.namespace("ns-a"), await cluster.namespace("ns-b")
        global_pool = f"global-{uuid.uuid4().hex[:6]}"
        await cluster.pool("InClusterIPPool", "shared", a, addresses=["10.120.0.0/24"], prefix=24)
        await cluster.pool("InClusterIPPool", "only-a", a, addresses=["10.121.0.0/24"], prefix=24)
        await cluster.pool(
            "InClusterPrefixPool", "v6-a", a, prefixes=["fd00:120::/56"], allocationPrefixLength=64
        )
        await cluster.pool("InClusterIPPool", "shared", b, addresses=["10.122.0.0/24"], prefix=24)
        await cluster.pool("GlobalInClusterIPPool", global_pool, None, addresses=["10.123.0.0/24"], prefix=24)
        SCENE["scene"] = Scene(a, b, global_pool)
    return SCENE["scene"]


pool_ref = st.fixed_dictionaries(
    {
        "apiGroup": st.sampled_from([GROUP] * 5 + ["example.com", "", "IPAM.cluster.x-k8s.io"]),
        "kind": st.sampled_from(
            [
                "InClusterIPPool",
                "GlobalInClusterIPPool",
                "InClusterPrefixPool",
                "GlobalInClusterPrefixPool",
                "Foo",
                "inclusterippool",
            ]
        ),
        "name": st.sampled_from(["shared", "shared", "only-a", "v6-a", "GLOBAL", "GLOBAL", "missing", ""]),
    }
)


def expected_range(ref: dict[str, Any], scene: Scene) -> str | None:
    """Where an address for this poolRef may come from, for a claim in namespace B (None: nowhere)."""
    if ref["apiGroup"] != GROUP:
        return None
    if ref["kind"] == "InClusterIPPool" and ref["name"] == "shared":
        return "10.122.0.0/24"  # B's own pool of that name, never A's
    if ref["kind"] == "GlobalInClusterIPPool" and ref["name"] == scene.global_pool:
        return "10.123.0.0/24"
    return None


async def create_or_refusal(hostile: Hostile, body: dict[str, Any], namespace: str) -> ApiError | None:
    try:
        await hostile.cluster.client.create(CLAIMS, body, namespace)
    except ApiError as exc:
        return exc
    return None


@settings(EXAMPLES, max_examples=12)
@given(refs=st.lists(pool_ref, min_size=1, max_size=5))
async def test_claims_get_addresses_only_from_pools_they_can_reach(
    hostile: Hostile, refs: list[dict[str, Any]]
) -> None:
    cluster = hostile.cluster
    world = await scene(hostile)
    made: list[tuple[str, dict[str, Any]]] = []
    for drawn in refs:
        ref = {**drawn, "name": world.global_pool if drawn["name"] == "GLOBAL" else drawn["name"]}
        name = f"c-{uuid.uuid4().hex[:8]}"
        body = claim_body(name, ref["name"], ref["kind"])
        body["spec"]["poolRef"]["apiGroup"] = ref["apiGroup"]
        refusal = await create_or_refusal(hostile, body, world.b)
        if refusal is not None:
            assert refusal.status == 422, refusal
            assert "spec.poolRef" in refusal.message, refusal
            hostile.outcomes["claim refused by the schema"] += 1
            continue
        made.append((name, ref))
    await hostile.canary()
    for name, ref in made:
        ours = ref["apiGroup"] == GROUP and ref["kind"] in (
            "InClusterIPPool",
            "GlobalInClusterIPPool",
            "InClusterPrefixPool",
            "GlobalInClusterPrefixPool",
        )
        allowed = expected_range(ref, world)
        if not ours:
            claim = await cluster.client.get(CLAIMS, name, world.b)
            assert not claim["metadata"].get("finalizers"), f"a foreign claim was touched: {claim}"
            assert not (claim.get("status") or {}).get("conditions"), claim
            hostile.outcomes["foreign claim left alone"] += 1
            continue
        condition = await ready_condition(hostile, world.b, name)
        if allowed is None:
            assert explains(condition, ref["name"]), (ref, condition)
            assert condition["reason"] == "PoolNotReady", (ref, condition)
            hostile.outcomes["claim on an unreachable pool: PoolNotReady"] += 1
        else:
            assert condition["status"] == "True", (ref, condition)
            address = await cluster.client.get(ADDRESSES, name, world.b)
            assert ipaddress.ip_address(address["spec"]["address"]) in ipaddress.ip_network(allowed), (
                ref,
                address,
            )
            hostile.outcomes["claim bound from its own namespace's or a global pool"] += 1
    for namespace in (world.a, world.b):
        await invariants.settle(cluster.client, namespace, within=15, label=f"claims {refs}")
    # nothing in B ever came from A's pools
    for address in await cluster.addresses(world.b):
        ip = ipaddress.ip_address(address["spec"]["address"])
        assert ip not in ipaddress.ip_network("10.120.0.0/23"), address
        assert ip.version == 4, address


# ---- 4. squatters ---------------------------------------------------------------------------------------


def planted(
    name: str, namespace: str, address: str, kind: str, pool: str, *, claim: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": ADDRESSES.api_version,
        "kind": "IPAddress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "address": address,
            "prefix": 24,
            "claimRef": {"name": claim or name},
            "poolRef": {"apiGroup": GROUP, "kind": kind, "name": pool},
        },
    }


async def test_squatted_addresses_and_claim_names(hostile: Hostile) -> None:
    cluster = hostile.cluster
    ns, elsewhere = await cluster.namespace("squat"), await cluster.namespace("squat-x")
    shared = f"squat-global-{uuid.uuid4().hex[:6]}"
    await cluster.pool("InClusterIPPool", "p", ns, addresses=["10.130.0.1-10.130.0.6"], prefix=24)
    await cluster.pool("InClusterIPPool", "q", ns, addresses=["10.131.0.1-10.131.0.6"], prefix=24)
    await cluster.pool("GlobalInClusterIPPool", shared, None, addresses=["10.132.0.1-10.132.0.3"], prefix=24)
    squatters = [
        planted("squat-ip", ns, "10.130.0.1", "InClusterIPPool", "p", claim="nobody"),  # an address
        planted("adopt-me", ns, "10.130.0.4", "InClusterIPPool", "p"),  # a claim's name, right pool
        planted("wrong-pool", ns, "10.131.0.1", "InClusterIPPool", "q"),  # a claim's name, other pool
        planted("squat-v6", ns, "fd00::1", "InClusterIPPool", "p", claim="nobody"),  # another family
        planted("squat-junk", ns, "not-an-ip", "InClusterIPPool", "p", claim="nobody"),  # garbage
        planted("squat-global", elsewhere, "10.132.0.1", "GlobalInClusterIPPool", shared, claim="nobody"),
    ]
    for body in squatters:
        await cluster.client.create(ADDRESSES, body, body["metadata"]["namespace"])
    planted_names = {b["metadata"]["name"] for b in squatters} - {"adopt-me"}

    await cluster.claim(ns, "fresh", "p")
    await cluster.claim(ns, "adopt-me", "p")
    await cluster.claim(ns, "wrong-pool", "p")
    await cluster.claim(ns, "global-claim", shared, kind="GlobalInClusterIPPool")

    assert (await ready_condition(hostile, ns, "fresh"))["status"] == "True"
    assert (await cluster.client.get(ADDRESSES, "fresh", ns))["spec"]["address"] == "10.130.0.2"
    assert (await ready_condition(hostile, ns, "adopt-me"))["status"] == "True"
    adopted = await cluster.client.get(ADDRESSES, "adopt-me", ns)
    assert adopted["spec"]["address"] == "10.130.0.4"
    assert any(o["kind"] == "IPAddressClaim" for o in adopted["metadata"].get("ownerReferences") or [])
    refused = await ready_condition(hostile, ns, "wrong-pool")
    assert refused["reason"] == "AllocationFailed", refused
    assert "another pool" in refused["message"], refused
    assert (await ready_condition(hostile, ns, "global-claim"))["status"] == "True"
    assert (await cluster.client.get(ADDRESSES, "global-claim", ns))["spec"]["address"] == "10.132.0.2"

    def about_a_squatter(finding: Finding) -> bool:
        return finding.objects[0].name in planted_names or (
            finding.kind is FindingKind.UNBOUND_CLAIM and finding.objects[0].name == "wrong-pool"
        )

    verdict = await invariants.settle(
        cluster.client, ns, within=15, ignore=about_a_squatter, label="squatters"
    )
    kinds = Counter((f.kind.value, f.objects[0].name) for f in verdict.report.findings)
    # the audit names every planted object for what it is
    assert ("orphaned-address", "squat-ip") in kinds
    assert ("out-of-range", "squat-v6") in kinds
    assert ("out-of-range", "squat-junk") in kinds
    await hostile.canary()
    hostile.outcomes["squatters refused or adopted"] += len(squatters)

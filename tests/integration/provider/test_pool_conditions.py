"""Pool conditions through the real apiserver with the provider running: Ready (the spec is in use, at which
generation, or why not) and Available (an address is free), and the columns `kubectl get` shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from incluster_ipam.api.constants import GROUP
from incluster_ipam.kube import Resource

from .conftest import CLAIMS, GLOBAL_IP_POOLS, IP_POOLS, PREFIX_POOLS, Harness, eventually

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
Check = Callable[[dict[str, dict[str, Any]]], bool]


def conditions_of(pool: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((pool or {}).get("status") or {}).get("conditions") or []}


async def settled(
    h: Harness, resource: Resource, name: str, namespace: str | None, check: Check, *, what: str
) -> dict[str, Any]:
    """The pool once its conditions pass `check` (the provider writes status asynchronously)."""

    seen: list[Any] = [None]

    async def probe() -> dict[str, Any] | None:
        pool = seen[0] = await h.get(resource, name, namespace)
        return pool if pool is not None and check(conditions_of(pool)) else None

    try:
        return await eventually(probe, 20, f"{resource.kind} {namespace}/{name}: {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the pool's status: {(seen[0] or {}).get('status')}") from None


def status_is(ready: str, available: str, generation: int | None = None) -> Check:
    def check(found: dict[str, dict[str, Any]]) -> bool:
        if "Ready" not in found or "Available" not in found:
            return False
        if (found["Ready"]["status"], found["Available"]["status"]) != (ready, available):
            return False
        return generation is None or all(c["observedGeneration"] == generation for c in found.values())

    return check


async def claim(h: Harness, namespace: str, name: str, pool: str, kind: str) -> None:
    await h.claim(namespace, name, pool, kind=kind)
    await h.bound_address(namespace, name)


@pytest.mark.parametrize("scope", ["namespaced", "global"])
async def test_a_good_pool_is_ready_at_its_generation_and_follows_an_update(
    harness: Harness, scope: str
) -> None:
    h = harness
    ns = await h.namespace()
    where, resource = (ns, IP_POOLS) if scope == "namespaced" else (None, GLOBAL_IP_POOLS)
    name = "good" if where else f"good-{ns}"
    net = "10.90.1" if where else "10.90.2"
    created = await h.ip_pool(where, name, addresses=[f"{net}.10-{net}.19"], prefix=24)
    assert created["metadata"]["generation"] == 1
    pool = await settled(
        h, resource, name, where, status_is("True", "True", 1), what="Ready=True at generation 1"
    )
    ready = conditions_of(pool)["Ready"]
    assert ready["reason"] == "SpecInUse"
    assert ready["message"]
    assert conditions_of(pool)["Available"]["reason"] == "AddressesAvailable"
    assert pool["status"]["ipAddresses"] == {"total": 10, "free": 10, "used": 0, "outOfRange": 0}
    since = ready["lastTransitionTime"]

    updated = await h.client.patch(resource, name, {"spec": {"addresses": [f"{net}.10-{net}.29"]}}, where)
    assert updated["metadata"]["generation"] == 2
    pool = await settled(h, resource, name, where, status_is("True", "True", 2), what="observedGeneration 2")
    assert conditions_of(pool)["Ready"]["lastTransitionTime"] == since  # the status did not flip
    assert pool["status"]["ipAddresses"]["total"] == 20


@pytest.mark.parametrize("scope", ["namespaced", "global"])
async def test_a_pool_whose_spec_cannot_be_used_is_not_ready_and_says_which_field(
    harness: Harness, scope: str
) -> None:
    """The session's provider serves no webhooks, so the schema alone admits what the backend refuses (as
    on a cluster where the webhooks are off, or with objects older than them)."""
    h = harness
    ns = await h.namespace()
    where, resource = (ns, IP_POOLS) if scope == "namespaced" else (None, GLOBAL_IP_POOLS)
    kind = resource.kind
    name = "broken" if where else f"broken-{ns}"
    await h.ip_pool(where, name, addresses=["10.90.3.300"], prefix=24)
    pool = await settled(h, resource, name, where, status_is("False", "False", 1), what="Ready=False")
    ready, available = conditions_of(pool)["Ready"], conditions_of(pool)["Available"]
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"] == (
        'spec.addresses: Invalid value: "10.90.3.300": provided address is not a valid IP, range, nor CIDR'
    )
    assert available["reason"] == "PoolNotReady"
    assert "ipAddresses" not in pool["status"]
    # Its claims say it is not ready too; fixing the spec makes it Ready and binds them.
    await h.claim(ns, "waiting", name, kind=kind)
    await eventually(lambda: h.ready_condition(ns, "waiting"), 20, "a condition on the claim")
    await h.client.patch(resource, name, {"spec": {"addresses": ["10.90.3.30"]}}, where)
    await settled(h, resource, name, where, status_is("True", "False", 2), what="fixed, then exhausted")
    assert await h.bound_address(ns, "waiting") == "10.90.3.30"


async def test_an_update_the_backend_refuses_keeps_the_last_valid_spec_and_says_so(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "p", addresses=["10.90.4.10"], prefix=24)
    await settled(h, IP_POOLS, "p", ns, status_is("True", "True", 1), what="Ready")
    await h.client.patch(IP_POOLS, "p", {"spec": {"addresses": ["10.90.4.10", "fd00:90::1"]}}, ns)
    pool = await settled(
        h, IP_POOLS, "p", ns, status_is("False", "True", 2), what="Ready=False at generation 2"
    )
    message = conditions_of(pool)["Ready"]["message"]
    assert message.startswith("spec.addresses: Invalid value:")
    assert "mixed IP families" in message
    assert "last valid spec" in message
    await h.claim(ns, "still", "p")
    assert await h.bound_address(ns, "still") == "10.90.4.10"


@pytest.mark.parametrize("scope", ["namespaced", "global"])
async def test_an_exhausted_pool_says_so_and_recovers_when_a_claim_is_deleted(
    harness: Harness, scope: str
) -> None:
    h = harness
    ns = await h.namespace()
    where, resource = (ns, IP_POOLS) if scope == "namespaced" else (None, GLOBAL_IP_POOLS)
    kind = resource.kind
    name = "small" if where else f"small-{ns}"
    net = "10.90.5" if where else "10.90.6"
    await h.ip_pool(where, name, addresses=[f"{net}.10-{net}.11"], prefix=24)
    await settled(h, resource, name, where, status_is("True", "True"), what="Available")
    await claim(h, ns, "a", name, kind)
    await claim(h, ns, "b", name, kind)
    pool = await settled(h, resource, name, where, status_is("True", "False"), what="exhausted")
    available = conditions_of(pool)["Available"]
    assert available["reason"] == "PoolExhausted"
    assert "all 2 allocatable addresses are in use" in available["message"]
    assert pool["status"]["ipAddresses"]["free"] == 0

    await h.delete_and_wait(CLAIMS, "a", ns)
    pool = await settled(h, resource, name, where, status_is("True", "True"), what="Available again")
    assert pool["status"]["ipAddresses"]["free"] == 1


async def test_prefix_pools_get_the_same_conditions(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    body = {
        "apiVersion": f"{GROUP}/v1alpha2",
        "kind": "InClusterPrefixPool",
        "metadata": {"name": "v6"},
        "spec": {"prefixes": ["fd00:90::/64"], "allocationPrefixLength": 64},
    }
    await h.client.create(PREFIX_POOLS, body, ns)
    await claim(h, ns, "only", "v6", "InClusterPrefixPool")
    pool = await settled(h, PREFIX_POOLS, "v6", ns, status_is("True", "False", 1), what="exhausted")
    assert "all 1 allocatable sub-prefixes are in use" in conditions_of(pool)["Available"]["message"]


async def test_kubectl_get_shows_ready_and_available_after_the_counts(harness: Harness) -> None:
    h = harness
    ns = await h.namespace()
    await h.ip_pool(ns, "full", addresses=["10.90.7.10"], prefix=24)
    await h.ip_pool(ns, "bad", addresses=["10.90.7.300"], prefix=24)
    await claim(h, ns, "x", "full", "InClusterIPPool")
    await settled(h, IP_POOLS, "full", ns, status_is("True", "False"), what="exhausted")
    await settled(h, IP_POOLS, "bad", ns, status_is("False", "False"), what="not ready")
    async with h.plane.session() as http:
        path = f"/apis/{GROUP}/v1alpha2/namespaces/{ns}/inclusterippools"
        async with http.get(path, headers={"Accept": TABLE}) as answer:
            assert answer.status == 200, await answer.text()
            table = await answer.json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Addresses", "Total", "Free", "Used", "Ready", "Available"]
    rows = {row["object"]["metadata"]["name"]: row["cells"] for row in table["rows"]}
    assert rows["full"] == ["full", '["10.90.7.10"]', 1, 0, 1, "True", "False"]
    assert rows["bad"] == ["bad", '["10.90.7.300"]', None, None, None, "False", "False"]

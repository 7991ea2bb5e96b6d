"""In-use protection on update and delete, and overlap warnings, through the real API server
(spec §3.2, §3.3, §3.5, §10.9, §10.10).

IPAddresses are created directly (no provider runs here); the webhook sees them through its informer, so
each test waits until the informer has them before it expects a refusal.
"""

from __future__ import annotations

from typing import Any

import pytest

from incluster_ipam.api.constants import (
    DELETE_FOR_MOVE_ANNOTATION,
    SKIP_VALIDATE_DELETE_ANNOTATION,
    PoolKind,
)
from tests.integration.webhooks.conftest import ADDRESSES, Answer, Webhooks, pool_body, pool_kind

IP_KINDS = [pool_kind("InClusterIPPool"), pool_kind("GlobalInClusterIPPool")]
ALL_KINDS = [*IP_KINDS, pool_kind("InClusterPrefixPool"), pool_kind("GlobalInClusterPrefixPool")]
DELETE_REFUSED = "Pool has IPAddresses allocated. Cannot delete Pool until all IPAddresses have been removed."


def where(kind: PoolKind, namespace: str) -> str | None:
    return namespace if kind.namespaced else None


def denied(kind: PoolKind, message: str) -> str:
    return (
        f'admission webhook "validation.{kind.singular}.ipam.cluster.x-k8s.io" denied the request: {message}'
    )


def assert_bad_request(answer: Answer, kind: PoolKind, message: str) -> None:
    assert (answer.status, answer.body.get("reason"), answer.message) == (
        400,
        "BadRequest",
        denied(kind, message),
    )


async def new_pool(
    hooks: Webhooks, kind: PoolKind, namespace: str, stem: str, spec: dict[str, Any], **meta: Any
) -> str:
    name = hooks.global_name(stem)
    if not kind.namespaced:
        hooks.track(kind, name)
    answer = await hooks.api.create(pool_body(kind, name, spec, namespace=namespace, **meta))
    assert answer.status == 201, answer.body
    return name


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_update_dropping_an_address_in_use_is_refused(
    hooks: Webhooks, namespace: str, other_namespace: str, kind: PoolKind
) -> None:
    spec = {"addresses": ["10.40.0.10-10.40.0.20"], "prefix": 24, "gateway": "10.40.0.1"}
    name = await new_pool(hooks, kind, namespace, "in-use", spec)
    # a global pool's addresses may live in any namespace
    second = namespace if kind.namespaced else other_namespace
    await hooks.ip_address(namespace, f"{name}-a", "10.40.0.12", kind=kind, pool=name)
    await hooks.ip_address(second, f"{name}-b", "10.40.0.15", kind=kind, pool=name)
    await hooks.wait_for_addresses(kind, where(kind, namespace), name, 2)
    current = (await hooks.api.get(kind, name, where(kind, namespace))).body

    # ranges print as netipx does (from-to, also for one address)
    shrunk = {**current, "spec": {**spec, "addresses": ["10.40.0.10-10.40.0.13"]}}
    assert_bad_request(
        await hooks.api.replace(shrunk),
        kind,
        "pool addresses do not contain allocated addresses: [10.40.0.15-10.40.0.15]",
    )
    excluded = {**current, "spec": {**spec, "excludedAddresses": ["10.40.0.11-10.40.0.12", "10.40.0.15"]}}
    assert_bad_request(
        await hooks.api.replace(excluded),
        kind,
        "pool addresses do not contain allocated addresses: [10.40.0.12-10.40.0.12 10.40.0.15-10.40.0.15]",
    )
    gateway = {**current, "spec": {**spec, "gateway": "10.40.0.12"}}
    assert_bad_request(
        await hooks.api.replace(gateway),
        kind,
        "pool addresses do not contain allocated addresses: [10.40.0.12-10.40.0.12]",
    )
    stored = await hooks.api.get(kind, name, where(kind, namespace))
    assert stored.body["spec"] == spec

    # shrinking around the addresses in use is fine
    kept = {**current, "spec": {**spec, "addresses": ["10.40.0.12-10.40.0.15"]}}
    answer = await hooks.api.replace(kept)
    assert answer.status == 200, answer.body
    assert answer.body["spec"]["addresses"] == ["10.40.0.12-10.40.0.15"]


async def test_prefix_pool_update_orphaning_an_allocation_is_refused(hooks: Webhooks, namespace: str) -> None:
    kind = pool_kind("InClusterPrefixPool")
    spec = {"prefixes": ["2001:db8:50::/62"], "allocationPrefixLength": 64}
    name = await new_pool(hooks, kind, namespace, "in-use", spec)
    await hooks.ip_address(namespace, f"{name}-a", "2001:db8:50:2::", kind=kind, pool=name, prefix=64)
    await hooks.wait_for_addresses(kind, namespace, name, 1)
    current = (await hooks.api.get(kind, name, namespace)).body
    narrowed = {**current, "spec": {**spec, "prefixes": ["2001:db8:50::/63"]}}
    assert_bad_request(
        await hooks.api.replace(narrowed),
        kind,
        "existing allocations become non-allocatable: [2001:db8:50:2::]",
    )


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
async def test_delete_with_addresses_is_refused_unless_annotated_for_move(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    if kind.kind.endswith("PrefixPool"):
        net = "2001:db8:60:" if kind.namespaced else "2001:db8:61:"
        spec: dict[str, Any] = {"prefixes": [f"{net}:/56"]}
        address, prefix = f"{net}1::", 64
    else:
        spec, address, prefix = {"addresses": ["10.60.0.0/24"], "prefix": 24}, "10.60.0.7", 24

    plain = await new_pool(hooks, kind, namespace, "plain", spec)
    skip = await new_pool(
        hooks, kind, namespace, "skip", spec, annotations={SKIP_VALIDATE_DELETE_ANNOTATION: ""}
    )
    move = await new_pool(
        hooks, kind, namespace, "move", spec, annotations={DELETE_FOR_MOVE_ANNOTATION: "true"}
    )
    for name in (plain, skip, move):
        await hooks.ip_address(namespace, f"{name}-ip", address, kind=kind, pool=name, prefix=prefix)
    for name in (plain, skip, move):
        await hooks.wait_for_addresses(kind, where(kind, namespace), name, 1)

    assert_bad_request(await hooks.api.delete(kind, plain, where(kind, namespace)), kind, DELETE_REFUSED)
    assert (await hooks.api.get(kind, plain, where(kind, namespace))).status == 200
    for name in (skip, move):
        answer = await hooks.api.delete(kind, name, where(kind, namespace))
        assert answer.status == 200, answer.body
        assert (await hooks.api.get(kind, name, where(kind, namespace))).status == 404

    # once its addresses are gone, the plain pool goes too
    await hooks.kube.delete(ADDRESSES, f"{plain}-ip", namespace)
    await hooks.wait_for_addresses(kind, where(kind, namespace), plain, 0)
    answer = await hooks.api.delete(kind, plain, where(kind, namespace))
    assert answer.status == 200, answer.body


async def test_overlap_warnings_name_the_other_pool(
    hooks: Webhooks, namespace: str, other_namespace: str
) -> None:
    ip_pool, global_pool = pool_kind("InClusterIPPool"), pool_kind("GlobalInClusterIPPool")
    first = await new_pool(
        hooks, ip_pool, namespace, "first", {"addresses": ["10.70.0.10-10.70.0.20"], "prefix": 24}
    )
    await hooks.wait_for_pool(ip_pool, namespace, first)

    second = hooks.global_name("second")
    answer = await hooks.api.create(
        pool_body(
            ip_pool, second, {"addresses": ["10.70.0.15-10.70.0.30"], "prefix": 24}, namespace=namespace
        )
    )
    assert answer.status == 201, answer.body
    assert answer.warnings == [
        f'addresses overlap with InClusterIPPool "{namespace}/{first}" (10.70.0.15-10.70.0.20); '
        "claims of both pools may receive the same address"
    ]

    # pools of another namespace never meet: no warning
    answer = await hooks.api.create(
        pool_body(
            ip_pool,
            "elsewhere",
            {"addresses": ["10.70.0.10-10.70.0.20"], "prefix": 24},
            namespace=other_namespace,
        )
    )
    assert (answer.status, answer.warnings) == (201, [])

    # a global pool is reachable from every namespace: it names every pool it overlaps
    await hooks.wait_for_pool(ip_pool, namespace, second)
    await hooks.wait_for_pool(ip_pool, other_namespace, "elsewhere")
    name = await new_pool(
        hooks, global_pool, namespace, "global", {"addresses": ["10.70.0.18-10.70.0.40"], "prefix": 24}
    )
    stored = await hooks.api.get(global_pool, name, None)
    answer = await hooks.api.replace(stored.body)  # an update warns as well
    assert answer.status == 200, answer.body
    assert answer.warnings == sorted(  # sorted by pool
        [
            f'addresses overlap with InClusterIPPool "{namespace}/{first}" (10.70.0.18-10.70.0.20); '
            "claims of both pools may receive the same address",
            f'addresses overlap with InClusterIPPool "{namespace}/{second}" (10.70.0.18-10.70.0.30); '
            "claims of both pools may receive the same address",
            f'addresses overlap with InClusterIPPool "{other_namespace}/elsewhere" (10.70.0.18-10.70.0.20); '
            "claims of both pools may receive the same address",
        ]
    )

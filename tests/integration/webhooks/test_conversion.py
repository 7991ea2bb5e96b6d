"""v1alpha1 <-> v1alpha2 conversion through the real API server (spec §2.3, §2.4, §10.3, §10.4), and the
printer columns `kubectl get` shows (the Table format kubectl requests)."""

from __future__ import annotations

from typing import Any

import pytest

from incluster_ipam.api.constants import CONVERSION_DATA_ANNOTATION, PoolKind
from tests.integration.webhooks.conftest import Webhooks, pool_body, pool_kind, pool_path

IP_KINDS = [pool_kind("InClusterIPPool"), pool_kind("GlobalInClusterIPPool")]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def where(kind: PoolKind, namespace: str) -> str | None:
    return namespace if kind.namespaced else None


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_v1alpha1_subnet_reads_back_as_v1alpha2_range(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    name = hooks.global_name("subnet")
    if not kind.namespaced:
        hooks.track(kind, name)
    created = await hooks.api.create(
        pool_body(kind, name, {"subnet": "1.1.1.0/24"}, namespace=namespace, version="v1alpha1")
    )
    assert created.status == 201, created.body
    assert created.body["apiVersion"] == "ipam.cluster.x-k8s.io/v1alpha1"

    hub = await hooks.api.get(kind, name, where(kind, namespace))
    assert hub.status == 200, hub.body
    assert hub.body["apiVersion"] == "ipam.cluster.x-k8s.io/v1alpha2"
    assert hub.body["spec"] == {"addresses": ["1.1.1.1-1.1.1.254"], "prefix": 24}

    # and back down: the v1alpha1 spec as it was written
    spoke = await hooks.api.get(kind, name, where(kind, namespace), version="v1alpha1")
    assert spoke.body["spec"] == {"subnet": "1.1.1.0/24"}


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_v1alpha2_only_fields_survive_an_update_through_v1alpha1(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    name = hooks.global_name("lossless")
    if not kind.namespaced:
        hooks.track(kind, name)
    spec: dict[str, Any] = {
        "addresses": ["10.20.0.0/24"],
        "prefix": 24,
        "gateway": "10.20.0.1",
        "excludedAddresses": ["10.20.0.100-10.20.0.110"],
        "allocateReservedIPAddresses": True,
        "addressReuseGracePeriodSeconds": 30,
    }
    created = await hooks.api.create(pool_body(kind, name, spec, namespace=namespace))
    assert created.status == 201, created.body

    # read-modify-write through the deprecated version, as an old client would
    old = await hooks.api.get(kind, name, where(kind, namespace), version="v1alpha1")
    assert old.status == 200, old.body
    assert old.body["spec"] == {"addresses": ["10.20.0.0/24"], "prefix": 24, "gateway": "10.20.0.1"}
    assert CONVERSION_DATA_ANNOTATION in old.body["metadata"]["annotations"]
    edited = {**old.body, "spec": {**old.body["spec"], "gateway": "10.20.0.254"}}
    replaced = await hooks.api.replace(edited)
    assert replaced.status == 200, replaced.body

    hub = await hooks.api.get(kind, name, where(kind, namespace))
    assert hub.body["spec"] == {**spec, "gateway": "10.20.0.254"}
    assert CONVERSION_DATA_ANNOTATION not in (hub.body["metadata"].get("annotations") or {})


CONDITIONS = [
    {
        "type": "Ready",
        "status": "False",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-12-01T10:00:00Z",
        "reason": "InvalidSpec",
        "message": "spec.addresses: why",
    },
    {
        "type": "Available",
        "status": "False",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-12-01T10:00:00Z",
        "reason": "PoolNotReady",
        "message": "none",
    },
]


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_status_conditions_survive_reads_and_writes_through_v1alpha1(
    hooks: Webhooks, namespace: str, kind: PoolKind
) -> None:
    """Both versions carry status.conditions: a round trip through the deprecated version keeps them, and
    status written through it reads back the same in the hub."""
    name = hooks.global_name("conditions")
    if not kind.namespaced:
        hooks.track(kind, name)
    spec = {"subnet": "10.21.0.0/24"}
    created = await hooks.api.create(pool_body(kind, name, spec, namespace=namespace, version="v1alpha1"))
    assert created.status == 201, created.body
    ns = where(kind, namespace)
    status_path = pool_path(kind, "v1alpha2", ns, name) + "/status"
    written = await hooks.api.call(
        "PATCH",
        status_path,
        {"status": {"conditions": CONDITIONS}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert written.status == 200, written.body
    old = await hooks.api.get(kind, name, ns, version="v1alpha1")
    assert old.body["status"]["conditions"] == CONDITIONS
    # an old client's read-modify-write of the main resource, then of the status
    relabelled = {**old.body, "metadata": {**old.body["metadata"], "labels": {"edited": "yes"}}}
    assert (await hooks.api.replace(relabelled)).status == 200
    hub = await hooks.api.get(kind, name, ns)
    assert hub.body["status"]["conditions"] == CONDITIONS
    flipped = [{**CONDITIONS[0], "status": "True", "reason": "SpecInUse"}, CONDITIONS[1]]
    old = await hooks.api.get(kind, name, ns, version="v1alpha1")
    body = {**old.body, "status": {**old.body["status"], "conditions": flipped}}
    put = await hooks.api.call("PUT", pool_path(kind, "v1alpha1", ns, name) + "/status", body)
    assert put.status == 200, put.body
    hub = await hooks.api.get(kind, name, ns)
    assert hub.body["status"]["conditions"] == flipped


async def table(
    hooks: Webhooks, kind: PoolKind, namespace: str, version: str
) -> tuple[list[str], dict[str, list[Any]]]:
    """Column names and each row's cells (by object name) of `kubectl get <plural>` (kubectl prints the
    names upper-cased: NAME, ADDRESSES, ...; absent values, None here, as <none>)."""
    path = f"/apis/ipam.cluster.x-k8s.io/{version}/"
    path += f"namespaces/{namespace}/{kind.plural}" if kind.namespaced else kind.plural
    answer = await hooks.api.call("GET", path, headers={"Accept": TABLE})
    assert answer.status == 200, answer.body
    assert answer.body["kind"] == "Table"
    columns = [c["name"] for c in answer.body["columnDefinitions"] if c.get("priority", 0) == 0]
    rows = {row["object"]["metadata"]["name"]: row["cells"] for row in answer.body["rows"]}
    return columns, rows


@pytest.mark.parametrize("kind", IP_KINDS, ids=lambda k: k.kind)
async def test_ip_pool_printer_columns(hooks: Webhooks, namespace: str, kind: PoolKind) -> None:
    name = hooks.global_name("columns")
    if not kind.namespaced:
        hooks.track(kind, name)
    spec = {"subnet": "10.30.0.0/24", "start": "10.30.0.10", "end": "10.30.0.20"}
    created = await hooks.api.create(pool_body(kind, name, spec, namespace=namespace, version="v1alpha1"))
    assert created.status == 201, created.body

    columns, rows = await table(hooks, kind, namespace, "v1alpha2")
    assert columns == ["Name", "Addresses", "Total", "Free", "Used", "Ready", "Available"]
    assert rows[name][:2] == [name, '["10.30.0.10-10.30.0.20"]']

    columns, rows = await table(hooks, kind, namespace, "v1alpha1")
    if kind.namespaced:
        assert columns == [
            "Name",
            "Subnet",
            "First",
            "Last",
            "Addresses",
            "Total",
            "Free",
            "Used",
            "Ready",
            "Available",
        ]
        assert rows[name][:5] == [name, "10.30.0.0/24", "10.30.0.10", "10.30.0.20", None]
    else:
        assert columns == ["Name", "Subnet", "First", "Last", "Total", "Free", "Used", "Ready", "Available"]
        assert rows[name][:4] == [name, "10.30.0.0/24", "10.30.0.10", "10.30.0.20"]


@pytest.mark.parametrize(
    "kind", [pool_kind("InClusterPrefixPool"), pool_kind("GlobalInClusterPrefixPool")], ids=lambda k: k.kind
)
async def test_prefix_pool_printer_columns(hooks: Webhooks, namespace: str, kind: PoolKind) -> None:
    name = hooks.global_name("columns")
    if not kind.namespaced:
        hooks.track(kind, name)
    net = "2001:db8:40" if kind.namespaced else "2001:db8:41"
    created = await hooks.api.create(
        pool_body(kind, name, {"prefixes": [f"{net}::/48"]}, namespace=namespace)
    )
    assert created.status == 201, created.body
    columns, rows = await table(hooks, kind, namespace, "v1alpha2")
    assert columns == ["Name", "Prefixes", "Total", "Free", "Used", "Ready", "Available"]
    assert rows[name][:2] == [name, f'["{net}::/48"]']

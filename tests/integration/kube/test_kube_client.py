"""KubeClient against the real kube-apiserver: CRUD, every patch type, error mapping, pagination, watch,
discovery and service-account token authentication."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import (
    CONFIGMAPS,
    ApiError,
    KubeClient,
    PatchType,
    Resource,
    WatchEvent,
    in_cluster_config,
)
from incluster_ipam.kube import requests as rq
from incluster_ipam.kube.resources import SERVICE_ACCOUNTS
from tests.integration.runtime.conftest import CLAIMS, GROUP, claim


def configmap(name: str, namespace: str, **data: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": {"app": "t"}}, "data": data}


async def test_configmap_crud_and_errors(kube: KubeClient, namespace: str) -> None:
    created = await kube.create(CONFIGMAPS, configmap("a", namespace, x="1"))
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as exists:
        await kube.create(CONFIGMAPS, configmap("a", namespace))
    assert exists.value.is_already_exists

    fetched = await kube.get(CONFIGMAPS, "a", namespace)
    assert fetched["data"] == {"x": "1"}

    fetched["data"]["x"] = "2"
    replaced = await kube.replace(CONFIGMAPS, fetched)
    assert replaced["data"] == {"x": "2"}
    fetched["data"]["x"] = "3"  # still carries the old resourceVersion
    with pytest.raises(ApiError) as conflict:
        await kube.replace(CONFIGMAPS, fetched)
    assert conflict.value.is_conflict

    with pytest.raises(ApiError) as missing:
        await kube.get(CONFIGMAPS, "nope", namespace)
    assert missing.value.is_not_found
    assert missing.value.message == 'configmaps "nope" not found'

    with pytest.raises(ApiError) as wrong_uid:
        await kube.delete(CONFIGMAPS, "a", namespace, uid="00000000-0000-0000-0000-000000000000")
    assert wrong_uid.value.is_conflict
    await kube.delete(
        CONFIGMAPS, "a", namespace, uid=created["metadata"]["uid"], propagation_policy="Background"
    )
    with pytest.raises(ApiError) as deleted:
        await kube.get(CONFIGMAPS, "a", namespace)
    assert deleted.value.is_not_found


async def test_patch_types(kube: KubeClient, namespace: str) -> None:
    await kube.create(CONFIGMAPS, configmap("p", namespace, a="1"))
    merged = await kube.patch(CONFIGMAPS, "p", {"data": {"b": "2", "a": None}}, namespace)
    assert merged["data"] == {"b": "2"}
    ops = [{"op": "add", "path": "/data/c", "value": "3"}, {"op": "test", "path": "/data/b", "value": "2"}]
    jsoned = await kube.patch(CONFIGMAPS, "p", ops, namespace, patch_type=PatchType.JSON)
    assert jsoned["data"] == {"b": "2", "c": "3"}
    strategic = await kube.patch(
        CONFIGMAPS, "p", {"metadata": {"labels": {"s": "1"}}}, namespace, patch_type=PatchType.STRATEGIC
    )
    assert strategic["metadata"]["labels"] == {"app": "t", "s": "1"}
    failed_test = [{"op": "test", "path": "/data/b", "value": "nope"}]
    with pytest.raises(ApiError) as info:
        await kube.patch(CONFIGMAPS, "p", failed_test, namespace, patch_type=PatchType.JSON)
    assert info.value.status == 422


async def test_server_side_apply_owns_fields(kube: KubeClient, namespace: str) -> None:
    intent = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": namespace}}
    applied = await kube.apply(
        CONFIGMAPS, {**intent, "data": {"k": "mine"}}, field_manager="ipam", force=False
    )
    assert applied["data"] == {"k": "mine"}
    managers = {entry["manager"] for entry in applied["metadata"]["managedFields"]}
    assert managers == {"ipam"}
    with pytest.raises(ApiError) as conflict:
        await kube.apply(CONFIGMAPS, {**intent, "data": {"k": "theirs"}}, field_manager="other", force=False)
    assert conflict.value.is_conflict
    forced = await kube.apply(
        CONFIGMAPS, {**intent, "data": {"k": "theirs"}}, field_manager="other", force=True
    )
    assert forced["data"] == {"k": "theirs"}


async def test_claims_crud_status_invalid_and_pagination(kube: KubeClient, namespace: str) -> None:
    for i in range(5):
        await kube.create(CLAIMS, claim(f"c{i}", namespace, role="worker" if i % 2 else "cp"))
    invalid = claim("bad", namespace)
    del invalid["spec"]["poolRef"]["name"]
    with pytest.raises(ApiError) as info:
        await kube.create(CLAIMS, invalid)
    assert info.value.is_invalid
    assert any("poolRef.name" in cause.get("field", "") for cause in info.value.causes)

    patched = await kube.patch(
        CLAIMS, "c1", {"status": {"addressRef": {"name": "c1"}}}, namespace, subresource="status"
    )
    assert patched["status"]["addressRef"] == {"name": "c1"}

    everything = await kube.list(CLAIMS, namespace, page_size=2)
    assert sorted(o["metadata"]["name"] for o in everything.items) == [f"c{i}" for i in range(5)]
    assert everything.resource_version
    pages = [page async for page in kube.list_pages(CLAIMS, namespace, page_size=2)]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    workers = await kube.list(CLAIMS, namespace, label_selector="role=worker")
    assert sorted(o["metadata"]["name"] for o in workers.items) == ["c1", "c3"]
    by_field = await kube.list(CLAIMS, namespace, field_selector="metadata.name=c4")
    assert [o["metadata"]["name"] for o in by_field.items] == ["c4"]

    await kube.delete(CLAIMS, "c0", namespace)
    assert len((await kube.list(CLAIMS, namespace)).items) == 4


async def test_watch_streams_changes(kube: KubeClient, namespace: str) -> None:
    start = await kube.list(CLAIMS, namespace)
    events: list[WatchEvent] = []

    async def collect() -> None:
        async with kube.watch(
            CLAIMS, namespace, resource_version=start.resource_version, timeout_seconds=20
        ) as stream:
            async for event in stream:
                events.append(event)
                if len(events) == 3:
                    return

    watcher = asyncio.create_task(collect())
    await kube.create(CLAIMS, claim("w1", namespace))
    await kube.patch(CLAIMS, "w1", {"metadata": {"labels": {"x": "y"}}}, namespace)
    await kube.delete(CLAIMS, "w1", namespace)
    await asyncio.wait_for(watcher, 20)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("DELETED", "w1"),
    ]
    versions = [int(e.resource_version or 0) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(start.resource_version)


async def test_discovery_reports_served_versions(kube: KubeClient) -> None:
    claim_versions = await kube.server_versions(GROUP, "ipaddressclaims")
    assert claim_versions[0] == "v1beta2"  # the preferred (storage) version first
    assert "v1beta1" in claim_versions
    assert await kube.server_versions(GROUP, "nonexistent") == []
    assert await kube.server_versions("no.such.group.example.com") == []
    assert await kube.server_versions("") == ["v1"]


SELF_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False)


async def test_service_account_token_from_a_file(
    kube: KubeClient, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The in-cluster path: a token file plus CA and namespace, as kubelet mounts them."""
    await kube.create(SERVICE_ACCOUNTS, {"metadata": {"name": "ipam", "namespace": namespace}})
    token_request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    path = rq.resource_path(SERVICE_ACCOUNTS, namespace, "ipam", "token")
    issued = await kube.request(rq.Request("POST", path, json.dumps(token_request).encode(), rq.JSON))
    (tmp_path / "token").write_text(issued["status"]["token"])
    (tmp_path / "ca.crt").write_bytes(control_plane.ca_file.read_bytes())
    (tmp_path / "namespace").write_text(namespace)
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    config = in_cluster_config({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}, tmp_path)
    assert config.namespace == namespace
    async with KubeClient(config) as as_account:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        who = await as_account.create(SELF_REVIEWS, review)
        assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:ipam"
        with pytest.raises(ApiError) as forbidden:
            await as_account.list(CONFIGMAPS, namespace)
        assert forbidden.value.is_forbidden

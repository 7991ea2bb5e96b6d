"""The local control plane is real: Cluster API objects pass through kube-apiserver, etcd and CRD schemas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from incluster_ipam.devcluster import OLD_CAPI, ControlPlane

from .conftest import api_client_for

GROUP = "ipam.cluster.x-k8s.io"
V1BETA2 = "v1beta2"


def claim(name: str, pool: str = "pool-a") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{V1BETA2}",
        "kind": "IPAddressClaim",
        "metadata": {"name": name},
        "spec": {"poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": pool}},
    }


def address(name: str, ip: str, prefix: int = 24) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{V1BETA2}",
        "kind": "IPAddress",
        "metadata": {"name": name, "labels": {"example.com/role": "worker"}},
        "spec": {
            "address": ip,
            "prefix": prefix,
            "gateway": "10.0.0.1",
            "claimRef": {"name": name},
            "poolRef": {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool-a"},
        },
    }


async def test_apiserver_reports_the_version_we_built(control_plane: ControlPlane) -> None:
    async with control_plane.session() as http, http.get("/version") as resp:
        info = await resp.json()
    assert info["major"] == "1"
    assert info["gitVersion"].startswith("v1.37.")


async def test_cluster_api_crds_are_installed_and_established(api_client: client.ApiClient) -> None:
    crds = await client.ApiextensionsV1Api(api_client).list_custom_resource_definition()
    by_name = {crd.metadata.name: crd for crd in crds.items}
    for name in (
        "clusters.cluster.x-k8s.io",
        "ipaddressclaims.ipam.cluster.x-k8s.io",
        "ipaddresses.ipam.cluster.x-k8s.io",
    ):
        assert name in by_name, f"{name} missing from {sorted(by_name)}"
        conditions = {c.type: c.status for c in by_name[name].status.conditions}
        assert conditions.get("Established") == "True"
    claim_versions = {
        v.name: v.storage for v in by_name["ipaddressclaims.ipam.cluster.x-k8s.io"].spec.versions
    }
    assert claim_versions.get(V1BETA2) is True, claim_versions


async def test_claim_create_read_list_and_watch(api_client: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api_client)
    created = await custom.create_namespaced_custom_object(
        GROUP, V1BETA2, namespace, "ipaddressclaims", claim("c1")
    )
    assert created["metadata"]["uid"]

    events: list[tuple[str, str]] = []

    async def collect() -> None:
        async with watch.Watch() as w:
            stream = w.stream(
                custom.list_namespaced_custom_object,
                GROUP,
                V1BETA2,
                namespace,
                "ipaddressclaims",
                resource_version=created["metadata"]["resourceVersion"],
                timeout_seconds=20,
            )
            async for event in stream:
                events.append((event["type"], event["object"]["metadata"]["name"]))
                if len(events) == 2:
                    return

    watcher = asyncio.create_task(collect())
    await asyncio.sleep(0.2)
    await custom.create_namespaced_custom_object(GROUP, V1BETA2, namespace, "ipaddressclaims", claim("c2"))
    await custom.patch_namespaced_custom_object_status(
        GROUP,
        V1BETA2,
        namespace,
        "ipaddressclaims",
        "c1",
        {"status": {"addressRef": {"name": "c1"}}},
        _content_type="application/merge-patch+json",
    )
    await asyncio.wait_for(watcher, 20)
    assert events == [("ADDED", "c2"), ("MODIFIED", "c1")]

    read = await custom.get_namespaced_custom_object(GROUP, V1BETA2, namespace, "ipaddressclaims", "c1")
    assert read["spec"]["poolRef"] == {"apiGroup": GROUP, "kind": "InClusterIPPool", "name": "pool-a"}
    assert read["status"]["addressRef"] == {"name": "c1"}
    listed = await custom.list_namespaced_custom_object(GROUP, V1BETA2, namespace, "ipaddressclaims")
    assert sorted(item["metadata"]["name"] for item in listed["items"]) == ["c1", "c2"]


async def test_ipaddress_create_read_and_list_by_label(api_client: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api_client)
    await custom.create_namespaced_custom_object(
        GROUP, V1BETA2, namespace, "ipaddresses", address("a1", "10.0.0.5")
    )
    got = await custom.get_namespaced_custom_object(GROUP, V1BETA2, namespace, "ipaddresses", "a1")
    assert got["spec"]["address"] == "10.0.0.5"
    assert got["spec"]["prefix"] == 24
    listed = await custom.list_namespaced_custom_object(
        GROUP, V1BETA2, namespace, "ipaddresses", label_selector="example.com/role=worker"
    )
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a1"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda obj: obj["spec"].update(prefix=129), "spec.prefix"),
        (lambda obj: obj["spec"].pop("address"), "spec.address"),
        (lambda obj: obj["spec"]["poolRef"].pop("kind"), "spec.poolRef.kind"),
    ],
    ids=["prefix-over-128", "address-missing", "poolref-kind-missing"],
)
async def test_crd_schema_rejects_malformed_ipaddress(
    api_client: client.ApiClient, namespace: str, mutate: Any, field: str
) -> None:
    body = address("bad", "10.0.0.9")
    mutate(body)
    custom = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as raised:
        await custom.create_namespaced_custom_object(GROUP, V1BETA2, namespace, "ipaddresses", body)
    assert raised.value.status == 422
    assert field in raised.value.body


async def test_kubeconfig_file_works_with_a_standard_client(control_plane: ControlPlane) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(control_plane.kubeconfig_path), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api:
        crds = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
    assert "ipaddresses.ipam.cluster.x-k8s.io" in {crd.metadata.name for crd in crds.items}


async def test_older_cluster_api_serves_only_the_v1beta1_ipam_contract() -> None:
    async with ControlPlane(capi_version=OLD_CAPI) as plane:
        api = api_client_for(plane)
        try:
            crd = await client.ApiextensionsV1Api(api).read_custom_resource_definition(
                "ipaddressclaims.ipam.cluster.x-k8s.io"
            )
            served = {v.name for v in crd.spec.versions if v.served}
            assert "v1beta1" in served
            assert V1BETA2 not in served
            body = claim("old") | {"apiVersion": f"{GROUP}/v1beta1"}
            body["spec"]["poolRef"]["apiGroup"] = GROUP
            await client.CoreV1Api(api).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="old"))
            )
            made = await client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, "v1beta1", "old", "ipaddressclaims", body
            )
            assert made["apiVersion"] == f"{GROUP}/v1beta1"
        finally:
            await api.close()

"""Request building: paths, query strings and bodies for every verb, without I/O."""

from __future__ import annotations

import json

import pytest

from incluster_ipam.kube import CONFIGMAPS, NAMESPACES, PatchType, Resource
from incluster_ipam.kube import requests as rq

CLAIMS = Resource("ipam.cluster.x-k8s.io", "v1beta2", "ipaddressclaims", "IPAddressClaim", namespaced=True)


def test_paths_for_core_group_namespaced_and_cluster_scoped() -> None:
    assert rq.resource_path(CONFIGMAPS, "ns") == "/api/v1/namespaces/ns/configmaps"
    assert rq.resource_path(CONFIGMAPS) == "/api/v1/configmaps"
    assert rq.resource_path(CONFIGMAPS, "ns", "a") == "/api/v1/namespaces/ns/configmaps/a"
    assert (
        rq.resource_path(CLAIMS, "ns", "c1", "status")
        == "/apis/ipam.cluster.x-k8s.io/v1beta2/namespaces/ns/ipaddressclaims/c1/status"
    )
    assert rq.resource_path(NAMESPACES, None, "kube-system") == "/api/v1/namespaces/kube-system"


def test_path_rules_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        rq.resource_path(NAMESPACES, "ns")
    with pytest.raises(ValueError, match="subresource"):
        rq.resource_path(CONFIGMAPS, "ns", None, "status")
    with pytest.raises(ValueError, match="namespace is required"):
        rq.get_request(CONFIGMAPS, "a")


def test_names_are_percent_encoded() -> None:
    assert rq.get_request(CONFIGMAPS, "a b/c", "ns").path == "/api/v1/namespaces/ns/configmaps/a%20b%2Fc"


def test_list_query_parameters() -> None:
    request = rq.list_request(
        CLAIMS,
        "ns",
        label_selector="cluster.x-k8s.io/watch-filter=blue,env in (a,b)",
        field_selector="metadata.name=c1",
        resource_version="42",
        limit=500,
        continue_token="tok",
        timeout_seconds=10,
    )
    assert request.method == "GET"
    assert request.path == "/apis/ipam.cluster.x-k8s.io/v1beta2/namespaces/ns/ipaddressclaims"
    assert request.query == {
        "labelSelector": "cluster.x-k8s.io/watch-filter=blue,env in (a,b)",
        "fieldSelector": "metadata.name=c1",
        "resourceVersion": "42",
        "limit": "500",
        "continue": "tok",
        "timeoutSeconds": "10",
    }
    assert " " not in request.target  # fully encoded, sent as is


def test_list_without_options_has_no_query() -> None:
    assert rq.list_request(CONFIGMAPS).target == "/api/v1/configmaps"


def test_watch_query_parameters() -> None:
    request = rq.watch_request(CONFIGMAPS, "ns", resource_version="7", timeout_seconds=300)
    assert request.query == {
        "watch": "true",
        "resourceVersion": "7",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "300",
    }
    bare = rq.watch_request(CONFIGMAPS, allow_bookmarks=False)
    assert bare.target == "/api/v1/configmaps?watch=true"


def test_create_takes_namespace_from_the_object() -> None:
    obj = {"metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}
    request = rq.create_request(CONFIGMAPS, obj, field_manager="ipam", dry_run=True)
    assert (request.method, request.path) == ("POST", "/api/v1/namespaces/ns/configmaps")
    assert request.query == {"fieldManager": "ipam", "dryRun": "All"}
    assert json.loads(request.body or b"") == obj
    assert request.content_type == "application/json"
    with pytest.raises(ValueError, match="namespace is required"):
        rq.create_request(CONFIGMAPS, {"metadata": {"name": "a"}})


def test_replace_targets_the_object_or_its_subresource() -> None:
    obj = {"metadata": {"name": "c1", "namespace": "ns", "resourceVersion": "5"}}
    request = rq.replace_request(CLAIMS, obj, subresource="status")
    assert request.method == "PUT"
    assert request.path.endswith("/namespaces/ns/ipaddressclaims/c1/status")


@pytest.mark.parametrize(
    ("patch_type", "body", "content_type"),
    [
        (PatchType.MERGE, {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json"),
        (PatchType.JSON, [{"op": "add", "path": "/data/x", "value": "1"}], "application/json-patch+json"),
        (PatchType.STRATEGIC, {"data": {"x": "1"}}, "application/strategic-merge-patch+json"),
    ],
)
def test_patch_content_types(patch_type: PatchType, body: object, content_type: str) -> None:
    request = rq.patch_request(CONFIGMAPS, "a", body, "ns", patch_type=patch_type)  # type: ignore[arg-type]
    assert request.method == "PATCH"
    assert request.content_type == content_type
    assert json.loads(request.body or b"") == body


def test_server_side_apply_needs_field_manager_and_may_force() -> None:
    request = rq.patch_request(
        CONFIGMAPS, "a", {"data": {}}, "ns", patch_type=PatchType.APPLY, field_manager="ipam", force=True
    )
    assert request.content_type == "application/apply-patch+yaml"
    assert request.query == {"fieldManager": "ipam", "force": "true"}
    with pytest.raises(ValueError, match="field manager"):
        rq.patch_request(CONFIGMAPS, "a", {}, "ns", patch_type=PatchType.APPLY)
    with pytest.raises(ValueError, match="force"):
        rq.patch_request(CONFIGMAPS, "a", {}, "ns", force=True)
    with pytest.raises(TypeError, match="list of operations"):
        rq.patch_request(CONFIGMAPS, "a", {}, "ns", patch_type=PatchType.JSON)


def test_delete_carries_preconditions_and_propagation_in_the_body() -> None:
    request = rq.delete_request(
        CLAIMS,
        "c1",
        "ns",
        uid="u-1",
        resource_version="9",
        propagation_policy="Foreground",
        grace_period_seconds=0,
    )
    assert request.method == "DELETE"
    assert json.loads(request.body or b"") == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "preconditions": {"uid": "u-1", "resourceVersion": "9"},
        "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0,
    }
    assert json.loads(rq.delete_request(CONFIGMAPS, "a", "ns").body or b"") == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
    }
    with pytest.raises(ValueError, match="propagation"):
        rq.delete_request(CONFIGMAPS, "a", "ns", propagation_policy="Sometimes")


def test_discovery_paths() -> None:
    assert rq.group_discovery_request("ipam.cluster.x-k8s.io").path == "/apis/ipam.cluster.x-k8s.io"
    assert rq.group_discovery_request("").path == "/api"
    assert rq.resources_discovery_request("ipam.cluster.x-k8s.io", "v1beta1").path == (
        "/apis/ipam.cluster.x-k8s.io/v1beta1"
    )
    assert rq.resources_discovery_request("", "v1").path == "/api/v1"


def test_resource_helpers() -> None:
    assert CLAIMS.api_version == "ipam.cluster.x-k8s.io/v1beta2"
    assert CONFIGMAPS.api_version == "v1"
    assert CLAIMS.with_version("v1beta1").base_path == "/apis/ipam.cluster.x-k8s.io/v1beta1"

"""Finding 12 of the December review: the informer projections kept every label and the whole spec and
status of claims, IPAddresses and Clusters, so a tenant could fill the provider's memory with label-stuffed
objects (claims of a foreign pool kind included). A projection keeps only what the provider reads."""

from __future__ import annotations

from typing import Any

import orjson

from incluster_ipam.api.constants import GLOBAL_IN_CLUSTER_IP_POOL
from incluster_ipam.capi.objects import CLUSTER_NAME_LABEL, WATCH_FILTER_LABEL, project
from incluster_ipam.webhooks.admission import ROUTES, PoolAdmission, parse_review
from tests.unit.webhooks.fakes import FakeCluster, pool_object, review

STUFFING = {f"tenant.example.com/label-{i}": "x" * 60 for i in range(10_000)}  # about 1 MB


def size(obj: Any) -> int:
    return len(orjson.dumps(obj))


def claim(pool_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
        "kind": "IPAddressClaim",
        "metadata": {
            "name": "c",
            "namespace": "ns",
            "uid": "u1",
            "resourceVersion": "7",
            "labels": {**STUFFING, CLUSTER_NAME_LABEL: "cl", WATCH_FILTER_LABEL: "w"},
            "annotations": {f"a{i}": "y" * 100 for i in range(1000)},
        },
        "spec": {"poolRef": pool_ref, "clusterName": "cl", "junk": ["z" * 100] * 1000},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "junk": "q" * 100_000},
    }


def test_finding_12_a_label_stuffed_claim_of_ours_keeps_only_what_is_read() -> None:
    ours = claim({"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "p"})
    projected = project(ours)
    assert size(ours) > 1_000_000
    assert size(projected) < 2_000
    labels = projected["metadata"].get("labels")
    assert labels == {CLUSTER_NAME_LABEL: "cl", WATCH_FILTER_LABEL: "w"}
    assert projected["spec"]["poolRef"]["name"] == "p"
    assert projected["spec"]["clusterName"] == "cl"
    assert projected["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


def test_finding_12_a_claim_of_a_foreign_pool_kind_costs_almost_nothing() -> None:
    foreign = claim({"apiGroup": "example.com", "kind": "Foo", "name": "x"})
    assert size(project(foreign)) < 600


def test_finding_12_a_cluster_keeps_its_pause_state_only() -> None:
    cluster = {
        "apiVersion": "cluster.x-k8s.io/v1beta2",
        "kind": "Cluster",
        "metadata": {
            "name": "cl",
            "namespace": "ns",
            "uid": "u",
            "resourceVersion": "3",
            "labels": STUFFING,
            "annotations": {"cluster.x-k8s.io/paused": ""},
        },
        "spec": {"paused": True, "topology": {"variables": [{"name": "v", "value": "w" * 500_000}]}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "message": "m" * 100_000}]},
    }
    projected = project(cluster)
    assert size(projected) < 600
    assert projected["spec"] == {"paused": True}
    assert "cluster.x-k8s.io/paused" in projected["metadata"]["annotations"]


def test_finding_12_an_ipaddress_keeps_its_spec_and_owners_not_its_labels() -> None:
    address = {
        "apiVersion": "ipam.cluster.x-k8s.io/v1beta2",
        "kind": "IPAddress",
        "metadata": {
            "name": "c",
            "namespace": "ns",
            "uid": "u2",
            "resourceVersion": "9",
            "labels": {**STUFFING, CLUSTER_NAME_LABEL: "cl"},
            "ownerReferences": [{"kind": "IPAddressClaim", "name": "c", "uid": "u1", "controller": True}],
            "finalizers": ["ipam.cluster.x-k8s.io/ProtectAddress"],
        },
        "spec": {
            "address": "10.0.0.1",
            "prefix": 24,
            "gateway": "10.0.0.254",
            "claimRef": {"name": "c"},
            "poolRef": {"apiGroup": "ipam.cluster.x-k8s.io", "kind": "InClusterIPPool", "name": "p"},
        },
    }
    projected = project(address)
    assert size(projected) < 1_000
    assert projected["spec"] == address["spec"]
    assert projected["metadata"]["ownerReferences"] == address["metadata"]["ownerReferences"]
    assert projected["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "cl"}


async def test_finding_12_an_address_planted_outside_a_pool_does_not_lock_the_pool_for_edits() -> None:
    """A tenant who can create IPAddresses could plant one outside a shared global pool, and from then on
    every update of that pool was refused (in-use protection counted it), even an admin's label change.
    Only an update that newly strands an in-use address is refused."""
    cluster = FakeCluster()
    cluster.add("GlobalInClusterIPPool", "tenant", "shared", "192.168.99.99")  # planted, out of range
    cluster.add("GlobalInClusterIPPool", "team", "shared", "10.0.0.5")
    admission = PoolAdmission(cluster.addresses_of)
    route = next(r for r in ROUTES if r.kind is GLOBAL_IN_CLUSTER_IP_POOL and not r.mutating)
    spec = {"addresses": ["10.0.0.1-10.0.0.100"], "prefix": 24}
    old = pool_object("GlobalInClusterIPPool", spec, name="shared")
    relabelled = pool_object("GlobalInClusterIPPool", spec, name="shared", annotations={"team": "net"})
    verdict = await admission.review(route, parse_review(review("UPDATE", relabelled, old)))
    assert verdict.allowed, verdict.status
    grown = pool_object(
        "GlobalInClusterIPPool", {**spec, "addresses": ["10.0.0.1-10.0.0.200"]}, name="shared"
    )
    assert (await admission.review(route, parse_review(review("UPDATE", grown, old)))).allowed
    shrunk = pool_object(
        "GlobalInClusterIPPool", {**spec, "addresses": ["10.0.0.10-10.0.0.100"]}, name="shared"
    )
    verdict = await admission.review(route, parse_review(review("UPDATE", shrunk, old)))
    assert not verdict.allowed
    assert verdict.status is not None
    assert "10.0.0.5" in verdict.status.message
    assert "192.168.99.99" not in verdict.status.message

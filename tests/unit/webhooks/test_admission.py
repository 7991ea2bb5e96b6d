"""Admission endpoints over HTTP (aiohttp test client): verdicts, statuses, warnings, patches, bad input."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from incluster_ipam.api.constants import (
    DELETE_FOR_MOVE_ANNOTATION,
    GLOBAL_IN_CLUSTER_IP_POOL,
    SKIP_VALIDATE_DELETE_ANNOTATION,
)
from incluster_ipam.api.models import IPPoolSpec, Pool
from incluster_ipam.webhooks import build_app
from tests.unit.api.scenarios import INVALID, VALID, Scenario
from tests.unit.webhooks.fakes import FakeCluster, path, pool_object, review

IP_KINDS = ["InClusterIPPool", "GlobalInClusterIPPool"]
PREFIX_KINDS = ["InClusterPrefixPool", "GlobalInClusterPrefixPool"]
DELETE_MESSAGE = "Pool has IPAddresses allocated. Cannot delete Pool until all IPAddresses have been removed."


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
async def client(cluster: FakeCluster) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(cluster.addresses_of, cluster.pools_from, lookup_timeout=0.5)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def post(client: TestClient[Any, Any], url: str, body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(url, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    answer: dict[str, Any] = await resp.json()
    return answer


async def respond(client: TestClient[Any, Any], url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await post(client, url, body)
    assert answer["apiVersion"] == body["apiVersion"]
    assert answer["kind"] == "AdmissionReview"
    response: dict[str, Any] = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


@pytest.mark.parametrize("kind", IP_KINDS)
@pytest.mark.parametrize("scenario", INVALID, ids=lambda s: s.name)
async def test_invalid_ip_pools_are_refused_on_create_and_update(
    client: TestClient[Any, Any], kind: str, scenario: Scenario
) -> None:
    obj = pool_object(kind, scenario.spec)
    for request in (review("CREATE", obj), review("UPDATE", obj, obj)):
        response = await respond(client, path(kind), request)
        assert response["allowed"] is False
        status = response["status"]
        assert (status["code"], status["reason"], status["status"]) == (422, "Invalid", "Failure")
        assert status["message"].startswith(f'{kind}.ipam.cluster.x-k8s.io "my-pool" is invalid: ')
        assert scenario.error in status["message"]
        assert status["details"]["kind"] == kind
        assert status["details"]["causes"]
    deleted = await respond(client, path(kind), review("DELETE", old=obj))
    assert deleted["allowed"] is True


@pytest.mark.parametrize("kind", IP_KINDS)
@pytest.mark.parametrize("scenario", VALID, ids=lambda s: s.name)
async def test_valid_ip_pools_pass_everything_and_are_not_mutated(
    client: TestClient[Any, Any], kind: str, scenario: Scenario
) -> None:
    obj = pool_object(kind, scenario.spec)
    for operation, request in [
        ("CREATE", review("CREATE", obj)),
        ("UPDATE", review("UPDATE", obj, obj)),
        ("DELETE", review("DELETE", old=obj)),
    ]:
        response = await respond(client, path(kind), request)
        assert response["allowed"] is True, operation
        assert "warnings" not in response
    for request in (review("CREATE", obj), review("UPDATE", obj, obj)):
        mutated = await respond(client, path(kind, mutating=True), request)
        assert mutated["allowed"] is True
        assert "patch" not in mutated
        assert "patchType" not in mutated


@pytest.mark.parametrize("kind", IP_KINDS)
async def test_update_that_drops_an_in_use_address_is_a_bad_request(
    client: TestClient[Any, Any], cluster: FakeCluster, kind: str
) -> None:
    old = pool_object(kind, {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 24, "gateway": "10.0.0.1"})
    new = pool_object(kind, {"addresses": ["10.0.0.15-10.0.0.20"], "prefix": 24, "gateway": "10.0.0.1"})
    cluster.add(kind, "ns1", "my-pool", "10.0.0.10")
    cluster.add(kind, "ns2", "my-pool", "10.0.0.11")  # another namespace: only global pools see it
    cluster.add(
        "GlobalInClusterIPPool" if kind == "InClusterIPPool" else "InClusterIPPool",
        "ns1",
        "my-pool",
        "10.0.0.12",
    )
    response = await respond(client, path(kind), review("UPDATE", new, old))
    assert response["allowed"] is False
    expected = "[10.0.0.10-10.0.0.10]" if kind == "InClusterIPPool" else "[10.0.0.10-10.0.0.11]"
    assert response["status"] == {
        "metadata": {},
        "status": "Failure",
        "message": f"pool addresses do not contain allocated addresses: {expected}",
        "reason": "BadRequest",
        "code": 400,
    }
    assert cluster.address_calls == [(kind, "ns1" if kind == "InClusterIPPool" else None, "my-pool")]
    allowed = await respond(client, path(kind), review("UPDATE", old, old))
    assert allowed["allowed"] is True


@pytest.mark.parametrize("kind", IP_KINDS + PREFIX_KINDS)
async def test_delete_is_refused_while_addresses_exist_unless_annotated(
    client: TestClient[Any, Any], cluster: FakeCluster, kind: str
) -> None:
    spec = {"prefixes": ["fd00::/64"]} if "Prefix" in kind else {"addresses": ["10.0.0.10"], "prefix": 24}
    obj = pool_object(kind, spec)
    assert (await respond(client, path(kind), review("DELETE", old=obj)))["allowed"] is True
    cluster.add(kind, "ns1", "my-pool", "fd00::" if "Prefix" in kind else "10.0.0.10", 64)
    refused = await respond(client, path(kind), review("DELETE", old=obj))
    assert refused["allowed"] is False
    assert (refused["status"]["code"], refused["status"]["message"]) == (400, DELETE_MESSAGE)
    for annotation in (SKIP_VALIDATE_DELETE_ANNOTATION, DELETE_FOR_MOVE_ANNOTATION):
        annotated = pool_object(kind, spec, annotations={annotation: "true"})
        assert (await respond(client, path(kind), review("DELETE", old=annotated)))["allowed"] is True


@pytest.mark.parametrize("kind", PREFIX_KINDS)
async def test_prefix_pool_defaulting_patches(client: TestClient[Any, Any], kind: str) -> None:
    cases = [
        ({"prefixes": ["fd00::/48"]}, [{"op": "add", "path": "/spec/allocationPrefixLength", "value": 64}]),
        (
            {"prefixes": ["fd00::/48"], "allocationPrefixLength": 0},
            [{"op": "replace", "path": "/spec/allocationPrefixLength", "value": 64}],
        ),
        (None, [{"op": "add", "path": "/spec", "value": {"allocationPrefixLength": 64}}]),
        ({"prefixes": ["fd00::/48"], "allocationPrefixLength": 56}, None),
    ]
    for spec, patch in cases:
        response = await respond(client, path(kind, mutating=True), review("CREATE", pool_object(kind, spec)))
        assert response["allowed"] is True
        if patch is None:
            assert "patch" not in response
        else:
            assert response["patchType"] == "JSONPatch"
            assert json.loads(base64.b64decode(response["patch"])) == patch


@pytest.mark.parametrize("kind", PREFIX_KINDS)
async def test_prefix_pool_validation_warnings_and_immutability(
    client: TestClient[Any, Any], cluster: FakeCluster, kind: str
) -> None:
    obj = pool_object(kind, {"prefixes": ["fd40::/64"], "allocationPrefixLength": 128, "gateway": "fd40::1"})
    response = await respond(client, path(kind), review("CREATE", obj))
    assert response["allowed"] is True
    assert len(response["warnings"]) == 2
    bad = await respond(client, path(kind), review("CREATE", pool_object(kind, {"prefixes": ["10.0.0.0/8"]})))
    assert bad["status"]["code"] == 422
    assert "only IPv6 prefixes are supported" in bad["status"]["message"]
    old = pool_object(kind, {"prefixes": ["fd00::/48"], "allocationPrefixLength": 56})
    new = pool_object(kind, {"prefixes": ["fd00::/48"], "allocationPrefixLength": 64})
    changed = await respond(client, path(kind), review("UPDATE", new, old))
    assert (changed["status"]["code"], changed["status"]["message"]) == (
        400,
        "spec.allocationPrefixLength is immutable",
    )
    cluster.add(kind, "ns1", "my-pool", "fd00::", 56)
    shrunk = pool_object(kind, {"prefixes": ["fd00:0:0:100::/56"], "allocationPrefixLength": 56})
    orphaned = await respond(client, path(kind), review("UPDATE", shrunk, old))
    assert orphaned["status"]["message"] == "existing allocations become non-allocatable: [fd00::]"


async def test_overlap_warnings_name_the_other_pool(
    client: TestClient[Any, Any], cluster: FakeCluster
) -> None:
    cluster.pools.append(
        Pool(
            GLOBAL_IN_CLUSTER_IP_POOL,
            "shared",
            "",
            IPPoolSpec.from_dict({"addresses": ["10.0.0.0/24"], "prefix": 24}),
        )
    )
    obj = pool_object("InClusterIPPool", {"addresses": ["10.0.0.10-10.0.0.20"], "prefix": 24})
    response = await respond(client, path("InClusterIPPool"), review("CREATE", obj))
    assert response["allowed"] is True
    assert response["warnings"] == [
        'addresses overlap with GlobalInClusterIPPool "shared" (10.0.0.10-10.0.0.20); '
        "claims of both pools may receive the same address"
    ]
    assert cluster.pool_calls == ["ns1"]


async def test_v1beta1_reviews_and_v1alpha1_objects_are_understood(client: TestClient[Any, Any]) -> None:
    obj = pool_object(
        "InClusterIPPool",
        {"subnet": "10.0.0.0/24", "gateway": "fd00::1"},
        api_version="ipam.cluster.x-k8s.io/v1alpha1",
    )
    response = await respond(
        client, path("InClusterIPPool"), review("CREATE", obj, version="admission.k8s.io/v1beta1")
    )
    assert response["allowed"] is False
    assert "provided gateway and addresses are of mixed IP families" in response["status"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body is not a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}', "expected an AdmissionReview"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "AdmissionReview has no request",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", '
            b'"request": {"operation": "CREATE"}}',
            "has no uid",
        ),
        (b'{"a": NaN}', "request body is not valid JSON"),
        (b"[" * 100 + b"]" * 99, "request body is not valid JSON"),
        (b"\xff\xfe\x00", "request body is not valid JSON"),
    ],
)
async def test_malformed_reviews_get_a_400_review(
    client: TestClient[Any, Any], body: bytes, message: str
) -> None:
    answer = await post(client, path("InClusterIPPool"), body)
    response = answer["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert message in response["status"]["message"]


async def test_bodies_that_would_blow_up_when_parsed_are_refused_unparsed(
    client: TestClient[Any, Any],
) -> None:
    """Deep or wide JSON costs far more memory than its size: refused with 413 before parsing."""
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" + b"0," * 300_000 + b"0]"):
        resp = await client.post(path("InClusterIPPool"), data=body)
        assert resp.status == 413
        assert "JSON" in await resp.text()


@pytest.mark.parametrize(
    "obj",
    [
        pool_object("InClusterIPPool", {"addresses": "10.0.0.1", "prefix": 24}),
        pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": "24"}),
        pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 2**64}),
        {"kind": "InClusterIPPool", "metadata": [], "spec": {}},
        {"kind": "InClusterIPPool", "metadata": {"annotations": {"a": 1}}},
        "not an object",
        None,
    ],
)
async def test_undecodable_objects_are_bad_requests(client: TestClient[Any, Any], obj: Any) -> None:
    response = await respond(client, path("InClusterIPPool"), review("CREATE", obj, kind="InClusterIPPool"))
    assert response["allowed"] is False
    assert response["status"]["code"] == 400


async def test_undecodable_prefix_pool_is_not_defaulted(client: TestClient[Any, Any]) -> None:
    obj = pool_object("InClusterPrefixPool", {"prefixes": "fd00::/48"})
    response = await respond(client, path("InClusterPrefixPool", mutating=True), review("CREATE", obj))
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "cannot unmarshal string" in response["status"]["message"]


async def test_kind_mismatch_and_unknown_paths(client: TestClient[Any, Any]) -> None:
    obj = pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 24})
    response = await respond(client, path("GlobalInClusterIPPool"), review("CREATE", obj))
    assert response["status"]["message"] == "expected a GlobalInClusterIPPool but got a InClusterIPPool"
    resp = await client.post("/validate-ipam-cluster-x-k8s-io-v1alpha2-somethingelse", data=b"{}")
    assert resp.status == 404
    resp = await client.get(path("InClusterIPPool"))
    assert resp.status == 405
    connect = await respond(client, path("InClusterIPPool"), review("CONNECT", obj))
    assert connect["allowed"] is True


async def test_failing_or_slow_lookups_deny_cleanly(
    client: TestClient[Any, Any], cluster: FakeCluster
) -> None:
    obj = pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 24})
    cluster.fail = RuntimeError("cache not synced")
    response = await respond(client, path("InClusterIPPool"), review("DELETE", old=obj))
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert response["status"]["reason"] == "InternalError"
    assert "cache not synced" in response["status"]["message"]
    created = await respond(client, path("InClusterIPPool"), review("CREATE", obj))
    assert created["allowed"] is True  # the overlap check is advisory: it warns instead of failing
    assert created["warnings"] == [
        "overlap with other pools not checked: listing pools failed: cache not synced"
    ]
    cluster.fail, cluster.delay = None, 2.0
    slow = await respond(client, path("InClusterIPPool"), review("UPDATE", obj, obj))
    assert slow["status"]["code"] == 500
    assert "timed out" in slow["status"]["message"]

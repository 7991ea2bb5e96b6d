"""The webhook server's metrics: every request by path and HTTP code, and errors (not denials) by reason."""

import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from incluster_ipam.api.constants import API_VERSION_V1ALPHA1, API_VERSION_V1ALPHA2
from incluster_ipam.webhooks import build_app
from incluster_ipam.webhooks.lookups import NotSynced
from incluster_ipam.webhooks.metrics import WebhookMetrics
from tests.unit.webhooks.fakes import FakeCluster, path, pool_object, review

VALIDATE = path("InClusterIPPool")


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def conversion_review(objects: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": API_VERSION_V1ALPHA2, "objects": objects},
    }


async def test_decisions_are_counted_and_only_undecided_reviews_are_errors() -> None:
    registry = CollectorRegistry()
    cluster = FakeCluster()
    app = build_app(cluster.addresses_of, cluster.pools_from, metrics=WebhookMetrics(registry))
    good = pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 24})
    bad = pool_object("InClusterIPPool", {"addresses": ["nope"], "prefix": 24})
    async with TestClient(TestServer(app)) as client:
        allowed = await client.post(VALIDATE, json=review("CREATE", good))
        assert (await allowed.json())["response"]["allowed"] is True
        denied = await client.post(VALIDATE, json=review("CREATE", bad))
        assert (await denied.json())["response"]["allowed"] is False  # a decision, not an error
        cluster.fail = RuntimeError("cache broken")
        failed = await client.post(VALIDATE, json=review("DELETE", old=good))
        assert (await failed.json())["response"]["status"]["reason"] == "InternalError"
        malformed = await client.post(VALIDATE, data=b"{not json")
        assert malformed.status == 200  # answered in a review, as controller-runtime does
        too_big = await client.post(VALIDATE, data=b" " * (8 << 20))
        assert too_big.status == 413
        assert (await client.post("/scan-me", data=b"x")).status == 404

    requests = "controller_runtime_webhook_requests_total"
    assert value(registry, requests, webhook=VALIDATE, code="200") == 4
    assert value(registry, requests, webhook=VALIDATE, code="413") == 1
    assert value(registry, requests, webhook="other", code="404") == 1
    assert value(registry, "controller_runtime_webhook_latency_seconds_count", webhook=VALIDATE) == 5
    assert value(registry, "controller_runtime_webhook_requests_in_flight", webhook=VALIDATE) == 0
    errors = "incluster_ipam_webhook_errors_total"
    assert value(registry, errors, webhook=VALIDATE, reason="InternalError") == 1
    assert value(registry, errors, webhook=VALIDATE, reason="BadRequest") == 1
    assert value(registry, errors, webhook=VALIDATE, reason="RequestEntityTooLarge") == 1
    reasons = {
        s.labels["reason"]
        for family in registry.collect()
        if family.name == "incluster_ipam_webhook_errors"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert reasons == {"InternalError", "BadRequest", "RequestEntityTooLarge"}


async def test_lookups_not_synced_count_as_service_unavailable() -> None:
    registry = CollectorRegistry()
    cluster = FakeCluster(fail=NotSynced("addresses not synced"))
    app = build_app(cluster.addresses_of, cluster.pools_from, metrics=WebhookMetrics(registry))
    obj = pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 24})
    async with TestClient(TestServer(app)) as client:
        resp = await client.post(VALIDATE, json=review("DELETE", old=obj))
        assert (await resp.json())["response"]["status"]["code"] == 503
    assert value(
        registry, "incluster_ipam_webhook_errors_total", webhook=VALIDATE, reason="ServiceUnavailable"
    )


async def test_conversion_failures_and_malformed_conversion_reviews_are_errors() -> None:
    registry = CollectorRegistry()
    app = build_app(FakeCluster().addresses_of, metrics=WebhookMetrics(registry))
    bad = pool_object("InClusterIPPool", {"subnet": "1.1.1.0"}, api_version=API_VERSION_V1ALPHA1)
    good = pool_object("InClusterIPPool", {"subnet": "1.1.1.0/24"}, api_version=API_VERSION_V1ALPHA1)
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/convert", json=conversion_review([good]))
        assert (await ok.json())["response"]["result"]["status"] == "Success"
        failed = await client.post("/convert", json=conversion_review([good, bad]))
        assert (await failed.json())["response"]["result"]["status"] == "Failure"
        assert (await client.post("/convert", data=json.dumps({"kind": "x"}))).status == 400
    errors = "incluster_ipam_webhook_errors_total"
    assert value(registry, errors, webhook="/convert", reason="ConversionFailed") == 1
    assert value(registry, errors, webhook="/convert", reason="BadRequest") == 1
    assert value(registry, "controller_runtime_webhook_requests_total", webhook="/convert", code="200") == 2

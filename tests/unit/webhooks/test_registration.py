"""Webhook configuration builders (spec §3): upstream's names, paths, rules and policies."""

import asyncio
import base64
from typing import Any

import pytest

from incluster_ipam.webhooks import build_app
from incluster_ipam.webhooks.registration import (
    LOCAL_NAME_PREFIX,
    ServiceEndpoint,
    UrlEndpoint,
    _wait,
    mutating_webhook_configuration,
    validating_webhook_configuration,
    webhook_configurations,
)
from tests.unit.webhooks.fakes import FakeCluster

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KINDS = ["inclusterippool", "globalinclusterippool", "inclusterprefixpool", "globalinclusterprefixpool"]
PLURALS = {k: f"{k}s" for k in KINDS}


def by_name(configuration: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["name"]: w for w in configuration["webhooks"]}


def test_validating_configuration_matches_upstream_markers() -> None:
    config = validating_webhook_configuration(UrlEndpoint("https://127.0.0.1:9443", CA))
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert config["kind"] == "ValidatingWebhookConfiguration"
    assert config["metadata"] == {"name": "validating-webhook-configuration"}
    hooks = by_name(config)
    assert list(hooks) == [f"validation.{k}.ipam.cluster.x-k8s.io" for k in KINDS]
    for kind in KINDS:
        hook = hooks[f"validation.{kind}.ipam.cluster.x-k8s.io"]
        assert hook == {
            "name": f"validation.{kind}.ipam.cluster.x-k8s.io",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "clientConfig": {
                "url": f"https://127.0.0.1:9443/validate-ipam-cluster-x-k8s-io-v1alpha2-{kind}",
                "caBundle": base64.b64encode(CA).decode(),
            },
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "rules": [
                {
                    "apiGroups": ["ipam.cluster.x-k8s.io"],
                    "apiVersions": ["v1alpha2"],
                    "operations": ["CREATE", "UPDATE", "DELETE"],
                    "resources": [PLURALS[kind]],
                }
            ],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        }


def test_mutating_configuration_covers_create_and_update_only() -> None:
    config = mutating_webhook_configuration(ServiceEndpoint(), timeout_seconds=7)
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert config["metadata"] == {"name": "mutating-webhook-configuration"}
    hooks = by_name(config)
    assert list(hooks) == [f"default.{k}.ipam.cluster.x-k8s.io" for k in KINDS]
    for kind in KINDS:
        hook = hooks[f"default.{kind}.ipam.cluster.x-k8s.io"]
        assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
        assert hook["rules"][0]["resources"] == [PLURALS[kind]]
        assert hook["clientConfig"] == {
            "service": {
                "name": "webhook-service",
                "namespace": "system",
                "path": f"/mutate-ipam-cluster-x-k8s-io-v1alpha2-{kind}",
            }
        }
        assert (hook["failurePolicy"], hook["matchPolicy"], hook["sideEffects"]) == (
            "Fail",
            "Equivalent",
            "None",
        )
        assert (hook["timeoutSeconds"], hook["reinvocationPolicy"]) == (7, "Never")


def test_client_configs() -> None:
    assert UrlEndpoint("https://[::1]:8443/").client_config("/convert") == {
        "url": "https://[::1]:8443/convert"
    }
    service = ServiceEndpoint("svc", "ns", port=9443, ca_bundle=CA).client_config("/p")
    assert service == {
        "service": {"name": "svc", "namespace": "ns", "path": "/p", "port": 9443},
        "caBundle": base64.b64encode(CA).decode(),
    }


def test_configurations_pair_and_prefix() -> None:
    validating, mutating = webhook_configurations(UrlEndpoint("https://h:1"), name_prefix=LOCAL_NAME_PREFIX)
    assert validating["metadata"]["name"] == "incluster-ipam-validating-webhook-configuration"
    assert mutating["metadata"]["name"] == "incluster-ipam-mutating-webhook-configuration"


def test_every_registered_path_is_served_and_every_served_admission_path_registered() -> None:
    fake = FakeCluster()
    served = {
        r.canonical
        for r in build_app(fake.addresses_of, fake.pools_from).router.resources()
        if r.canonical != "/convert"
    }
    registered = {
        h["clientConfig"]["service"]["path"]
        for c in webhook_configurations(ServiceEndpoint())
        for h in c["webhooks"]
    }
    assert served == registered
    assert len(registered) == 8


async def test_wait_reports_the_last_answer_on_timeout() -> None:
    answers = iter(["not yet", "still not"])
    calls: list[str] = []

    async def first(_client: Any) -> str | None:
        calls.append("first")
        return None

    async def second(_client: Any) -> str | None:
        calls.append("second")
        return next(answers, "still not")

    with pytest.raises(TimeoutError, match=r"probes not within 0\.2 s; last answer: still not"):
        await _wait("probes", [first, second], None, 0.2)  # type: ignore[arg-type]
    assert calls[0] == "first"
    assert calls.count("first") == 1  # a probe that passed is not asked again


async def test_wait_returns_once_every_probe_passed() -> None:
    state = {"n": 0}

    async def flaky(_client: Any) -> str | None:
        state["n"] += 1
        return None if state["n"] >= 3 else "no"

    await asyncio.wait_for(_wait("flaky", [flaky], None, 5.0), 5.0)  # type: ignore[arg-type]
    assert state["n"] == 3

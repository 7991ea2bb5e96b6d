"""`install_webhooks` against the real API server: what it stores, that it is repeatable, and that it only
returns once the API server really calls the server it names."""

from __future__ import annotations

import pytest

from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube.resources import CRDS
from incluster_ipam.webhooks.registration import (
    MUTATING_CONFIGURATIONS,
    VALIDATING_CONFIGURATIONS,
    install_webhooks,
)
from tests.integration.webhooks.conftest import Webhooks, pool_body, pool_kind


async def test_installed_configuration_as_the_api_server_keeps_it(hooks: Webhooks) -> None:
    await install_webhooks(hooks.kube, hooks.server.url, hooks.plane.ca.cert_pem)  # again: replaces

    validating = await hooks.kube.get(
        VALIDATING_CONFIGURATIONS, "incluster-ipam-validating-webhook-configuration"
    )
    mutating = await hooks.kube.get(MUTATING_CONFIGURATIONS, "incluster-ipam-mutating-webhook-configuration")
    kinds = ["inclusterippool", "globalinclusterippool", "inclusterprefixpool", "globalinclusterprefixpool"]
    for configuration, prefix, verb, operations in (
        (validating, "validation", "validate", ["CREATE", "UPDATE", "DELETE"]),
        (mutating, "default", "mutate", ["CREATE", "UPDATE"]),
    ):
        hooks_by_name = {w["name"]: w for w in configuration["webhooks"]}
        assert sorted(hooks_by_name) == sorted(f"{prefix}.{k}.ipam.cluster.x-k8s.io" for k in kinds)
        for kind in kinds:
            hook = hooks_by_name[f"{prefix}.{kind}.ipam.cluster.x-k8s.io"]
            url = f"{hooks.server.url}/{verb}-ipam-cluster-x-k8s-io-v1alpha2-{kind}"
            assert hook["clientConfig"]["url"] == url
            assert hook["rules"] == [
                {
                    "apiGroups": ["ipam.cluster.x-k8s.io"],
                    "apiVersions": ["v1alpha2"],
                    "operations": operations,
                    "resources": [f"{kind}s"],
                    "scope": "*",
                }
            ]
            assert (hook["failurePolicy"], hook["matchPolicy"], hook["sideEffects"]) == (
                "Fail",
                "Equivalent",
                "None",
            )
            assert hook["admissionReviewVersions"] == ["v1", "v1beta1"]

    crd = await hooks.kube.get(CRDS, "inclusterippools.ipam.cluster.x-k8s.io")
    conversion = crd["spec"]["conversion"]
    assert conversion["strategy"] == "Webhook"
    assert conversion["webhook"]["clientConfig"]["url"] == f"{hooks.server.url}/convert"


async def test_install_waits_for_a_server_that_answers(hooks: Webhooks, namespace: str) -> None:
    dead = f"https://127.0.0.1:{free_port()}"
    try:
        with pytest.raises(TimeoutError, match=r"last answer: .*connection refused"):
            await install_webhooks(hooks.kube, dead, hooks.plane.ca.cert_pem, wait_seconds=1.0)
    finally:
        await install_webhooks(hooks.kube, hooks.server.url, hooks.plane.ca.cert_pem)
    kind = pool_kind("InClusterIPPool")
    answer = await hooks.api.create(
        pool_body(kind, "after-reinstall", {"addresses": [], "prefix": 24}, namespace=namespace)
    )
    assert answer.status == 422
    assert answer.message.startswith(
        'admission webhook "validation.inclusterippool.ipam.cluster.x-k8s.io" denied the request: '
    )

"""The shipped alerts and dashboard are over the metrics the real provider exposes: `incluster-ipam run`
against the real apiserver, its webhooks registered, a pool one address short of full (10 of 11 used), a
full pool with a claim left waiting, and a malformed review sent to the webhook. Its `/metrics` is scraped;
every metric name the rules and the dashboard use has samples there; then the scraped series, held as they
are (counters growing at their scraped count a minute, the pending age growing with the clock), go
through `promtool test rules`: exactly the alerts this state should raise fire, over our real labels."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from incluster_ipam.api.crds import crds
from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.devcluster.controlplane import free_port
from incluster_ipam.kube import KubeClient
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks

from ...unit.monitoring.promql import used_metric_names
from ..faults.helpers import Cluster, ProviderProcess, eventually, providers
from .conftest import PROMTOOL_BUILD_TIMEOUT, run, write_rules

Sample = tuple[str, dict[str, str], float]
VALIDATE = "/validate-ipam-cluster-x-k8s-io-v1alpha2-inclusterippool"


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ControlPlane]:
    async with ControlPlane(extra_crds=crds(""), workdir=tmp_path_factory.mktemp("monitoring-cp")) as cp:
        yield cp


async def scrape(session: aiohttp.ClientSession, url: str) -> list[Sample]:
    async with session.get(url) as resp:
        assert resp.status == 200
        text = await resp.text()
    families = text_string_to_metric_families(text)
    return [(s.name, dict(s.labels), s.value) for f in families for s in f.samples]


def value(samples: list[Sample], metric: str, /, **labels: str) -> float | None:
    for sample_name, sample_labels, sample_value in samples:
        if sample_name == metric and all(sample_labels.get(k) == v for k, v in labels.items()):
            return sample_value
    return None


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series(name: str, labels: dict[str, str]) -> str:
    quoted = ",".join(f'{k}="{_escaped(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{quoted}}}"


def held(name: str, sample_value: float) -> str:
    """The scraped value as a promtool series over 30 minutes, as if the state went on."""
    if name.endswith(("_total", "_bucket", "_count", "_sum")):
        return f"0+{sample_value:g}x30" if sample_value > 0 else "0x30"
    if name == "incluster_ipam_claims_pending_max_age_seconds":
        return f"{sample_value:g}+60x30"
    return f"{sample_value:g}x30"


@pytest.mark.timeout(PROMTOOL_BUILD_TIMEOUT + 240)
async def test_rules_and_dashboard_are_over_the_exposed_metrics(
    plane: ControlPlane, promtool: Path, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    serving = plane.ca.serving(("127.0.0.1", "localhost"))
    (certs / "tls.crt").write_bytes(serving.cert_pem)
    (certs / "tls.key").write_bytes(serving.key_pem)
    webhook_port = free_port()
    provider = ProviderProcess(
        "monitoring-provider",
        plane.kubeconfig_path,
        tmp_path,
        extra=["--webhook-host=127.0.0.1", f"--webhook-port={webhook_port}", f"--webhook-cert-dir={certs}"],
    )
    metrics_url = f"http://127.0.0.1:{provider.metrics_port}/metrics"
    trusted = ssl.create_default_context(cadata=plane.ca.cert_pem.decode())
    async with (
        KubeClient.from_kubeconfig(plane.kubeconfig_path) as client,
        aiohttp.ClientSession() as session,
        providers(provider),
    ):
        cluster = Cluster(plane, client)

        async def leading() -> bool:
            try:
                return value(await scrape(session, metrics_url), "incluster_ipam_leader") == 1
            except aiohttp.ClientError:
                return False

        await eventually(leading, 60, "the provider to lead")
        await install_webhooks(client, f"https://127.0.0.1:{webhook_port}", plane.ca.cert_pem)
        try:
            ns = await cluster.namespace("metrics")
            await cluster.pool("InClusterIPPool", "nearly", ns, addresses=["10.20.0.1-10.20.0.11"], prefix=24)
            await cluster.pool("InClusterIPPool", "full", ns, addresses=["10.21.0.1"], prefix=24)
            for i in range(10):
                await cluster.claim(ns, f"n-{i}", "nearly")
            await cluster.claim(ns, "f-0", "full")
            await cluster.claim(ns, "f-1", "full")
            async with session.post(
                f"https://127.0.0.1:{webhook_port}{VALIDATE}", data=b"{not json", ssl=trusted
            ) as resp:
                assert resp.status == 200  # a malformed review, answered in a review

            async def settled() -> list[Sample] | None:
                samples = await scrape(session, metrics_url)
                wanted = [
                    value(samples, "incluster_ipam_pool_addresses_free", name="nearly") == 1,
                    value(samples, "incluster_ipam_pool_addresses_total", name="nearly") == 11,
                    value(samples, "incluster_ipam_pool_addresses_free", name="full") == 0,
                    value(samples, "incluster_ipam_claims_pending") == 1,
                    (value(samples, "incluster_ipam_informer_objects", resource="ipaddressclaims") or 0)
                    >= 12,
                    (value(samples, "incluster_ipam_allocation_failures_total", reason="PoolExhausted") or 0)
                    >= 1,
                ]
                return samples if all(wanted) else None

            samples = await eventually(settled, 60, "pools, claims and failures in /metrics")
        finally:
            await uninstall_webhooks(client)

    names = {name for name, _, _ in samples}
    used = used_metric_names()
    assert used - names == set(), "used by the rules or dashboard but not exposed"
    assert (value(samples, "incluster_ipam_informer_cache_bytes", resource="ipaddresses") or 0) > 0
    errors = "incluster_ipam_webhook_errors_total"
    assert value(samples, errors, webhook=VALIDATE, reason="BadRequest") == 1
    requests = "controller_runtime_webhook_requests_total"
    assert (value(samples, requests, webhook=VALIDATE, code="200") or 0) > 1  # through the apiserver
    assert value(samples, "incluster_ipam_allocation_failures_total", reason="AllocationFailed") == 0
    assert value(samples, "controller_runtime_reconcile_errors_total", controller="ipaddressclaim") == 0

    job = {"job": "incluster-ipam", "instance": f"127.0.0.1:{provider.metrics_port}"}
    inputs = [
        {"series": series(name, {**labels, **job}), "values": held(name, sample_value)}
        for name, labels, sample_value in samples
        if name in used or name.removesuffix("_bucket") + "_bucket" in used
    ]
    expected = [
        {"alertname": "InClusterIPAMClaimsPendingTooLong"},
        {"alertname": "InClusterIPAMPoolExhausted", "name": "full"},
        {"alertname": "InClusterIPAMPoolNearlyExhausted", "name": "nearly"},
        {"alertname": "InClusterIPAMWebhookErrors", "reason": "BadRequest"},
    ]
    test: dict[str, Any] = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": 'count by (alertname, name, reason) (ALERTS{alertstate="firing"})',
                        "eval_time": "20m",
                        "exp_samples": [{"labels": series("", e), "value": 1} for e in expected],
                    }
                ],
            }
        ],
    }
    write_rules(tmp_path)
    test_file = tmp_path / f"scraped-{uuid.uuid4().hex[:6]}.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    tested = run(promtool, "test", "rules", test_file)
    assert tested.returncode == 0, tested.stdout + tested.stderr + test_file.read_text()[:3000]
    print(f"scraped {len(samples)} samples, {len(inputs)} series fed to promtool; alerts firing: {expected}")

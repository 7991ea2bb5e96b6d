"""Secure metrics against the real apiserver: the provider's ServiceAccount (only the shipped RBAC) reviews
the scraper's token; a token bound to the shipped metrics-reader ClusterRole gets the metrics, an
authenticated stranger gets 403, no or a bad token 401."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest

from incluster_ipam.devcluster import ControlPlane
from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.provider import Options, Provider
from incluster_ipam.provider.metrics import Metrics
from incluster_ipam.serving.diagnostics import DiagnosticsServer, KubeAuthorizer
from tests.unit.packaging.certs import swap_secret_volume

from .conftest import NAMESPACE, SERVICE_ACCOUNT, create_namespace, in_cluster_client, service_account_token
from .test_cert_rotation import until_served

CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
)


@pytest.mark.timeout(120)
async def test_metrics_need_a_token_the_apiserver_authorizes(
    packaging_plane: ControlPlane, admin: KubeClient, installed_rbac: list[dict[str, Any]], tmp_path: Path
) -> None:
    ns = await create_namespace(admin)
    scraper = await service_account_token(packaging_plane, ns, "scraper")
    stranger = await service_account_token(packaging_plane, ns, "stranger")
    await admin.create(
        CLUSTER_ROLE_BINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-scraper-metrics-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "capi-ipam-in-cluster-system-metrics-reader",  # as shipped
            },
            "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns}],
        },
    )
    provider_token = await service_account_token(packaging_plane, NAMESPACE, SERVICE_ACCOUNT)
    metrics = Metrics()
    metrics.claims.allocations.inc(7)
    serving = packaging_plane.ca.serving(("127.0.0.1",))
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    client_tls = ssl.create_default_context(cadata=packaging_plane.ca.cert_pem.decode())

    async with in_cluster_client(
        packaging_plane, provider_token, NAMESPACE, tmp_path / "sa"
    ) as provider_client:
        authorizer = KubeAuthorizer(provider_client)
        server = DiagnosticsServer(
            "127.0.0.1",
            0,
            lambda: generate_latest(metrics.registry),
            authorizer=authorizer,
            cert_file=tmp_path / "tls.crt",
            key_file=tmp_path / "tls.key",
        )
        async with server, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as http:

            async def scrape(token: str | None) -> tuple[int, str]:
                headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
                async with http.get(f"{server.url}/metrics", headers=headers) as resp:
                    return resp.status, await resp.text()

            status, body = await scrape(scraper)
            assert status == 200, body
            assert "incluster_ipam_allocations_total 7.0" in body
            assert (await scrape(None))[0] == 401
            assert (await scrape("not-a-token"))[0] == 401
            status, body = await scrape(stranger)
            assert status == 403
            assert f"system:serviceaccount:{ns}:stranger" in body
            assert (await scrape(provider_token))[0] == 403  # the provider itself is no metrics reader
            reviews = authorizer.reviews
            assert (await scrape(scraper))[0] == 200
            assert authorizer.reviews == reviews  # answered from the cache


@pytest.mark.timeout(150)
async def test_the_provider_serves_secure_metrics_and_picks_up_a_renewed_certificate(
    packaging_plane: ControlPlane, admin: KubeClient, installed_rbac: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Provider wiring: --diagnostics-address and --diagnostics-cert-dir, as in the Deployment."""
    ns = await create_namespace(admin)
    scraper = await service_account_token(packaging_plane, ns, "scraper")
    await admin.create(
        CLUSTER_ROLE_BINDINGS,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{ns}-scraper-metrics-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "capi-ipam-in-cluster-system-metrics-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns}],
        },
    )
    first, renewed = packaging_plane.ca.serving(("127.0.0.1",)), packaging_plane.ca.serving(("127.0.0.1",))
    cert_dir = tmp_path / "metrics-certs"
    swap_secret_volume(cert_dir, first, 1)
    options = Options(
        webhook_port=0,
        health_address="0",
        metrics_address="0",
        diagnostics_address="127.0.0.1:0",
        diagnostics_cert_dir=cert_dir,
        cert_poll_interval=0.2,
    )
    provider_token = await service_account_token(packaging_plane, NAMESPACE, SERVICE_ACCOUNT)
    client_tls = ssl.create_default_context(cadata=packaging_plane.ca.cert_pem.decode())
    async with in_cluster_client(packaging_plane, provider_token, NAMESPACE, tmp_path / "sa") as client:
        provider = Provider(client, options)
        stop = asyncio.Event()
        task = asyncio.create_task(provider.run(stop))
        try:
            ready = asyncio.create_task(provider.ready.wait())
            done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
            assert ready in done
            url = provider.diagnostics_url
            assert url is not None
            assert url.startswith("https://127.0.0.1:")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as http:
                async with http.get(f"{url}/metrics", headers={"Authorization": f"Bearer {scraper}"}) as resp:
                    assert resp.status == 200
                    assert "incluster_ipam_claim_queue_depth" in await resp.text()
                async with http.get(f"{url}/metrics") as resp:
                    assert resp.status == 401
            swap_secret_volume(cert_dir, renewed, 2)
            await until_served(url, packaging_plane.ca, renewed)
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0

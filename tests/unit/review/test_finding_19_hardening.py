"""Finding 19 of the December review: assorted hardening, one test per item.

- a certificate reload read the files twice (check, then load), so a swap between the two reads left the
  live TLS context with a certificate and a key that do not match;
- an OSError while re-reading the token file escaped the client as a non-`KubeError` (and ended the elector);
- an empty `poolRef.apiGroup` on a claim counted as ours (upstream's claim predicate requires the group);
- `used` counted distinct addresses, not IPAddress objects (upstream counts objects);
- the reuse grace period compared the apiserver's `deletionTimestamp` with the local wall clock;
- Python's default TLS 1.2 cipher list (CBC and DHE suites, renegotiation allowed);
- the self-signed diagnostics certificate needed a writable temporary directory (read-only root FS).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import ssl
import tempfile
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from incluster_ipam.api.constants import IN_CLUSTER_IP_POOL
from incluster_ipam.api.models import IPPoolSpec
from incluster_ipam.backend.book import PoolBook
from incluster_ipam.capi.objects import address_pool_key, claim_pool_key
from incluster_ipam.kube import KubeClient, KubeError, Resource
from incluster_ipam.kube.config import ClusterConfig
from incluster_ipam.serving.diagnostics import DiagnosticsServer, KubeAuthorizer
from incluster_ipam.webhooks import WebhookServer
from incluster_ipam.webhooks import server as webhook_server
from incluster_ipam.webhooks.server import server_ssl_context
from tests.unit.packaging.certs import der, serving_pair, write_pair
from tests.unit.serving.test_diagnostics import ScriptedApi, _handshake, _metrics, _unverified
from tests.unit.webhooks.fakes import FakeCluster

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)


async def test_finding_19_a_certificate_swap_during_reload_never_breaks_the_served_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = serving_pair(), serving_pair()
    write_pair(tmp_path, first)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    async with WebhookServer("127.0.0.1", 0, cert, key, addresses=FakeCluster().addresses_of) as server:
        checked = server_ssl_context

        def racing(*args: object, **kwargs: object) -> ssl.SSLContext:
            context = checked(*args, **kwargs)  # type: ignore[arg-type]
            cert.write_bytes(second.cert_pem)  # the kubelet swaps the files right after the check
            return context

        monkeypatch.setattr(webhook_server, "server_ssl_context", racing)
        with contextlib.suppress(ssl.SSLError):  # refusing the half-swapped pair is fine
            server.reload_certificates()
        served = await _handshake(server.url, _unverified())
        assert served in (der(first.cert_pem), der(second.cert_pem))


async def test_finding_19_an_unreadable_token_file_is_a_kube_error(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0")
    config = ClusterConfig(server="https://127.0.0.1:1", token_file=token)
    async with KubeClient(config) as client:
        token.unlink()  # a projected token volume mid-update
        with pytest.raises(KubeError):
            await client.get(CONFIGMAPS, "x", "ns")


def test_finding_19_a_claim_without_an_api_group_is_not_ours() -> None:
    claim = {
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"poolRef": {"kind": "InClusterIPPool", "name": "p"}},
    }
    assert claim_pool_key(claim) is None
    # IPAddresses still count (upstream's index defaults the group): holding an address is the safe side.
    address = {"metadata": {"name": "c", "namespace": "ns"}, "spec": claim["spec"]}
    assert address_pool_key(address) == "InClusterIPPool/ns/p"


def test_finding_19_used_counts_ipaddress_objects() -> None:
    state, _ = PoolBook().upsert(
        "InClusterIPPool/ns/p", IN_CLUSTER_IP_POOL, IPPoolSpec(addresses=("10.0.0.1-10.0.0.10",), prefix=24)
    )
    state.observe("ns/a", "10.0.0.1")
    state.observe("ns/squatter", "10.0.0.1")  # planted by hand: two objects, one address
    state.observe("ns/b", "10.0.0.2")
    counts = state.counts()
    assert (counts.total, counts.used, counts.free) == (10, 3, 8)


async def test_finding_19_the_grace_period_is_timed_by_the_apiserver_clock() -> None:
    """The client learns the apiserver's clock from its Date headers; a local clock an hour slow must not
    stretch the reuse grace by an hour."""
    ahead = datetime.timedelta(hours=1)

    async def handler(_: web.Request) -> web.Response:
        now = datetime.datetime.now(datetime.UTC) + ahead
        return web.json_response(
            {"kind": "ConfigMap"}, headers={"Date": email.utils.format_datetime(now, usegmt=True)}
        )

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/configmaps/x", handler)
    async with TestServer(app) as server:
        config = ClusterConfig(server=str(server.make_url("")).rstrip("/"))
        async with KubeClient(config) as client:
            await client.get(CONFIGMAPS, "x", "ns")
            local = datetime.datetime.now(datetime.UTC).timestamp()
            assert abs(client.server_time() - (local + ahead.total_seconds())) < 5


def test_finding_19_tls_offers_only_forward_secret_aead_suites_without_renegotiation(tmp_path: Path) -> None:
    write_pair(tmp_path, serving_pair())
    context = server_ssl_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    for cipher in context.get_ciphers():
        assert cipher["aead"], cipher["name"]
        assert cipher["kea"] in ("kx-ecdhe", "kx-any"), cipher["name"]
    assert context.options & ssl.OP_NO_RENEGOTIATION


async def test_finding_19_the_self_signed_diagnostics_pair_needs_no_writable_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "read-only-root" / "tmp"))  # does not exist
    server = DiagnosticsServer("127.0.0.1", 0, _metrics, authorizer=KubeAuthorizer(ScriptedApi()))
    async with server:
        assert await asyncio.wait_for(_handshake(server.url, _unverified()), 10)

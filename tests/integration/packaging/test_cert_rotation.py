"""A certificate renewed on disk (as the kubelet updates a Secret volume) is served by the running webhook and
metrics servers within a minute, without a restart: CertWatcher (here polling every 0.2 s instead of 5 s)."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from incluster_ipam.devcluster.pki import CertificateAuthority, KeyPair
from incluster_ipam.serving.certwatch import CertWatcher
from incluster_ipam.serving.diagnostics import DiagnosticsServer, KubeAuthorizer
from incluster_ipam.webhooks import WebhookServer
from tests.unit.packaging.certs import der, swap_secret_volume, write_pair


class NoApi:
    async def create(self, *_: object) -> dict[str, object]:
        raise AssertionError("no request is made in a TLS handshake")


async def _no_addresses(kind: str, namespace: str | None, name: str) -> list[object]:
    return []


async def served(url: str, ca: CertificateAuthority) -> bytes:
    """The certificate a fresh TLS connection gets (verified against the CA, for 127.0.0.1)."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        peer: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return peer
    finally:
        writer.close()
        await writer.wait_closed()


async def until_served(url: str, ca: CertificateAuthority, pair: KeyPair, within: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await served(url, ca) == der(pair.cert_pem):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the renewed certificate was not served within {within} s")


@pytest.mark.timeout(150)
async def test_webhook_and_metrics_servers_serve_a_renewed_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    first, renewed = ca.serving(("127.0.0.1",)), ca.serving(("127.0.0.1",))
    webhook_dir, metrics_dir = tmp_path / "webhook", tmp_path / "metrics"
    write_pair(webhook_dir, first)  # plain files, rewritten in place below
    swap_secret_volume(metrics_dir, first, 1)  # the kubelet's layout: ..data symlink swapped atomically

    webhook = WebhookServer(
        "127.0.0.1", 0, webhook_dir / "tls.crt", webhook_dir / "tls.key", addresses=_no_addresses
    )
    metrics = DiagnosticsServer(
        "127.0.0.1",
        0,
        lambda: b"",
        authorizer=KubeAuthorizer(NoApi()),
        cert_file=metrics_dir / "tls.crt",
        key_file=metrics_dir / "tls.key",
    )
    async with webhook, metrics:
        assert metrics.watched_files is not None
        async with (
            CertWatcher(
                *metrics.watched_files, metrics.reload_certificates, interval=0.2, name="metrics"
            ) as mw,
            CertWatcher(
                webhook.cert_file, webhook.key_file, webhook.reload_certificates, interval=0.2, name="webhook"
            ) as ww,
        ):
            assert await served(webhook.url, ca) == der(first.cert_pem)
            assert await served(metrics.url, ca) == der(first.cert_pem)
            webhook_port, metrics_port = webhook.port, metrics.port

            swap_secret_volume(metrics_dir, renewed, 2)
            (webhook_dir / "tls.key").write_bytes(renewed.key_pem)  # key first: a moment of a mismatched pair
            await asyncio.sleep(
                0.5
            )  # two polls: the half-written pair is not loaded, the old one still works
            assert await served(webhook.url, ca) == der(first.cert_pem)
            (webhook_dir / "tls.crt").write_bytes(renewed.cert_pem)

            await until_served(metrics.url, ca, renewed)
            await until_served(webhook.url, ca, renewed)
            assert (ww.reloads, mw.reloads) == (1, 1)
            assert (webhook.port, metrics.port) == (webhook_port, metrics_port)  # same servers, no restart

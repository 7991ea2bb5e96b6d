"""The provider's servers, started before the caches sync: health and readiness (plus plain `/metrics` for
local runs), the webhooks (admission and `/convert`) and the secure diagnostics server, each HTTPS one with
a watcher that reloads its certificate."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from incluster_ipam.kube import KubeClient
from incluster_ipam.runtime import Informer
from incluster_ipam.serving.certwatch import CertWatcher
from incluster_ipam.serving.diagnostics import DiagnosticsServer, KubeAuthorizer
from incluster_ipam.serving.tls import cipher_list, tls_version
from incluster_ipam.webhooks import WebhookServer
from incluster_ipam.webhooks.lookups import InformerLookups
from incluster_ipam.webhooks.metrics import WebhookMetrics

from .options import Options, split_address

log = logging.getLogger(__name__)


def health_app(
    *, healthy: Callable[[], str | None], ready: Callable[[], str | None], render: Callable[[], bytes]
) -> web.Application:
    """`/healthz` and `/readyz` (200 "ok", or the reason the callable gives as 500/503) and `/metrics`."""
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        reason = healthy()
        return web.Response(text="ok") if reason is None else web.Response(status=500, text=reason)

    async def readyz(_: web.Request) -> web.Response:
        reason = ready()
        return web.Response(text="ok") if reason is None else web.Response(status=503, text=reason)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_health(stack: contextlib.AsyncExitStack, options: Options, app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    seen: set[tuple[str, int]] = set()
    for address in (options.health_address, options.metrics_address):
        parsed = split_address(address)
        if parsed is None or parsed in seen:
            continue
        seen.add(parsed)
        await web.TCPSite(runner, parsed[0], parsed[1]).start()


async def serve_webhooks(
    stack: contextlib.AsyncExitStack,
    options: Options,
    addresses: Informer,
    pools: Mapping[str, Informer],
    metrics: WebhookMetrics | None = None,
) -> str | None:
    """The webhook server on the options' port (None when it is 0); its URL."""
    if not options.webhook_port:
        return None
    lookups = InformerLookups(addresses, pools)
    cert_dir = options.webhook_cert_dir
    server = WebhookServer(
        options.webhook_host,
        options.webhook_port,
        str(cert_dir / options.webhook_cert_name),
        str(cert_dir / options.webhook_key_name),
        addresses=lookups.addresses,
        pools=lookups.pools,
        stored_uid=lookups.stored_uid,
        min_tls_version=tls_version(options.tls_min_version),
        ciphers=cipher_list(options.tls_cipher_suites),
        metrics=metrics,
    )
    await stack.enter_async_context(server)
    watcher = CertWatcher(
        server.cert_file,
        server.key_file,
        server.reload_certificates,
        interval=options.cert_poll_interval,
        name="webhook certificate",
    )
    await stack.enter_async_context(watcher)
    log.info("webhooks served at %s", server.url)
    return server.url


async def serve_diagnostics(
    stack: contextlib.AsyncExitStack, options: Options, client: KubeClient, render: Callable[[], bytes]
) -> str | None:
    """The secure metrics server (None when disabled); its URL."""
    parsed = split_address(options.diagnostics_address)
    if parsed is None:
        return None
    insecure = options.insecure_diagnostics
    cert_dir = options.diagnostics_cert_dir
    server = DiagnosticsServer(
        parsed[0],
        parsed[1],
        render,
        authorizer=None if insecure else KubeAuthorizer(client),
        insecure=insecure,
        cert_file=cert_dir / "tls.crt" if cert_dir else None,
        key_file=cert_dir / "tls.key" if cert_dir else None,
        min_tls_version=tls_version(options.tls_min_version),
        ciphers=cipher_list(options.tls_cipher_suites),
    )
    await stack.enter_async_context(server)
    if server.watched_files is not None:
        watcher = CertWatcher(
            *server.watched_files,
            server.reload_certificates,
            interval=options.cert_poll_interval,
            name="diagnostics certificate",
        )
        await stack.enter_async_context(watcher)
    return server.url

"""The HTTPS webhook server: upstream's admission paths for the four pool kinds plus ``/convert``.

Usage (port 0 picks a free port; `WebhookServer.port` and `.url` tell which)::

    async with WebhookServer("127.0.0.1", 0, cert_file, key_file, addresses=lookup, pools=pools) as srv:
        ...  # point webhook configurations and CRD conversion at srv.url

TLS comes from PEM files, TLS 1.2 at least; `reload_certificates` re-reads them into the live context
(new connections get the new certificate), so rotation only needs a file watcher to call it.
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from incluster_ipam.webhooks.admission import (
    ROUTES,
    PoolAdmission,
    ReviewError,
    Route,
    malformed_response,
    parse_review,
    review_response,
)
from incluster_ipam.webhooks.conversion import ConversionReviewError, handle_conversion_review
from incluster_ipam.webhooks.lookups import AddressLookup, PoolLookup

log = logging.getLogger(__name__)

CONVERT_PATH = "/convert"
#: A ConversionReview for a list request carries every object of the list.
MAX_BODY_BYTES = 64 * 1024 * 1024


class _BodyError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _BodyError(f"invalid JSON number {name}")


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _BodyError(f"request body is not valid JSON: {exc}") from None


def _admission_handler(admission: PoolAdmission, route: Route) -> Any:
    async def handle(request: web.Request) -> web.Response:
        try:
            review = parse_review(await _json_body(request))
        except (_BodyError, ReviewError) as exc:
            return web.json_response(malformed_response(str(exc)))
        verdict = await admission.review(route, review)
        return web.json_response(review_response(review.api_version, review.uid, verdict))

    return handle


async def _convert(request: web.Request) -> web.Response:
    try:
        answer = handle_conversion_review(await _json_body(request))
    except (_BodyError, ConversionReviewError) as exc:
        return web.Response(status=400, text=str(exc))
    return web.json_response(answer)


def build_app(
    addresses: AddressLookup, pools: PoolLookup | None = None, *, lookup_timeout: float = 5.0
) -> web.Application:
    """The aiohttp application (no TLS): what `WebhookServer` serves, and what tests can drive directly."""
    admission = PoolAdmission(addresses, pools, lookup_timeout=lookup_timeout)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    for route in ROUTES:
        app.router.add_post(route.path, _admission_handler(admission, route))
    app.router.add_post(CONVERT_PATH, _convert)
    return app


def server_ssl_context(
    cert_file: str | Path, key_file: str | Path, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    """Server-side TLS context (TLS 1.2 or newer by default) with the given PEM certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min_version
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class WebhookServer:
    """Runs `build_app` over HTTPS on ``host:port`` until stopped."""

    def __init__(
        self,
        host: str,
        port: int,
        cert_file: str | Path,
        key_file: str | Path,
        *,
        addresses: AddressLookup,
        pools: PoolLookup | None = None,
        lookup_timeout: float = 5.0,
        min_tls_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ) -> None:
        self.host = host
        self.port = port
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._app = build_app(addresses, pools, lookup_timeout=lookup_timeout)
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._min_tls = min_tls_version

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:9443`` (paths are appended to it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("webhook server already started")
        self._ssl = server_ssl_context(self.cert_file, self.key_file, self._min_tls)
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("webhook server listening on %s", self.url)

    def reload_certificates(self) -> None:
        """Load the certificate and key files again; new TLS handshakes use them."""
        if self._ssl is None:
            raise RuntimeError("webhook server not started")
        server_ssl_context(self.cert_file, self.key_file)  # a pair that does not load leaves the old one
        self._ssl.load_cert_chain(str(self.cert_file), str(self.key_file))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> WebhookServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

"""The HTTPS webhook server: upstream's admission paths for the four pool kinds plus ``/convert``.

Usage (port 0 picks a free port; `WebhookServer.port` and `.url` tell which)::

    async with WebhookServer("127.0.0.1", 0, cert_file, key_file, addresses=lookup, pools=pools) as srv:
        ...  # point webhook configurations and CRD conversion at srv.url

TLS comes from PEM files (`incluster_ipam.serving.tls`: TLS 1.2 at least, forward-secret AEAD suites);
`reload_certificates` swaps in a context built from the files again (new connections get the new
certificate), so rotation only needs a file watcher to call it.

The port is open to anyone who can reach it, so bodies are bounded before they are read and never parsed
in a way that could blow up (`incluster_ipam.webhooks.bodies`); one review is read and parsed at a time per
kind of endpoint, and each must arrive within `BODY_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from incluster_ipam.api.conversion import ConversionError, convert
from incluster_ipam.serving.tls import ServingTLS, server_context
from incluster_ipam.webhooks.admission import (
    ROUTES,
    PoolAdmission,
    ReviewError,
    Route,
    malformed_response,
    parse_review,
    review_response,
)
from incluster_ipam.webhooks.bodies import (
    MAX_ADMISSION_BYTES,
    MAX_CONVERSION_BYTES,
    BodyError,
    ConversionFailed,
    ConversionStream,
    parse_admission,
    too_large,
)
from incluster_ipam.webhooks.conversion import CONVERSION_REVIEW_VERSION
from incluster_ipam.webhooks.lookups import AddressLookup, PoolLookup, StoredUidLookup
from incluster_ipam.webhooks.metrics import CONVERSION_FAILED, WebhookMetrics

log = logging.getLogger(__name__)

CONVERT_PATH = "/convert"
#: kept for callers that imported it: the largest body the server reads (a conversion review)
MAX_BODY_BYTES = MAX_CONVERSION_BYTES
#: A review must arrive within this many seconds (the apiserver's own webhook timeout is 10 s at most 30).
BODY_SECONDS = 30.0
_CHUNK = 64 * 1024

__all__ = ["CONVERT_PATH", "MAX_BODY_BYTES", "WebhookServer", "build_app", "server_ssl_context"]


def server_ssl_context(
    cert_file: str | Path, key_file: str | Path, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    """Server-side TLS context (TLS 1.2 or newer by default) with the given PEM certificate chain and key."""
    return server_context(cert_file, key_file, min_version)


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 by its Content-Length or as soon as it passes `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    async with asyncio.timeout(BODY_SECONDS):
        while True:
            chunk = await request.content.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            parts.append(chunk)
    return b"".join(parts)


def _body_error(exc: BodyError) -> web.Response:
    return web.Response(status=exc.status, text=str(exc))


def _admission_handler(
    admission: PoolAdmission, route: Route, slots: asyncio.Semaphore, metrics: WebhookMetrics
) -> Any:
    async def handle(request: web.Request) -> web.Response:
        try:
            async with slots:
                body = parse_admission(await _read_capped(request, MAX_ADMISSION_BYTES))
            review = parse_review(body)
        except BodyError as exc:
            metrics.http_error(request.path, exc.status)
            if exc.status == 400:  # not JSON: answered in a review, as controller-runtime does
                return web.json_response(malformed_response(str(exc)), dumps=_dumps)
            return _body_error(exc)
        except TimeoutError:
            metrics.http_error(request.path, 408)
            return web.Response(status=408, text=f"request body not received within {BODY_SECONDS:g} s")
        except ReviewError as exc:
            metrics.http_error(request.path, 400)
            return web.json_response(malformed_response(str(exc)), dumps=_dumps)
        verdict = await admission.review(route, review)
        if verdict.status is not None and verdict.status.code >= 500:  # undecided: lookup or bug
            metrics.error(request.path, verdict.status.reason)
        return web.json_response(review_response(review.api_version, review.uid, verdict), dumps=_dumps)

    return handle


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _convert_one(obj: Any, desired: str) -> Any:
    try:
        return convert(obj, desired)
    except ConversionError as exc:
        raise ConversionFailed(str(exc)) from exc
    except Exception as exc:  # a bug must fail the review cleanly
        log.exception("converting an object failed")
        raise ConversionFailed(f"{type(exc).__name__}: {exc}") from exc


def _converter(slots: asyncio.Semaphore, metrics: WebhookMetrics) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        """Parse, convert and serialize object by object; yield to the event loop between chunks."""
        try:
            if request.content_length is not None and request.content_length > MAX_CONVERSION_BYTES:
                raise too_large(MAX_CONVERSION_BYTES)
            async with slots, asyncio.timeout(BODY_SECONDS):
                stream = ConversionStream(_convert_one)
                while chunk := await request.content.read(_CHUNK):
                    stream.feed(chunk)
                    if stream.failure is not None:
                        break  # one object failed: so does the review; the rest need not be read
                    await asyncio.sleep(0)
                fields = stream.finish() if stream.failure is None else stream.fields
        except BodyError as exc:
            metrics.http_error(request.path, exc.status)
            return _body_error(exc)
        except TimeoutError:
            metrics.http_error(request.path, 408)
            return web.Response(status=408, text=f"request body not received within {BODY_SECONDS:g} s")
        uid = fields.get("request.uid")
        if fields.get("apiVersion") != CONVERSION_REVIEW_VERSION or fields.get("kind") != "ConversionReview":
            metrics.http_error(request.path, 400)
            return web.Response(
                status=400, text=f"expected a ConversionReview of {CONVERSION_REVIEW_VERSION}"
            )
        if not isinstance(uid, str) or not uid:
            metrics.http_error(request.path, 400)
            return web.Response(status=400, text="ConversionReview request has no uid")
        if stream.failure is not None:
            metrics.error(request.path, CONVERSION_FAILED)
            result = {"metadata": {}, "status": "Failure", "message": stream.failure}
        else:
            result = {"metadata": {}, "status": "Success"}
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        head = {"apiVersion": CONVERSION_REVIEW_VERSION, "kind": "ConversionReview"}
        await response.write(orjson.dumps(head)[:-1] + b',"response":{"uid":' + orjson.dumps(uid))
        await response.write(b',"convertedObjects":[')
        for index, part in enumerate(stream.converted):
            await response.write(part if index == 0 else b"," + part)
        await response.write(b'],"result":' + orjson.dumps(result) + b"}}")
        await response.write_eof()
        return response

    return handle


def build_app(
    addresses: AddressLookup,
    pools: PoolLookup | None = None,
    *,
    stored_uid: StoredUidLookup | None = None,
    lookup_timeout: float = 5.0,
    metrics: WebhookMetrics | None = None,
) -> web.Application:
    """The aiohttp application (no TLS): what `WebhookServer` serves, and what tests can drive directly.
    Without `metrics` the counts go to a private registry."""
    admission = PoolAdmission(addresses, pools, stored_uid=stored_uid, lookup_timeout=lookup_timeout)
    metrics = metrics or WebhookMetrics()
    metrics.paths = frozenset({*(route.path for route in ROUTES), CONVERT_PATH})
    app = web.Application(client_max_size=MAX_CONVERSION_BYTES, middlewares=[metrics.middleware])
    admission_slots = asyncio.Semaphore(2)
    for route in ROUTES:
        app.router.add_post(route.path, _admission_handler(admission, route, admission_slots, metrics))
    app.router.add_post(CONVERT_PATH, _converter(asyncio.Semaphore(1), metrics))
    return app


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
        stored_uid: StoredUidLookup | None = None,
        lookup_timeout: float = 5.0,
        min_tls_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        ciphers: str | None = None,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._app = build_app(
            addresses, pools, stored_uid=stored_uid, lookup_timeout=lookup_timeout, metrics=metrics
        )
        self._runner: web.AppRunner | None = None
        self._tls: ServingTLS | None = None
        self._min_tls = min_tls_version
        self._ciphers = ciphers

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.0.0.1:9443`` (paths are appended to it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("webhook server already started")
        self._tls = ServingTLS(self.cert_file, self.key_file, self._min_tls, self._ciphers)
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self._tls.context)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("webhook server listening on %s", self.url)

    def reload_certificates(self) -> None:
        """Load the certificate and key files again; new TLS handshakes use them (a pair that does not
        load raises and leaves the served one in place)."""
        if self._tls is None:
            raise RuntimeError("webhook server not started")
        self._tls.reload()

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

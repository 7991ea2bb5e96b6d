"""The diagnostics server: Prometheus `/metrics` over HTTPS, for callers the Kubernetes API lets in.

Cluster API's `--diagnostics-address` (default `:8443`), as controller-runtime's secure metrics serving:

- TLS 1.2 or newer (`--tls-min-version VersionTLS13` raises it), with the certificate from a directory (the
  manifests mount one issued by cert-manager; `reload_certificates()` picks up a renewed one, see
  `incluster_ipam.serving.certwatch`), or a self-signed one generated at start when none is given;
- authentication: the request's bearer token goes to the apiserver in a TokenReview (401 when missing or
  not authenticated);
- authorization: a SubjectAccessReview for that user, non-resource URL `/metrics`, verb `get` (403 when
  denied; the manifests ship the `metrics-reader` ClusterRole to bind to a scraper);
- both answers cached per token for `cache_ttl` seconds (10 by default), so a scrape every few seconds costs
  the apiserver about one review pair per scraper and TTL;
- at most `MAX_REVIEWS` reviews in flight and `MAX_WAITING` callers waiting for one; anyone beyond gets 429
  at once (finding 10 of the December review: random tokens never hit the cache, so without a bound any
  pod could make the provider flood the apiserver and starve its own lease renewals);
- when the apiserver cannot answer a review: 503, nothing cached.

`--insecure-diagnostics` serves the same `/metrics` over plain HTTP without any check (for local runs and
for clusters that protect the port otherwise). The provider's ServiceAccount needs `create` on
`tokenreviews` and `subjectaccessreviews` (the metrics-auth ClusterRole in `config/rbac/`).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CONTENT_TYPE_LATEST

from incluster_ipam.kube import KubeError, Obj, Resource
from incluster_ipam.serving.tls import TLS_VERSIONS, ServingTLS, server_context, tls_version

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
DEFAULT_CACHE_TTL = 10.0
MAX_CACHED_TOKENS = 1024
MAX_REVIEWS = 4
MAX_WAITING = 32

__all__ = [
    "METRICS_PATH",
    "SUBJECT_ACCESS_REVIEWS",
    "TLS_VERSIONS",
    "TOKEN_REVIEWS",
    "Decision",
    "DiagnosticsServer",
    "KubeAuthorizer",
    "bearer_token",
    "self_signed_pair",
    "server_ssl_context",
    "tls_version",
]

TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False)
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False
)


def server_ssl_context(
    cert_file: str | Path, key_file: str | Path, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    return server_context(cert_file, key_file, min_version)


# ---- authentication and authorization ------------------------------------------------------------------


class ReviewClient(Protocol):
    """What the reviews need of `KubeClient`."""

    async def create(self, resource: Resource, obj: Obj, /) -> Obj: ...


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: `status` 200 lets it through; anything else is the HTTP answer."""

    status: int
    message: str
    user: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class KubeAuthorizer:
    """TokenReview, then SubjectAccessReview (non-resource `path`, `verb`), cached per token for `ttl`."""

    def __init__(
        self,
        client: ReviewClient,
        *,
        ttl: float = DEFAULT_CACHE_TTL,
        max_entries: int = MAX_CACHED_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, Decision]] = {}
        self._in_flight = asyncio.Semaphore(MAX_REVIEWS)
        self._waiting = 0
        self.reviews = 0
        """TokenReviews sent (for tests and debugging)."""
        self.turned_away = 0
        """Requests answered 429 because too many were waiting for a review."""

    async def authorize(self, authorization: str | None, path: str, verb: str) -> Decision:
        token = bearer_token(authorization)
        if token is None:
            return Decision(401, "Unauthorized: a bearer token is required")
        key = (hashlib.sha256(token.encode()).hexdigest(), path, verb)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._waiting >= MAX_WAITING:
            self.turned_away += 1
            return Decision(429, "Too Many Requests: too many requests are waiting to be verified")
        self._waiting += 1
        try:
            async with self._in_flight:
                cached = self._cache.get(key)  # a concurrent request with the same token may have asked
                if cached is not None and cached[0] > self._clock():
                    return cached[1]
                decision = await self._review(token, path, verb)
        except KubeError as exc:
            log.warning("metrics request not verified: the apiserver could not review it: %s", exc)
            return Decision(503, "Service Unavailable: could not verify the request")
        finally:
            self._waiting -= 1
        self._remember(key, now + self._ttl, decision)
        return decision

    async def _review(self, token: str, path: str, verb: str) -> Decision:
        self.reviews += 1
        review = await self._client.create(
            TOKEN_REVIEWS,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status") or {}
        if not status.get("authenticated"):
            return Decision(401, "Unauthorized")
        user: Obj = status.get("user") or {}
        username = str(user.get("username", ""))
        spec: Obj = {
            "user": username,
            "groups": list(user.get("groups") or []),
            "nonResourceAttributes": {"path": path, "verb": verb},
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access = await self._client.create(
            SUBJECT_ACCESS_REVIEWS,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        if (access.get("status") or {}).get("allowed"):
            return Decision(200, "OK", username)
        return Decision(403, f"Forbidden: user {username!r} may not {verb} {path}", username)

    def _remember(self, key: tuple[str, str, str], expires: float, decision: Decision) -> None:
        if len(self._cache) >= self._max_entries:
            now = self._clock()
            for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[stale]
            while len(self._cache) >= self._max_entries:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (expires, decision)


# ---- certificates -----------------------------------------------------------------------------------------


def self_signed_pair(hosts: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A throwaway self-signed ECDSA serving certificate for `hosts` (PEM cert, PEM key), valid one year."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# ---- the server ---------------------------------------------------------------------------------------


class DiagnosticsServer:
    """Serves `render()` (Prometheus text) at `/metrics` on `host:port` until stopped.

    Secure (default): HTTPS with `cert_file`/`key_file` (a self-signed pair when both are None) and every
    request checked by `authorizer`. `insecure=True`: plain HTTP, no checks, no authorizer needed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        *,
        authorizer: KubeAuthorizer | None = None,
        insecure: bool = False,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        min_tls_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
        ciphers: str | None = None,
    ) -> None:
        if not insecure and authorizer is None:
            raise ValueError("secure diagnostics need an authorizer (or insecure=True)")
        if (cert_file is None) != (key_file is None):
            raise ValueError("give both the certificate and the key file, or neither")
        if min_tls_version < ssl.TLSVersion.TLSv1_2:
            raise ValueError("TLS older than 1.2 is not served")
        self.host = host
        self.port = port
        self.insecure = insecure
        self.cert_file = Path(cert_file) if cert_file is not None else None
        self.key_file = Path(key_file) if key_file is not None else None
        self._render = render
        self._authorizer = authorizer
        self._min_tls = min_tls_version
        self._ciphers = ciphers
        self._tls: ServingTLS | None = None
        self._runner: web.AppRunner | None = None
        self._self_signed_fds: list[int] = []

    @property
    def url(self) -> str:
        scheme = "http" if self.insecure else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def watched_files(self) -> tuple[Path, Path] | None:
        """The certificate and key to watch for renewal (None when insecure or self-signed)."""
        if self.insecure or self._self_signed_fds or self.cert_file is None:
            return None
        assert self.key_file is not None
        return (self.cert_file, self.key_file)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._metrics)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._authorizer is not None and not self.insecure:
            decision = await self._authorizer.authorize(
                request.headers.get("Authorization"), request.path, request.method.lower()
            )
            if not decision.allowed:
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if decision.status == 401 else None
                return web.Response(status=decision.status, text=decision.message + "\n", headers=headers)
        return web.Response(body=self._render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _generate_self_signed(self) -> None:
        """A throwaway pair in anonymous memory files (memfd): nothing written to disk, so it works under
        a read-only root filesystem (finding 19 of the December review)."""
        cert_pem, key_pem = self_signed_pair(("localhost", "127.0.0.1", socket.gethostname()))
        paths = []
        for name, content in (("tls.crt", cert_pem), ("tls.key", key_pem)):
            fd = os.memfd_create(f"incluster-ipam-diagnostics-{name}")
            os.write(fd, content)
            self._self_signed_fds.append(fd)
            paths.append(Path(f"/proc/self/fd/{fd}"))
        self.cert_file, self.key_file = paths
        log.info("diagnostics: no certificate given, serving a self-signed one")

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("diagnostics server already started")
        site_ssl: ssl.SSLContext | None = None
        if not self.insecure:
            if self.cert_file is None:
                self._generate_self_signed()
            assert self.cert_file is not None
            assert self.key_file is not None
            self._tls = ServingTLS(self.cert_file, self.key_file, self._min_tls, self._ciphers)
            site_ssl = self._tls.context
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=site_ssl).start()
        except BaseException:
            await runner.cleanup()
            self._cleanup_self_signed()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("diagnostics served at %s%s", self.url, METRICS_PATH)

    def reload_certificates(self) -> None:
        """Load the certificate files again (a pair that does not load raises; the served one stays)."""
        if self._tls is None:
            raise RuntimeError("diagnostics server not started or not serving TLS")
        self._tls.reload()

    def _cleanup_self_signed(self) -> None:
        for fd in self._self_signed_fds:
            os.close(fd)
        if self._self_signed_fds:
            self._self_signed_fds.clear()
            self.cert_file = self.key_file = None

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._cleanup_self_signed()

    async def __aenter__(self) -> DiagnosticsServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

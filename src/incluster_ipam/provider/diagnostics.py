"""The diagnostics server: Prometheus `/metrics` over HTTPS, for callers the Kubernetes API lets in.

Cluster API's `--diagnostics-address` (default `:8443`), as controller-runtime's secure metrics serving:

- TLS 1.2 or newer (`--tls-min-version VersionTLS13` raises it), with the certificate from a directory (the
  manifests mount one issued by cert-manager; `reload_certificates()` picks up a renewed one, see
  `incluster_ipam.webhooks.certwatch`), or a self-signed one generated at start when none is given;
- authentication: the request's bearer token goes to the apiserver in a TokenReview (401 when missing or
  not authenticated);
- authorization: a SubjectAccessReview for that user, non-resource URL `/metrics`, verb `get` (403 when
  denied; the manifests ship the `metrics-reader` ClusterRole to bind to a scraper);
- both answers cached per token for `cache_ttl` seconds (10 by default), so a scrape every few seconds costs
  the apiserver about one review pair per scraper and TTL;
- when the apiserver cannot answer a review: 503, nothing cached.

`--insecure-diagnostics` serves the same `/metrics` over plain HTTP without any check (for local runs and
for clusters that protect the port otherwise). The provider's ServiceAccount needs `create` on
`tokenreviews` and `subjectaccessreviews` (the metrics-auth ClusterRole in `config/rbac/`).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
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

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
DEFAULT_CACHE_TTL = 10.0
MAX_CACHED_TOKENS = 1024

TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False)
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False
)

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "VersionTLS12": ssl.TLSVersion.TLSv1_2,
    "VersionTLS13": ssl.TLSVersion.TLSv1_3,
}
"""`--tls-min-version` values (Cluster API's names); TLS 1.0 and 1.1 are not offered."""


def tls_version(name: str) -> ssl.TLSVersion:
    """`VersionTLS12` -> `ssl.TLSVersion.TLSv1_2`; ValueError for anything else."""
    try:
        return TLS_VERSIONS[name]
    except KeyError:
        raise ValueError(f"unsupported TLS version {name!r}; use one of {', '.join(TLS_VERSIONS)}") from None


def server_ssl_context(
    cert_file: str | Path, key_file: str | Path, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = min_version
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


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
        self.reviews = 0
        """TokenReviews sent (for tests and debugging)."""

    async def authorize(self, authorization: str | None, path: str, verb: str) -> Decision:
        token = bearer_token(authorization)
        if token is None:
            return Decision(401, "Unauthorized: a bearer token is required")
        key = (hashlib.sha256(token.encode()).hexdigest(), path, verb)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            decision = await self._review(token, path, verb)
        except KubeError as exc:
            log.warning("metrics request not verified: the apiserver could not review it: %s", exc)
            return Decision(503, "Service Unavailable: could not verify the request")
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
        self._ssl: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._self_signed_dir: Path | None = None

    @property
    def url(self) -> str:
        scheme = "http" if self.insecure else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def watched_files(self) -> tuple[Path, Path] | None:
        """The certificate and key to watch for renewal (None when insecure or self-signed)."""
        if self.insecure or self._self_signed_dir is not None or self.cert_file is None:
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
        directory = Path(tempfile.mkdtemp(prefix="incluster-ipam-diagnostics-"))
        cert_pem, key_pem = self_signed_pair(("localhost", "127.0.0.1", socket.gethostname()))
        (directory / "tls.crt").write_bytes(cert_pem)
        key_path = directory / "tls.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        self._self_signed_dir = directory
        self.cert_file, self.key_file = directory / "tls.crt", key_path
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
            site_ssl = self._ssl = server_ssl_context(self.cert_file, self.key_file, self._min_tls)
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
        """Load the certificate files again (checked first: a bad pair leaves the served one in place)."""
        if self._ssl is None:
            raise RuntimeError("diagnostics server not started or not serving TLS")
        assert self.cert_file is not None
        assert self.key_file is not None
        server_ssl_context(self.cert_file, self.key_file, self._min_tls)  # raises on a bad pair
        self._ssl.load_cert_chain(str(self.cert_file), str(self.key_file))

    def _cleanup_self_signed(self) -> None:
        if self._self_signed_dir is not None:
            shutil.rmtree(self._self_signed_dir, ignore_errors=True)
            self._self_signed_dir = None
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

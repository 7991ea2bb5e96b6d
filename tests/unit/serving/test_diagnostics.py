"""The diagnostics server's checks (TokenReview, SubjectAccessReview, cache) against a scripted apiserver,
and its TLS and plain-HTTP serving. The real apiserver's answers are in tests/integration/packaging/."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from incluster_ipam.devcluster.pki import CertificateAuthority
from incluster_ipam.kube import ApiError, Obj, Resource, TransportError
from incluster_ipam.serving.diagnostics import (
    SUBJECT_ACCESS_REVIEWS,
    TOKEN_REVIEWS,
    DiagnosticsServer,
    KubeAuthorizer,
    bearer_token,
    self_signed_pair,
    tls_version,
)
from tests.unit.packaging.certs import der, serving_pair, write_pair

USER = {"username": "system:serviceaccount:mon:prom", "uid": "u-1", "groups": ["system:serviceaccounts"]}


class ScriptedApi:
    """Answers reviews: tokens in `users` authenticate; users in `readers` may get /metrics."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.readers: set[str] = set()
        self.requests: list[tuple[Resource, Obj]] = []
        self.fail: Exception | None = None

    async def create(self, resource: Resource, obj: Obj, /) -> Obj:
        self.requests.append((resource, obj))
        if self.fail is not None:
            raise self.fail
        if resource == TOKEN_REVIEWS:
            user = self.users.get(obj["spec"]["token"])
            return {"status": {"authenticated": True, "user": user} if user else {"authenticated": False}}
        assert resource == SUBJECT_ACCESS_REVIEWS
        return {"status": {"allowed": obj["spec"]["user"] in self.readers}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_tls_versions() -> None:
    assert tls_version("VersionTLS12") is ssl.TLSVersion.TLSv1_2
    assert tls_version("VersionTLS13") is ssl.TLSVersion.TLSv1_3
    with pytest.raises(ValueError, match="VersionTLS12, VersionTLS13"):
        tls_version("VersionTLS11")


async def test_no_token_is_401_without_asking_the_apiserver() -> None:
    api = ScriptedApi()
    decision = await KubeAuthorizer(api).authorize(None, "/metrics", "get")
    assert decision.status == 401
    assert api.requests == []


async def test_an_unknown_token_is_401() -> None:
    decision = await KubeAuthorizer(ScriptedApi()).authorize("Bearer nope", "/metrics", "get")
    assert decision.status == 401


async def test_an_authorized_user_passes_and_the_review_names_the_user_and_url() -> None:
    api = ScriptedApi()
    api.users["t"] = {**USER, "extra": {"authentication.kubernetes.io/pod-name": ["p"]}}
    api.readers.add(USER["username"])
    decision = await KubeAuthorizer(api).authorize("Bearer t", "/metrics", "get")
    assert (decision.status, decision.user) == (200, USER["username"])
    (_, token_review), (_, access_review) = api.requests
    assert token_review["spec"] == {"token": "t"}
    assert access_review["spec"] == {
        "user": USER["username"],
        "uid": "u-1",
        "groups": ["system:serviceaccounts"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]},
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"},
    }


async def test_an_authenticated_stranger_is_403() -> None:
    api = ScriptedApi()
    api.users["t"] = USER
    decision = await KubeAuthorizer(api).authorize("Bearer t", "/metrics", "get")
    assert decision.status == 403
    assert USER["username"] in decision.message


async def test_answers_are_cached_per_token_for_the_ttl() -> None:
    api, clock = ScriptedApi(), Clock()
    api.users["t"] = USER
    authorizer = KubeAuthorizer(api, ttl=10.0, clock=clock)
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 403
    api.readers.add(USER["username"])
    clock.now += 9.0
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 403  # cached
    assert authorizer.reviews == 1
    clock.now += 1.5
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 200
    assert authorizer.reviews == 2


async def test_an_apiserver_failure_is_503_and_not_cached() -> None:
    api = ScriptedApi()
    api.users["t"] = USER
    api.readers.add(USER["username"])
    authorizer = KubeAuthorizer(api)
    api.fail = TransportError("connection refused")
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 503
    api.fail = ApiError(500, "InternalError", "etcd")
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 503
    api.fail = None
    assert (await authorizer.authorize("Bearer t", "/metrics", "get")).status == 200


async def test_the_cache_is_bounded() -> None:
    api, clock = ScriptedApi(), Clock()
    authorizer = KubeAuthorizer(api, max_entries=3, clock=clock)
    for i in range(10):
        await authorizer.authorize(f"Bearer t{i}", "/metrics", "get")
    assert len(authorizer._cache) <= 3
    await authorizer.authorize("Bearer t9", "/metrics", "get")
    assert authorizer.reviews == 10  # the newest entry survived


def _metrics() -> bytes:
    return b"# HELP demo_total A demo.\n# TYPE demo_total counter\ndemo_total 3.0\n"


async def test_insecure_mode_serves_plain_http_without_checks() -> None:
    async with (
        DiagnosticsServer("127.0.0.1", 0, _metrics, insecure=True) as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/metrics") as resp,
    ):
        assert server.url.startswith("http://")
        assert resp.status == 200
        assert "demo_total 3.0" in await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain")


def test_secure_mode_needs_an_authorizer() -> None:
    with pytest.raises(ValueError, match="authorizer"):
        DiagnosticsServer("127.0.0.1", 0, _metrics)
    with pytest.raises(ValueError, match=r"TLS older than 1\.2"):
        DiagnosticsServer(
            "127.0.0.1",
            0,
            _metrics,
            authorizer=KubeAuthorizer(ScriptedApi()),
            min_tls_version=ssl.TLSVersion.TLSv1_1,
        )


async def test_secure_mode_checks_every_request_over_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    write_pair(tmp_path, serving_pair(ca))
    api = ScriptedApi()
    api.users.update({"reader": {"username": "reader"}, "other": {"username": "other"}})
    api.readers.add("reader")
    server = DiagnosticsServer(
        "127.0.0.1",
        0,
        _metrics,
        authorizer=KubeAuthorizer(api),
        cert_file=tmp_path / "tls.crt",
        key_file=tmp_path / "tls.key",
    )
    client_tls = ssl.create_default_context(cadata=ca.cert_pem.decode())
    async with server, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as http:
        assert server.url.startswith("https://")
        assert server.watched_files == (tmp_path / "tls.crt", tmp_path / "tls.key")
        statuses = {}
        for name, headers in [
            ("none", {}),
            ("reader", {"Authorization": "Bearer reader"}),
            ("other", {"Authorization": "Bearer other"}),
        ]:
            async with http.get(f"{server.url}/metrics", headers=headers) as resp:
                statuses[name] = resp.status
                if resp.status == 200:
                    assert "demo_total 3.0" in await resp.text()
                if resp.status == 401:
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert statuses == {"none": 401, "reader": 200, "other": 403}


async def _handshake(url: str, context: ssl.SSLContext) -> bytes:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        peer: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return peer
    finally:
        writer.close()
        await writer.wait_closed()


def _unverified(max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        context.maximum_version = max_version
    return context


async def test_without_certificate_files_a_self_signed_one_is_served_and_removed() -> None:
    server = DiagnosticsServer("127.0.0.1", 0, _metrics, authorizer=KubeAuthorizer(ScriptedApi()))
    async with server:
        assert server.watched_files is None
        assert server.cert_file is not None
        generated = server.cert_file
        assert await _handshake(server.url, _unverified()) == der(generated.read_bytes())
    assert not generated.exists()


async def test_the_minimum_tls_version_is_enforced(tmp_path: Path) -> None:
    write_pair(tmp_path, serving_pair())
    server = DiagnosticsServer(
        "127.0.0.1",
        0,
        _metrics,
        authorizer=KubeAuthorizer(ScriptedApi()),
        cert_file=tmp_path / "tls.crt",
        key_file=tmp_path / "tls.key",
        min_tls_version=ssl.TLSVersion.TLSv1_3,
    )
    async with server:
        await _handshake(server.url, _unverified())
        with pytest.raises((ssl.SSLError, ConnectionResetError)):  # an alert or a reset, by timing
            await _handshake(server.url, _unverified(ssl.TLSVersion.TLSv1_2))


async def test_reload_keeps_the_served_pair_when_the_new_one_is_broken(tmp_path: Path) -> None:
    first, second = serving_pair(), serving_pair()
    write_pair(tmp_path, first)
    server = DiagnosticsServer(
        "127.0.0.1",
        0,
        _metrics,
        authorizer=KubeAuthorizer(ScriptedApi()),
        cert_file=tmp_path / "tls.crt",
        key_file=tmp_path / "tls.key",
    )
    async with server:
        (tmp_path / "tls.crt").write_bytes(second.cert_pem)  # key not yet rotated
        with pytest.raises(ssl.SSLError):
            server.reload_certificates()
        assert await _handshake(server.url, _unverified()) == der(first.cert_pem)
        (tmp_path / "tls.key").write_bytes(second.key_pem)
        server.reload_certificates()
        assert await _handshake(server.url, _unverified()) == der(second.cert_pem)


def test_self_signed_pair_loads() -> None:
    cert, key = self_signed_pair(("localhost", "127.0.0.1"))
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in key

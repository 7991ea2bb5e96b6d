"""The real HTTPS server on 127.0.0.1 (self-signed certificate) and the /convert endpoint."""

import datetime
import ipaddress
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from incluster_ipam.api.constants import API_VERSION_V1ALPHA1, API_VERSION_V1ALPHA2
from incluster_ipam.webhooks import WebhookServer, build_app
from incluster_ipam.webhooks.server import server_ssl_context
from tests.unit.webhooks.fakes import FakeCluster, path, pool_object, review


def write_self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def client_context(ca_file: Path, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if max_version is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = max_version
    return context


async def test_https_admission_and_conversion(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, "one")
    cluster = FakeCluster()
    async with WebhookServer("127.0.0.1", 0, cert, key, addresses=cluster.addresses_of) as server:
        assert server.port != 0
        assert server.url == f"https://127.0.0.1:{server.port}"
        connector = aiohttp.TCPConnector(ssl=client_context(cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            obj = pool_object("InClusterIPPool", {"addresses": ["10.0.0.1"], "prefix": 24})
            async with session.post(server.url + path("InClusterIPPool"), json=review("CREATE", obj)) as resp:
                assert resp.status == 200
                assert (await resp.json())["response"]["allowed"] is True
            conversion = {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "ConversionReview",
                "request": {
                    "uid": "c-1",
                    "desiredAPIVersion": API_VERSION_V1ALPHA2,
                    "objects": [
                        pool_object(
                            "GlobalInClusterIPPool",
                            {"subnet": "1.1.1.0/24"},
                            api_version=API_VERSION_V1ALPHA1,
                        )
                    ],
                },
            }
            async with session.post(server.url + "/convert", json=conversion) as resp:
                answer = await resp.json()
            assert answer["apiVersion"] == "apiextensions.k8s.io/v1"
            response = answer["response"]
            assert (response["uid"], response["result"]["status"]) == ("c-1", "Success")
            assert response["convertedObjects"][0]["spec"] == {
                "addresses": ["1.1.1.1-1.1.1.254"],
                "prefix": 24,
            }


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_below_1_2_is_refused_and_certificates_reload(tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path, "one")
    assert server_ssl_context(cert, key).minimum_version == ssl.TLSVersion.TLSv1_2
    async with WebhookServer("127.0.0.1", 0, cert, key, addresses=FakeCluster().addresses_of) as server:
        old_client = client_context(cert, max_version=ssl.TLSVersion.TLSv1_1)
        old_client.set_ciphers("ALL:@SECLEVEL=0")
        connector = aiohttp.TCPConnector(ssl=old_client)
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientError):
                await session.post(server.url + "/convert", data=b"{}")
        new_cert, new_key = write_self_signed(tmp_path, "two")
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        server.reload_certificates()
        connector = aiohttp.TCPConnector(ssl=client_context(new_cert), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(server.url + "/convert", data=b"{}") as resp,
        ):
            assert resp.status == 400  # reached the handler, trusting only the new certificate


def conversion_review(desired: str, objects: Any, uid: Any = "c-2") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    }


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        json.dumps({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview"}).encode(),
        json.dumps({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"}).encode(),
        json.dumps(conversion_review(API_VERSION_V1ALPHA2, [], uid=5)).encode(),
        json.dumps(conversion_review(API_VERSION_V1ALPHA2, {"not": "a list"})).encode(),
    ],
)
async def test_malformed_conversion_reviews_are_http_400(tmp_path: Path, body: bytes) -> None:
    async with TestClient(TestServer(build_app(FakeCluster().addresses_of))) as client:
        resp = await client.post("/convert", data=body)
        assert resp.status == 400
        assert await resp.text()


async def test_conversion_failures_are_reported_in_the_review() -> None:
    bad = pool_object("InClusterIPPool", {"subnet": "1.1.1.0"}, api_version=API_VERSION_V1ALPHA1)
    good = pool_object("InClusterIPPool", {"subnet": "1.1.1.0/24"}, api_version=API_VERSION_V1ALPHA1)
    async with TestClient(TestServer(build_app(FakeCluster().addresses_of))) as client:
        resp = await client.post("/convert", json=conversion_review(API_VERSION_V1ALPHA2, [good, bad]))
        assert resp.status == 200
        response = (await resp.json())["response"]
        assert response["uid"] == "c-2"
        assert response["result"]["status"] == "Failure"
        assert response["result"]["message"] == (
            'spec.subnet: Invalid value: "1.1.1.0": netip.ParsePrefix("1.1.1.0"): no \'/\''
        )
        resp = await client.post("/convert", json=conversion_review(API_VERSION_V1ALPHA1, [good, 7]))
        assert (await resp.json())["response"]["result"]["message"] == "object is not a JSON object"

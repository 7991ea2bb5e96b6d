"""Kubeconfig and in-cluster resolution, and the TLS/token settings derived from them."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import yaml

from incluster_ipam.devcluster.pki import CertificateAuthority
from incluster_ipam.kube import ConfigError, TokenSource, in_cluster_config, load_config, load_kubeconfig
from incluster_ipam.kube.config import parse_kubeconfig


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(cluster: dict[str, object], user: dict[str, object], **context: object) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": cluster},
            {"name": "other", "cluster": {"server": "https://x"}},
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u", **context}},
            {"name": "second", "context": {"cluster": "other"}},
        ],
        "current-context": "main",
    }


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def test_inline_data_and_namespace(ca: CertificateAuthority) -> None:
    client = ca.client("alice")
    data = kubeconfig(
        {"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(ca.cert_pem)},
        {"client-certificate-data": b64(client.cert_pem), "client-key-data": b64(client.key_pem)},
        namespace="team",
    )
    config = parse_kubeconfig(data, Path("/nowhere"))
    assert config.server == "https://127.0.0.1:6443"
    assert config.ca_data == ca.cert_pem
    assert config.client_cert_data == client.cert_pem
    assert config.namespace == "team"
    context = config.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_relative_files_resolve_against_the_kubeconfig(tmp_path: Path, ca: CertificateAuthority) -> None:
    client = ca.client("bob")
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "pki" / "bob.crt").write_bytes(client.cert_pem)
    (tmp_path / "pki" / "bob.key").write_bytes(client.key_pem)
    data = kubeconfig(
        {"server": "https://h:1", "certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/bob.crt", "client-key": "pki/bob.key"},
    )
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    config = load_kubeconfig(path)
    assert config.ca_file == tmp_path / "pki" / "ca.crt"
    assert config.client_key_file == tmp_path / "pki" / "bob.key"
    assert isinstance(config.ssl_context(), ssl.SSLContext)


def test_token_user_and_explicit_context() -> None:
    data = kubeconfig({"server": "https://h:1", "insecure-skip-tls-verify": True}, {"token": "abc"})
    config = parse_kubeconfig(data, Path("/"))
    assert config.token == "abc"
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert parse_kubeconfig(data, Path("/"), context="second").server == "https://x"


def test_unsupported_and_broken_configs() -> None:
    with pytest.raises(ConfigError, match=r"users\[0\].user.exec.apiVersion: is required"):
        parse_kubeconfig(kubeconfig({"server": "https://h"}, {"exec": {"command": "aws"}}), Path("/"))
    with pytest.raises(ConfigError, match=r"users\[0\].user.auth-provider: auth-provider plugins"):
        parse_kubeconfig(kubeconfig({"server": "https://h"}, {"auth-provider": {"name": "gcp"}}), Path("/"))
    with pytest.raises(ConfigError, match="no server"):
        parse_kubeconfig(kubeconfig({}, {}), Path("/"))
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        parse_kubeconfig(kubeconfig({"server": "https://h"}, {}), Path("/"), context="nope")
    with pytest.raises(ConfigError, match="base64"):
        parse_kubeconfig(
            kubeconfig({"server": "https://h", "certificate-authority-data": "%%%"}, {}), Path("/")
        )
    half = kubeconfig({"server": "https://h"}, {"client-certificate-data": b64(b"x")})
    with pytest.raises(ConfigError, match="both"):
        parse_kubeconfig(half, Path("/")).ssl_context()


def test_plain_http_needs_no_tls() -> None:
    assert (
        parse_kubeconfig(kubeconfig({"server": "http://127.0.0.1:8080"}, {}), Path("/")).ssl_context() is None
    )


def service_account(tmp_path: Path, ca: CertificateAuthority) -> Path:
    (tmp_path / "token").write_text("tok-1\n")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "namespace").write_text("capi-ipam-in-cluster-system")
    return tmp_path


def test_in_cluster(tmp_path: Path, ca: CertificateAuthority) -> None:
    account = service_account(tmp_path, ca)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    config = in_cluster_config(env, account)
    assert config.server == "https://[fd00::1]:443"
    assert config.namespace == "capi-ipam-in-cluster-system"
    assert config.token_file == account / "token"
    assert isinstance(config.ssl_context(), ssl.SSLContext)
    with pytest.raises(ConfigError, match="not running in a cluster"):
        in_cluster_config({}, account)


def test_load_config_order(tmp_path: Path, ca: CertificateAuthority) -> None:
    explicit = tmp_path / "explicit"
    explicit.write_text(yaml.safe_dump(kubeconfig({"server": "https://explicit"}, {})))
    from_env = tmp_path / "from-env"
    from_env.write_text(yaml.safe_dump(kubeconfig({"server": "https://from-env"}, {})))
    assert load_config(explicit, env={"KUBECONFIG": str(from_env)}).server == "https://explicit"
    assert load_config(env={"KUBECONFIG": f"{from_env}:{explicit}"}).server == "https://from-env"  # merged
    with pytest.raises(ConfigError, match="service account token"):
        load_config(env={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})


async def test_token_file_is_re_read_after_refresh_or_invalidate(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    source = TokenSource(path=path, refresh_seconds=3600)
    assert await source.token() == "one"
    path.write_text("two\n")
    assert await source.token() == "one"  # cached within the refresh period
    source.invalidate()
    assert await source.token() == "two"
    eager = TokenSource(path=path, refresh_seconds=0)
    path.write_text("three")
    assert await eager.token() == "three"
    assert await TokenSource(token="static").token() == "static"

"""Proxy choice as kubectl makes it: proxy-url first, then HTTPS_PROXY/HTTP_PROXY unless NO_PROXY (or
loopback) says direct."""

from __future__ import annotations

import pytest
from yarl import URL

from incluster_ipam.kube.proxy import ProxyError, bypasses_proxy, proxy_for


def test_proxy_url_wins_over_the_environment_and_applies_to_loopback() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:3128"}
    assert proxy_for("https://127.0.0.1:6443", "http://127.0.0.1:8888", env) == URL("http://127.0.0.1:8888")


def test_environment_proxies_by_scheme_upper_case_first() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1", "http_proxy": "plain:3128"}
    assert proxy_for("https://kube.example.com", None, env) == URL("http://upper:1")
    assert proxy_for("http://kube.example.com", None, env) == URL("http://plain:3128")
    assert proxy_for("https://kube.example.com", None, {"https_proxy": "http://lower:1"}) == URL(
        "http://lower:1"
    )
    assert proxy_for("https://kube.example.com", None, {}) is None


def test_loopback_never_goes_through_an_environment_proxy() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128"}
    for server in (
        "https://127.0.0.1:6443",
        "https://127.3.2.1",
        "https://[::1]:6443",
        "https://localhost:6443",
    ):
        assert proxy_for(server, None, env) is None, server


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("kube.example.com", 443, "example.com", True),
        ("example.com", 443, "example.com", True),
        ("kube.example.com", 443, ".example.com", True),
        ("example.com", 443, ".example.com", False),
        ("kube.example.com", 443, "*.example.com", True),
        ("notexample.com", 443, "example.com", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("11.1.2.3", 443, "10.0.0.0/8", False),
        ("10.1.2.3", 443, "10.1.2.3", True),
        ("fd00::5", 443, "fd00::/64", True),
        ("kube.example.com", 6443, "kube.example.com:6443", True),
        ("kube.example.com", 443, "kube.example.com:6443", False),
        ("anything", 1, " * ", True),
        ("kube.example.com", 443, "other.org, EXAMPLE.com", True),
        ("kube.example.com", 443, "", False),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: str, direct: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is direct


def test_unsupported_proxies_are_named() -> None:
    with pytest.raises(ProxyError, match="HTTPS_PROXY: socks5 proxies are not supported"):
        proxy_for("https://kube.example.com", None, {"HTTPS_PROXY": "socks5://127.0.0.1:1080"})

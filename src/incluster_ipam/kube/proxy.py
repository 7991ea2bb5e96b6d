"""Which HTTP proxy, if any, carries the traffic to the apiserver (pure).

The cluster's `proxy-url` wins. Otherwise the environment is read as Go's net/http (and so kubectl) reads
it: HTTPS_PROXY for https servers, HTTP_PROXY for http ones (upper case first), NO_PROXY a comma-separated
list of hosts, domains (`example.com` and `.example.com`), IP addresses and CIDR ranges, each optionally
with a port, or `*`. As in Go, `localhost` and loopback addresses never go through an environment proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from yarl import URL

SUPPORTED_SCHEMES = ("http", "https")


class ProxyError(ValueError):
    """A proxy URL cannot be used; the message names where it came from."""


def check_proxy_url(value: str, where: str) -> URL:
    """A usable proxy URL (http or https); socks proxies are refused with a clear message."""
    url = URL(value if "://" in value else f"http://{value}")
    if url.scheme not in SUPPORTED_SCHEMES:
        raise ProxyError(
            f"{where}: {url.scheme} proxies are not supported ({value!r}); use an http:// or https:// proxy"
        )
    if not url.host:
        raise ProxyError(f"{where}: {value!r} has no host")
    return url


def _env(env: Mapping[str, str], name: str) -> str:
    return env.get(name.upper()) or env.get(name.lower()) or ""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def _matches(entry: str, host: str, port: int) -> bool:
    if "/" in entry:  # CIDR
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return False
        ip = _ip(host)
        return ip is not None and ip in network
    name, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    entry_ip, ip = _ip(name), _ip(host)
    if entry_ip is not None or ip is not None:
        return entry_ip is not None and entry_ip == ip
    if name.startswith("*."):
        name = name[1:]
    if name.startswith("."):
        return host.endswith(name)
    return host == name or host.endswith("." + name)


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether host:port is reached directly despite an environment proxy."""
    host = host.lower().rstrip(".")
    ip = _ip(host)
    if host == "localhost" or (ip is not None and ip.is_loopback):
        return True
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if entry and _matches(entry, host, port):
            return True
    return False


def proxy_for(server: str, proxy_url: str | None, env: Mapping[str, str]) -> URL | None:
    """The proxy for `server`: the kubeconfig's proxy-url, else the environment's, else None (direct)."""
    if proxy_url:
        return check_proxy_url(proxy_url, "proxy-url")
    target = URL(server)
    name = "HTTPS_PROXY" if target.scheme == "https" else "HTTP_PROXY"
    value = _env(env, name)
    if not value or target.host is None:
        return None
    if bypasses_proxy(target.host, target.port or 443, _env(env, "NO_PROXY")):
        return None
    return check_proxy_url(value, name)

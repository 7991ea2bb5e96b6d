"""Where the apiserver is and how to authenticate: kubeconfig files or the in-cluster service account.

Loading happens once at start-up (file reads here are small and synchronous on purpose). Supported:
server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name, client-certificate(-data),
client-key(-data), token and tokenFile. Exec and auth-provider plugins are not supported (clear error).
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: client-go re-reads projected service-account tokens about once a minute; kubelet rotates them long before
#: expiry, so a minute of staleness is safe.
TOKEN_REFRESH_SECONDS = 60.0


class ConfigError(Exception):
    """The kubeconfig or the in-cluster environment cannot be used."""


class TokenSource:
    """A bearer token, re-read from its file every `refresh_seconds` (projected tokens rotate)."""

    def __init__(
        self,
        token: str | None = None,
        path: Path | None = None,
        refresh_seconds: float = TOKEN_REFRESH_SECONDS,
    ) -> None:
        if token is None and path is None:
            raise ValueError("a token source needs a token or a token file")
        self._token = token
        self._path = path
        self._refresh = refresh_seconds
        self._read_at = -float("inf") if token is None else time.monotonic()

    async def token(self) -> str:
        if self._path is not None and time.monotonic() - self._read_at >= self._refresh:
            text = await asyncio.to_thread(self._path.read_text)
            self._token = text.strip()
            self._read_at = time.monotonic()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Force a re-read on next use (after a 401, the file may already hold a rotated token)."""
        if self._path is not None:
            self._read_at = -float("inf")


@dataclass(frozen=True)
class ClusterConfig:
    """Resolved connection settings. Data fields hold PEM bytes; file fields absolute paths."""

    server: str
    ca_file: Path | None = None
    ca_data: bytes | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    client_cert_file: Path | None = None
    client_cert_data: bytes | None = None
    client_key_file: Path | None = None
    client_key_data: bytes | None = None
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    namespace: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for an https server (None for plain http)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            context = ssl.create_default_context(cadata=self.ca_data.decode())
        elif self.ca_file is not None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            context = ssl.create_default_context()
        cert_given = self.client_cert_data is not None or self.client_cert_file is not None
        key_given = self.client_key_data is not None or self.client_key_file is not None
        if cert_given != key_given:
            raise ConfigError("a client certificate needs both the certificate and its key")
        if cert_given:
            _load_cert_chain(
                context,
                self.client_cert_file,
                self.client_cert_data,
                self.client_key_file,
                self.client_key_data,
            )
        return context

    def token_source(self) -> TokenSource | None:
        if self.token_file is not None:
            return TokenSource(path=self.token_file)
        if self.token:
            return TokenSource(token=self.token)
        return None


def _load_cert_chain(
    context: ssl.SSLContext,
    cert_file: Path | None,
    cert_data: bytes | None,
    key_file: Path | None,
    key_data: bytes | None,
) -> None:
    """ssl only loads key pairs from files: inline data goes through private temp files, removed at once."""
    with tempfile.TemporaryDirectory(prefix="incluster-ipam-tls-") as tmp:
        if cert_data is not None:
            cert_file = Path(tmp) / "client.crt"
            cert_file.write_bytes(cert_data)
        if key_data is not None:
            key_file = Path(tmp) / "client.key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key_data)
        context.load_cert_chain(str(cert_file), str(key_file))


def _named(entries: Any, name: str, what: str) -> Mapping[str, Any]:
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            value = entry.get(what)
            return value if isinstance(value, Mapping) else {}
    raise ConfigError(f"kubeconfig has no {what} named {name!r}")


def _data(value: Any, key: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ConfigError(f"kubeconfig field {key} is not valid base64") from exc


def _path(value: Any, base_dir: Path) -> Path | None:
    if not value:
        return None
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else base_dir / path


def parse_kubeconfig(data: Mapping[str, Any], base_dir: Path, context: str | None = None) -> ClusterConfig:
    """Resolve one context of a parsed kubeconfig; relative file paths are relative to `base_dir`."""
    context_name = context or data.get("current-context")
    if not context_name:
        raise ConfigError("kubeconfig has no current-context and none was given")
    ctx = _named(data.get("contexts"), context_name, "context")
    cluster = _named(data.get("clusters"), str(ctx.get("cluster")), "cluster")
    user: Mapping[str, Any] = _named(data.get("users"), str(ctx["user"]), "user") if ctx.get("user") else {}
    if user.get("exec") or user.get("auth-provider"):
        raise ConfigError("kubeconfig users with exec or auth-provider plugins are not supported")
    server = cluster.get("server")
    if not server:
        raise ConfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    return ClusterConfig(
        server=str(server).rstrip("/"),
        ca_file=_path(cluster.get("certificate-authority"), base_dir),
        ca_data=_data(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name") or None,
        client_cert_file=_path(user.get("client-certificate"), base_dir),
        client_cert_data=_data(user.get("client-certificate-data"), "client-certificate-data"),
        client_key_file=_path(user.get("client-key"), base_dir),
        client_key_data=_data(user.get("client-key-data"), "client-key-data"),
        token=user.get("token") or None,
        token_file=_path(user.get("tokenFile"), base_dir),
        namespace=ctx.get("namespace") or None,
    )


def load_kubeconfig(path: str | Path, context: str | None = None) -> ClusterConfig:
    """Read and resolve a kubeconfig file."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {file}: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"kubeconfig {file} is not a mapping")
    return parse_kubeconfig(data, file.parent, context)


def in_cluster_config(
    env: Mapping[str, str] | None = None, account_dir: Path = SERVICE_ACCOUNT_DIR
) -> ClusterConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT, CA, rotating token file, namespace."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = account_dir / "token"
    if not token_file.is_file():
        raise ConfigError(f"service account token {token_file} does not exist")
    namespace_file = account_dir / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    ca_file = account_dir / "ca.crt"
    host = f"[{host}]" if ":" in host else host
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_file=ca_file if ca_file.is_file() else None,
        token_file=token_file,
        namespace=namespace,
    )


def load_config(
    kubeconfig: str | Path | None = None, context: str | None = None, env: Mapping[str, str] | None = None
) -> ClusterConfig:
    """client-go's order: explicit kubeconfig, then $KUBECONFIG, then in-cluster, then ~/.kube/config.

    Unlike client-go, several $KUBECONFIG files are not merged: the first one is used.
    """
    env = os.environ if env is None else env
    if kubeconfig:
        return load_kubeconfig(kubeconfig, context)
    paths = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if paths:
        return load_kubeconfig(paths[0], context)
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config(env)
    return load_kubeconfig(Path.home() / ".kube" / "config", context)
